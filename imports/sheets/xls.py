"""Reader of Excel 97-2003 .xls workbooks (BIFF8 in an OLE2 container), through xlrd.

xlrd reads a sheet whole; an .xls sheet has at most 65,536 rows and the file is capped at
AIRLOCK_MAX_XLS_BYTES (imports/sheets/containers.py), which bounds its memory. Sheets are loaded one at
a time (`on_demand`) and released after use. xlrd applies the workbook's date system (1900 or 1904)
and tells date cells by their format, which also tells a date from a date with a time; merged ranges
and hidden rows come from the formatting records. Formulas are read as their saved results.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import xlrd

from config.errors import UnreadableFile
from imports.sheets import cells as C
from imports.sheets.containers import ole_kind
from imports.sheets.workbook import Row, Sheet, SheetLimits, column_letters, merge_filler


class XlsBook:
    """One open .xls workbook."""

    kind = "xls"

    def __init__(self, path: Any, limits: SheetLimits) -> None:
        self.limits = limits
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(0)
            ole_kind(handle, limits.container, size)  # refuses encrypted, non-workbook and too big files
        try:
            self.book = xlrd.open_workbook(str(path), formatting_info=True, on_demand=True, logfile=_Quiet())
        except xlrd.biffh.XLRDError as exc:
            message = str(exc)
            if "encrypted" in message.lower():
                raise UnreadableFile(
                    "The workbook is password-protected (encrypted), so it cannot be read. Remove the password "
                    "in Excel, save, and upload again."
                ) from exc
            raise UnreadableFile(f"The .xls workbook cannot be read: {message}.") from exc
        except (AssertionError, IndexError, KeyError, ValueError, OverflowError, MemoryError, EOFError) as exc:
            raise UnreadableFile(f"The .xls workbook is damaged ({type(exc).__name__}: {str(exc)[:200]}).") from exc
        names = self.book.sheet_names()
        if len(names) > limits.max_sheets:
            self.book.release_resources()
            raise UnreadableFile(
                f"The workbook has more than {limits.max_sheets:,} sheets; at most {limits.max_sheets:,} are read."
            )
        visibility = getattr(self.book, "_sheet_visibility", [0] * len(names))
        self.sheets = [
            Sheet(name=name, index=i, hidden=bool(visibility[i]) if i < len(visibility) else False, ref=i)
            for i, name in enumerate(names)
        ]
        self.formula_without_value = 0
        self._kinds: dict[int, str | None] = {}

    def _format_kind(self, xf_index: int) -> str | None:
        kind = self._kinds.get(xf_index, "?")
        if kind == "?":
            try:
                xf = self.book.xf_list[xf_index]
                code = self.book.format_map[xf.format_key].format_str
            except (IndexError, KeyError, AttributeError):
                code = None
            kind = C.format_kind(code) or C.DATETIME
            self._kinds[xf_index] = kind
        return kind

    def rows(self, sheet: Sheet, *, merges: bool = True) -> Iterator[Row]:
        try:
            data = self.book.sheet_by_index(sheet.ref)
        except (xlrd.biffh.XLRDError, AssertionError, IndexError, KeyError, ValueError, struct.error) as exc:
            raise UnreadableFile(f"Sheet '{sheet.name}' cannot be read ({str(exc)[:200]}).") from exc
        try:
            rows = self._rows(data, sheet.name)
            ranges = [(r1 + 1, c1 + 1, r2, c2) for r1, r2, c1, c2 in data.merged_cells] if merges else []
            yield from merge_filler(rows, ranges) if ranges else rows
        finally:
            self.book.unload_sheet(sheet.ref)

    def _rows(self, data: Any, name: str) -> Iterator[Row]:
        max_columns, max_chars = self.limits.max_columns, self.limits.max_field_chars
        datemode = self.book.datemode
        hidden_rows = {r for r, info in data.rowinfo_map.items() if info.hidden and not info.outline_level}
        for r in range(data.nrows):
            types = data.row_types(r)
            values = data.row_values(r)
            cells: list[str] = []
            for c, (ctype, value) in enumerate(zip(types, values, strict=False)):
                if ctype == xlrd.XL_CELL_EMPTY or ctype == xlrd.XL_CELL_BLANK:
                    text = ""
                elif ctype == xlrd.XL_CELL_TEXT:
                    text = C.text_cell(value)
                elif ctype == xlrd.XL_CELL_NUMBER:
                    text = C.number_text(value)
                elif ctype == xlrd.XL_CELL_DATE:
                    kind = self._format_kind(data.cell_xf_index(r, c))
                    text = C.serial_text(value, kind or C.DATETIME, date1904=bool(datemode))
                elif ctype == xlrd.XL_CELL_BOOLEAN:
                    text = "TRUE" if value else "FALSE"
                elif ctype == xlrd.XL_CELL_ERROR:
                    text = xlrd.error_text_from_code.get(value, "#ERROR")
                else:
                    text = str(value).strip()
                if text:
                    if c + 1 > max_columns:
                        raise UnreadableFile(
                            f"Sheet '{name}', row {r + 1} has a value in column {column_letters(c + 1)}; at most "
                            f"{max_columns} columns are read."
                        )
                    if len(text) > max_chars:
                        raise UnreadableFile(
                            f"Sheet '{name}', row {r + 1}, column {column_letters(c + 1)} holds more than "
                            f"{max_chars:,} characters; that is not a trade export."
                        )
                cells.append(text)
            while cells and not cells[-1]:
                cells.pop()
            if cells or r in hidden_rows:
                yield Row(r + 1, r in hidden_rows, cells)

    def row_estimate(self, sheet: Sheet) -> int | None:
        """The sheet's row count (xlrd reads the sheet whole anyway)."""
        try:
            return self.book.sheet_by_index(sheet.ref).nrows
        except (xlrd.biffh.XLRDError, AssertionError, IndexError, KeyError, ValueError, struct.error):
            return None
        finally:
            self.book.unload_sheet(sheet.ref)

    def close(self) -> None:
        self.book.release_resources()


class _Quiet:
    """xlrd's log goes nowhere (it writes warnings about odd records to stdout by default)."""

    def write(self, _: str) -> int:
        return 0


def open_book(path: Any, limits: SheetLimits | None = None) -> XlsBook:
    """The workbook at `path` (raises UnreadableFile when it cannot be read)."""
    return XlsBook(path, limits or SheetLimits())
