"""CSV and Excel exports that are safe to open in a spreadsheet (no formula injection).

A cell that a spreadsheet would evaluate as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a
carriage return) gets a leading apostrophe, so Excel/LibreOffice/Sheets show it as text. Plain numbers
such as `-12.5` or `+3`, and signed amounts such as `-$1800` or `-1,234.50`, are left alone: they are not
formulas and users expect them to stay numbers (and a corrected errors file to import as it was exported).
Reuse `safe_cell` / `safe_row` / `csv_response` for every CSV the product hands out. `xlsx_response`
writes every cell as a text cell (XlsxWriter's write_string), which Excel never evaluates, so the
cells stay exactly as they were uploaded.
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import xlsxwriter
from django.http import FileResponse, StreamingHttpResponse

from formats.converters import plain_decimal
from formats.converters.numbers import CURRENCY_MARKS, scan_number

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# A plain number: optional sign, digits with an optional decimal part (or a leading '.'), optional exponent.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# What a spreadsheet may split a CSV cell on (its delimiter guess or "text to columns"), kept by split().
_SEPARATOR = re.compile(r"([,;\t|\r\n])")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet must see it: formula-looking text gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Decimal):
        return plain_decimal(value)  # never '3E+2' nor '300.0000000000' in a file: the API's rule
    if isinstance(value, int | float):
        return value
    text = _neutralise_after_separators(str(value))
    if text.startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(text) and not _signed_amount(text):
        return "'" + text
    return text


def _signed_amount(text: str) -> bool:
    """'-$1800', '-1,234.50', '+€12': a signed number with at most a currency mark, which spreadsheets read as
    a number, not a formula; left as it is so a corrected errors file imports as it was exported. Letters are
    never allowed around it ('-AED1' would be a reference to cell AED1)."""
    if text[:1] not in "+-" or any(char.isspace() for char in text):
        return False
    parts = scan_number(text)
    return parts is not None and all(char in CURRENCY_MARKS for char in parts["pre"] + parts["post"])


def _neutralise_after_separators(text: str) -> str:
    """`x;=1+1`: a spreadsheet that splits on `;` (or `,`, TAB, `|`, a line break) would see `=1+1` as a cell
    of its own; an apostrophe goes before every such formula-looking part (plain numbers like `1;-2` stay)."""
    parts = _SEPARATOR.split(text)
    if len(parts) == 1:
        return text
    for index in range(2, len(parts), 2):  # the parts after a separator (odd indexes are the separators)
        part = parts[index]
        body = part.lstrip(" \"'")
        stripped = body.strip()
        if body.startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(stripped) and not _signed_amount(stripped):
            parts[index] = part[: len(part) - len(body)] + "'" + body
    return "".join(parts)


def safe_row(values: Iterable[Any]) -> list[Any]:
    """Every cell of a row through `safe_cell`."""
    return [safe_cell(value) for value in values]


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def iter_csv(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """CSV text line by line (header first), every cell made safe."""
    writer = csv.writer(_Echo())
    yield "\ufeff"  # a BOM so Excel opens UTF-8 with the right characters
    yield writer.writerow(safe_row(header))
    for row in rows:
        yield writer.writerow(safe_row(row))


def csv_filename(name: str) -> str:
    """A download file name reduced to safe characters (no quotes, slashes or control characters)."""
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .") or "export"
    return cleaned if cleaned.lower().endswith(".csv") else f"{cleaned}.csv"


def csv_response(filename: str, header: list[str], rows: Iterable[Iterable[Any]]) -> StreamingHttpResponse:
    """A streamed CSV download (attachment) of header + rows, formula-injection safe."""
    response = StreamingHttpResponse(iter_csv(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{csv_filename(filename)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def xlsx_filename(name: str) -> str:
    """A download file name reduced to safe characters, ending in .xlsx."""
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .") or "export"
    return cleaned if cleaned.lower().endswith(".xlsx") else f"{cleaned}.xlsx"


def xlsx_response(
    filename: str, header: list[str], rows: Iterable[Iterable[Any]], *, sheet: str = "Rows"
) -> FileResponse:
    """A workbook download of header + rows, every cell a text cell (never a formula).

    Written in XlsxWriter's constant-memory mode (a row at a time) to a temporary file that is streamed
    and deleted when the response closes, so a big report costs disk, not memory."""
    handle = tempfile.TemporaryFile(suffix=".xlsx")
    book = xlsxwriter.Workbook(handle, {"constant_memory": True, "in_memory": False})
    table = book.add_worksheet(re.sub(r"[\[\]:*?/\\]", "_", sheet)[:31] or "Rows")
    bold = book.add_format({"bold": True})
    for column, name in enumerate(header):
        table.write_string(0, column, str(name), bold)
    for number, row in enumerate(rows, start=1):
        for column, value in enumerate(row):
            text = "" if value is None else plain_decimal(value) if isinstance(value, Decimal) else str(value)
            if text:
                table.write_string(number, column, text)
    table.freeze_panes(1, 0)
    book.close()
    handle.seek(0)
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=xlsx_filename(filename),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
