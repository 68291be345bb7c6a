"""Deterministic benchmark data: broker-style CSV files and the same rows already clean."""

from __future__ import annotations

import csv
import json
import random
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from imports.targets.orders import ORDER_VALUE_FIELDS, order_digest, order_identity

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


def trades_header(variant: int = 0) -> list[str]:
    """HEADER (variant 0), or the same columns with another last name: another unknown format for each repeated
    staging and migration (the mapping's fields do not name that column)."""
    return HEADER if not variant else [*HEADER[:-1], f"Memo {variant}"]


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


def write_trades(
    path: Path, count: int, *, seed: int, id_offset: int = 0, invalid_every: int = 0, header: list[str] = HEADER
) -> int:
    """Write a broker CSV of `count` rows (under another `header` of the same width: another format); returns its
    size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(_csv_line(header))
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


# --- the same trades as a workbook and as NDJSON ---------------------------------------------------------

# Typed cells, as a broker's Excel export has them: quantity, price and commission are numbers, the trade
# time a date serial shown with a date format; the rest text, in the shared-string table (as Excel writes).
_NUMBER_COLUMNS = {3, 4, 5}
_TIME_COLUMN = 7
_EPOCH = datetime(1899, 12, 30)
_XLSX_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/sharedStrings.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>'
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="xl/workbook.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
        "</Relationships>"
    ),
    "xl/workbook.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="Trades" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="worksheets/sheet1.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/>'
        '<Relationship Id="rId2" Target="sharedStrings.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>'
        '<Relationship Id="rId3" Target="styles.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles"/></Relationships>'
    ),
    "xl/styles.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd\\ hh:mm:ss"/></numFmts>'
        '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
        '<borders count="1"><border/></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
    ),
}


def _column(index: int) -> str:
    return chr(65 + index)  # the trade rows have 12 columns: A..L


def write_trades_xlsx(path: Path, count: int, *, seed: int, id_offset: int = 0, invalid_every: int = 0) -> int:
    """The rows of `write_trades` as an Excel workbook (one sheet 'Trades'); returns its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    strings: dict[str, int] = {}

    def shared(text: str) -> int:
        index = strings.get(text)
        if index is None:
            index = strings[text] = len(strings)
        return index

    def row_xml(number: int, cells: list[str]) -> str:
        parts = [f'<row r="{number}">']
        for i, cell in enumerate(cells):
            ref = f"{_column(i)}{number}"
            if i == _TIME_COLUMN and number > 1:
                when = datetime.strptime(cell, "%Y-%m-%d %H:%M:%S")
                serial = (when - _EPOCH).total_seconds() / 86400
                parts.append(f'<c r="{ref}" s="1"><v>{serial!r}</v></c>')
            elif i in _NUMBER_COLUMNS and number > 1 and cell.replace(".", "", 1).isdigit():
                parts.append(f'<c r="{ref}"><v>{float(cell)!r}</v></c>')
            else:
                parts.append(f'<c r="{ref}" t="s"><v>{shared(cell)}</v></c>')
        parts.append("</row>")
        return "".join(parts)

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, text in _XLSX_PARTS.items():
            archive.writestr(name, text)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            sheet.write(
                b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
            )
            sheet.write(row_xml(1, HEADER).encode())
            buffer: list[str] = []
            rows = trade_rows(count, seed=seed, id_offset=id_offset, invalid_every=invalid_every)
            for number, cells in enumerate(rows, start=2):
                buffer.append(row_xml(number, cells))
                if len(buffer) >= 10_000:
                    sheet.write("".join(buffer).encode())
                    buffer.clear()
            sheet.write("".join(buffer).encode())
            sheet.write(b"</sheetData></worksheet>")
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as table:
            table.write(
                b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            )
            ordered = list(strings)
            for start in range(0, len(ordered), 10_000):
                table.write(
                    "".join(f"<si><t>{escape(text)}</t></si>" for text in ordered[start : start + 10_000]).encode()
                )
            table.write(b"</sst>")
    return path.stat().st_size


