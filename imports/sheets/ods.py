"""Streaming reader of OpenDocument spreadsheets (.ods: LibreOffice, OpenOffice, Google Sheets exports).

An .ods is a zip (checked like an .xlsx's, imports/sheets/containers.py) whose `content.xml` holds every
sheet in turn. Cells carry their type: `office:value` for numbers, percentages and currencies,
`office:date-value` / `office:time-value` for dates and times (ISO text already), `office:boolean-value`,
and the text paragraphs for strings (comments left out). Formulas are never evaluated: a formula cell
reads as the value saved with it.

Repetition is how ODS compresses: `number-rows-repeated` / `number-columns-repeated` are followed
without materialising empty cells or rows (LibreOffice writes the rest of a sheet as one empty row
repeated a million times), and a repeated non-empty cell or row is bounded by the column and row limits.
A cell spanning several rows (`number-rows-spanned`) repeats its value on those rows; cells covered by
a span read as empty, as LibreOffice shows them. Rows hidden by a filter (`visibility="filter"`) or by
hand (`collapse` outside an outline group) are flagged hidden; rows of a collapsed group are data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from config.errors import UnreadableFile
from imports.sheets import cells as C
from imports.sheets.containers import find_part, member_chunks, open_zip, xml_parser, xml_stream, zip_kind
from imports.sheets.sniff import sniff_kind
from imports.sheets.workbook import MAX_SHEET_ROWS, Row, Sheet, SheetLimits, column_letters

OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"

T_TABLE = f"{TABLE}|table"
T_ROW = f"{TABLE}|table-row"
T_CELL = f"{TABLE}|table-cell"
T_COVERED = f"{TABLE}|covered-table-cell"
T_ROW_GROUP = f"{TABLE}|table-row-group"
X_P = f"{TEXT}|p"
X_H = f"{TEXT}|h"
X_S = f"{TEXT}|s"
X_TAB = f"{TEXT}|tab"
X_BREAK = f"{TEXT}|line-break"
O_ANNOTATION = f"{OFFICE}|annotation"
S_STYLE = f"{STYLE}|style"
S_TABLE_PROPS = f"{STYLE}|table-properties"

A_NAME = f"{TABLE}|name"
A_STYLE = f"{TABLE}|style-name"
A_ROWS_REPEATED = f"{TABLE}|number-rows-repeated"
A_COLS_REPEATED = f"{TABLE}|number-columns-repeated"
A_ROWS_SPANNED = f"{TABLE}|number-rows-spanned"
A_VISIBILITY = f"{TABLE}|visibility"
A_FORMULA = f"{TABLE}|formula"
A_VALUE_TYPE = f"{OFFICE}|value-type"
A_VALUE = f"{OFFICE}|value"
A_DATE = f"{OFFICE}|date-value"
A_TIME = f"{OFFICE}|time-value"
A_BOOLEAN = f"{OFFICE}|boolean-value"
A_STRING = f"{OFFICE}|string-value"
A_SPACES = f"{TEXT}|c"
A_STYLE_NAME = f"{STYLE}|name"
A_STYLE_FAMILY = f"{STYLE}|family"
A_DISPLAY = f"{TABLE}|display"

_COVERED = "covered"  # marks a covered cell's attributes (not an ODS attribute name: those have a namespace)
_DURATION = re.compile(r"(-)?P(?:(\d+)D)?T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?")


def _count(value: str | None, default: int = 1) -> int:
    if not value:
        return default
    try:
        return max(int(value), 1)
    except ValueError:
        return default


def time_value_text(value: str) -> str:
    """'PT09H30M05S' as '09:30:05' (a time of day), longer durations as 'H:MM:SS'."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        return value.strip()
    sign, days, hours, minutes, seconds = match.groups()
    total = int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
    fraction = total / 86400
    if not sign and total < 86400:
        return C.serial_text(fraction, C.TIME)
    return C.duration_text(-fraction if sign else fraction)


