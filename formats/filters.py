"""Row filters: keep only the rows that are trades; others are skipped with a reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.errors import MappingError
from formats.converters.derive import parse_trade_text

RowFilter = Callable[[list[str]], str | None]
# side_word: keep rows whose cell names a buy or a sell ('Koop 1 @ 33,9 USD'; not 'iDEAL Deposit').
OPS = ("in", "not_in", "not_empty", "empty", "startswith", "side_word")


def _norm(value: str) -> str:
    return value.strip().casefold()


def compile_filters(filters: list[dict[str, Any]], columns: list[str]) -> RowFilter:
    """Compile filter rules into one function returning None (keep) or the skip reason."""
    checks: list[Callable[[list[str]], str | None]] = []
    for rule in filters or []:
        column = rule.get("column")
        op = rule.get("op", "in")
        if column not in columns:
            raise MappingError(f"Filter column {column!r} is not in the file's columns.", details={"column": column})
        if op not in OPS:
            raise MappingError(f"Unknown filter op {op!r}; use one of {', '.join(OPS)}.")
        index = columns.index(column)
        values = rule.get("values") or ([rule["value"]] if "value" in rule else [])
        wanted = {_norm(str(v)) for v in values}
        checks.append(_make_check(index, column, op, wanted))

    def row_filter(cells: list[str]) -> str | None:
        for check in checks:
            reason = check(cells)
            if reason:
                return reason
        return None

    return row_filter


def _make_check(index: int, column: str, op: str, wanted: set[str]) -> Callable[[list[str]], str | None]:
    def cell(cells: list[str]) -> str:
        return cells[index] if index < len(cells) else ""

    if op == "in":
        return lambda cells: None if _norm(cell(cells)) in wanted else f"{column} is '{cell(cells).strip()}'"
    if op == "not_in":
        return lambda cells: f"{column} is '{cell(cells).strip()}'" if _norm(cell(cells)) in wanted else None
    if op == "not_empty":
        return lambda cells: None if cell(cells).strip() else f"{column} is empty"
    if op == "empty":
        return lambda cells: f"{column} is not empty" if cell(cells).strip() else None
    if op == "side_word":
        return lambda cells: None if "side" in parse_trade_text(cell(cells)) else f"{column} names no buy or sell"
    prefixes = tuple(wanted)
    return lambda cells: None if _norm(cell(cells)).startswith(prefixes) else f"{column} is '{cell(cells).strip()}'"
