"""Streaming reader for real-world broker CSV exports.

`detect_layout` works out how a file is written (encoding, delimiter, newline style, where the header
row is, which section of a multi-section statement to read) from a bounded prefix plus one cheap
streaming pass over the raw bytes; `iter_records` then streams the rows below the header as `Record`s
(with the physical line the user sees in a text editor) or `Skipped`s (with a reason). Files that are
not CSV text raise `UnreadableFile` with a message naming the problem and the line.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from itertools import islice
from typing import IO, Any

from config.errors import UnreadableFile
from formats.suggest.scoring import table_fit
from imports.reading.encoding import DETECT_BYTES, legacy_encoding
from imports.sheets.cells import text_cells

HEAD_BYTES = 256 * 1024  # prefix used to guess the encoding, newline style and delimiter
SCAN_CHUNK_BYTES = 4 * 1024 * 1024  # the validation pass reads the file in chunks of this size
MAX_LINE_CHARS = 16 * 1024 * 1024  # a physical line longer than this is not a CSV line
SAMPLE_ROWS = 300  # rows read after the first candidate line to find the header and column count
SAMPLE_CHARS = 2_000_000  # ...or fewer rows when they are this large
HEADER_SEARCH_ROWS = 100  # the header must be among the first non-blank rows
FOLLOWING_ROWS = 50  # rows below a candidate header used to judge the table width
MIN_TABLE_FIT, MAX_TABLES = 3, 8  # a later stacked table wins when its header names this many fields; tables weighed
MAX_SECTIONS = 10_000
DELIMITERS = (",", ";", "\t", "|")
QUOTECHAR = '"'
SECTION_KINDS = frozenset({"Header", "Data", "Total", "SubTotal", "Notes"})

# Signatures of files people upload by mistake instead of a CSV export.
MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook is one)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"%PDF", "a PDF document"),
    (b"\x7fELF", "an ELF executable"),
    (b"\x1f\x8b", "a GZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 (.xls) workbook"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
)
# Control characters that never appear in text (tab, LF, VT, FF and CR do): translate() deletes them.
CONTROL_CHARS = dict.fromkeys([*range(0, 9), *range(14, 32), 127])

# First cells of summary rows that close a table: "Total", "Transactions Total", "Total for account",
# "Date downloaded ...", "Closing balance". Matched against the lower-cased cell.
SUMMARY = re.compile(
    r"(?:[\w&./'-]+ ){0,3}(?:sub-?|sub |grand )?totals?:?"
    r"|(?:sub-?|grand )?totals?(?::| for\b| in\b| \().*"
    r"|date downloaded\b.*|downloaded (?:on|at)\b.*"
    r"|(?:opening |closing |ending |starting |end |final )?balance:?",
    re.DOTALL,
)
DECIMAL_COMMA = re.compile(r"(?<=\d),(?=\d)")
QUOTED = re.compile(r'"[^"]*"')
HEADER_JUNK = str.maketrans({c: " " for c in [*map(chr, range(0, 32)), "\x7f", "\u200b", "\ufeff"]})


@dataclass
class ReaderOptions:
    """Overrides for detection, e.g. from a format's mapping (`reader.section`, `reader.header_line`)."""

    section: str | None = None
    header_line: int | None = None
    encoding: str | None = None
    delimiter: str | None = None


