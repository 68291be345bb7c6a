"""Blocks of a CSV file's lines handed to Postgres whole, where its CSV parser reads them as the reader would.

Python's csv module and the per-row loop of `iter_records` cost about 4 µs a row; Postgres's `COPY ... (FORMAT
csv)` parses the same text in about 1 µs. The two parsers agree on ordinary CSV and differ on the unusual:
spaces after a delimiter (the reader skips them, COPY keeps them), a quote in the middle of a field (literal
for the reader, a quoted section for COPY), a cell of only whitespace (the reader empties it), `\\.` alone on a
line (COPY stops there), a lone CR (a line end for the reader). So `csv_blocks` hands over only blocks whose
bytes show none of that, checked with byte counts (C speed, no per-row Python):

- every quote sits at a field boundary (right after a delimiter or line start, or right before a delimiter or
  line end, never both), as many opening as closing ones; no space next to a delimiter, quote or line end; no
  tab, vertical tab, form feed or Unicode space (unless the tab is the delimiter); no blank or `\\.` line, no
  NUL; CR only as part of CRLF line ends throughout;
- no row the reader would not pass straight through as a record: no first cell holding "total",
  "download" or "balance" (any case; the reader's summary rows), none equal to the header's first name;
- UTF-8 (or ASCII) text, lines no longer than the field limit.

What bytes cannot show, Postgres checks on the parsed block (imports/pipeline/fastpath.py `block_copy`): one
row per line (a quoted line break would join two), every row exactly as wide as the header (COPY refuses
others), the second cell filled. A block that fails there is refused as a whole (`BlockRefused`): the caller
rolls back and reads the file from its last committed line with the Python reader.

From the first block that fails the byte checks on, the rest of the file is read by `iter_records` as
before (from that block's first byte: every line above it was a record, so the reader's state is fresh).
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from imports.reading import FileLayout, Record, Skipped, iter_records

_UNICODE_SPACES = re.compile(rb"\xc2[\x85\xa0]|\xe1\x9a\x80|\xe2\x80[\x80-\x8a\xa8\xa9\xaf]|\xe2\x81\x9f|\xe3\x80\x80")
_CONTROL_SPACES = b"\x0b\x0c\x1c\x1d\x1e\x1f\x00"
_SUMMARY_WORDS = (b"total", b"download", b"balance")
_QUOTE_OR_LINE_END = b'"\r\n'
_READ_BYTES = 4 * 2**20


class BlockRefused(Exception):
    """Postgres parsed a block differently from what the reader would have read: read it with Python."""


@dataclass(slots=True)
class Block:
    """Lines `first_line`..`last_line` of the file as its bytes; `end` is the byte offset after them."""

    first_line: int
    last_line: int
    data: bytes
    end: int
    spaced: bool = False  # a delimiter next to a space: Postgres checks no cell starts or ends with one

    @property
    def rows(self) -> int:
        return self.last_line - self.first_line + 1


def block_reading(layout: FileLayout) -> bool:
    """Whether the layout's file may be read in blocks at all: a plain UTF-8 CSV table of two or more columns."""
    if getattr(layout, "kind", "csv") != "csv" or layout.section or layout.ledger:
        return False
    if layout.quotechar != '"' or len(layout.delimiter) != 1 or layout.delimiter in ' "\r\n':
        return False
    if layout.newline not in ("LF", "CRLF") or len(layout.columns) < 2:
        return False
    return codecs.lookup(layout.encoding).name in ("utf-8", "utf-8-sig", "ascii")