def write_trades_ndjson(path: Path, count: int, *, seed: int, id_offset: int = 0, invalid_every: int = 0) -> int:
    """The rows of `write_trades` as NDJSON, one object per line (numbers as JSON numbers); returns bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        buffer: list[str] = []
        for cells in trade_rows(count, seed=seed, id_offset=id_offset, invalid_every=invalid_every):
            record: dict[str, Any] = dict(zip(HEADER, cells, strict=True))
            for i in _NUMBER_COLUMNS:
                if cells[i].replace(".", "", 1).isdigit():
                    record[HEADER[i]] = json.loads(cells[i])  # 123.4500 -> 123.45, written as a JSON number
            buffer.append(json.dumps(record, separators=(",", ":")) + "\n")
            if len(buffer) >= 10_000:
                out.writelines(buffer)
                buffer.clear()
        out.writelines(buffer)
    return path.stat().st_size


# The orders table's columns the clean baseline file holds (the bench_baseline table copies imports_order).
CLEAN_COLUMNS = ["owner_id", *ORDER_VALUE_FIELDS, "source_file_id", "source_line", "dedupe_key", "created_at"]
_SIDE = {"Buy": "BUY", "BOT": "BUY", "Sell": "SELL", "SLD": "SELL"}


def clean_rows(count: int, *, seed: int, owner_id: int, file_id: int) -> Iterator[list[str]]:
    """The same trades as `trade_rows`, already converted to imports_order's columns."""
    now = datetime.now(UTC).isoformat()
    for line, cells in enumerate(trade_rows(count, seed=seed), start=2):
        account, symbol, side, quantity, price, commission, currency, when, trade_id = cells[:9]
        values = {
            "account": account,
            "broker_trade_id": trade_id,
            "quantity": Decimal(quantity),
            "executed_at": datetime.strptime(when, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC),
        }
        key = order_digest(values, order_identity(values))  # the key the pipeline gives the row
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


# --- the built-in Charles Schwab layout (formats/builtin/schwab-transactions.json) ----------------------

SCHWAB_HEADER = ["Date", "Action", "Symbol", "Description", "Quantity", "Price", "Fees & Comm", "Amount"]
SCHWAB_ACTIONS = ["Buy", "Sell", "Buy", "Sell", "Sell Short", "Buy to Open", "Sell to Close", "Reinvest Shares"]
SCHWAB_CASH = ["Qualified Dividend", "Bank Interest", "Journal", "Reinvest Dividend"]


def _money(value: float) -> str:
    return f"${value:,.2f}"