@dataclass
class FileLayout:
    """How a file is written: enough to stream its records again without re-detecting."""

    encoding: str
    delimiter: str
    quotechar: str
    newline: str
    header_line: int
    header: list[str]
    columns: list[str]
    section: str | None = None
    sections: list[str] = field(default_factory=list)
    skipped_preamble: int = 0
    # Short rows outside the table (a preamble's 'Base Currency,GBP', another section's key-value rows): they
    # may name what the table does not. A few dozen cells at most, see _context.
    context: list[list[str]] = field(default_factory=list)
    # A ledger (imports/reading/ledger.py): which original columns hold the time, asset, amount...; the
    # records are then joined into one per trade and `columns` are the joined ones. None: an ordinary table.
    ledger: dict | None = None

    def as_dict(self) -> dict:
        """A JSON-serialisable copy, for storing on the import file."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FileLayout:
        """The layout stored by `as_dict` (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(slots=True)
class Record:
    """One data row: its cells (surrounding spaces trimmed, see text_cells) and the physical line it starts on."""

    line: int
    cells: list[str]


@dataclass(slots=True)
class Skipped:
    """A line that is not a data row (blank, total, disclaimer, other section), with why."""

    line: int
    reason: str


# --------------------------------------------------------------------------------------------------
# Public API


def detect_layout(
    path: str | os.PathLike,
    options: ReaderOptions | None = None,
    *,
    max_columns: int = 500,
    max_field_chars: int = 100_000,
) -> FileLayout:
    """Work out the encoding, dialect, header row and (multi-section files) section of a CSV file."""
    options = options or ReaderOptions()
    head, size = _read_head(path)
    if size == 0:
        raise UnreadableFile("The file is empty.")
    complete = len(head) == size
    _reject_magic(head)
    guessed = _check_encoding_name(options.encoding) if options.encoding else _guess_encoding(head, complete)
    _reject_control_chars(_decode_head(head, guessed, complete))
    encoding = _scan_file(path, guessed, forced=bool(options.encoding))
    text = _decode_head(head, encoding, complete)
    newline = _detect_newline(text)
    delimiter = _check_delimiter(options.delimiter) if options.delimiter else _detect_delimiter(text, complete)
    base = {"encoding": encoding, "delimiter": delimiter, "quotechar": QUOTECHAR, "newline": newline}

    _set_field_limit(max_field_chars)
    rows, at_eof = _sample(path, base, options.header_line, max_columns, max_field_chars)
    if not any(any(cells) for _, cells in rows):
        if options.header_line:
            raise UnreadableFile(f"The file has no rows at or below line {options.header_line}.")
        raise UnreadableFile("The file holds only blank lines.")
    if options.section or _is_sectioned(rows):
        return _section_layout(path, base, rows, at_eof, options, max_columns, max_field_chars)
    return _table_layout(base, rows, options)


def iter_records(
    path: str | os.PathLike,
    layout: FileLayout,
    *,
    max_field_chars: int = 100_000,
    max_columns: int = 500,
    start: tuple[int, int] | None = None,
) -> Iterator[Record | Skipped]:
    """Stream the records below the header (or of the selected section), skipping what is not data.

    `start` (a table's only): (byte offset, line number) of a line below the header to read from, every line
    between the header and it having been a record (imports/reading/blocks.py hands over there)."""
    if layout.section:
        if start is not None:
            raise ValueError("a sectioned file is read from its start")
        return _iter_sections(path, layout, max_columns, max_field_chars)
    return _iter_table(path, layout, max_columns, max_field_chars, start)


def sample_records(path: str | os.PathLike, layout: FileLayout, n: int = 20) -> list[Record]:
    """The first `n` records of the file (skipped lines are left out)."""
    items = iter_records(path, layout)
    try:
        return list(islice((item for item in items if isinstance(item, Record)), n))
    finally:
        items.close()


# --------------------------------------------------------------------------------------------------
# Bytes: binary signatures, encoding, NUL bytes, newline style


def _read_head(path: str | os.PathLike) -> tuple[bytes, int]:
    """The first HEAD_BYTES of the file and the file's size."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            return f.read(HEAD_BYTES), size
    except OSError as exc:
        raise UnreadableFile(f"The file cannot be opened: {exc.strerror}.") from exc


def _reject_magic(head: bytes) -> None:
    """Refuse images, archives, PDFs and executables by their first bytes."""
    for magic, what in MAGIC:
        if head.startswith(magic):
            raise UnreadableFile(f"This is {what}, not a CSV file.")


def _reject_control_chars(text: str) -> None:
    """Refuse files whose start is largely control characters (compressed or binary data)."""
    sample = text[:65536]
    controls = len(sample) - len(sample.translate(CONTROL_CHARS))
    if controls >= 8 and controls > len(sample) * 0.1:
        share = round(100 * controls / len(sample))
        raise UnreadableFile(f"The file looks binary ({share}% control bytes), not like a CSV file.")


def _check_delimiter(delimiter: str) -> str:
    """The forced delimiter: one character ('tab' and '\\t' mean a tab)."""
    delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter.lower(), delimiter)
    if len(delimiter) != 1 or delimiter in (QUOTECHAR, "\r", "\n"):
        raise UnreadableFile(f"The delimiter must be one character other than a quote or newline, not {delimiter!r}.")
    return delimiter


def _check_encoding_name(name: str) -> str:
    """The forced encoding, if Python knows it."""
    try:
        codecs.lookup(name)
    except LookupError as exc:
        raise UnreadableFile(f'Unknown encoding "{name}".') from exc
    return name.lower()


def _is_wide(encoding: str) -> bool:
    """True for UTF-16/UTF-32, whose bytes are full of NULs by design."""
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


def _guess_encoding(head: bytes, complete: bool) -> str:
    """BOM first, then BOM-less UTF-16, then UTF-8 if the bytes are valid UTF-8, else the legacy encoding
    the text reads best in (imports/reading/encoding.py: cp1252, cp1250, cp1251, Shift-JIS, GB18030...)."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = head[:4096]
    even, odd = sample[0::2], sample[1::2]
    if len(sample) >= 4 and odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if len(sample) >= 4 and even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
        return "utf-8"
    except UnicodeDecodeError:
        return legacy_encoding(head)


def _scan_file(path: str | os.PathLike, encoding: str, *, forced: bool) -> str:
    """Stream the whole file once: check it decodes, has no NUL byte and no absurdly long line.

    Returns the encoding to use: a file whose prefix looked like UTF-8 but that has invalid UTF-8 further
    down is a legacy file, in the encoding detected around the first bytes that are not UTF-8.
    """
    try:
        _scan_decoding(path, encoding)
        return encoding
    except _DecodeFailure as failure:
        if forced or encoding != "utf-8":
            hint = " although it starts with a byte-order mark" if encoding.endswith("-sig") else ""
            raise UnreadableFile(
                f"Line {failure.line} cannot be read as {encoding}{hint}: {failure.reason}. "
                "Save the file as UTF-8 or choose its encoding."
            ) from None
        offset = failure.offset
    detected = legacy_encoding(_window(path, offset))
    for legacy in dict.fromkeys((detected, "cp1252")):
        try:
            _scan_decoding(path, legacy)
            return legacy
        except _DecodeFailure:
            continue
    _scan_decoding(path, "latin-1")  # latin-1 decodes any byte
    return "latin-1"


def _window(path: str | os.PathLike, offset: int) -> bytes:
    """DETECT_BYTES of the file from the line holding `offset` on (what the encoding is detected from)."""
    with open(path, "rb") as f:
        start = max(0, offset - 4096)
        f.seek(start)
        data = f.read(DETECT_BYTES + 4096)
    line_start = data.rfind(b"\n", 0, offset - start)
    return data[line_start + 1 :] if line_start >= 0 else data


class _DecodeFailure(Exception):
    """Bytes that do not decode, and the physical line they are on."""

    def __init__(self, line: int, reason: str, offset: int = 0) -> None:
        super().__init__(line, reason)
        self.line = line
        self.reason = reason
        self.offset = offset  # of the first byte that does not decode, in the file


def _scan_decoding(path: str | os.PathLike, encoding: str) -> None:
    """Decode the file chunk by chunk; raise _DecodeFailure or UnreadableFile (NUL byte, huge line)."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    wide = _is_wide(encoding)
    lines_before = 0  # line breaks in earlier chunks
    since_break = 0  # characters since the last line break
    consumed = 0  # bytes of earlier chunks
    with open(path, "rb") as f:
        while True:
            data = f.read(SCAN_CHUNK_BYTES)
            final = not data
            try:
                text = decoder.decode(data, final=final)
            except UnicodeDecodeError as exc:
                line = lines_before + _count_breaks(data[: max(exc.start, 0)].decode(encoding, "replace")) + 1
                bad = f" (byte 0x{data[exc.start]:02X})" if 0 <= exc.start < len(data) else ""
                raise _DecodeFailure(line, exc.reason + bad, consumed + max(exc.start, 0)) from None
            nul = text.find("\x00") if wide else data.find(b"\x00")
            if nul >= 0:
                before = text[:nul] if wide else data[:nul].decode(encoding, "replace")
                raise UnreadableFile(
                    f"NUL byte at line {lines_before + _count_breaks(before) + 1}: the file looks binary or corrupted."
                )
            last = max(text.rfind("\n"), text.rfind("\r"))
            since_break = since_break + len(text) if last < 0 else len(text) - last - 1
            if since_break > MAX_LINE_CHARS:
                raise UnreadableFile(
                    f"Line {lines_before + _count_breaks(text) + 1} is longer than "
                    f"{MAX_LINE_CHARS // (1024 * 1024)} MB without a line break: this is not a CSV file."
                )
            lines_before += _count_breaks(text)
            consumed += len(data)
            if final:
                return


def _count_breaks(text: str) -> int:
    """Line breaks in text, counted as the reader counts them (LF, CRLF and a lone CR each end a line)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _decode_head(head: bytes, encoding: str, complete: bool) -> str:
    """The prefix as text (an incomplete character at the cut is dropped)."""
    text = codecs.getincrementaldecoder(encoding)("replace").decode(head, final=complete)
    return text.lstrip("\ufeff")


def _detect_newline(text: str) -> str:
    """'CRLF', 'LF' or 'CR': whichever ends most lines of the prefix."""
    crlf = text.count("\r\n")
    counts = {"CRLF": crlf, "LF": text.count("\n") - crlf, "CR": text.count("\r") - crlf}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] else "LF"