class OdsBook:
    """One open .ods spreadsheet: its sheets and a streaming row reader per sheet."""

    kind = "ods"

    def __init__(self, path: Any, limits: SheetLimits) -> None:
        self.limits = limits
        with open(path, "rb") as handle:
            found = sniff_kind(handle, limits=limits.container)  # a clear refusal for anything else
        if found != "ods":
            raise UnreadableFile(f"This is not an OpenDocument spreadsheet (.ods) but a file of kind '{found}'.")
        self.archive = open_zip(path, limits.container)
        try:
            if zip_kind(self.archive) != "ods":
                raise UnreadableFile("This is not an OpenDocument spreadsheet.")
            if find_part(self.archive, "content.xml") != "content.xml":
                raise UnreadableFile("The spreadsheet has no content.xml; it is damaged.")
            self.sheets = self._read_sheets()
        except BaseException:
            self.archive.close()
            raise
        self.formula_without_value = 0

    def _read_sheets(self) -> list[Sheet]:
        """The tables of content.xml in order, hidden when their table style says display="false"."""
        hidden_styles: set[str] = set()
        tables: list[tuple[str, str]] = []
        style: list[str] = [""]

        def start(name: str, attrs: dict[str, str]) -> None:
            if name == T_TABLE:
                if len(tables) >= self.limits.max_sheets:
                    raise UnreadableFile(
                        f"The spreadsheet has more than {self.limits.max_sheets:,} sheets; at most "
                        f"{self.limits.max_sheets:,} are read. Save the sheet with the trades on its own."
                    )
                tables.append((attrs.get(A_NAME, f"Sheet{len(tables) + 1}"), attrs.get(A_STYLE, "")))
            elif name == S_STYLE and attrs.get(A_STYLE_FAMILY) == "table":
                style[0] = attrs.get(A_STYLE_NAME, "")
            elif name == S_TABLE_PROPS and attrs.get(A_DISPLAY) == "false" and style[0]:
                hidden_styles.add(style[0])

        parser = xml_parser(namespaces=True)
        parser.StartElementHandler = start
        for _ in xml_stream(parser, member_chunks(self.archive, "content.xml"), "content.xml"):
            pass
        if not tables:
            raise UnreadableFile("The spreadsheet has no sheet.")
        return [
            Sheet(name=name, index=i, hidden=style_name in hidden_styles, ref=i)
            for i, (name, style_name) in enumerate(tables)
        ]

    def rows(self, sheet: Sheet, *, merges: bool = True) -> Iterator[Row]:
        """The sheet's non-empty rows in order (spans filled when `merges`)."""
        reader = _TableReader(sheet.ref, sheet.name, self.limits, fill_spans=merges)
        try:
            yield from reader.parse(member_chunks(self.archive, "content.xml"))
        finally:
            self.formula_without_value += reader.formula_without_value

    def row_estimate(self, sheet: Sheet) -> int | None:
        """Not known without reading content.xml (repeated rows): no estimate."""
        return None

    def close(self) -> None:
        self.archive.close()


