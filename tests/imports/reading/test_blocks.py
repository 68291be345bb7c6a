"""Blocks of plain CSV lines parsed by Postgres (imports/reading/blocks.py) give exactly what the reader gives.

The differential test writes thousands of random small files, many of them malformed on purpose (spaces around
delimiters and quotes, quotes inside fields, lone quotes, multi-line fields, blank, total and repeated-header
lines, rows of the wrong width, CRLF and lone CR, `\\.`, Unicode spaces), and reads each one twice: with
`iter_records` (the reference), and the way a direct import does: `csv_blocks`, every Block parsed by Postgres's
COPY (`fastpath.block_copy`, real database), a refused block and everything after it read again by the reader
from the block's first byte. Both must give the same records, skipped lines and errors.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from config.errors import UnreadableFile
from imports.pipeline import fastpath
from imports.reading import FileLayout, Record, iter_records
from imports.reading.blocks import Block, BlockRefused, block_reading, csv_blocks

pytestmark = pytest.mark.django_db

TOKENS = [
    "a", "b2", "10.5", "1,234.56", "$1,234.56", "x y", "", "", " ", "  ", " a", "a ", 'a"b', '"', 'x"', '"x',
    'say ""hi""', "line\nbreak", "cr\rhere", "Total", "TOTAL 12", "Closing balance", "Date downloaded", "\\.", "é",
    "\u00a0", "\t", "a\u2003", "h0", "ä,ö",
]  # fmt: skip


def random_cell(rng: random.Random, delimiter: str, hostility: float) -> str:
    """A cell as it appears in the file: mostly quoted correctly when needed, sometimes raw whatever it holds."""
    hostile = rng.random() < hostility
    text = rng.choice(TOKENS) if hostile else rng.choice(["a", "b", "12", "x y", "SOME, CO", "2024-01-02", ""])
    style = rng.random()
    if style < 0.25 or any(c in text for c in (delimiter, '"', "\n", "\r")) and (style < 0.9 or not hostile):
        return '"' + text.replace('"', '""') + '"'  # quoted, as a CSV writer does
    if hostile and style < 0.3:
        return ' "' + text + '" '  # spaces around the quotes
    return text


def random_file(rng: random.Random) -> tuple[str, str, int]:
    """(text, delimiter, width) of a random small CSV file with a header line `h0,h1,...`."""
    delimiter = rng.choice([",", ",", ";", "\t", "|"])
    width = rng.randint(2, 5)
    newline = rng.choice(["\n", "\n", "\r\n"])
    lines = [delimiter.join(f"h{i}" for i in range(width))]
    hostility = rng.choice([0.0, 0.0, 0.02, 0.1, 0.4])  # how many cells are odd (none: a plain file)
    odd_lines = rng.choice([0.0, 0.0, 0.1])
    for _ in range(rng.randint(1, 14)):
        kind = rng.random() if rng.random() < odd_lines * 10 else 1.0
        if kind < 0.04:
            lines.append("")
        elif kind < 0.07:
            lines.append(delimiter * (width - 1))
        elif kind < 0.09:
            lines.append(rng.choice(["Total", '"Transactions Total"', "\\.", "h0", "note"]) + delimiter * (width - 1))
        else:
            n = width if rng.random() < 1 - hostility else rng.choice([width - 1, width + 1, width + 2])
            cells = [random_cell(rng, delimiter, hostility) for _ in range(n)]
            if rng.random() < 0.85 and n >= 2 and not cells[1]:
                cells[1] = "v"  # keep most rows plain enough for Postgres to get a try
            lines.append(delimiter.join(cells))
    text = newline.join(lines)
    if rng.random() < 0.8:
        text += newline
    if rng.random() < hostility / 4:
        text = text.replace("\n", "\r", 1)  # a lone CR somewhere
    return text, delimiter, width


def layout_for(delimiter: str, width: int, newline: str) -> FileLayout:
    header = [f"h{i}" for i in range(width)]
    return FileLayout(
        encoding="utf-8",
        delimiter=delimiter,
        quotechar='"',
        newline=newline,
        header_line=1,
        header=header,
        columns=header,
    )


def as_seen(item: Any) -> tuple[Any, ...]:
    """A reader's item as (kind, line, cells or reason)."""
    return ("record", item.line, item.cells) if isinstance(item, Record) else ("skip", item.line, item.reason)


