"""The orders target's writer: broker trade orders validated, identified for de-duplication and inserted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from formats.converters import plain_decimal
from formats.converters.currencies import currency_problem
from formats.targets import get_target
from imports.models import Order
from imports.services.reconciliation import INSTRUMENT_MAP_SQL
from imports.targets.base import MARKUP_CHARACTERS, TargetRow, TargetWriter, identity_digest

_MAX_DECIMAL = Decimal("1e18")


def validate_order(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Target-level checks after conversion: required fields, ranges, lengths. [] when valid."""
    errors: list[dict[str, Any]] = []
    for field in get_target("orders").required_fields():
        if values.get(field.name) in (None, ""):
            errors.append({"field": field.name, "value": "", "message": f"{field.label} is required"})
    quantity = values.get("quantity")
    if isinstance(quantity, Decimal):
        if quantity <= 0:
            errors.append({"field": "quantity", "value": str(quantity), "message": "quantity must be greater than 0"})
        elif quantity >= _MAX_DECIMAL:
            errors.append({"field": "quantity", "value": str(quantity), "message": "quantity is too large"})
    price = values.get("price")
    if isinstance(price, Decimal):
        if price < 0:
            errors.append({"field": "price", "value": str(price), "message": "price must not be negative"})
        elif price >= _MAX_DECIMAL:
            errors.append({"field": "price", "value": str(price), "message": "price is too large"})
    commission = values.get("commission")
    if isinstance(commission, Decimal) and commission < 0:
        errors.append({"field": "commission", "value": str(commission), "message": "commission must not be negative"})
    side = values.get("side")
    if side not in (None, "") and side not in ("BUY", "SELL"):
        errors.append({"field": "side", "value": str(side), "message": "side must be BUY or SELL"})
    currency = values.get("currency")
    if currency not in (None, ""):
        problem = currency_problem(str(currency))
        if problem:
            errors.append({"field": "currency", "value": str(currency)[:80], "message": problem})
    for name, limit in (("symbol", 64), ("account", 64), ("broker_trade_id", 128)):
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            errors.append({"field": name, "value": value[:80], "message": f"{name} is longer than {limit} characters"})
    symbol = values.get("symbol")
    if isinstance(symbol, str) and symbol and MARKUP_CHARACTERS.intersection(symbol):
        shown = " ".join(sorted(MARKUP_CHARACTERS.intersection(symbol)))
        message = f"symbol contains {shown}: expected a ticker, ISIN or instrument name without markup characters"
        errors.append({"field": "symbol", "value": symbol[:80], "message": message})
    executed_at = values.get("executed_at")
    if executed_at is not None and (not isinstance(executed_at, datetime) or executed_at.tzinfo is None):
        errors.append({"field": "executed_at", "value": str(executed_at), "message": "time is not timezone-aware"})
    elif executed_at is not None:
        problem = trade_date_problem(executed_at)
        if problem:
            errors.append({"field": "executed_at", "value": executed_at.date().isoformat(), "message": problem})
    return errors


EARLIEST_TRADE_YEAR = 1900


def trade_date_problem(executed_at: datetime) -> str | None:
    """Why a trade time cannot be right (before 1900, or after tomorrow), or None."""
    if executed_at.year < EARLIEST_TRADE_YEAR:
        return (
            f"trade date {executed_at.date().isoformat()} is before {EARLIEST_TRADE_YEAR}: expected the date the "
            "trade was executed (check the date column and its format)"
        )
    latest = timezone.now() + timedelta(days=1)
    if executed_at > latest:
        return (
            f"trade date {executed_at.date().isoformat()} is in the future: expected a date no later than "
            f"{latest.date().isoformat()} (check the date column and its format: day and month swapped?)"
        )
    return None


def _norm_decimal(value: Any) -> str:
    return "" if value is None else plain_decimal(value)


def order_identity(values: dict[str, Any]) -> str:
    """The trade's identity for its owner: the broker's trade id, else the fill's own fields."""
    account = (values.get("account") or "").strip().upper()
    trade_id = (values.get("broker_trade_id") or "").strip()
    executed = values.get("executed_at")
    if trade_id:
        # Many brokers' "trade id" column is really an order id that several partial fills share
        # (Swissquote's Order #, DEGIRO's order id): the fill's quantity and time keep those apart,
        # while the same fill exported twice still matches.
        return "|".join(
            ["id", account, trade_id, _norm_decimal(values.get("quantity")), executed.isoformat() if executed else ""]
        )
    return "fp|" + "|".join(
        [
            account,
            (values.get("symbol") or "").upper(),
            values.get("side") or "",
            _norm_decimal(values.get("quantity")),
            _norm_decimal(values.get("price")),
            executed.isoformat() if executed else "",
        ]
    )