# --------------------------------------------------------------------------------------------------
# Dialect


def _detect_delimiter(text: str, complete: bool) -> str:
    """The candidate delimiter that splits the first lines most consistently, into the most columns.

    Each candidate parses the prefix as CSV (so delimiters inside quotes do not count). Its score is
    (share of rows with the most common width) x (1 - 1/width) x (1 - 0.9 x share of rows with stray quotes):
    a wrong delimiter splits erratically (',' in a decimal-comma ';' file) and leaves quote characters
    inside fields (it cuts quoted fields in the middle).
    """
    if not complete:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        text = text[: cut + 1] if cut > 0 else text
    scores: dict[str, float] = {}
    for delimiter in DELIMITERS:
        if delimiter not in text:
            continue
        rows = [row for row in _parse_prefix(text, delimiter) if len(row) > 1 or (row and row[0].strip())]
        if not rows:
            continue
        width, count = max(Counter(map(len, rows)).items(), key=lambda item: (item[1], item[0]))
        stray = sum(1 for row in rows if any(QUOTECHAR in cell for cell in row))
        if width > 1:
            scores[delimiter] = count / len(rows) * (1 - 1 / width) * (1 - 0.9 * stray / len(rows))
    if not any(scores.values()):
        return ","
    best = max(scores, key=lambda d: scores[d])  # ties: the earlier candidate (',' first)
    if best == "," and scores.get(";", 0) >= 0.5 and _mostly_decimal_commas(text):
        return ";"
    return best


