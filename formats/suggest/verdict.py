"""Whether a file holds trades at all: the verdict that keeps positions snapshots, cash statements and
unrelated tables out of the admins' review queue.

Two stages, both explained in words an admin can check (and overrule in the admin):
- from the suggested mapping alone (`structural_verdict`): the columns a trade needs are missing;
- from every row of the file once staged (`rows_verdict`): the mapping is complete, yet no row is a trade.
"""

from __future__ import annotations

from typing import Any

from formats.converters import PLACEHOLDERS
from formats.converters.derive import parse_trade_text
from formats.suggest.profiles import profile_column
from formats.suggest.specs import unfilled

# What makes a row a trade: what was traded, when, how much and at what price. The side is left out: a
# file can give it by a sign or a word inside a description, which the suggestion may not have found.
ESSENTIALS = {"symbol": "symbol", "executed_at": "trade date", "quantity": "quantity", "price": "price"}


def missing_fields(mapping: dict[str, Any]) -> list[str]:
    """The fields of the mapping that have no column and no constant (the reviewer would have to fill them)."""
    return [name for name, spec in (mapping.get("fields") or {}).items() if isinstance(spec, dict) and unfilled(spec)]


def structural_verdict(mapping: dict[str, Any], columns: list[str], sample_rows: list[list[str]]) -> str | None:
    """Why a file with these columns and sample rows cannot be a list of trades, or None when it may be."""
    missing = [name for name in missing_fields(mapping) if name in ESSENTIALS]
    shown = ", ".join(columns[:8]) + (", …" if len(columns) > 8 else "")
    if len(missing) >= 3:
        lacking = ", ".join(ESSENTIALS[name] for name in missing)
        return f"no column gives a {lacking}: this looks like unrelated data, not a list of trades (columns: {shown})"
    if _names_trades(sample_rows) or _trade_ids(mapping, columns) or _side_column(mapping):
        return None  # buy/sell words in some column: trades are there, the suggestion missed how to read them
    if "price" in missing:
        return (
            f"no price column and no row names a buy or a sell: this looks like dividends, fees or cash movements, "
            f"not trades (columns: {shown})"
        )
    side = (mapping.get("fields") or {}).get("side") or {}
    sideless = not side.get("columns") or (
        side.get("converter") == "side_from_sign" and side.get("confidence", 0) < 0.5
    )
    if sideless and missing:
        lacking = ", ".join(ESSENTIALS[name] for name in missing)
        return (
            f"no row names a buy or a sell, no quantity is negative, and no column gives a {lacking}: this looks "
            f"like holdings, dividends or cash movements, not trades (columns: {shown})"
        )
    if sideless and _constant_date(mapping, columns, sample_rows):
        return f"one date on every row and no buys or sells: this looks like a positions snapshot (columns: {shown})"
    if "price" in missing and ("quantity" in missing or ("symbol" in missing and not _instrument_column(sample_rows))):
        return f"amounts without instruments or prices: this looks like a cash statement (columns: {shown})"
    return None


def _side_column(mapping: dict[str, Any]) -> bool:
    """A column of buy/sell values ('B', 'S', 'Köp') was found for the side."""
    spec = (mapping.get("fields") or {}).get("side") or {}
    return spec.get("converter") == "side" and bool(spec.get("columns")) and spec.get("confidence", 0) >= 0.5


def _trade_ids(mapping: dict[str, Any], columns: list[str]) -> bool:
    """A column of trade ids (Coinbase Pro's 'Trade id'): trades are there, spread over ledger rows."""
    spec = (mapping.get("fields") or {}).get("broker_trade_id") or {}
    return any("trade" in column.casefold() for column in spec.get("columns") or [])


def _constant_date(mapping: dict[str, Any], columns: list[str], sample_rows: list[list[str]]) -> bool:
    """The trade-date column holds the same value on every sample row (an 'as of' date, not trade dates)."""
    spec = (mapping.get("fields") or {}).get("executed_at") or {}
    names = spec.get("columns") or []
    if not names or names[0] not in columns or len(sample_rows) < 2:
        return False
    index = columns.index(names[0])
    cells = [row[index].strip() for row in sample_rows if index < len(row)]
    values = [cell for cell in cells if cell.casefold() not in PLACEHOLDERS]
    return len(values) >= 2 and len(set(values)) == 1


def _names_trades(sample_rows: list[list[str]]) -> bool:
    """Some cell of the sample names a buy or a sell ('Buy', 'Koop 1 @ 33,9 USD', 'Bought 1,550 FOO')."""
    return any(
        "side" in parse_trade_text(cell) or _quantity_at_price(cell)
        for row in sample_rows
        for cell in row
        if cell and len(cell) < 200
    )


def _quantity_at_price(text: str) -> bool:
    """'Vanguard FTSE ETF 1000 @ 4500.00': a quantity at a price, even without a buy/sell word."""
    before, at, after = text.partition("@")
    if not at:
        return False
    last, first = before.split()[-1:], after.split()[:1]
    return bool(last and first and last[0][:1].isdigit() and first[0][:1].isdigit())


def _instrument_column(sample_rows: list[list[str]]) -> bool:
    """Some column of the sample names instruments: tickers, ISINs or crypto codes in most of its cells."""
    width = max((len(row) for row in sample_rows), default=0)
    for index in range(width):
        cells = [row[index] if index < len(row) else "" for row in sample_rows]
        profile = profile_column(index, f"column_{index}", "", cells)
        if profile.count and profile.ratio(profile.tickers) >= 0.5 and not profile.numeric:
            return True
    return False


def rows_verdict(preview: dict[str, Any]) -> str | None:
    """Why a file whose mapping is complete holds no trades, from what the mapping does to all its rows.

    Only when every row is skipped by the row filters: rows that fail may be trades the mapping reads wrong,
    which is for a reviewer to decide."""
    total = preview.get("total") or 0
    if not total or preview.get("would_import") or preview.get("would_be_invalid"):
        return None
    skips = preview.get("top_skips") or []
    seen = "; ".join(f"{skip['reason']} ({skip['count']})" for skip in skips[:3]) or "every row is skipped"
    return f"none of its {total} rows is a buy or a sell ({seen})"