def csv_blocks(
    path: str | os.PathLike,
    layout: FileLayout,
    *,
    rows: int,
    max_bytes: int,
    max_field_chars: int,
    max_columns: int,
    start: tuple[int, int] | None = None,
) -> Iterator[Block | Record | Skipped]:
    """The file's data lines as Blocks of `rows` lines (fewer when that would pass `max_bytes`) while they pass
    the byte checks, then as the reader's records.

    `start`: (byte offset, line number) to go on from, a line boundary a block ended at. Without it, the
    file is read from below its header."""
    if start is None:
        start = _below_header(path, layout, max_field_chars, max_columns)
        if start is None:
            yield from iter_records(path, layout, max_field_chars=max_field_chars, max_columns=max_columns)
            return
    offset, line = start
    checks = _Checks(layout, max_field_chars)
    with open(path, "rb") as f:
        f.seek(offset)
        buffer, eof = b"", False
        while True:
            cut = lines = 0
            while True:  # the end of the block's last line: after `rows` line ends, `max_bytes` or the file's end
                while lines < rows and cut < max_bytes:
                    end = buffer.find(b"\n", cut)
                    if end < 0:
                        break
                    cut, lines = end + 1, lines + 1
                if lines >= rows or cut >= max_bytes or eof:
                    break
                more = f.read(_READ_BYTES)
                eof = not more
                buffer += more
            if eof and lines < rows and cut < len(buffer) <= max_bytes:
                cut, lines = len(buffer), lines + 1  # the last line, without a line end
            if not cut:
                if not buffer:
                    return
                break  # a line longer than a block: the reader decides what to make of it
            data = buffer[:cut]
            plain = checks.plain(data)
            if plain is False:
                break
            yield Block(line, line + lines - 1, data, offset + cut, spaced=plain is None)
            buffer = buffer[cut:]
            offset += cut
            line += lines
    yield from iter_records(
        path, layout, max_field_chars=max_field_chars, max_columns=max_columns, start=(offset, line)
    )


def _below_header(
    path: str | os.PathLike, layout: FileLayout, max_field_chars: int, max_columns: int
) -> tuple[int, int] | None:
    """(byte offset, line number) of the line below the header; None when the lines above hold a lone CR
    (the reader would count lines differently) or the header is not where the layout says."""
    items = iter_records(path, layout, max_field_chars=max_field_chars, max_columns=max_columns)
    try:
        first = next(items, None)  # reads the header (and checks it) before the first row
    finally:
        items.close()
    if first is None:
        return None
    lines = first.line - 1  # the physical lines up to the header's end
    offset = 0
    with open(path, "rb") as f:
        head = f.read(min(os.fstat(f.fileno()).st_size, _READ_BYTES))
    for _ in range(lines):
        offset = head.find(b"\n", offset) + 1
        if not offset:
            return None
    if head[:offset].count(b"\r") != head[:offset].count(b"\r\n"):
        return None
    return offset, lines + 1