def schwab_rows(count: int, *, seed: int, invalid_every: int = 0) -> Iterator[list[str]]:
    """`count` lines as a Schwab 'Transactions' export writes them: US dates, one in ten with an 'as of'
    date, '$1,234.56' money, '1,000' quantities, an empty fee on most reinvestments (the mapping's default
    commission), one cash row (dividend, interest: skipped by the row filter) in twenty, no trade id, and
    the 'Transactions Total' footer as the last line; every `invalid_every`-th row has a bad quantity."""
    rng = random.Random(seed)
    choice, randint, random_ = rng.choice, rng.randint, rng.random
    for n in range(count - 1):
        day = START + timedelta(days=(n // 400) % 1000)  # within ~3 years: no date in the future
        date = day.strftime("%m/%d/%Y")
        if n % 10 == 3:
            date = f"{date} as of {(day - timedelta(days=1)).strftime('%m/%d/%Y')}"
        if n % 20 == 7:
            amount = random_() * 300
            yield [date, choice(SCHWAB_CASH), choice(SYMBOLS), "CASH MOVEMENT", "", "", "", _money(amount)]
            continue
        action = SCHWAB_ACTIONS[n % len(SCHWAB_ACTIONS)]
        shares = randint(1, 5000)
        quantity = f"{shares:,}" if not (invalid_every and n % invalid_every == invalid_every - 1) else "twelve"
        price = random_() * 900 + 10
        fee = "" if action == "Reinvest Shares" or n % 3 == 0 else _money(0.65)
        amount = shares * price * (-1 if action.startswith("Buy") or action.startswith("Reinvest") else 1)
        yield [date, action, choice(SYMBOLS), "SOME COMPANY INC", quantity, _money(price), fee, _money(amount)]
    yield ["Transactions Total", "", "", "", "", "", "", "-$1,234,567.89"]


def _signed_fill(n: int, shares: int, invalid_every: int) -> tuple[bool, int, str]:
    """Line n's side (buys and sells alternate), its share count and the quantity cell: negative for a
    sale, a word instead of a number on every `invalid_every`-th line."""
    bought = n % 2 == 0
    quantity = str(shares if bought else -shares)
    if invalid_every and n % invalid_every == invalid_every - 1:
        quantity = "twelve"
    return bought, shares, quantity


ETRADE_HEADER = [
    "TransactionDate", "TransactionType", "SecurityType", "Symbol", "Quantity", "Amount", "Price", "Commission",
    "Description",
]  # fmt: skip
ETRADE_CASH = ["Dividend", "Interest", "Transfer", "Fee"]


def etrade_rows(count: int, *, seed: int, invalid_every: int = 0) -> Iterator[list[str]]:
    """`count` lines as E*TRADE's transactions export writes them: two-digit-year US dates ('03/15/24'),
    'Bought'/'Sold', negative quantities on sales, one cash row (dividend, interest, transfer) in twenty
    (skipped by the row filter), an empty commission now and then (the default), no trade id."""
    rng = random.Random(seed)
    choice, randint, random_ = rng.choice, rng.randint, rng.random
    for n in range(count):
        date = (START + timedelta(days=(n // 400) % 1000)).strftime("%m/%d/%y")
        if n % 20 == 7:
            yield [date, choice(ETRADE_CASH), "", choice(SYMBOLS), "0", f"{random_() * 300:.2f}", "0", "0", "CASH"]
            continue
        bought, shares, quantity = _signed_fill(n, randint(1, 5000), invalid_every)
        price = random_() * 900 + 10
        commission = "" if n % 7 == 0 else "0.65"
        amount = f"{shares * price * (-1 if bought else 1):.2f}"
        kind = "Bought" if bought else "Sold"
        yield [date, kind, "EQ", choice(SYMBOLS), quantity, amount, f"{price:.4f}", commission, "SOME COMPANY INC"]


IBKR_FLEX_HEADER = [
    "Buy/Sell", "TradeDate", "ISIN", "Quantity", "TradePrice", "TradeMoney", "CurrencyPrimary", "IBCommission",
    "IBCommissionCurrency",
]  # fmt: skip
ISINS = ["US0378331005", "US5949181045", "IE00B4L5Y983", "US88160R1014", "DE0007164600", "NL0010273215"]


def ibkr_flex_rows(count: int, *, seed: int, invalid_every: int = 0) -> Iterator[list[str]]:
    """`count` lines as an IBKR Flex 'Trades' query writes them: compact dates ('20240315'), BUY/SELL,
    signed quantities, negative commissions, the currency per row, one row in fifty without an ISIN (a
    cash/forex line: skipped by the row filter), no trade id."""
    rng = random.Random(seed)
    choice, randint, random_ = rng.choice, rng.randint, rng.random
    for n in range(count):
        date = (START + timedelta(days=(n // 400) % 1000)).strftime("%Y%m%d")
        bought, shares, quantity = _signed_fill(n, randint(1, 5000), invalid_every)
        price = random_() * 900 + 10
        isin = "" if n % 50 == 11 else choice(ISINS)
        currency = "EUR" if isin[:2] in ("DE", "NL", "IE") else "USD"
        money = f"{shares * price * (1 if bought else -1):.2f}"
        commission = f"{-random_() * 2:.6f}"
        yield ["BUY" if bought else "SELL", date, isin, quantity, f"{price:.4f}", money, currency, commission, "USD"]


# --- a corpus layout: Trading 212's history export (../shared/corpus/trading212/e2g-2023.csv) -------------

TRADING212_HEADER = [
    "Action", "Time", "ISIN", "Ticker", "Name", "No. of shares", "Price / share", "Currency (Price / share)",
    "Exchange rate", "Result", "Currency (Result)", "Total", "Currency (Total)", "Withholding tax",
    "Currency (Withholding tax)", "Notes", "ID", "Currency conversion fee", "Currency (Currency conversion fee)",
]  # fmt: skip
TRADING212_NAMES = [
    "Apple", "Microsoft", "Alphabet (Class A)", "Amazon.com", "Tesla", "NVIDIA", "Meta Platforms", "ASML Holding",
    "SAP", "Nestle", "Berkshire Hathaway, Inc. (Class B)", "Volkswagen (Pref)",
]  # fmt: skip


def trading212_rows(count: int, *, seed: int, invalid_every: int = 0) -> Iterator[list[str]]:
    """`count` lines as Trading 212's export writes them (the corpus file's quirks): 'Market buy' / 'Limit
    sell' actions, times with milliseconds, fractional shares with ten decimals, the instrument's currency and
    an exchange rate per row, a result on sales, one deposit in twenty and one dividend in twenty-five (no
    shares: rows a trades mapping must skip), names with commas (quoted), an order id per trade."""
    rng = random.Random(seed)
    randint, random_ = rng.randint, rng.random
    actions = ["Market buy", "Market sell", "Limit buy", "Limit sell"]
    for n in range(count):
        when = START + timedelta(days=(n // 400) % 1000, seconds=n % 400 * 60, milliseconds=n % 1000)
        time = when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}"
        if n % 20 == 7:
            yield ["Deposit", time, "", "", "", "", "", "", "", "", "", f"{random_() * 900:.2f}", "EUR", "", "",
                   f"Transaction ID: PB{n:012d}", f"{n:08x}-068d-44f0-9809-e75638e211cd", "", ""]  # fmt: skip
            continue
        pick = n % len(SYMBOLS)
        isin, symbol, name = ISINS[pick % len(ISINS)], SYMBOLS[pick], TRADING212_NAMES[pick]
        if n % 25 == 11:
            yield ["Dividend (Dividend)", time, isin, symbol, name, f"{random_() * 10:.10f}", f"{random_():.2f}",
                   "USD", "1.09", "", "EUR", f"{random_() * 5:.2f}", "EUR", "0.15", "USD", "", "", "", ""]  # fmt: skip
            continue
        action = actions[n % len(actions)]
        shares = f"{randint(1, 10**7) / 10**6:.10f}"
        if invalid_every and n % invalid_every == invalid_every - 1:
            shares = "n/a"
        price, rate = random_() * 900 + 10, 1.05 + random_() / 10
        total = float(shares) * price / rate if shares != "n/a" else 0.0
        result = f"{random_() * 40 - 20:.2f}" if action.endswith("sell") else ""
        fee = f"{total * 0.0015:.2f}" if n % 3 else ""
        yield [action, time, isin, symbol, name, shares, f"{price:.2f}", "USD", f"{rate:.5f}", result,
               "EUR" if result else "", f"{total:.2f}", "EUR", "", "", "", f"EOF{7504196256 + n}", fee,
               "EUR" if fee else ""]  # fmt: skip


BUILTIN_LAYOUTS = {
    "schwab": (SCHWAB_HEADER, schwab_rows, csv.QUOTE_ALL),
    "etrade": (ETRADE_HEADER, etrade_rows, csv.QUOTE_MINIMAL),
    "ibkr-flex": (IBKR_FLEX_HEADER, ibkr_flex_rows, csv.QUOTE_ALL),
    "trading212": (TRADING212_HEADER, trading212_rows, csv.QUOTE_MINIMAL),
}


def write_builtin_layout(layout: str, path: Path, count: int, *, seed: int, invalid_every: int = 0) -> int:
    """Write a CSV of `count` lines in the layout of a built-in or corpus format (BUILTIN_LAYOUTS); returns its
    size."""
    header, rows, quoting = BUILTIN_LAYOUTS[layout]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, quoting=quoting)
        writer.writerow(header)
        batch: list[list[str]] = []
        for cells in rows(count, seed=seed, invalid_every=invalid_every):
            batch.append(cells)
            if len(batch) >= 10_000:
                writer.writerows(batch)
                batch.clear()
        writer.writerows(batch)
    return path.stat().st_size


def write_schwab(path: Path, count: int, *, seed: int, invalid_every: int = 0) -> int:
    """Write a Schwab-layout CSV of `count` lines (quoted, as Schwab does); returns its size in bytes."""
    return write_builtin_layout("schwab", path, count, seed=seed, invalid_every=invalid_every)