def _parse_prefix(text: str, delimiter: str) -> list[list[str]]:
    """Up to 200 rows of the prefix parsed with this delimiter (a parse error ends the list)."""
    rows: list[list[str]] = []
    reader = _csv_reader(io.StringIO(text, newline=""), delimiter, QUOTECHAR)
    try:
        for row in reader:
            rows.append(row)
            if len(rows) >= 200:
                break
    except csv.Error:
        pass  # a wrong delimiter can make a quote swallow the prefix: score the rows read so far
    return rows


def _mostly_decimal_commas(text: str) -> bool:
    """True when most commas outside quotes sit between two digits (1,5) as in decimal-comma locales."""
    sample = QUOTED.sub("", text[:65536])
    commas = sample.count(",")
    return commas > 0 and len(DECIMAL_COMMA.findall(sample)) > commas * 0.5


def _csv_reader(stream: Iterable[str], delimiter: str, quotechar: str) -> Any:
    """A csv.reader for the dialect (leading spaces before a quote are skipped, as Excel does)."""
    return csv.reader(stream, delimiter=delimiter, quotechar=quotechar, skipinitialspace=True)


def _open_text(path: str | os.PathLike, encoding: str) -> IO[str]:
    """The file as text; newline='' so csv sees embedded newlines and CR-only files split on CR."""
    return open(path, encoding=encoding, newline="", errors="strict")


def _open_text_at(path: str | os.PathLike, encoding: str, offset: int) -> IO[str]:
    """The file as text from a byte offset at a line boundary (a byte-order mark only ever opens the file)."""
    raw = open(path, "rb")
    raw.seek(offset)
    if offset and codecs.lookup(encoding).name == "utf-8-sig":
        encoding = "utf-8"
    return io.TextIOWrapper(raw, encoding=encoding, newline="", errors="strict")


def _set_field_limit(max_field_chars: int) -> None:
    """Cap the size of one field (csv's limit is process-wide; every reader call sets it)."""
    csv.field_size_limit(max_field_chars)


def _csv_problem(line: int, exc: csv.Error, max_field_chars: int) -> UnreadableFile:
    """A csv error as a message naming the line."""
    message = str(exc)
    if "field larger than field limit" in message:
        return UnreadableFile(
            f"Line {line}: a field is longer than {max_field_chars} characters "
            "(an unclosed quote may have swallowed the rest of the file)."
        )
    return UnreadableFile(f"Line {line} cannot be parsed as CSV: {message}.")


# --------------------------------------------------------------------------------------------------
# Sampling and header detection


def _sample(
    path: str | os.PathLike,
    base: dict[str, Any],
    from_line: int | None,
    max_columns: int,
    max_field_chars: int,
) -> tuple[list[tuple[int, list[str]]], bool]:
    """The first rows (from `from_line` on) as (start line, stripped cells), and whether EOF was reached."""
    rows: list[tuple[int, list[str]]] = []
    chars = 0
    start = from_line or 1
    with _open_text(path, base["encoding"]) as stream:
        reader = _csv_reader(stream, base["delimiter"], base["quotechar"])
        prev = 0
        try:
            for row in reader:
                line, prev = prev + 1, reader.line_num
                if line < start <= prev:
                    raise UnreadableFile(
                        f"Line {start} is inside a quoted field that starts at line {line}; it cannot be the header."
                    )
                if line < start:
                    continue
                if len(row) > max_columns:
                    raise UnreadableFile(f"Line {line} has {len(row)} fields; at most {max_columns} are allowed.")
                rows.append((line, text_cells(row)))
                chars += sum(map(len, row))
                if len(rows) >= SAMPLE_ROWS or chars >= SAMPLE_CHARS:
                    return rows, False
        except csv.Error as exc:
            raise _csv_problem(prev + 1, exc, max_field_chars) from exc
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"Line {prev + 1} cannot be read as {base['encoding']}: {exc.reason}.") from exc
    return rows, True