def outcome(items: Any) -> tuple[list[tuple[Any, ...]], str | None]:
    """The reader's items as (kind, line, cells or reason), and the error it ended with."""
    seen: list[tuple[Any, ...]] = []
    try:
        for item in items:
            seen.append(as_seen(item))
    except UnreadableFile as exc:
        return seen, exc.message
    return seen, None


def through_blocks(path: Path, layout: FileLayout, rows: int) -> tuple[list[tuple[Any, ...]], str | None, int]:
    """The items the way a direct import reads them, and how many lines Postgres parsed."""
    seen: list[tuple[Any, ...]] = []
    parsed = 0
    width = len(layout.columns)
    names = ", ".join(f"c{i}" for i in range(width))
    items = csv_blocks(path, layout, rows=rows, max_bytes=1 << 20, max_field_chars=1000, max_columns=50)
    try:
        for item in items:
            if not isinstance(item, Block):
                seen.append(as_seen(item))
                continue
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    fastpath.block_copy(cursor, item, width=width, delimiter=layout.delimiter, header_name="h0")
                    cursor.execute(f"SELECT line, ARRAY[{names}] FROM {fastpath.block_table(width)} ORDER BY line")
                    rows_read = cursor.fetchall()
                    transaction.set_rollback(True)
            except BlockRefused:
                # What the import does: the rest of the file with the reader, from the block's first byte.
                start = (item.end - len(item.data), item.first_line)
                rest, error = outcome(iter_records(path, layout, max_field_chars=1000, max_columns=50, start=start))
                return seen + rest, error, parsed
            seen.extend(("record", line, cells) for line, cells in rows_read)
            parsed += len(rows_read)
    except UnreadableFile as exc:
        return seen, exc.message, parsed
    return seen, None, parsed


def test_blocks_parsed_by_postgres_give_what_the_reader_gives_on_random_and_malformed_files(tmp_path: Path) -> None:
    rng = random.Random(20261204)
    parsed = blocks_refused_or_skipped = 0
    for case in range(2500):
        text, delimiter, width = random_file(rng)
        path = tmp_path / f"case{case}.csv"
        path.write_bytes(text.encode())
        layout = layout_for(delimiter, width, "CRLF" if "\r\n" in text else "LF")
        expected = outcome(iter_records(path, layout, max_field_chars=1000, max_columns=50))
        got, error, lines = through_blocks(path, layout, rows=rng.choice([1, 2, 3, 50]))
        assert (got, error) == expected, f"case {case}: {text!r}"
        parsed += lines
        blocks_refused_or_skipped += lines == 0
    # The test means something only if Postgres did parse a good share of the lines, and the reader the rest.
    assert parsed > 3000, parsed
    assert blocks_refused_or_skipped > 300, blocks_refused_or_skipped
    print(f"{parsed} lines parsed by Postgres; {blocks_refused_or_skipped} files read by the reader only")