def order_digest(values: dict[str, Any], identity: str) -> str:
    """An order's dedupe digest: the trade's date (UTC, YYYYMMDD) and the first 128 bits of its identity's
    sha256, 40 hex digits. The date first keeps the owner's unique index in date order: a broker export's
    trades span a few days, so a file's keys land in a few places of the index (those dates' pages) instead
    of one random place per row all over it, which is what made writing orders slow once the table outgrew
    memory (half the time of the orders INSERT on 13 million orders). The identity holds the time already,
    so the date makes no two trades the same or different that were not; 128 bits keep collisions out of
    reach. The SQL path builds the same digest (imports/pipeline/fastpath.py); migration 0016 rewrote the
    keys written before."""
    executed = values.get("executed_at")
    date = "00000000"  # no time: validate_order refuses the row, it is never written
    if isinstance(executed, datetime):
        day = executed.astimezone(UTC) if executed.tzinfo else executed
        date = f"{day.year:04d}{day.month:02d}{day.day:02d}"
    return date + identity_digest(values, identity)[:32]


# Each order is linked to its instrument as it is written (INSTRUMENT_MAP_SQL: the owner's decisions, ISINs,
# tickers and aliases); what that leaves waits for imports/services/reconciliation.py after the file.
_INSERT_SQL = f"""
INSERT INTO imports_order (owner_id, account, symbol, side, quantity, price, commission, currency,
                           executed_at, broker_trade_id, source_file_id, source_line, dedupe_key, created_at,
                           instrument_id)
SELECT %(owner)s, v.account, v.symbol, v.side, v.quantity, v.price, v.commission, v.currency, v.executed_at,
       v.broker_trade_id, %(file)s, v.line, v.dedupe_key, now(), m.instrument_id
FROM unnest(%(account)s::text[], %(symbol)s::text[], %(side)s::text[], %(quantity)s::numeric[],
            %(price)s::numeric[], %(commission)s::numeric[], %(currency)s::text[], %(executed_at)s::timestamptz[],
            %(broker_trade_id)s::text[], %(line)s::int[], %(dedupe_key)s::text[])
     AS v(account, symbol, side, quantity, price, commission, currency, executed_at, broker_trade_id, line,
          dedupe_key)
LEFT JOIN {INSTRUMENT_MAP_SQL} m ON m.value = upper(btrim(v.symbol))
ON CONFLICT DO NOTHING
RETURNING source_line
"""


# The order values a mapping produces, in the column order of the INSERTs that write them.
ORDER_VALUE_FIELDS = (
    "account",
    "symbol",
    "side",
    "quantity",
    "price",
    "commission",
    "currency",
    "executed_at",
    "broker_trade_id",
)


def order_columns(rows: list[TargetRow]) -> dict[str, list[Any]]:
    """Valid rows as one array per column (values, then line and dedupe key) for an INSERT ... unnest();
    an absent account or trade id is '', an absent commission 0."""
    columns: dict[str, list[Any]] = {name: [] for name in (*ORDER_VALUE_FIELDS, "line", "dedupe_key")}
    for row in rows:
        for name in ORDER_VALUE_FIELDS:
            columns[name].append(row.values.get(name))
        columns["line"].append(row.line)
        columns["dedupe_key"].append(row.dedupe_key)
    columns["account"] = [value or "" for value in columns["account"]]
    columns["broker_trade_id"] = [value or "" for value in columns["broker_trade_id"]]
    columns["commission"] = [value if value is not None else Decimal(0) for value in columns["commission"]]
    return columns


def orders_insert(*, owner_id: int, file_id: int, rows: list[TargetRow]) -> set[int]:
    """Insert valid orders in one statement; returns the lines actually inserted.

    ON CONFLICT DO NOTHING makes a re-run idempotent on (file, line) and skips trades the owner
    already has (dedupe key); the caller tells the two apart.
    """
    if not rows:
        return set()
    columns = order_columns(rows)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL, {"owner": owner_id, "file": file_id, **columns})
        return {line for (line,) in cursor.fetchall()}


WRITER = TargetWriter(
    name="orders",
    model=Order,
    validate=validate_order,
    identity=order_identity,
    digest=order_digest,
    insert=orders_insert,
    fast_path=True,  # imports/pipeline/fastpath.py compiles orders mappings to SQL
)