class _TableReader:
    """The expat handlers that turn one table of content.xml into rows of text cells."""

    def __init__(self, index: int, name: str, limits: SheetLimits, *, fill_spans: bool) -> None:
        self.index = index
        self.name = name
        self.limits = limits
        self.fill_spans = fill_spans
        self.formula_without_value = 0

    def parse(self, chunks: Iterator[bytes]) -> Iterator[Row]:
        max_columns, max_chars, sheet = self.limits.max_columns, self.limits.max_field_chars, self.name
        done: list[tuple[Row, int]] = []  # finished rows and how many times each repeats
        state = {"table": -1, "inside": False, "finished": False}
        group_depth = 0
        row_number = 0
        row_repeat = 1
        row_hidden = False
        row_cells: list[str] = []
        column = 0
        spans: dict[int, tuple[int, str]] = {}  # column -> (last row of the span, value)
        # The cell being read.
        cell: dict[str, Any] | None = None
        text: list[str] = []
        paragraphs = 0
        annotation = 0
        size = 0

        def place(value: str, repeat: int) -> None:
            """Put a cell's value (repeated) at the current column, then move past it."""
            nonlocal column
            if value:
                last = column + repeat
                if last > max_columns:
                    raise UnreadableFile(
                        f"Sheet '{sheet}', row {row_number + 1} has a value in column {column_letters(last)} "
                        f"(column {last:,}); at most {max_columns} columns are read."
                    )
                if len(row_cells) < column:
                    row_cells.extend([""] * (column - len(row_cells)))
                row_cells.extend([value] * repeat)
            column += repeat

        def start(name: str, attrs: dict[str, str]) -> None:
            nonlocal group_depth, row_repeat, row_hidden, row_cells, column, cell, text, paragraphs, annotation
            nonlocal size
            if not state["inside"]:
                if name == T_TABLE:
                    state["table"] += 1
                    if state["table"] == self.index:
                        state["inside"] = True
                return
            if cell is not None:
                if annotation:
                    if name == O_ANNOTATION:
                        annotation += 1
                    return
                if name == X_P or name == X_H:
                    if paragraphs:
                        text.append("\n")
                    paragraphs += 1
                elif name == X_S:
                    text.append(" " * min(_count(attrs.get(A_SPACES)), max_chars + 1))
                elif name == X_TAB:
                    text.append("\t")
                elif name == X_BREAK:
                    text.append("\n")
                elif name == O_ANNOTATION:
                    annotation = 1
                return
            if name == T_CELL or name == T_COVERED:
                # A covered cell (under a span) reads empty, as shown, whatever text it still holds.
                cell = attrs if name == T_CELL else {_COVERED: "1"}
                text, paragraphs, size = [], 0, 0
            elif name == T_ROW:
                row_repeat = _count(attrs.get(A_ROWS_REPEATED))
                visibility = attrs.get(A_VISIBILITY, "visible")
                row_hidden = visibility == "filter" or (visibility == "collapse" and not group_depth)
                row_cells = []
                column = 0
            elif name == T_ROW_GROUP:
                group_depth += 1

        def end(name: str) -> None:
            nonlocal group_depth, row_number, cell, annotation, row_cells
            if not state["inside"]:
                return
            if cell is not None:
                if annotation:
                    if name == O_ANNOTATION:
                        annotation -= 1
                    return
                if name != T_CELL and name != T_COVERED:
                    return
                attrs, cell = cell, None
                repeat = _count(attrs.get(A_COLS_REPEATED))
                value = _cell_value(attrs, text, max_chars, sheet, row_number + 1, column + 1)
                if not value and attrs.get(A_FORMULA):
                    self.formula_without_value += repeat
                span = _count(attrs.get(A_ROWS_SPANNED))
                if value and span > 1 and self.fill_spans:
                    spans[column + 1] = (row_number + span, value)
                place(value, repeat)
                return
            if name == T_ROW:
                if spans and self.fill_spans:
                    _fill_spans(row_cells, spans, row_number + 1)
                while row_cells and not row_cells[-1]:
                    row_cells.pop()
                if row_cells:
                    if row_number + row_repeat > MAX_SHEET_ROWS:
                        raise UnreadableFile(
                            f"Sheet '{sheet}' repeats row {row_number + 1} {row_repeat:,} times; a sheet has at "
                            f"most {MAX_SHEET_ROWS:,} rows."
                        )
                    done.append((Row(row_number + 1, row_hidden, row_cells), row_repeat))
                row_number += row_repeat
                row_cells = []
            elif name == T_ROW_GROUP:
                group_depth -= 1
            elif name == T_TABLE:
                state["inside"] = False
                state["finished"] = True

        def data(chunk: str) -> None:
            nonlocal size
            if cell is not None and paragraphs and not annotation and _COVERED not in cell:
                size += len(chunk)
                if size > max_chars:
                    raise UnreadableFile(
                        f"Sheet '{sheet}', row {row_number + 1}, column {column_letters(column + 1)} holds more "
                        f"than {max_chars:,} characters; that is not a trade export."
                    )
                text.append(chunk)

        parser = xml_parser(namespaces=True)
        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = data
        for _ in xml_stream(parser, chunks, "content.xml"):
            for row, repeat in done:
                yield row
                for n in range(1, repeat):  # a repeated row: copies made one at a time, never all at once
                    yield Row(row.number + n, row.hidden, list(row.cells))
            done.clear()
            if state["finished"]:
                return
        if state["table"] < self.index:
            raise UnreadableFile(f"Sheet '{sheet}' is no longer in the spreadsheet.")


def _fill_spans(cells: list[str], spans: dict[int, tuple[int, str]], row: int) -> None:
    """Repeat the value of cells spanning several rows in their later rows (first column of the span)."""
    for column in list(spans):
        last, value = spans[column]
        if row > last:
            del spans[column]
            continue
        if len(cells) < column:
            cells.extend([""] * (column - len(cells)))
        if not cells[column - 1]:
            cells[column - 1] = value


def _cell_value(attrs: dict[str, str], text: list[str], max_chars: int, sheet: str, row: int, column: int) -> str:
    """A cell's text by its value type (numbers, dates, times, booleans from their attributes)."""
    kind = attrs.get(A_VALUE_TYPE)
    if kind in ("float", "percentage", "currency"):
        value = attrs.get(A_VALUE)
        if value is not None:
            return C.number_text_from_xml(value.strip())
    elif kind == "date":
        value = attrs.get(A_DATE)
        if value:
            return C.iso_text(value)
    elif kind == "time":
        value = attrs.get(A_TIME)
        if value:
            return time_value_text(value)
    elif kind == "boolean":
        value = attrs.get(A_BOOLEAN)
        if value:
            return "TRUE" if value.strip().lower() == "true" else "FALSE"
    if A_STRING in attrs:
        value = attrs[A_STRING]
    else:
        value = "".join(text)
    if len(value) > max_chars:
        raise UnreadableFile(
            f"Sheet '{sheet}', row {row}, column {column_letters(column)} holds more than {max_chars:,} characters; "
            "that is not a trade export."
        )
    return C.text_cell(value)


def open_book(path: Any, limits: SheetLimits | None = None) -> OdsBook:
    """The spreadsheet at `path` (raises UnreadableFile when it cannot be read)."""
    return OdsBook(path, limits or SheetLimits())
