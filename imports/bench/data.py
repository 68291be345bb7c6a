"""Deterministic benchmark data: broker-style CSV files and the same rows already clean."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from imports.targets import ORDER_VALUE_FIELDS

HEADER = [
    "Account",
    "Symbol",
    "Side",
    "Quantity",
    "Price",
    "Commission",
    "Currency",
    "Trade Time",
    "Trade ID",
    "Exchange",
    "Order Type",
    "Description",
]
SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "NVDA", "META", "ASML", "SAP", "NESN", "BRK.B", "VOW3"]
SIDES = ["Buy", "Sell", "BOT", "SLD"]
CURRENCIES = ["USD", "EUR", "CHF", "GBP"]
EXCHANGES = ["NASDAQ", "NYSE", "XETRA", "SIX", "LSE"]
START = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)

# The mapping the benchmark approves: the same spec serves preview, migration and approved files.
MAPPING: dict[str, Any] = {
    "version": 1,
    "reader": {"section": None, "header_line": None},
    "filters": [],
    "fields": {
        "account": {"columns": ["Account"], "converter": "text", "options": {}},
        "symbol": {"columns": ["Symbol"], "converter": "text", "options": {"upper": True}},
        "side": {"columns": ["Side"], "converter": "side", "options": {}},
        "quantity": {"columns": ["Quantity"], "converter": "decimal", "options": {"abs": True}},
        "price": {"columns": ["Price"], "converter": "decimal", "options": {}},
        "commission": {"columns": ["Commission"], "converter": "decimal", "options": {"abs": True}},
        "currency": {"columns": ["Currency"], "converter": "currency", "options": {}},
        "executed_at": {
            "columns": ["Trade Time"],
            "converter": "datetime",
            "options": {"formats": ["%Y-%m-%d %H:%M:%S"], "tz": "UTC"},
        },
        "broker_trade_id": {"columns": ["Trade ID"], "converter": "text", "options": {}},
    },
}


def trade_rows(count: int, *, seed: int, id_offset: int = 0, invalid_every: int = 0) -> Iterator[list[str]]:
    """`count` raw CSV rows; every `invalid_every`-th row has a bad quantity (a row-level error)."""
    rng = random.Random(seed)
    choice, randint, random_ = rng.choice, rng.randint, rng.random
    for n in range(count):
        when = START + timedelta(seconds=n * 7 + randint(0, 6))
        quantity = str(randint(1, 5000))
        if invalid_every and n % invalid_every == invalid_every - 1:
            quantity = "twelve"
        yield [
            f"U{randint(1000000, 1000099)}",
            choice(SYMBOLS),
            choice(SIDES),
            quantity,
            f"{random_() * 900 + 10:.4f}",
            f"{random_() * 5:.2f}",
            choice(CURRENCIES),
            when.strftime("%Y-%m-%d %H:%M:%S"),
            f"T{id_offset + n:010d}",
            choice(EXCHANGES),
            "LMT",
            "Limit order",
        ]


def _csv_line(cells: list[str]) -> str:
    # No cell holds a comma or a quote, so plain joining is valid CSV (and much faster than csv.writer).
    return ",".join(cells) + "\n"


def write_trades(path: Path, count: int, *, seed: int, id_offset: int = 0, invalid_every: int = 0) -> int:
    """Write a broker CSV of `count` rows; returns its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(_csv_line(HEADER))
        buffer: list[str] = []
        for cells in trade_rows(count, seed=seed, id_offset=id_offset, invalid_every=invalid_every):
            buffer.append(_csv_line(cells))
            if len(buffer) >= 10_000:
                out.writelines(buffer)
                buffer.clear()
        out.writelines(buffer)
    return path.stat().st_size


def write_trades_until(path: Path, size_bytes: int, *, seed: int) -> int:
    """Write a broker CSV of at least `size_bytes` bytes (the memory test); returns its row count."""
    rows = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(_csv_line(HEADER))
        written = 0
        while written < size_bytes:
            block = "".join(_csv_line(c) for c in trade_rows(50_000, seed=seed + rows, id_offset=3 * 10**9 + rows))
            out.write(block)
            written += len(block)
            rows += 50_000
    return rows


# The orders table's columns the clean baseline file holds (the bench_baseline table copies imports_order).
CLEAN_COLUMNS = ["owner_id", *ORDER_VALUE_FIELDS, "source_file_id", "source_line", "dedupe_key", "created_at"]
_SIDE = {"Buy": "BUY", "BOT": "BUY", "Sell": "SELL", "SLD": "SELL"}


def clean_rows(count: int, *, seed: int, owner_id: int, file_id: int) -> Iterator[list[str]]:
    """The same trades as `trade_rows`, already converted to imports_order's columns."""
    now = datetime.now(UTC).isoformat()
    for line, cells in enumerate(trade_rows(count, seed=seed), start=2):
        account, symbol, side, quantity, price, commission, currency, when, trade_id = cells[:9]
        key = hashlib.sha256(f"id|{account}|{trade_id}".encode()).hexdigest()
        yield [
            str(owner_id),
            account,
            symbol,
            _SIDE[side],
            quantity,
            price,
            commission,
            currency,
            when + "+00",
            trade_id,
            str(file_id),
            str(line),
            key,
            now,
        ]


def write_clean(path: Path, count: int, *, seed: int, owner_id: int, file_id: int) -> int:
    """The clean rows as a CSV without header (what COPY reads); returns its size in bytes."""
    with path.open("w", encoding="utf-8", newline="") as out:
        buffer: list[str] = []
        for cells in clean_rows(count, seed=seed, owner_id=owner_id, file_id=file_id):
            buffer.append(_csv_line(cells))
            if len(buffer) >= 10_000:
                out.writelines(buffer)
                buffer.clear()
        out.writelines(buffer)
    return path.stat().st_size