class _Checks:
    """The byte checks of one file's blocks (see the module docstring), a few C-speed scans of each block."""

    def __init__(self, layout: FileLayout, max_field_chars: int) -> None:
        d = layout.delimiter.encode()
        self.delimiter = d
        self.max_field_chars = max_field_chars
        self.ascii = codecs.lookup(layout.encoding).name == "ascii"
        self.controls = _CONTROL_SPACES + (b"" if d == b"\t" else b"\t")
        self.header_name = (layout.header[0] if layout.header else "").encode()
        # Line ends as delimiters: one scan then sees every field boundary.
        self.boundaries = bytes.maketrans(b"\r\n", d + d)
        e = re.escape(d)
        # A space next to a boundary or a quote (the reader trims it, COPY keeps it).
        self.spaces = re.compile(b" (?:[" + e + b'"]|(?<=[' + e + b'"] ))')
        # A line that is blank, `\.`, or only delimiters (the reader skips it as blank).
        empty = re.escape(d * (len(layout.columns) - 1))
        self.odd_lines = re.compile(rb"\n(?:[\n\r ]|\\\.\r?\n|" + empty + rb"\r?\n)")

    def plain(self, data: bytes) -> bool | None:
        """True when Postgres's CSV parser reads these lines as the reader would (as far as bytes show); None
        when it does provided no cell Postgres reads starts or ends with a space (a delimiter next to a space
        may be inside a quoted field, as in "Doe, John", or between two fields: bytes do not tell)."""
        if not data or data.startswith((b" ", b"\n", b"\r", b"\\.")) or data.endswith(b" "):
            return False
        if self.odd_lines.search(b"\n" + data[:200]) or self.odd_lines.search(data):
            return False
        if self.ascii and not data.isascii():
            return False
        if len(data.translate(None, self.controls)) != len(data):
            return False
        if not data.isascii() and _UNICODE_SPACES.search(data):
            return False
        if b"\r" in data and not (data.count(b"\r") == data.count(b"\r\n") == data.count(b"\n")):
            return False
        fields = data.translate(self.boundaries)
        quoted = b'"' in data
        if quoted and not self._quotes_at_boundaries(fields):
            return False
        if not quoted and self.spaces.search(fields):
            return False
        if not self._lines_short(data) or self._first_cells_suspect(data):
            return False
        if quoted and self.spaces.search(fields):
            return self._spaces_inside_quotes(data, fields)
        return True

    def _spaces_inside_quotes(self, data: bytes, fields: bytes) -> bool | None:
        """True when every space next to a delimiter is inside a quoted field ("Doe, John": an odd number of
        quotes before it on its line) and none touches a quote or a line end; None (Postgres checks the cells)
        when there are too many to look at.

        (The spaces `self.spaces` finds include every one next to a quote or a line end, so those are refused here,
        match by match, not by five more scans of the block. Past the limit Postgres's check of every cell refuses
        them too: each leaves a cell that starts or ends with a space to COPY.)"""
        found = self.spaces.finditer(fields)
        for count, match in enumerate(found):
            if count >= max(16, len(data) // 200):
                return None  # more than one every ~200 bytes: cheaper for Postgres to check every cell
            at = match.start()  # (never the block's first or last byte: plain() refused those)
            if data[at - 1] in _QUOTE_OR_LINE_END or data[at + 1] in _QUOTE_OR_LINE_END:
                return False  # ' "x"', '"x" ', a space at a line's end or start: the reader trims it, COPY keeps it
            if not data.count(b'"', data.rfind(b"\n", 0, at) + 1, at) % 2:
                return False  # between two fields: the reader trims the space, COPY keeps it
        return True

    def _quotes_at_boundaries(self, fields: bytes) -> bool:
        """Every quote opens a field (after a boundary) or closes one (before a boundary), never both."""
        d, q = self.delimiter, b'"'
        if d + q + d in fields or fields.startswith(q + d) or fields.endswith(d + q):
            return False
        opening = fields.count(d + q) + fields.startswith(q)
        closing = fields.count(q + d) + (not fields.endswith(d) and fields.endswith(q))
        return opening == closing and opening + closing == fields.count(q)

    def _lines_short(self, data: bytes) -> bool:
        """No line longer than the field limit: every aligned window of half that length holds a line end."""
        half = max(1, self.max_field_chars // 2)
        return all(data.find(b"\n", at, at + half) >= 0 for at in range(0, len(data) - half + 1, half))

    def _first_cells_suspect(self, data: bytes) -> bool:
        """A first cell the reader would look at twice: a summary word in it, or the header's first name."""
        lowered = data.lower()
        for word, text in [*((w, lowered) for w in _SUMMARY_WORDS), (self.header_name, data)]:
            if not word:
                return True  # an empty first header name: every row with an empty first cell is in question
            at = text.find(word)
            while at >= 0:
                if self._in_first_cell(data, at):
                    return True
                at = text.find(word, at + len(word))
        return False

    def _in_first_cell(self, data: bytes, at: int) -> bool:
        line_start = data.rfind(b"\n", 0, at) + 1
        if data[line_start : line_start + 1] == b'"':
            first_end = data.find(b'"' + self.delimiter, line_start + 1)
        else:
            first_end = data.find(self.delimiter, line_start)
        return first_end < 0 or at < first_end
