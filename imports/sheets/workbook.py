"""Workbooks as the pipeline reads files: a sheet is a section, its table is found like a CSV's.

Every workbook reader (.xlsx, .xls, .ods) gives the same thing: its sheets, and per sheet its rows in
order as `Row(number, hidden, cells)` with the cells already text (imports/sheets/cells.py). This module
turns that into what the CSV reader produces, with the same rules (imports/reading.py):

* the sheet: the one the format pins (`reader.section`), else a visible sheet named "Trades", else the
  visible sheet whose table has the most data rows in its first rows (the first on a tie);
* the header row: the one the format pins (`reader.header_line`), else the first row that looks like
  the header of the rows below it (title rows, account details and blank rows above it are passed);
* leading columns that are empty in the header and the rows below it are dropped (tables that start
  in column B), trailing ones too;
* below the header, rows are `Record`s (the row number as in Excel) or `Skipped`s with a reason:
  summary rows ("Total"), text lines, a repeated header, a next table, and hidden rows (filtered out
  or hidden by hand; the rows of a collapsed outline group are data and are read). Empty rows are
  neither: they are formatting, not rows;
* merged cells: a value merged over several rows is repeated on each of those rows (a date merged
  over a day's trades); cells merged sideways stay empty, as Excel shows them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol

from config.errors import UnreadableFile
from imports.reading import (
    SAMPLE_CHARS,
    SAMPLE_ROWS,
    FileLayout,
    ReaderOptions,
    Record,
    Skipped,
    _clean_header_cell,
    _find_header,
    _fit,
    _table_rows,
    _table_width,
    _TableState,
    _unique_columns,
)
from imports.sheets.containers import ContainerLimits

MAX_SHEET_ROWS = 1_048_576  # Excel's and LibreOffice's last row
MAX_SHEETS_SCANNED = 50  # sheets sampled to choose one when the format does not pin it


@dataclass(frozen=True)
class SheetLimits:
    """Limits inside a workbook (the pipeline passes AIRLOCK_MAX_COLUMNS / _MAX_FIELD_CHARS...)."""

    max_columns: int = 500
    max_field_chars: int = 100_000
    max_sheets: int = 200
    strings_memory: int = 48 * 2**20
    container: ContainerLimits = field(default_factory=ContainerLimits)


@dataclass
class Sheet:
    name: str
    index: int
    hidden: bool
    ref: Any  # the reader's handle on the sheet (a part name, a sheet object)


@dataclass(slots=True)
class Row:
    number: int  # 1-based, as Excel and LibreOffice number rows
    hidden: bool
    cells: list[str]  # text, from column A to the last non-empty cell


class Book(Protocol):
    kind: str
    sheets: list[Sheet]

    def rows(self, sheet: Sheet, *, merges: bool = True) -> Iterator[Row]: ...

    def row_estimate(self, sheet: Sheet) -> int | None: ...

    def close(self) -> None: ...


@dataclass
class BookLayout(FileLayout):
    """A workbook's layout: the sheet (`section`), its header row and the table's first column."""

    kind: str = "xlsx"
    column_offset: int = 0
    rows: int | None = None  # about how many rows the sheet has (progress)


def column_letters(number: int) -> str:
    """'A' for 1, 'AA' for 27."""
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters or "?"


def merge_filler(rows: Iterable[Row], ranges: list[tuple[int, int, int, int]]) -> Iterator[Row]:
    """Repeat the value of each range merged over several rows on its other rows (its first column)."""
    vertical = sorted((r for r in ranges if r[2] > r[0]), key=lambda r: r[0])
    waiting = 0  # index of the next range to start
    active: list[tuple[int, int, int, str]] = []  # (first row, last row, column, value)
    for row in rows:
        number = row.number
        while waiting < len(vertical) and vertical[waiting][0] <= number:
            first, column, last, _ = vertical[waiting]
            waiting += 1
            if first == number and column <= len(row.cells) and row.cells[column - 1]:
                active.append((first, last, column, row.cells[column - 1]))
        if active:
            active = [item for item in active if item[1] >= number]
            for first, _, column, value in active:
                if number > first:
                    cells = row.cells
                    if len(cells) < column:
                        cells.extend([""] * (column - len(cells)))
                    if not cells[column - 1]:
                        cells[column - 1] = value
        yield row


# --------------------------------------------------------------------------------------------------
# Layout


def detect_book_layout(book: Book, options: ReaderOptions | None = None) -> BookLayout:
    """The sheet, header row and columns of the table to read from a workbook."""
    options = options or ReaderOptions()
    sheet = _choose_sheet(book, options)
    rows = _sample(book, sheet, options.header_line)
    if not any(cells for _, cells in rows):
        if options.header_line:
            raise UnreadableFile(f"Sheet '{sheet.name}' has no rows at or below row {options.header_line}.")
        raise UnreadableFile(f"Sheet '{sheet.name}' is empty.")
    if options.header_line:
        index = 0
        if rows[0][0] != options.header_line or not rows[0][1]:
            raise UnreadableFile(
                f"Row {options.header_line} of sheet '{sheet.name}' is empty; it cannot be the header."
            )
    else:
        try:
            index = _find_header(rows)
        except UnreadableFile as exc:
            raise UnreadableFile(f"Sheet '{sheet.name}': {exc.message}") from None
    line, cells = rows[index]
    offset = _leading_blank_columns(cells, rows[index + 1 :])
    cells = cells[offset:]
    below = [(number, row[offset:]) for number, row in rows[index + 1 :]]
    width = _table_width(cells, below)
    header = [_clean_header_cell(cell) for cell in cells[:width]]
    header += [""] * (width - len(header))
    return BookLayout(
        encoding="",
        delimiter="",
        quotechar="",
        newline="",
        header_line=line,
        header=header,
        columns=_unique_columns(header),
        section=sheet.name,
        sections=[s.name for s in book.sheets],
        skipped_preamble=line - 1,
        kind=book.kind,
        column_offset=offset,
    )


def _choose_sheet(book: Book, options: ReaderOptions) -> Sheet:
    """The pinned sheet, else 'Trades', else the visible sheet with the biggest table in its first rows."""
    if options.section:
        for sheet in book.sheets:
            if sheet.name == options.section:
                return sheet
        for sheet in book.sheets:
            if sheet.name.casefold() == options.section.casefold():
                return sheet
        listed = ", ".join(f'"{s.name}"' for s in book.sheets[:20])
        raise UnreadableFile(f'Sheet "{options.section}" not found; the workbook has sheets {listed}.')
    visible = [sheet for sheet in book.sheets if not sheet.hidden] or book.sheets
    if len(visible) == 1:
        return visible[0]
    for sheet in visible:
        if sheet.name.strip().casefold() == "trades":
            return sheet
    best, best_rows = visible[0], -1
    for sheet in visible[:MAX_SHEETS_SCANNED]:
        rows = _sample(book, sheet, None, merges=False)
        try:
            index = _find_header(rows)
        except UnreadableFile:
            continue
        line, cells = rows[index]
        data = sum(1 for _ in _table_rows(rows[index + 1 :], len(cells), [_clean_header_cell(c) for c in cells]))
        if data > best_rows:
            best, best_rows = sheet, data
    return best


def _sample(book: Book, sheet: Sheet, from_row: int | None, *, merges: bool = True) -> list[tuple[int, list[str]]]:
    """The first rows of a sheet (from `from_row` on) as (number, cells), gaps marked by empty rows."""
    rows: list[tuple[int, list[str]]] = []
    chars = 0
    items = book.rows(sheet, merges=merges)
    try:
        for number, cells in _with_gaps(row for row in items if not row.hidden):
            if from_row and number < from_row:
                continue
            rows.append((number, cells))
            chars += sum(map(len, cells))
            if len(rows) >= SAMPLE_ROWS or chars >= SAMPLE_CHARS:
                break
    finally:
        items.close()
    return rows


def _with_gaps(rows: Iterable[Row]) -> Iterator[tuple[int, list[str]]]:
    """(number, cells) of each row, with up to two empty rows standing for rows missing in between."""
    previous = 0
    for row in rows:
        for missing in range(previous + 1, min(row.number, previous + 3)):
            yield missing, []
        previous = row.number
        yield row.number, row.cells


def _leading_blank_columns(header: list[str], below: list[tuple[int, list[str]]]) -> int:
    """How many first columns are empty in the header and in every sampled row below it."""
    offset = 0
    while offset < len(header) and not header[offset]:
        offset += 1
    for _, cells in below:
        filled = next((i for i, cell in enumerate(cells) if cell), offset)
        offset = min(offset, filled)
        if offset == 0:
            break
    return offset


# --------------------------------------------------------------------------------------------------
# Records


def iter_book_records(book: Book, layout: BookLayout) -> Iterator[Record | Skipped]:
    """The records below the header of the layout's sheet (same classification as CSV tables)."""
    sheet = next((s for s in book.sheets if s.name == layout.section), None)
    if sheet is None:
        raise UnreadableFile(f"Sheet '{layout.section}' is no longer in the workbook; its layout has changed.")
    ncols = len(layout.columns)
    offset = layout.column_offset
    hname = layout.header[0] if layout.header else ""
    state = _TableState(ncols, layout.header)
    clean = True  # no gap, blank or text row since the last record (see _TableState.breaks)
    header_seen = False
    previous = 0
    for row in book.rows(sheet):
        number = row.number
        if number < layout.header_line:
            continue
        if number == layout.header_line:
            found = [_clean_header_cell(c) for c in row.cells[offset:]][:ncols]
            if found + [""] * (ncols - len(found)) != layout.header:
                raise _layout_changed(sheet.name, number)
            header_seen = True
            previous = number
            continue
        if not header_seen:
            raise _layout_changed(sheet.name, layout.header_line)
        if number > previous + 1:
            state.classify(previous + 1, [])  # rows missing in between: a gap, as blank lines are
            if number > previous + 2:
                state.classify(previous + 2, [])
            clean = False
        previous = number
        if row.hidden:
            yield Skipped(number, "hidden row")
            continue
        cells = row.cells[offset:] if offset else row.cells
        # Fast path (nearly every row of a big sheet), as for CSV: second cell filled, no break before it,
        # first cell neither the header's nor like "Total", "Date downloaded", "Balance".
        if clean and 2 <= len(cells) <= ncols and cells[1]:
            first = cells[0]
            if first != hname and not (
                "otal" in first
                or "OTAL" in first
                or "ownload" in first
                or "OWNLOAD" in first
                or "alance" in first
                or "ALANCE" in first
            ):
                yield Record(number, cells if len(cells) == ncols else cells + [""] * (ncols - len(cells)))
                continue
        if not cells:
            state.classify(number, [])
            clean = False
            continue
        reason = state.classify(number, cells)
        clean = not state.breaks
        if reason is None:
            yield Record(number, _fit(cells, ncols))
        else:
            yield Skipped(number, reason)
    if not header_seen:
        raise _layout_changed(sheet.name, layout.header_line)


def sample_book_records(book: Book, layout: BookLayout, n: int = 20) -> list[Record]:
    """The first `n` records (skipped rows left out)."""
    items = iter_book_records(book, layout)
    try:
        return list(islice((item for item in items if isinstance(item, Record)), n))
    finally:
        items.close()


def _layout_changed(sheet: str, row: int) -> UnreadableFile:
    return UnreadableFile(
        f"Row {row} of sheet '{sheet}' does not hold the expected header; the workbook has changed since its "
        "layout was detected."
    )