def _table_layout(base: dict[str, Any], rows: list[tuple[int, list[str]]], options: ReaderOptions) -> FileLayout:
    """Layout of an ordinary table: find the header row, then the column count."""
    if options.header_line:
        index = 0  # the sample starts at the header line
        if not any(rows[0][1]):
            raise UnreadableFile(f"Line {rows[0][0]} is blank; it cannot be the header.")
    else:
        index = _find_header(rows)
    line, cells = rows[index]
    width = _table_width(cells, rows[index + 1 :])
    header = [_clean_header_cell(cell) for cell in cells[:width]]
    header += [""] * (width - len(header))
    return FileLayout(
        **base,
        header_line=line,
        header=header,
        columns=_unique_columns(header),
        skipped_preamble=line - 1,
        context=_context(cells for _, cells in rows[:index]),
    )


_CONTEXT_ROWS, _CONTEXT_CELLS, _CONTEXT_CHARS = 30, 6, 80


def _context(rows: Iterable[list[str]]) -> list[list[str]]:
    """The short rows of `rows` (2 to 6 filled cells of at most 80 characters), their filled cells only."""
    kept: list[list[str]] = []
    for cells in rows:
        filled = [cell for cell in cells if cell]
        if 2 <= len(filled) <= _CONTEXT_CELLS and all(len(cell) <= _CONTEXT_CHARS for cell in filled):
            kept.append(filled)
            if len(kept) >= _CONTEXT_ROWS:
                break
    return kept


def _find_header(rows: list[tuple[int, list[str]]]) -> int:
    """Index of the first row that looks like the header of the rows below it.

    Title, key-value and blank lines above the header do not match the width of the table below; a
    header is mostly filled with names rather than values. If no row qualifies (say one ragged data
    row), the first row of names is taken.
    """
    filled = [i for i, (_, cells) in enumerate(rows) if any(cells)]
    if not filled:
        raise UnreadableFile("The file holds only blank lines.")
    candidates = filled[:HEADER_SEARCH_ROWS]
    for position in range(len(candidates)):
        if _starts_table(rows, filled, position):
            return _best_table(rows, filled, position)
    for i in candidates:
        cells = rows[i][1]
        if sum(1 for c in cells if c) >= 2 and _header_like(cells, _trimmed_width(cells)):
            return i
    raise UnreadableFile(f"No header row found in the first {rows[candidates[-1]][0]} lines.")


def _starts_table(rows: list[tuple[int, list[str]]], filled: list[int], position: int) -> bool:
    """Whether the `position`-th non-blank row is a header: as wide as the rows below it, names not values."""
    cells = rows[filled[position]][1]
    below = [rows[j][1] for j in filled[position + 1 : position + 1 + FOLLOWING_ROWS]]
    # Rows with one filled cell are titles, notes and disclaimers, not the table.
    table = [row for row in below if sum(1 for c in row if c) >= 2] or below or [cells]
    return _fits(cells, table) and _header_like(cells, _mode([len(row) for row in table]))


def _best_table(rows: list[tuple[int, list[str]]], filled: list[int], first: int) -> int:
    """Index of the header of the table to read, when a file stacks several titled tables.

    A statement may put a cash table above the trades ('Cash Transactions' ... 'Investment Transactions'):
    a later table, set off by a blank or title line, is read instead of the first when its header names
    clearly more of a target's fields (at least MIN_TABLE_FIT, more than the first's). Otherwise, and
    whenever the tables name as many, the first table is the file's table, as before.
    """
    best, best_fit = filled[first], None
    seen = 0
    for position in range(first + 1, min(len(filled), HEADER_SEARCH_ROWS)):
        i = filled[position]
        above = rows[i - 1][1] if i > 0 else []
        if sum(1 for cell in above if cell) > 1 or sum(1 for cell in rows[i][1] if cell) < 2:
            continue  # not set off from the rows above: a row of the current table
        if not _starts_table(rows, filled, position) or position + 1 >= len(filled):
            continue
        if best_fit is None:
            best_fit = table_fit(rows[best][1])
        fit = table_fit(rows[i][1])
        if fit >= MIN_TABLE_FIT and fit > best_fit:
            best, best_fit = i, fit
        seen += 1
        if seen >= MAX_TABLES:
            break
    return best


def _mode(values: list[int]) -> int:
    """The most common value (the larger one on a tie)."""
    counts = Counter(values)
    return max(counts, key=lambda v: (counts[v], v))


def _fits(cells: list[str], table: list[list[str]]) -> bool:
    """Whether a row is as wide as most rows below it.

    A row's width is a range, from its last filled cell to its last delimiter, so trailing delimiters
    on the header or on the rows (Schwab, Hargreaves Lansdown) do not matter.
    """
    low, high = _trimmed_width(cells), len(cells)
    slack = _mode([len(row) for row in table]) // 10
    matching = sum(1 for row in table if _trimmed_width(row) <= high + slack and len(row) >= low - slack)
    return matching >= len(table) / 2


