"""CSV exports that are safe to open in a spreadsheet (no formula injection).

A cell that a spreadsheet would evaluate as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a
carriage return) gets a leading apostrophe, so Excel/LibreOffice/Sheets show it as text. Plain numbers
such as `-12.5` or `+3` are left alone: they are not formulas and users expect them to stay numbers.
Reuse `safe_cell` / `safe_row` / `csv_response` for every CSV the product hands out.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from django.http import StreamingHttpResponse

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# A plain number: optional sign, digits with an optional decimal part (or a leading '.'), optional exponent.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet must see it: formula-looking text gets a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float | Decimal):
        return value
    text = str(value)
    if text.startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


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
