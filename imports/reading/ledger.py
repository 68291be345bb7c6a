"""Ledgers: exports that write one trade as several balance movements, joined back into one row per trade.

A crypto exchange's account history (Binance 'Transaction History', Coinbase Pro account statements,
Kraken ledgers) has no buy/sell row: a trade is two or more rows sharing a time or a trade id, one per
asset whose balance changed ('match +52.3 ETH', 'match -1.14732 BTC', 'fee -0.00344196 BTC'). A mapping
converts one row at a time, so the reader joins them: `detect_ledger` recognises the shape from the
columns' values (an asset-code column, a signed amount column, a time column, no price column, and
groups of rows with opposite movements in two assets), and `join_legs` streams the records as one row
per trade with the columns JOINED_COLUMNS, which the suggestion maps like any trade table.

Rules (documented in the README, "Ledgers"):
* A group is the run of consecutive rows with the same trade id (when the file has such a column and the
  row fills it), else the same time. At most MAX_GROUP_ROWS rows per group: memory stays bounded.
* A row whose type names a movement that is not a trade (deposit, transfer, staking, interest, dust
  conversion...) is skipped with that reason; a row whose type names a fee is the trade's fee.
* The other rows are paired in file order: each with the nearest earlier unpaired row of the opposite
  sign in another asset (the fills of one order alternate or come in runs); rows left over join the pair
  of their asset. Each (asset received, asset paid) pair is one trade, its fills summed.
* Of the two assets the quote is the fiat currency, else a stablecoin, else BTC, ETH, BNB, in that
  order (a tie: the asset paid): receiving the other asset is a BUY, paying it a SELL. Price = quote
  amount / base amount. A fee in the quote asset is the commission; a fee in another asset (BNB) cannot
  be written in the trade's currency and is left out (named in the row's 'Fees' cell).
* Every row is accounted for: the trade's first row carries it; its other rows are skipped as joined
  into it; rows that pair with nothing are skipped with why.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from formats.converters.currencies import ISO_4217
from formats.converters.derive import asset_code

JOINED_COLUMNS = ["Time", "Symbol", "Side", "Quantity", "Price", "Currency", "Commission", "Fees", "Operations"]
TRADE_ID_COLUMN = "Trade ID"
MAX_GROUP_ROWS = 1000
MAX_GROUP_ASSETS = 20  # a trade moves two assets (and fees); more in one group is no trade
MIN_TRADE_GROUPS = 2  # groups in the sample that join into a trade before a table counts as a ledger
PRICE_PLACES = Decimal("1e-10")  # the orders target keeps 10 decimal places

_CODE = re.compile(r"[A-Z][A-Z0-9]{1,9}")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d{1,3})?")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}[ T]\d{1,2}:\d{2}")
_PRICE_HEADER = re.compile(r"price|rate|kurs|cours|prix|preis|prijs|precio|prezzo", re.IGNORECASE)
_AMOUNT_HEADER = re.compile(r"change|amount|quantity|qty|delta|size|net|betrag|montant|menge", re.IGNORECASE)
_NOT_AMOUNT_HEADER = re.compile(r"balance|total|fee|saldo|solde|id\b", re.IGNORECASE)
_ASSET_HEADER = re.compile(r"coin|asset|currency|unit|ccy|symbol|token|crypto|w[äa]hrung|devise", re.IGNORECASE)
_TYPE_HEADER = re.compile(r"type|operation|kind|action|category|activity|event|typ\b|art\b", re.IGNORECASE)
_FEE_HEADER = re.compile(r"^\s*(?:fee|fees|commission|gebühr|frais)\s*$", re.IGNORECASE)
_GROUP_HEADERS = (
    re.compile(r"trade\s*_?id|tradeid", re.IGNORECASE),
    re.compile(r"ref\s*_?id|refid|reference", re.IGNORECASE),
    re.compile(r"order\s*_?id|orderid", re.IGNORECASE),
)
# Movements that are not trades even when they pair two assets ('ETH 2.0 Staking': +BETH -ETH).
_NOT_TRADE = re.compile(
    r"deposit|withdraw|transfer|stak|small assets|dust|interest|reward|distribution|airdrop|funding|realized|"
    r"saving|\bearn|redemption|subscription|rebate|referral|cashback|mining|launchpool|vault|dividend",
    re.IGNORECASE,
)
_FEE_TYPE = re.compile(r"fee|commission|gebühr|frais|comisi", re.IGNORECASE)
_STABLECOINS = ("USDT", "USDC", "BUSD", "DAI", "TUSD", "FDUSD", "USDP", "PYUSD", "EURC", "EURT", "UST")
_MAJORS = ("BTC", "ETH", "BNB")


@dataclass(frozen=True)
class LedgerSpec:
    """Which original columns hold what (positions in the table's columns)."""

    columns: list[str]
    time: int
    asset: int
    amount: int
    type: int | None = None
    group: int | None = None
    fee: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("columns", "time", "asset", "amount", "type", "group", "fee")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LedgerSpec:
        return cls(**{k: d.get(k) for k in ("columns", "time", "asset", "amount", "type", "group", "fee")})

    @property
    def joined_columns(self) -> list[str]:
        return JOINED_COLUMNS + ([TRADE_ID_COLUMN] if self.group is not None else [])


@dataclass
class _Leg:
    line: int
    asset: str
    amount: Decimal


@dataclass
class _Pair:
    received: str
    paid: str
    line: int
    got: Decimal = Decimal(0)
    gave: Decimal = Decimal(0)
    lines: list[int] = field(default_factory=list)
    fee: Decimal = Decimal(0)
    other_fees: dict[str, Decimal] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Detection


def number(text: str) -> Decimal | None:
    """A plain signed number ('-3.605E-05', '1,234.5'), else None."""
    value = text.strip().replace(",", "") if text.count(".") <= 1 else ""
    if not value or len(value) > 60 or not _NUMBER.fullmatch(value):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def ledger_possible(columns: list[str]) -> bool:
    """False when the header alone rules a ledger out: a price column means every row is a whole trade (what
    detect_ledger decides first, so its caller need not read a sample for it)."""
    return not any(_PRICE_HEADER.search(name) for name in columns)


def detect_ledger(columns: list[str], rows: list[list[str]]) -> LedgerSpec | None:
    """The ledger's columns when the sampled rows look like balance movements that join into trades."""
    if len(rows) < 2 or not ledger_possible(columns):
        return None
    width = len(columns)
    values = [[row[i].strip() if i < len(row) else "" for row in rows] for i in range(width)]
    amount = _pick(columns, values, _is_signed_amount, _AMOUNT_HEADER)
    asset = _pick(columns, values, _is_asset_codes, _ASSET_HEADER)
    time = _pick(columns, values, _is_datetime, None)
    if amount is None or asset is None or time is None or len({amount, asset, time}) < 3:
        return None
    if any(i != asset and _is_asset_codes(values[i]) for i in range(width)):
        return None  # a second asset column ('To Currency'): each row holds both sides of its trade
    taken = {amount, asset, time}
    kind = _pick_by_header(columns, values, _TYPE_HEADER, taken)
    fees = [i for i, name in enumerate(columns) if i not in taken and _FEE_HEADER.match(name)]
    fee = next((i for i in fees if _mostly_numbers(values[i])), None)
    group = None
    for pattern in _GROUP_HEADERS:
        group = next((i for i, name in enumerate(columns) if i not in taken and pattern.search(name)), None)
        if group is not None and _repeats(values[group]):
            break
        group = None
    spec = LedgerSpec(list(columns), time, asset, amount, kind, group, fee)
    trades = sum(1 for _, pairs, _ in _joined_groups(spec, enumerate(rows, start=1)) if pairs)
    return spec if trades >= MIN_TRADE_GROUPS else None


def _filled(column: list[str]) -> list[str]:
    return [value for value in column if value]


def _mostly(column: list[str], test: Any, share: float = 0.9) -> bool:
    filled = _filled(column)
    return bool(filled) and sum(1 for value in filled if test(value)) >= share * len(filled)


def _mostly_numbers(column: list[str]) -> bool:
    return _mostly(column, lambda value: number(value) is not None)


def _is_signed_amount(column: list[str]) -> bool:
    numbers = [number(value) for value in _filled(column)]
    return (
        _mostly_numbers(column)
        and any(n is not None and n < 0 for n in numbers)
        and any(n is not None and n > 0 for n in numbers)
    )


def _is_asset_codes(column: list[str]) -> bool:
    """Upper-case codes, nearly all letters only (BTC, ZEUR, USDT; a rare 1INCH), at least two of them:
    ids ('L1', 'T42') have digits."""
    filled = _filled(column)
    return (
        len(set(filled)) >= 2
        and _mostly(column, lambda value: bool(_CODE.fullmatch(value)))
        and _mostly(column, str.isalpha, 0.8)
    )


def _is_datetime(column: list[str]) -> bool:
    return _mostly(column, lambda value: bool(_DATETIME.match(value)), 0.8)


def _repeats(column: list[str]) -> bool:
    """Adjacent rows share a value (a trade id ties its rows together)."""
    return any(a and a == b for a, b in zip(column, column[1:], strict=False))


def _pick(columns: list[str], values: list[list[str]], test: Any, header: re.Pattern | None) -> int | None:
    """The column passing `test`, preferring one whose header says what it is."""
    fits = [i for i in range(len(columns)) if test(values[i])]
    if header is not None:
        named = [i for i in fits if header.search(columns[i]) and not _NOT_AMOUNT_HEADER.search(columns[i])]
        if named:
            return named[0]
        fits = [i for i in fits if not _NOT_AMOUNT_HEADER.search(columns[i])] if header is _AMOUNT_HEADER else fits
    return fits[0] if fits else None


def _pick_by_header(columns: list[str], values: list[list[str]], header: re.Pattern, taken: set[int]) -> int | None:
    for i, name in enumerate(columns):
        if i not in taken and header.search(name) and _filled(values[i]) and not _mostly_numbers(values[i]):
            return i
    return None


# --------------------------------------------------------------------------------------------------
# Joining


def join_legs(items: Iterable[Any], spec: LedgerSpec, record: Any, skipped: Any) -> Iterator[Any]:
    """The table's records (`items`: Record/Skipped from the reader) as one record per trade.

    `record(line, cells)` and `skipped(line, reason)` build the reader's Record and Skipped."""

    def rows() -> Iterator[tuple[int, list[str]]]:
        for item in items:
            if isinstance(item, tuple):
                yield item
            elif hasattr(item, "cells"):
                yield item.line, item.cells
            else:
                pending_skips.append(item)
                yield -1, []  # keeps the reader's own skipped lines in file order

    pending_skips: list[Any] = []
    for cells_by_line, pairs, problems in _joined_groups(spec, rows()):
        out: list[tuple[int, Any]] = [(item.line, item) for item in pending_skips]
        pending_skips.clear()
        for line, reason in problems:
            out.append((line, skipped(line, reason)))
        for pair in pairs:
            out.append((pair.line, record(pair.line, _trade_cells(spec, cells_by_line[pair.line], pair))))
            for line in pair.lines:
                if line != pair.line:
                    out.append((line, skipped(line, f"ledger row joined into the trade on line {pair.line}")))
        out.sort(key=lambda entry: entry[0])
        for _, item in out:
            yield item
    yield from pending_skips


def _joined_groups(
    spec: LedgerSpec, rows: Iterable[tuple[int, list[str]]]
) -> Iterator[tuple[dict[int, list[str]], list[_Pair], list[tuple[int, str]]]]:
    """Per group of rows: their cells by line, the trades they join into, and the rows skipped with why."""
    group: list[tuple[int, list[str]]] = []
    key: tuple[str, str] | None = None
    for line, cells in rows:
        if line < 0:
            continue
        row_key = _group_key(spec, cells)
        if group and (row_key != key or len(group) >= MAX_GROUP_ROWS):
            yield _join_group(spec, group)
            group = []
        group.append((line, cells))
        key = row_key
    if group:
        yield _join_group(spec, group)


def _cell(cells: list[str], index: int | None) -> str:
    return cells[index].strip() if index is not None and index < len(cells) else ""


def _group_key(spec: LedgerSpec, cells: list[str]) -> tuple[str, str]:
    trade_id = _cell(cells, spec.group)
    return ("id", trade_id) if trade_id else ("time", _cell(cells, spec.time))


def _join_group(
    spec: LedgerSpec, group: list[tuple[int, list[str]]]
) -> tuple[dict[int, list[str]], list[_Pair], list[tuple[int, str]]]:
    problems: list[tuple[int, str]] = []
    legs: list[_Leg] = []
    fees: list[_Leg] = []
    for line, cells in group:
        kind, raw_asset, raw_amount = _cell(cells, spec.type), _cell(cells, spec.asset), _cell(cells, spec.amount)
        amount, asset = number(raw_amount), asset_code(raw_asset)
        described = " ".join(part for part in (kind, raw_asset, raw_amount) if part)[:80]
        if kind and _NOT_TRADE.search(kind):
            problems.append((line, f"ledger row that is not a trade ({described})"))
            continue
        if amount is None or not _CODE.fullmatch(asset):
            problems.append((line, f"ledger row without an asset and an amount ({described or 'empty'})"))
            continue
        extra_fee = number(_cell(cells, spec.fee)) if spec.fee is not None else None
        if extra_fee:
            fees.append(_Leg(line, asset, -abs(extra_fee)))
        if kind and _FEE_TYPE.search(kind):
            fees.append(_Leg(line, asset, amount))
        elif amount != 0:
            legs.append(_Leg(line, asset, amount))
        else:
            problems.append((line, f"ledger row moving nothing ({described})"))
    pairs = _pair_legs(legs, problems)
    fee_lines = _assign_fees(pairs, fees)
    for line in sorted({leg.line for leg in fees} - fee_lines - {ln for p in pairs for ln in p.lines}):
        problems.append((line, "ledger fee row of no trade"))
    return dict(group), pairs, problems


def _pair_legs(legs: list[_Leg], problems: list[tuple[int, str]]) -> list[_Pair]:
    """Pair each leg with the earliest unpaired leg of the opposite sign in another asset (file order).

    Unpaired legs wait in one queue per (sign, asset), so finding a partner costs one look per asset: a
    group moving more than MAX_GROUP_ASSETS assets is no trade (a hostile or unrelated file) and pairs
    nothing, which keeps the work linear in the rows."""
    if len({leg.asset for leg in legs}) > MAX_GROUP_ASSETS:
        for leg in legs:
            problems.append((leg.line, f"ledger row in a group of more than {MAX_GROUP_ASSETS} assets"))
        return []
    waiting: dict[tuple[bool, str], deque[_Leg]] = defaultdict(deque)
    pairs: dict[tuple[str, str], _Pair] = {}
    for leg in legs:
        positive = leg.amount > 0
        queues = [q for (sign, asset), q in waiting.items() if sign != positive and asset != leg.asset and q]
        if not queues:
            waiting[(positive, leg.asset)].append(leg)
            continue
        partner = min(queues, key=lambda q: q[0].line).popleft()
        got, gave = (leg, partner) if positive else (partner, leg)
        pair = pairs.get((got.asset, gave.asset))
        if pair is None:
            pair = pairs[(got.asset, gave.asset)] = _Pair(got.asset, gave.asset, min(got.line, gave.line))
        pair.got += got.amount
        pair.gave += -gave.amount
        pair.lines += [got.line, gave.line]
    by_side = {}
    for pair in pairs.values():
        by_side.setdefault((True, pair.received), pair)
        by_side.setdefault((False, pair.paid), pair)
    for leg in sorted((leg for q in waiting.values() for leg in q), key=lambda leg: leg.line):
        pair = by_side.get((leg.amount > 0, leg.asset))
        if pair is None:
            problems.append((leg.line, f"ledger row with no counterpart in its group ({leg.asset} {leg.amount})"))
            continue
        if leg.amount > 0:
            pair.got += leg.amount
        else:
            pair.gave += -leg.amount
        pair.lines.append(leg.line)
        pair.line = min(pair.line, leg.line)
    return sorted(pairs.values(), key=lambda p: p.line)


def _assign_fees(pairs: list[_Pair], fees: list[_Leg]) -> set[int]:
    """Add each fee to the trade it belongs to; the lines of the fee rows used."""
    used: set[int] = set()
    for fee in fees:
        if not pairs:
            break
        owners = [p for p in pairs if fee.asset in (_quote(p), p.received, p.paid)] or pairs
        pair = owners[0]
        if fee.asset == _quote(pair):
            pair.fee += abs(fee.amount)
        else:
            pair.other_fees[fee.asset] = pair.other_fees.get(fee.asset, Decimal(0)) + abs(fee.amount)
        if fee.line not in pair.lines:
            pair.lines.append(fee.line)
        used.add(fee.line)
    return used


def _rank(asset: str) -> int:
    if asset in ISO_4217:
        return 0
    if asset in _STABLECOINS:
        return 1
    if asset in _MAJORS:
        return 2 + _MAJORS.index(asset)
    return 9


def _quote(pair: _Pair) -> str:
    return pair.received if _rank(pair.received) < _rank(pair.paid) else pair.paid


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".") or "0"


def _trade_cells(spec: LedgerSpec, first: list[str], pair: _Pair) -> list[str]:
    quote = _quote(pair)
    if quote == pair.paid:  # received the base asset, paid in the quote: a buy
        symbol, side, quantity, amount = pair.received, "BUY", pair.got, pair.gave
    else:
        symbol, side, quantity, amount = pair.paid, "SELL", pair.gave, pair.got
    price = (amount / quantity).quantize(PRICE_PLACES, rounding=ROUND_HALF_EVEN) if quantity else Decimal(0)
    other = ", ".join(f"{_plain(value)} {asset}" for asset, value in sorted(pair.other_fees.items()))
    cells = [
        _cell(first, spec.time),
        symbol,
        side,
        _plain(quantity),
        _plain(price),
        quote,
        _plain(pair.fee),
        other,
        _cell(first, spec.type),
    ]
    if spec.group is not None:
        cells.append(_cell(first, spec.group))
    return cells