def test_a_plain_file_goes_to_postgres_whole_and_its_resumed_reading_starts_at_a_block_end(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    body = "".join(f'{n},"SOME, CO",{n}.5\n' for n in range(10))
    path.write_text("h0,h1,h2\n" + body)
    layout = layout_for(",", 3, "LF")
    assert block_reading(layout)
    blocks = list(csv_blocks(path, layout, rows=4, max_bytes=1 << 20, max_field_chars=1000, max_columns=50))
    assert [(b.first_line, b.last_line) for b in blocks] == [(2, 5), (6, 9), (10, 11)]
    assert not any(b.spaced for b in blocks)  # "SOME, CO": the space is inside the quotes (odd count before it)
    assert b"".join(b.data for b in blocks) == body.encode()
    resumed = list(
        csv_blocks(
            path, layout, rows=4, max_bytes=1 << 20, max_field_chars=1000, max_columns=50, start=(blocks[0].end, 6)
        )
    )
    assert [(b.first_line, b.data) for b in resumed] == [(b.first_line, b.data) for b in blocks[1:]]


def test_many_spaces_next_to_delimiters_in_quoted_lines_are_left_to_postgres_to_check(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("h0,h1,h2\n" + "".join(f'{n},"Doe, John",x\n' for n in range(40)))
    blocks = list(
        csv_blocks(path, layout_for(",", 3, "LF"), rows=40, max_bytes=1 << 20, max_field_chars=1000, max_columns=50)
    )
    assert [b.spaced for b in blocks] == [True]  # too many to look at one by one: every cell is checked instead
    with transaction.atomic(), connection.cursor() as cursor:
        fastpath.block_copy(cursor, blocks[0], width=3, delimiter=",", header_name="h0")
        cursor.execute(f"SELECT count(*) FROM {fastpath.block_table(3)} WHERE c1 = 'Doe, John'")
        assert cursor.fetchone() == (40,)
        transaction.set_rollback(True)


@pytest.mark.parametrize(
    "line",
    ['1,"b ",c', '1," b",c', '1,b,"c "', "1,b,c "],
    ids=["space-before-closing-quote", "space-after-opening-quote", "space-before-quote-at-line-end", "space-line-end"],
)
def test_a_space_next_to_a_quote_or_a_line_end_is_refused_also_among_too_many_spaces_to_look_at(
    tmp_path: Path, line: str
) -> None:
    # Forty quoted "Doe, John" are more spaces next to a delimiter than the byte checks look at one by one: the
    # block goes to Postgres with every cell checked, which must refuse the odd line (the reader trims its space,
    # COPY keeps it), and the reader then reads the block again: what comes out is the reader's.
    path = tmp_path / "names.csv"
    path.write_text("h0,h1,h2\n" + "".join(f'{n},"Doe, John",x\n' for n in range(40)) + line + "\n")
    layout = layout_for(",", 3, "LF")
    blocks = list(csv_blocks(path, layout, rows=100, max_bytes=1 << 20, max_field_chars=1000, max_columns=50))
    assert [type(item) for item in blocks] == [Block] and blocks[0].spaced
    got, error, parsed = through_blocks(path, layout, rows=100)
    assert parsed == 0  # refused by Postgres
    assert (got, error) == outcome(iter_records(path, layout, max_field_chars=1000, max_columns=50))
    assert ("record", 42, ["1", "b", "c"]) in got


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("1, b,c", "a space after a delimiter (the reader drops it)"),
        ('1, b,"c, d"', "a space after a delimiter, in a line with a quoted one"),
        ('1,"b" ,c', "a space after a closing quote"),
        ('1,"b ",c', "a space before a closing quote (the reader trims it)"),
        ('1," b",c', "a space after an opening quote"),
        ("1,b,c ", "a space at a line's end"),
        ('1,b"c,d', "a quote inside a field"),
        ("Total,,", "a summary row"),
        ("1,\u00a0,c", "a cell of a Unicode space only"),
        ("", "a blank line"),
        ("\\.", "the end-of-data mark of COPY"),
    ],
)
def test_lines_postgres_would_read_otherwise_are_left_to_the_reader(tmp_path: Path, line: str, why: str) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("h0,h1,h2\n1,b,c\n" + line + "\n2,b,c\n")
    items = list(
        csv_blocks(path, layout_for(",", 3, "LF"), rows=100, max_bytes=1 << 20, max_field_chars=1000, max_columns=50)
    )
    assert not any(isinstance(item, Block) for item in items), why
    assert outcome(items) == outcome(iter_records(path, layout_for(",", 3, "LF"))), why


def test_other_files_are_never_read_in_blocks() -> None:
    plain = layout_for(",", 3, "LF")
    assert block_reading(plain)
    for changed in (
        {"encoding": "cp1252"},
        {"encoding": "utf-16"},
        {"newline": "CR"},
        {"section": "Trades"},
        {"columns": ["only"], "header": ["only"]},
    ):
        assert not block_reading(FileLayout(**{**plain.as_dict(), **changed})), changed