def _header_like(cells: list[str], width: int) -> bool:
    """Mostly filled with names (text), not values (numbers, dates, amounts)."""
    filled = [cell for cell in cells if cell]
    if width <= 1:
        return len(filled) == 1 and len(filled[0]) <= 100 and not _is_value(filled[0])
    if len(filled) < max(2, (width + 1) // 2):
        return False
    return sum(1 for cell in filled if _is_value(cell)) <= len(filled) * 0.2


def _is_value(cell: str) -> bool:
    """A number, date, time or amount ('1,234.50', '2024-01-31 10:00', '$5', 'U1234567', '3 EUR')."""
    digits = sum(1 for ch in cell if ch.isdigit())
    letters = sum(1 for ch in cell if ch.isalpha())
    return digits > 0 and letters <= min(3, digits)


def _trimmed_width(cells: list[str]) -> int:
    """Position of the last non-empty cell (1-based), 0 for an empty row."""
    for i in range(len(cells) - 1, -1, -1):
        if cells[i]:
            return i + 1
    return 0


def _table_width(header: list[str], below: list[tuple[int, list[str]]]) -> int:
    """Number of columns: the header's, without trailing blank cells that no data row fills."""
    width = _trimmed_width(header)
    names = [_clean_header_cell(c) for c in header]
    used = 0
    for _, cells in _table_rows(below, len(header), names):
        used = max(used, _trimmed_width(cells))
    return max(width, min(len(header), used))


def _table_rows(
    rows: Iterable[tuple[int, list[str]]], ncols: int, header: list[str]
) -> Iterator[tuple[int, list[str]]]:
    """The data rows among sampled rows below the header (same rules as `iter_records`)."""
    state = _TableState(ncols, header)
    for line, cells in rows:
        if state.classify(line, cells) is None:
            yield line, cells
        elif state.ended:
            return


def _clean_header_cell(cell: str) -> str:
    """A header name without BOM, control characters or runs of whitespace."""
    return " ".join(cell.translate(HEADER_JUNK).split())


def _unique_columns(header: list[str]) -> list[str]:
    """Unique column names: blank -> 'column_<n>', repeats -> 'Name (2)', 'Name (3)'."""
    columns: list[str] = []
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        name = name or f"column_{position}"
        unique, n = name, 1
        while unique in seen:
            n += 1
            unique = f"{name} ({n})"
        seen.add(unique)
        columns.append(unique)
    return columns


# --------------------------------------------------------------------------------------------------
# Multi-section files (Interactive Brokers statements: `Section,Header,...` / `Section,Data,...`)


def _is_sectioned(rows: list[tuple[int, list[str]]]) -> bool:
    """True when nearly every row is `<section>,Header|Data|Total|SubTotal|Notes,...`, from a Header on."""
    filled = [cells for _, cells in rows if any(cells)]
    marked = sum(1 for cells in filled if len(cells) >= 2 and cells[0] and cells[1] in SECTION_KINDS)
    first = filled[0] if filled else []
    return len(first) >= 2 and bool(first[0]) and first[1] == "Header" and marked >= 0.9 * len(filled)


@dataclass
class _Section:
    """What a scan learned about one section."""

    header_line: int
    header: list[str]
    data_rows: int = 0
    data_width: int = 0


def _section_layout(
    path: str | os.PathLike,
    base: dict[str, Any],
    rows: list[tuple[int, list[str]]],
    at_eof: bool,
    options: ReaderOptions,
    max_columns: int,
    max_field_chars: int,
) -> FileLayout:
    """Layout of a multi-section file: the chosen section's first Header row is the header."""
    if at_eof or options.header_line:
        index = _index_sections(rows, options.header_line)
    else:
        index = _index_sections(_stream_rows(path, base, max_columns, max_field_chars), None)
    if not index and options.header_line:
        raise UnreadableFile(f"Line {options.header_line} is not a section header row (`<section>,Header,...`).")
    if not index:
        raise UnreadableFile(
            f'Section "{options.section}" was asked for, but the file has no `<section>,Header,...` rows.'
        )
    name = _choose_section(index, options)
    section = index[name]
    width = max(_trimmed_width(section.header), min(len(section.header), section.data_width))
    header = [_clean_header_cell(cell) for cell in section.header[:width]]
    return FileLayout(
        **base,
        header_line=section.header_line,
        header=header,
        columns=_unique_columns(header),
        section=name,
        sections=list(index),
        skipped_preamble=section.header_line - 1,
        context=_context(cells[2:] for _, cells in rows if cells and cells[0] != name and cells[1:2] == ["Data"]),
    )


def _stream_rows(
    path: str | os.PathLike, base: dict[str, Any], max_columns: int, max_field_chars: int
) -> Iterator[tuple[int, list[str]]]:
    """Every row of the file as (start line, first cells stripped), streaming."""
    with _open_text(path, base["encoding"]) as stream:
        reader = _csv_reader(stream, base["delimiter"], base["quotechar"])
        prev = 0
        try:
            for row in reader:
                line, prev = prev + 1, reader.line_num
                if len(row) > max_columns:
                    raise UnreadableFile(f"Line {line} has {len(row)} fields; at most {max_columns} are allowed.")
                yield line, text_cells(row)
        except csv.Error as exc:
            raise _csv_problem(prev + 1, exc, max_field_chars) from exc


def _index_sections(rows: Iterable[tuple[int, list[str]]], header_line: int | None) -> dict[str, _Section]:
    """Sections in order of appearance with their first Header row and Data row counts."""
    index: dict[str, _Section] = {}
    for line, cells in rows:
        if len(cells) < 2:
            continue
        name, kind = cells[0].lstrip("\ufeff"), cells[1]
        if kind == "Header" and name not in index and len(index) < MAX_SECTIONS:
            if header_line is None or line == header_line:
                index[name] = _Section(line, cells[2:])
        elif kind == "Data" and name in index:
            index[name].data_rows += 1
            index[name].data_width = max(index[name].data_width, _trimmed_width(cells[2:]))
    return index


def _choose_section(index: dict[str, _Section], options: ReaderOptions) -> str:
    """The requested section, else 'Trades', else the section with the most Data rows."""
    if options.section:
        if options.section in index:
            return options.section
        for name in index:
            if name.casefold() == options.section.casefold():
                return name
        listed = ", ".join(f'"{name}"' for name in index)
        raise UnreadableFile(f'Section "{options.section}" not found; the file has sections {listed}.')
    if "Trades" in index:
        return "Trades"
    return max(index, key=lambda name: index[name].data_rows)


# --------------------------------------------------------------------------------------------------
# Streaming records


class _TableState:
    """Classifies the rows below a header: data, blank, summary, disclaimer, repeated header, next table."""

    def __init__(self, ncols: int, header: list[str]) -> None:
        self.ncols = ncols
        self.header = header
        self.breaks = 0  # >= 2 after a text line or two blank lines: a new table may start
        self.ended: str | None = None

    def classify(self, line: int, cells: list[str]) -> str | None:
        """None for a data row, else the reason the row is skipped."""
        if self.ended:
            return self.ended
        if not any(cells):
            self.breaks += 1
            return "blank line"
        first = cells[0]
        if first and SUMMARY.fullmatch(first.lower()):
            return f'summary row "{first[:40]}"'
        if self.ncols >= 3 and first and not any(cells[1:]):
            self.breaks = 2
            if len(cells) == 1:
                return f"text line with 1 field (expected {self.ncols})"
            return f"text line with 1 non-empty field (expected {self.ncols})"
        if (
            self.header
            and _clean_header_cell(first) == self.header[0]
            and [_clean_header_cell(c) for c in cells[: len(self.header)]] == self.header
            and not any(cells[len(self.header) :])
        ):
            return "repeated header"
        if self.breaks >= 2 and _header_like(cells, self.ncols) and not any(_is_value(c) for c in cells):
            self.ended = f"after the table (another table starts at line {line})"
            return self.ended
        self.breaks = 0
        return None


def _skip_to_header(reader: Any, layout: FileLayout) -> int:
    """Read up to and including the header row; check it is the expected one. Returns csv line_num."""
    prev = 0
    for row in reader:
        line, prev = prev + 1, reader.line_num
        if line < layout.header_line:
            continue
        found = [_clean_header_cell(c) for c in row][: len(layout.header)]
        found += [""] * (len(layout.header) - len(found))
        if line == layout.header_line and found == layout.header:
            return prev
        break
    raise _layout_changed(layout.header_line)


def _fit(cells: list[str], ncols: int) -> list[str]:
    """Pad a short row with ''; drop extra trailing cells when they are all empty."""
    n = len(cells)
    if n < ncols:
        return cells + [""] * (ncols - n)
    if n > ncols and not any(cells[ncols:]):
        return cells[:ncols]
    return cells


def _iter_table(
    path: str | os.PathLike,
    layout: FileLayout,
    max_columns: int,
    max_field_chars: int,
    start: tuple[int, int] | None = None,
) -> Iterator[Record | Skipped]:
    """Records of an ordinary table (one header row); from `start` (byte offset, its line number), a line
    boundary below the header after which every line so far was a record, when given."""
    ncols = len(layout.columns)
    hname = layout.header[0] if layout.header else ""
    state = _TableState(ncols, layout.header)
    clean = True  # no blank or text line since the last record (see _TableState.breaks)
    _set_field_limit(max_field_chars)
    opened = _open_text(path, layout.encoding) if start is None else _open_text_at(path, layout.encoding, start[0])
    with opened as stream:
        reader = _csv_reader(stream, layout.delimiter, layout.quotechar)
        prev = base = 0 if start is None else start[1] - 1  # physical lines before the reader's first one
        try:
            if start is None:
                prev = _skip_to_header(reader, layout)
            for row in reader:
                line = prev + 1
                prev = base + reader.line_num
                cells = text_cells(row)
                # Fast path (nearly every row of a big file): full width, second cell filled (so neither
                # blank nor a one-cell text line), no break before it, first cell neither the header's
                # nor like "Total", "Date downloaded", "Balance" (plain substring tests: a regex per row
                # costs too much).
                if len(cells) == ncols >= 2 and clean and cells[1] and prev == line:
                    first = cells[0]
                    if first != hname and not (
                        "otal" in first
                        or "OTAL" in first
                        or "ownload" in first
                        or "OWNLOAD" in first
                        or "alance" in first
                        or "ALANCE" in first
                    ):
                        yield Record(line, cells)
                        continue
                if len(cells) > max_columns:
                    raise UnreadableFile(f"Line {line} has {len(cells)} fields; at most {max_columns} are allowed.")
                if prev != line:
                    _reject_swallowed_rows(line, prev, cells, layout.delimiter, ncols)
                reason = state.classify(line, cells)
                clean = not state.breaks
                if reason is None:
                    yield Record(line, _fit(cells, ncols))
                else:
                    yield Skipped(line, reason)
        except csv.Error as exc:
            raise _csv_problem(prev + 1 if prev else base + reader.line_num, exc, max_field_chars) from exc
        except UnicodeDecodeError as exc:
            raise UnreadableFile(
                f"Line {base + reader.line_num + 1} cannot be read as {layout.encoding}: {exc.reason}."
            ) from exc


def _reject_swallowed_rows(line: int, last: int, cells: list[str], delimiter: str, ncols: int) -> None:
    """Refuse a multi-line field that holds lines looking like whole rows: a closing quote is missing.

    Python's csv module does not fail on an unclosed quote; it silently reads the rest of the file (up
    to the field size limit) into one field.
    """
    per_line = max(2, ncols // 2)
    for cell in cells:
        if "\n" in cell or "\r" in cell:
            rows = sum(1 for part in cell.splitlines() if part.count(delimiter) >= per_line)
            if rows >= 2:
                raise UnreadableFile(
                    f"Line {line}: a quoted field runs to line {last} and holds what look like {rows} whole "
                    'rows; a closing quote (") is probably missing.'
                )


def _iter_sections(
    path: str | os.PathLike, layout: FileLayout, max_columns: int, max_field_chars: int
) -> Iterator[Record | Skipped]:
    """Records of the selected section of a multi-section file; other sections' rows are skipped."""
    _set_field_limit(max_field_chars)
    with _open_text(path, layout.encoding) as stream:
        reader = _csv_reader(stream, layout.delimiter, layout.quotechar)
        try:
            yield from _section_items(reader, layout, max_columns)
        except csv.Error as exc:
            raise _csv_problem(reader.line_num, exc, max_field_chars) from exc
        except UnicodeDecodeError as exc:
            raise UnreadableFile(
                f"Line {reader.line_num + 1} cannot be read as {layout.encoding}: {exc.reason}."
            ) from exc


def _section_items(reader: Any, layout: FileLayout, max_columns: int) -> Iterator[Record | Skipped]:
    """Classify each row of a multi-section file (these files are small: clarity over speed)."""
    ncols = len(layout.columns)
    section = layout.section
    strip = str.strip
    prev = 0
    header_seen = False
    for row in reader:
        line = prev + 1
        prev = reader.line_num
        if len(row) > max_columns:
            raise UnreadableFile(f"Line {line} has {len(row)} fields; at most {max_columns} are allowed.")
        name = row[0].strip().lstrip("\ufeff") if row else ""
        kind = row[1].strip() if len(row) > 1 else ""
        if name != section:
            if not name and not any(map(strip, row)):
                yield Skipped(line, "blank line")
            else:
                yield Skipped(line, f'section "{name[:60]}"')
        elif kind == "Data":
            if header_seen:
                yield Record(line, _fit(text_cells(row[2:]), ncols))
            else:
                yield Skipped(line, "row above the section header")
        elif kind == "Header":
            if line == layout.header_line:
                found = [_clean_header_cell(c) for c in row[2:]][:ncols]
                if found + [""] * (ncols - len(found)) != layout.header:
                    raise _layout_changed(line)
                header_seen = True
            else:
                yield Skipped(line, "repeated header")
        elif kind in ("Total", "SubTotal"):
            yield Skipped(line, f'summary row "{kind}"')
        else:
            yield Skipped(line, f"{kind or 'unmarked'} row")
    if not header_seen:
        raise _layout_changed(layout.header_line)


def _layout_changed(line: int) -> UnreadableFile:
    """The error for a file that no longer matches its stored layout."""
    return UnreadableFile(
        f"Line {line} does not hold the expected header; the file has changed since its layout was detected."
    )
