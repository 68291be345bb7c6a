"""The issue's "done means" over the shared corpus of real broker exports (../shared/corpus).

* Files of a built-in format import at once (no review) with the exact orders.
* Other brokers' trade files import after ONE admin review: the suggested mapping is taken from the pending
  format, one correction is applied (an explicit patch below holding only what the suggestion got wrong;
  everything else is kept as suggested), the format is approved and the staged rows migrate. Each test
  prints (and records as the `fields_corrected` property) how many fields it had to correct.
* Files without trades and the `messy/` files end with a clear message (or wait as a pending format),
  never with a crash and never with orders.

Order counts and the first/last trades were read off each file by hand; rows that are not trades
(dividends, deposits, fees, totals, disclaimers, closed lots) must be skipped, not failed. Times are
asserted in UTC: date-only trades are midnight in the broker's time zone.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from config.errors import AppError
from formats.builtin import load_builtin_formats
from formats.models import FormatStatus
from formats.targets import get_target
from imports.models import FileStatus, ImportFile, Order
from imports.selectors import row_accounting
from imports.services.uploads import review_approve
from staging.models import StagedRow, StagedStatus
from tests.conftest import corpus_file
from tests.factories import uploaded_file

pytestmark = pytest.mark.django_db

NY = "America/New_York"
TARGET_FIELDS = tuple(target_field.name for target_field in get_target("orders").fields)


# --- expected values ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fill:
    """The asserted values of one order."""

    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    executed_at: datetime


def fill(symbol: str, side: str, quantity: str, price: str, executed_at: str) -> Fill:
    """An expected order; executed_at is ISO 8601 in UTC ('...Z')."""
    return Fill(symbol, side, Decimal(quantity), Decimal(price), datetime.fromisoformat(executed_at))


def as_fill(order: Order) -> Fill:
    """The asserted values of a stored order."""
    return Fill(order.symbol, order.side, order.quantity, order.price, order.executed_at)


@dataclass(frozen=True)
class BuiltinCase:
    """A file of a built-in format: it must import at once."""

    path: str
    format_name: str
    orders: int
    first: Fill
    last: Fill
    duplicates: int = 0


@dataclass(frozen=True)
class CorrectedCase:
    """Another broker's trade file: imported after one correction of the suggested mapping."""

    path: str
    correction: dict[str, Any]
    orders: int
    first: Fill
    last: Fill
    duplicates: int = 0
    why: str = ""
    marks: tuple[Any, ...] = field(default_factory=tuple)
    # Orders between the first and the last whose values the correction must also get right.
    also: tuple[Fill, ...] = ()


@dataclass(frozen=True)
class NoTradesCase:
    """A corpus file that holds no buy/sell trades."""

    path: str
    what: str


@dataclass(frozen=True)
class UnmappableCase:
    """A trade file whose trades the closed converter set cannot turn into orders."""

    path: str
    trades: str
    reason: str


@dataclass(frozen=True)
class MessyCase:
    """A hard CSV of another domain: a pending format with these columns and rows, or FAILED naming why."""

    path: str
    columns: list[str] | None
    rows: int | None
    failure_words: tuple[str, ...] = ()


# --- mapping helpers (the corrections are written with these) -------------------------------------------


def spec(converter: str, *columns: str, **options: Any) -> dict[str, Any]:
    """One field spec of the mapping JSON."""
    return {"columns": list(columns), "converter": converter, "options": options}


def text(*columns: str, **options: Any) -> dict[str, Any]:
    return spec("text", *columns, **options)


def symbol(*columns: str, **options: Any) -> dict[str, Any]:
    return spec("text", *columns, upper=True, **options)


def dec(*columns: str, **options: Any) -> dict[str, Any]:
    return spec("decimal", *columns, **options)


def side(*columns: str, **options: Any) -> dict[str, Any]:
    return spec("side", *columns, **options)


def sign(*columns: str, **options: Any) -> dict[str, Any]:
    return spec("side_from_sign", *columns, **options)


def cur(*columns: str, **options: Any) -> dict[str, Any]:
    return spec("currency", *columns, **options)


def const(value: str) -> dict[str, Any]:
    return spec("constant", value=value)


def when(*columns: str, formats: list[str], tz: str = "UTC", **options: Any) -> dict[str, Any]:
    return spec("datetime", *columns, formats=formats, tz=tz, **options)


def keep(column: str, *values: str) -> dict[str, Any]:
    """Filter: keep rows whose column is one of the values."""
    return {"column": column, "op": "in", "values": list(values)}


def starts(column: str, *values: str) -> dict[str, Any]:
    """Filter: keep rows whose column starts with one of the values."""
    return {"column": column, "op": "startswith", "values": list(values)}


def correction(
    *,
    filters: list[dict[str, Any]] | None = None,
    reader: dict[str, Any] | None = None,
    **fields: dict[str, Any] | None,
) -> dict[str, Any]:
    """The one correction an admin makes: only what the suggestion got wrong (None removes a field).

    Fields, filters and reader settings left out are kept as suggested.
    """
    unknown = set(fields) - set(TARGET_FIELDS)
    assert not unknown, f"not target fields: {unknown}"
    patch: dict[str, Any] = {"fields": fields}
    if filters is not None:
        patch["filters"] = filters
    if reader is not None:
        patch["reader"] = reader
    return patch


def _comparable(field_spec: dict[str, Any] | None) -> Any:
    if field_spec is None:
        return None
    return (list(field_spec.get("columns") or []), field_spec.get("converter"), field_spec.get("options") or {})


def apply_correction(suggested: dict[str, Any], patch: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The suggested mapping with the patch applied, and what it changed (fields, 'filters', 'reader')."""
    mapping = copy.deepcopy(suggested)
    fields = mapping.setdefault("fields", {})
    changed = []
    for name, wanted in patch["fields"].items():
        if _comparable(fields.get(name)) != _comparable(wanted):
            changed.append(name)
        if wanted is None:
            fields.pop(name, None)
        else:
            fields[name] = wanted
    if "filters" in patch:
        if (mapping.get("filters") or []) != patch["filters"]:
            changed.append("filters")
        mapping["filters"] = patch["filters"]
    if "reader" in patch:
        reader = {"section": None, "header_line": None, **(mapping.get("reader") or {}), **patch["reader"]}
        if reader != (mapping.get("reader") or {}):
            changed.append("reader")
        mapping["reader"] = reader
    return mapping, changed


# --- running the pipeline ---------------------------------------------------------------------------


@pytest.fixture
def builtins() -> list[tuple[str, str]]:
    """The built-in formats, loaded as `load_builtin_formats` does at deploy time."""
    return load_builtin_formats()


def upload_corpus(owner: Any, relative: str, run_jobs: Any, capture: Any) -> ImportFile:
    """Upload one corpus file the way the upload form does and run the jobs it enqueued."""
    return uploaded_file(
        owner, Path(relative).name, corpus_file(relative).read_bytes(), run_jobs=run_jobs, capture=capture
    )


def approve(fmt_id: int, reviewer: Any, mapping: dict[str, Any], run_jobs: Any, capture: Any) -> None:
    """The reviewer approves the format with the corrected mapping; the staged rows migrate."""
    with capture(execute=True):
        review_approve(format_id=fmt_id, actor=reviewer, mapping=mapping)
    run_jobs()


def diagnose(file: ImportFile) -> str:
    """Everything needed to see why a file did not import as expected."""
    file.refresh_from_db()
    failed = StagedRow.objects.filter(file=file, status=StagedStatus.INVALID).order_by("line")
    examples = [f"line {row.line}: {row.errors} raw={row.raw[:12]}" for row in failed[:5]]
    return (
        f"status={file.status} error={file.error!r} orders={Order.objects.filter(source_file=file).count()} "
        f"imported={file.rows_imported} invalid={file.rows_invalid} "
        f"skipped={file.rows_skipped} duplicate={file.rows_duplicate} total={file.rows_total} "
        f"skip_reasons={dict(list((file.skip_reasons or {}).items())[:6])} "
        f"layout_header={(file.layout or {}).get('header')} section={(file.layout or {}).get('section')} "
        f"format={file.format.name if file.format else None!r} failed_rows={examples}"
    )


def orders_of(file: ImportFile) -> list[Order]:
    """The file's orders in file order."""
    return list(Order.objects.filter(source_file=file).order_by("source_line"))


def assert_orders(file: ImportFile, orders: int, first: Fill, last: Fill, duplicates: int) -> None:
    """Exact count, nothing failed, the first and last trade's values."""
    file.refresh_from_db()
    assert file.status in (FileStatus.IMPORTED, FileStatus.PARTIAL), diagnose(file)
    assert (file.rows_imported, file.rows_invalid, file.rows_duplicate) == (orders, 0, duplicates), diagnose(file)
    stored = orders_of(file)
    assert len(stored) == orders, diagnose(file)
    assert as_fill(stored[0]) == first, diagnose(file)
    assert as_fill(stored[-1]) == last, diagnose(file)


# --- 1. built-in formats: no review ---------------------------------------------------------------------

IBKR_ACCOUNT = "Interactive Brokers activity statement: Trades (with Account column)"
SCHWAB = "Charles Schwab brokerage transactions"

BUILTIN_CASES = [
    BuiltinCase(
        "ibkr/ghostfolio-flex-trades-all-fields.csv",
        "Interactive Brokers Flex Query trades (full field list)",
        1,
        first=fill("VTI", "BUY", "17", "204.3473", "2023-04-03T13:58:53Z"),
        last=fill("VTI", "BUY", "17", "204.3473", "2023-04-03T13:58:53Z"),
    ),
    # 11 rows: 8 trades with an ISIN, 3 forex conversions (no ISIN) skipped.
    BuiltinCase(
        "ibkr/e2g-flex-trades.csv",
        "Interactive Brokers Flex Query trades (short field subset)",
        8,
        first=fill("CH0111762537", "BUY", "7", "282.7", "2023-05-22T04:00:00Z"),
        last=fill("US9220427424", "BUY", "12", "103.66", "2024-01-29T05:00:00Z"),
    ),
    # 6 Order rows (HMBs, UNIT, 4 x CLOV call incl. the expiry at 0); Trade/ClosedLot/SubTotal rows skipped.
    BuiltinCase(
        "ibkr/irp-activity-trades-multi-account.csv",
        IBKR_ACCOUNT,
        6,
        first=fill("HMBS", "SELL", "257", "176.85", "2021-01-11T11:57:37Z"),
        last=fill("CLOV 16JUL21 20.0 C", "BUY", "4", "0", "2021-07-16T20:20:00Z"),
    ),
    # 4 Order rows; quantities written "1,000" / "-1,000".
    BuiltinCase(
        "ibkr/irp-activity-trades-quoted-thousands.csv",
        IBKR_ACCOUNT,
        4,
        first=fill("NOK", "BUY", "500", "6.73", "2021-01-27T18:31:38Z"),
        last=fill("NOK", "SELL", "1000", "4.982", "2021-01-28T17:31:18Z"),
    ),
    # 12 Order rows: 4 stock assignments, 8 option trades/assignments (price 0).
    BuiltinCase(
        "ibkr/irp-activity-trades-option-assignment.csv",
        "Interactive Brokers activity statement: Trades (single account, with Exchange)",
        12,
        first=fill("ARKK", "SELL", "100", "80", "2025-09-19T20:20:00Z"),
        last=fill("SOFI 19SEP25 25 C", "BUY", "2", "0", "2025-09-19T20:20:00Z"),
    ),
    # A full statement (BOM, Statement/Collateral/Forex Balances/Corporate Actions/Notes sections): 278 stock
    # Order rows; the one Forex order (EUR.USD, commission in CZK) is skipped.
    BuiltinCase(
        "ibkr/tuxedeg-activity-statement-2022-czk.csv",
        "Interactive Brokers activity statement: Trades (single account, no Exchange)",
        278,
        first=fill("CNDX", "SELL", "2", "688.4", "2022-03-15T15:48:34Z"),
        last=fill("ZS", "BUY", "7", "179.572", "2022-09-21T18:45:23Z"),
    ),
    # 2020 layout (trailing comma on every line): one Sell; expirations, dividends, journals skipped.
    BuiltinCase(
        "schwab/bci-brokerage-transactions-2020.csv",
        SCHWAB,
        1,
        first=fill("FB", "SELL", "100", "261.50", "2020-11-05T05:00:00Z"),
        last=fill("FB", "SELL", "100", "261.50", "2020-11-05T05:00:00Z"),
    ),
    BuiltinCase(
        "schwab/cgtcalc-transactions-2023.csv",
        SCHWAB,
        6,
        first=fill("BAR", "BUY", "300", "135.0075", "2023-10-09T04:00:00Z"),
        last=fill("QUX", "SELL", "1300", "170.3521", "2024-02-26T05:00:00Z"),
    ),
    # 43 trades: 40 Reinvest Shares, 2 Sell (FIHBX; SNAXX '500,135'), 1 Buy (AVGO); mixed quoting; the
    # 'Journaled Shares', splits, mergers, name changes and the 'Transactions Total' footer are skipped.
    BuiltinCase(
        "schwab/e2g-transactions.csv",
        SCHWAB,
        43,
        first=fill("SPY", "BUY", "1.6531", "420.10", "2023-11-01T04:00:00Z"),
        last=fill("AVGO", "BUY", "1", "1680.00", "2024-06-13T04:00:00Z"),
    ),
    BuiltinCase(
        "schwab/reds-brokerage-transactions-2023.csv",
        SCHWAB,
        3,
        first=fill("BND", "BUY", "45", "73.7789", "2023-04-27T04:00:00Z"),
        last=fill("BND", "BUY", "0.0249", "73.8993", "2023-04-10T04:00:00Z"),
    ),
]


@pytest.mark.parametrize("case", BUILTIN_CASES, ids=lambda case: case.path)
def test_a_builtin_format_export_imports_at_once_with_the_exact_orders(
    case: BuiltinCase, builtins: Any, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload_corpus(user, case.path, run_jobs, django_capture_on_commit_callbacks)
    print(f"\nOUTCOME {case.path}: {file.status} staged={file.rows_staged} error={file.error[:150]!r}")
    assert file.format is not None and file.format.builtin, diagnose(file)
    assert file.format.name == case.format_name
    assert file.format.status == FormatStatus.APPROVED
    assert_orders(file, case.orders, case.first, case.last, case.duplicates)


# --- 2. other brokers' trade files: one correction ------------------------------------------------------


def t212(*, suggested_a_fee: bool) -> dict[str, Any]:
    """Trading 212 (times are UTC): its transaction fees are charged in the account currency (GBP/EUR)
    while the price is in the instrument's currency (USD...), so a suggested commission is removed."""
    return correction(commission=None) if suggested_a_fee else correction()


def degiro(date: str, time: str) -> dict[str, Any]:
    """DEGIRO Transactions.csv: no ticker, the ISIN is the identifier (Product is a display name); times are
    Amsterdam's; the commission column is in the account currency (EUR) while the price is in USD; the
    order id is shared by the partial fills of one order, so it is not the trade id."""
    return correction(
        symbol=symbol("ISIN"),
        commission=None,
        executed_at=when(date, time, formats=["%d-%m-%Y %H:%M"], tz="Europe/Amsterdam"),
        broker_trade_id=None,
    )


CORRECTED_CASES = [
    # IBKR 'Transaction History' statement: 2 trades; dividends, tax, interest, deposit and the forex
    # component skipped. No currency column: the amounts are in the base currency GBP (Summary section).
    # Dates are IBKR (US/Eastern) trade dates.
    CorrectedCase(
        "ibkr/cgtcalc-transaction-history.csv",
        correction(currency=const("GBP"), executed_at=when("Date", formats=["%Y-%m-%d"], tz=NY)),
        2,
        first=fill("CNX1", "SELL", "2", "1001", "2025-08-15T04:00:00Z"),
        last=fill("CNX1", "BUY", "4", "1000", "2025-03-15T04:00:00Z"),
    ),
    # 5 trades: 2 REINVESTMENT (buys of shares, as Schwab's 'Reinvest Shares'), YOU BOUGHT WM, YOU SOLD VVV,
    # YOU BOUGHT a muni bond (CUSIP). Dividends, transfers, checks, the bond redemption and the merger are
    # skipped. The suggestion filtered out the reinvestments; 'REINVESTMENT ...' has no buy/sell word, so the
    # side comes from the quantity's sign. The account id is 'Account Number' ('Account' is its nickname).
    CorrectedCase(
        "fidelity/reds-all-accounts-2025.csv",
        correction(
            filters=[starts("Action", "YOU BOUGHT", "YOU SOLD", "REINVESTMENT")],
            account=text("Account Number"),
            side=sign("Quantity"),
            executed_at=when("Run Date", formats=["%m/%d/%Y"], tz=NY),
        ),
        5,
        first=fill("BND", "BUY", "9.598", "74.29", "2025-12-03T05:00:00Z"),
        last=fill("412003AD7", "BUY", "55000", "90.67", "2025-12-04T05:00:00Z"),
    ),
    CorrectedCase(
        "degiro/tuxedeg-transactions-en.csv",
        degiro("Date", "Time"),
        88,
        first=fill("US77543R1023", "BUY", "2", "114.69", "2022-04-13T14:13:00Z"),
        last=fill("US0846707026", "BUY", "2", "205.27", "2019-10-09T14:20:00Z"),
    ),
    # 156 fills; lines 82/83 are two partial fills of one order (same order id).
    CorrectedCase(
        "degiro/tuxedeg-transactions-cz.csv",
        degiro("Datum", "Čas"),
        156,
        first=fill("US0231351067", "SELL", "1", "1897.26", "2020-01-08T14:30:00Z"),
        last=fill("US0079031078", "BUY", "50", "11.30", "2017-05-18T19:50:00Z"),
    ),
    # 12 ORDER + 1 FREESHARE_ORDER (a free share, recorded by Freetrade as a BUY at 14.60 USD); 2 dividends,
    # interest and a top-up skipped. The suggested commission is the FX fee in GBP (account currency) on
    # USD trades: removed.
    CorrectedCase(
        "freetrade/cgtcalc-transactions.csv",
        correction(commission=None),
        13,
        first=fill("SPXP", "SELL", "4", "732.59", "2024-01-16T10:01:02.811Z"),
        last=fill("TDUP", "BUY", "1", "14.60", "2021-12-13T16:16:49.475Z"),
    ),
    CorrectedCase(
        "trading212/cgtcalc-2020.csv",
        t212(suggested_a_fee=True),
        5,
        first=fill("VNRG", "BUY", "1", "10.74", "2020-06-24T14:33:50Z"),
        last=fill("GME", "SELL", "200", "225.00", "2021-02-01T14:30:40Z"),
    ),
    CorrectedCase(
        "trading212/cgtcalc-2026.csv",
        t212(suggested_a_fee=True),
        4,
        first=fill("ACME", "BUY", "10", "150.00", "2024-05-02T14:30:05.123Z"),
        last=fill("REN", "SELL", "20", "55.00", "2024-09-02T11:20:30.012Z"),
    ),
    # 4 trades; dividends, interest, a stock distribution, a transfer out and a split are skipped.
    CorrectedCase(
        "trading212/e2g-2023.csv",
        t212(suggested_a_fee=False),
        4,
        first=fill("CSCO", "BUY", "0.029053", "49.96", "2023-12-18T14:30:03.613Z"),
        last=fill("ASTR", "SELL", "0.61254", "1.26", "2023-12-26T14:30:05.104Z"),
    ),
    # 4 trades (rows not sorted); the last one writes its quantity with a decimal comma ('0,76672417').
    CorrectedCase(
        "revolut/e2g-invest.csv",
        correction(),
        4,
        first=fill("O", "BUY", "1.63453043", "52.07", "2023-09-22T13:30:10.514Z"),
        last=fill("MSFT", "BUY", "0.76672417", "26.09", "2025-09-08T07:29:03.333Z"),
    ),
    # 7 trades priced in SEK, EUR ('€35,761.54') and USD ('$105,058.55'): the currency is in the amount.
    # Send/Receive/Stake/Staking reward skipped. The export has no time zone: taken as UTC.
    CorrectedCase(
        "revolut/e2g-crypto.csv",
        correction(),
        7,
        first=fill("BTC", "BUY", "0.00056077", "89162.28", "2020-05-05T22:10:57Z"),
        last=fill("BTC", "BUY", "0.00009518", "105058.55", "2025-05-09T10:03:50Z"),
    ),
    # 12 trades packed in Event ('Sell 3 @ 139.74 USD', 'Koop 1.5 @ 110.01 EUR'); identical rows are separate
    # fills (no order id). The suggestion took the cash Amount as quantity, had no price and filtered on
    # Event starting with Buy/Sell (dropping the Dutch 'Koop' trade). Dates only: midnight Copenhagen.
    CorrectedCase(
        "saxo/e2g-transactions.csv",
        correction(
            filters=[keep("Type", "Trade", "Transactie")],
            quantity=dec("Event", split_on="@", part=0, number="first"),
            price=dec("Event", split_on="@", part=1),
            executed_at=when("Trade Date", formats=["%d-%b-%Y"], tz="Europe/Copenhagen"),
        ),
        12,
        first=fill("VWRA", "SELL", "3", "139.74", "2025-01-01T23:00:00Z"),
        last=fill("VUSA", "BUY", "1.5", "110.01", "2025-01-15T23:00:00Z"),
    ),
    # 10 fills; 'Order #' repeats over the fills of one order (KROP, WDSC), so it is not the trade id.
    CorrectedCase(
        "swissquote/e2g-transactions.csv",
        correction(
            executed_at=when("Date", formats=["%d-%m-%Y %H:%M:%S"], tz="Europe/Zurich"),
            broker_trade_id=None,
        ),
        10,
        first=fill("ORFN", "BUY", "200", "19.85", "2022-08-10T13:30:02Z"),
        last=fill("WDSC", "SELL", "6", "86.09", "2022-05-10T12:31:42Z"),
    ),
    # 4 trades (Köp/Sälj). Kurs is in the instrument currency (Instrumentvaluta: USD for S&P Global), not in
    # the transaction currency (SEK); the courtage is in SEK, so it is no commission of a USD trade. The
    # ISIN is the identifier (Värdepapper/beskrivning is a display name).
    CorrectedCase(
        "avanza/e2g-transactions.csv",
        correction(
            symbol=symbol("ISIN"),
            commission=None,
            currency=cur("Instrumentvaluta"),
            executed_at=when("Datum", formats=["%Y-%m-%d"], tz="Europe/Stockholm"),
        ),
        4,
        first=fill("NO0010827280", "SELL", "352.033838", "154.665276", "2025-01-12T23:00:00Z"),
        last=fill("US78409V1044", "BUY", "2", "330.16", "2023-03-09T23:00:00Z"),
    ),
    # 12 buys/sells; deposits, withdrawals and staking skipped. The asset is in 'Currency'; the file's own
    # Timezone column says Europe/Amsterdam.
    CorrectedCase(
        "bitvavo/e2g-transactions.csv",
        correction(
            symbol=symbol("Currency"),
            executed_at=when("Date", "Time", formats=["iso"], tz="Europe/Amsterdam"),
        ),
        12,
        first=fill("ETH", "BUY", "0.0053543", "1862.8", "2023-11-30T10:36:46.620Z"),
        last=fill("USDT", "BUY", "32.156874", "0.9306", "2023-01-09T16:16:29.831Z"),
    ),
    # 2 Buy rows with the same (masked) ID: the same purchase written in EUR and in USD; the second is a
    # duplicate of the first by broker trade id. Staking, sends, receives and converts skipped.
    CorrectedCase(
        "coinbase/e2g-transactions.csv",
        correction(),
        1,
        first=fill("BTC", "BUY", "0.00166779", "39999.331136545", "2022-03-25T06:45:27Z"),
        last=fill("BTC", "BUY", "0.00166779", "39999.331136545", "2022-03-25T06:45:27Z"),
        duplicates=1,
    ),
    # 2 trades on USDT pairs: the symbol is the base asset, the currency the quote asset (USDT, a crypto
    # asset code the orders target accepts as a currency).
    CorrectedCase(
        "kucoin/rotki-order-history.csv",
        correction(
            symbol=symbol("symbol", split_on="-", part=0),
            currency=cur("symbol", split_on="-", part=1),
        ),
        2,
        first=fill("XTZ", "SELL", "36.4479", "0.1025", "2022-04-28T12:36:00Z"),
        last=fill("XRP", "BUY", "432.59183198", "0.64924", "2022-04-28T15:46:07Z"),
    ),
    # 7 trades (ACHAT/VENTE); dividends, taxes, fees, grants skipped. 'CAN' is Desjardins' code for CAD.
    CorrectedCase(
        "desjardins-disnat/e2g-transactions.csv",
        correction(
            executed_at=when("Date de transaction", formats=["%Y-%m-%d"], tz="America/Toronto"),
        ),
        7,
        first=fill("CASH-C", "SELL", "10", "50", "2025-08-01T04:00:00Z"),
        last=fill("CASH-C", "BUY", "2", "50", "2024-11-29T05:00:00Z"),
    ),
    # 13 Buy/Sell rows (title line + blank line before the header, footnote after a blank row).
    # DD/MM/YYYY dates (the rows are in date order only that way); a UK portfolio: London time.
    CorrectedCase(
        "sharesight/cgtcalc-all-trades-report.csv",
        correction(executed_at=when("Date", formats=["%d/%m/%Y"], tz="Europe/London")),
        13,
        first=fill("ETH", "BUY", "1", "1", "2019-07-31T23:00:00Z"),
        last=fill("BAZ", "SELL", "20", "85", "2020-11-03T00:00:00Z"),
    ),
    # 2 trades (references B.../S...); a fee, interest and a receipt ('n/a' quantities) skipped. No ticker:
    # the security is named in Description before ' <quantity> @ <price>'. Prices are in pence (GBX);
    # quantities are unsigned, the side is the sign of the cash Value (negative = money out = buy).
    CorrectedCase(
        "hargreaves-lansdown/cgtcalc-transaction-summary.csv",
        correction(
            filters=[{"column": "Quantity", "op": "not_in", "values": ["n/a"]}],
            symbol=symbol("Description", split_on=" @", part=0, drop_trailing_numbers=True),
            side=sign("Value (£)", negative_is="BUY"),
            price=dec("Unit cost (p)"),
            currency=const("GBX"),
            executed_at=when("Trade date", formats=["%d/%m/%Y"], tz="Europe/London"),
        ),
        2,
        first=fill("VANGUARD FTSE DEVELOPED WORLD UCITS ETF", "SELL", "1000", "4500", "2026-02-25T00:00:00Z"),
        last=fill("VANGUARD FTSE DEVELOPED WORLD UCITS ETF", "BUY", "4563", "3287.199", "2026-01-24T00:00:00Z"),
    ),
    # 7 Buy/Sell of 12 activities (4 quoted preamble lines, disclaimers after the table); Toronto dates.
    CorrectedCase(
        "rbc-direct-investing/acb-activity-export.csv",
        correction(executed_at=when("Date", formats=["%B %d, %Y"], tz="America/Toronto")),
        7,
        first=fill("XEQT", "BUY", "10", "40.00", "2025-01-10T05:00:00Z"),
        last=fill("VFV", "SELL", "10", "122.50", "2025-12-15T05:00:00Z"),
    ),
    # Two tables: 'Cash Transactions' then 'Investment Transactions' (header on line 29) with the 5 trades
    # (the cash table only describes them in text: 'Bought 1,550 Foo ETF Distributing (FOO)').
    CorrectedCase(
        "vanguard/cgtcalc-uk-cash-investment-report.csv",
        correction(
            reader={"section": None, "header_line": 29},
            filters=[starts("TransactionDetails", "Bought", "Sold")],
            symbol=symbol("InvestmentName"),
            side=side("TransactionDetails"),
            quantity=dec("Quantity"),
            price=dec("Price"),
            currency=const("GBP"),
            executed_at=when("Date", formats=["%d/%m/%Y"], tz="Europe/London"),
        ),
        5,
        first=fill("FOO ETF DISTRIBUTING (FOO)", "BUY", "1550", "9.665845", "2022-03-10T00:00:00Z"),
        last=fill("U.S. EQUITY INDEX FUND - ACCUMULATION", "BUY", "0.9232", "433.27556", "2022-10-03T23:00:00Z"),
    ),
    # 1 market sell; a deposit and a withdrawal skipped. Amounts carry their unit ('1.00000000 ETH').
    CorrectedCase(
        "bitstamp/rotki-transactions.csv",
        correction(symbol=symbol("Amount", split_on=" ", part=1)),
        1,
        first=fill("ETH", "SELL", "1", "2214.01", "2022-01-28T00:31:00Z"),
        last=fill("ETH", "SELL", "1", "2214.01", "2022-01-28T00:31:00Z"),
    ),
    # XTB cash operations: 17 'Stocks/ETF purchase|sale' / 'Ações/ETF compra|vende' rows; deposits, interest,
    # dividends, taxes, FX/CFD results, swap, spin-off and transfers skipped. The trade is packed in Comment:
    # 'OPEN BUY 34/42.5658 @ 11.7480' is a fill of 34 (of an order of 42.5658) at 11.7480; a sale also reads
    # 'CLOSE BUY 1 @ ...' (it closes a long position), so the side comes from Type. Lines 37-39 repeat lines
    # 23-25 (same ID): 3 duplicates. ID is XTB's operation id, but the GOOGL purchase and its sale share ID
    # 419846716 (same quantity and second), so the id is qualified by Type or the sale would be dropped as a
    # duplicate of the purchase. No currency column: each instrument's listing currency is mapped by symbol
    # (.DE Xetra EUR, GOOGL.US USD; CSPX.UK and FLOA.UK are the USD lines on London: their Amount is exactly
    # quantity x price, like SPYL.DE's in EUR, while GOOGL's USD price is converted into the EUR Amount).
    # Times are XTB's Central European time: GOOGL at 20:56 in July is 14:56 in New York (16:56 if UTC).
    CorrectedCase(
        "xtb/e2g-cash-operations.csv",
        correction(
            quantity=dec("Comment", number="first"),
            price=dec("Comment", split_on="@", part=1),
            currency=cur(
                "Symbol",
                map={"SPYL.DE": "EUR", "ZAL.DE": "EUR", "GOOGL.US": "USD", "CSPX.UK": "USD", "FLOA.UK": "USD"},
            ),
            executed_at=when("Time", formats=["%d.%m.%Y %H:%M:%S"], tz="Europe/Warsaw"),
            broker_trade_id=text("ID", "Type"),
        ),
        14,
        first=fill("SPYL.DE", "BUY", "34", "11.7480", "2024-04-12T11:01:45Z"),
        last=fill("FLOA.UK", "BUY", "0.7399", "5.9140", "2024-05-14T15:21:09Z"),
        duplicates=3,
        also=(
            fill("ZAL.DE", "SELL", "1", "26.280", "2024-04-02T09:42:37Z"),
            fill("GOOGL.US", "SELL", "1", "122.34", "2023-07-25T18:56:07Z"),
        ),
    ),
    # DEGIRO Account.csv (a cash ledger, Dutch headers): 13 trades written in Omschrijving in four languages
    # ('Koop 1 @ 33,9 USD', 'Verkoop 1 @ 63,97 USD', 'Compra 6 ISHARES MSCI WOR A@49,785 EUR (IE00B4L5Y983)',
    # 'Achat 6 QT GROUP OYJ@79,96 EUR (FI4000198031)', 'Sell 4 AVIVA@496 GBX (GB00BPQY8M80)'). Not trades:
    # fees, dividends, FX, cash sweeps, the two 'PRODUCTWIJZIGING' (an ISIN change at 0), the 'STOCK DIVIDEND'
    # and the money-market 'Conversion Fonds Monétaires'. The price's currency is the one written after it:
    # the Mutatie column says GBP for the AVIVA sale priced in pence (GBX). Amsterdam times; the ISIN is the
    # identifier; the order id is shared by partial fills, so it is no trade id.
    CorrectedCase(
        "degiro/e2g-account-nl.csv",
        correction(
            filters=[starts("Omschrijving", "Koop", "Verkoop", "Compra", "Venda", "Achat", "Vente", "Buy", "Sell")],
            symbol=symbol("ISIN"),
            side=side("Omschrijving", split_on=" ", part=0),
            quantity=dec("Omschrijving", split_on="@", part=0, number="first"),
            price=dec("Omschrijving", split_on="@", part=1, number="first", decimal_sep=","),
            currency=cur("Omschrijving", split_on=" (", part=0),
            executed_at=when("Datum", "Tijd", formats=["%d-%m-%Y %H:%M"], tz="Europe/Amsterdam"),
            broker_trade_id=None,
        ),
        13,
        first=fill("US9256521090", "BUY", "1", "33.9", "2022-12-15T15:55:00Z"),
        last=fill("JP3633400001", "BUY", "30", "22.4", "2024-03-08T10:25:00Z"),
        also=(
            fill("IE00B4L5Y983", "BUY", "6", "49.785", "2019-05-15T07:05:00Z"),
            fill("GB00BPQY8M80", "SELL", "4", "496", "2024-04-02T07:00:00Z"),
        ),
    ),
    # Trade Republic via pytr (Dutch headers): 6 trades (Aankoop/Verkoop/Buy/Sell); withdrawal, deposit and
    # dividend skipped. No price column: price = |Waarde (netto)| / Aantal. The net value is the cash moved,
    # fee included (Tesla: 86.714375 = 0.2625 x 334.15 - 1.00), so the price is the net price per share and
    # the suggested commission (Kosten) is removed: it would count the fee twice. The file merges two locales
    # ('10,799' and '86.714375' in one column): thousands_sep '' (none) reads a lone ',' or '.' as the
    # decimal point, where detection would read '10,799' as 10799. pytr writes UTC times (date-only rows are
    # UTC dates); Trade Republic accounts are in EUR.
    CorrectedCase(
        "traderepublic/e2g-transactions.csv",
        correction(
            price=spec("quotient", "Waarde (netto)", "Aantal", abs=True, thousands_sep=""),
            commission=None,
            currency=const("EUR"),
        ),
        6,
        first=fill("IE00BKX55T58", "BUY", "0.052361", "95.4909188136", "2024-07-23T00:00:00Z"),
        last=fill("SI0031102120", "BUY", "5", "138.05", "2024-12-02T11:30:27Z"),
        also=(fill("IE00BKX55T58", "SELL", "0.104341", "103.4971871077", "2024-11-29T00:00:00Z"),),
    ),
    # eToro account activity: 9 trades (5 'Open Position' = buy, 4 'Position closed' = sell: no short
    # positions here); dividends, fees, interest, withdrawal, overnight fees/refunds and SDRT skipped. No
    # price: Amount / Units ('NKE/USD' gives the symbol and the currency). eToro times are UTC. Caveat: for
    # the CFD rows Amount is the margin, so Amount / Units is the price only at leverage 1; the file does not
    # give the leverage (the sample's NKE CFD figures, 6 USD a unit, are not market prices).
    CorrectedCase(
        "etoro/e2g-account-activity.csv",
        correction(
            filters=[keep("Type", "Open Position", "Position closed")],
            side=side("Type", map={"Open Position": "BUY", "Position closed": "SELL"}),
            price=spec("quotient", "Amount", "Units"),
            currency=cur("Details", split_on="/", part=1),
        ),
        9,
        first=fill("OLED", "SELL", "0.102626", "179.5841209830", "2024-01-09T15:30:40Z"),
        last=fill("NKE", "SELL", "65.359477", "6.0000480114", "2020-05-20T20:59:02Z"),
        also=(fill("AMD", "BUY", "0.337209", "147.9201326180", "2024-01-09T15:37:16Z"),),
    ),
]


@pytest.mark.parametrize("case", [pytest.param(case, id=case.path, marks=case.marks) for case in CORRECTED_CASES])
def test_another_brokers_trade_export_imports_after_one_mapping_correction(
    case: CorrectedCase,
    builtins: Any,
    user: Any,
    reviewer: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
    record_property: Any,
) -> None:
    file = upload_corpus(user, case.path, run_jobs, django_capture_on_commit_callbacks)
    print(f"\nOUTCOME {case.path}: {file.status} staged={file.rows_staged} error={file.error[:150]!r}")
    assert file.status == FileStatus.PENDING_APPROVAL, diagnose(file)
    fmt = file.format
    assert fmt.status == FormatStatus.PENDING and not fmt.builtin
    mapping, changed = apply_correction(fmt.mapping, case.correction)
    record_property("fields_corrected", len(changed))
    print(f"\nCORRECTION {case.path}: {len(changed)} corrected: {changed}")
    for name in changed:
        suggested = fmt.mapping.get(name) if name in ("filters", "reader") else fmt.mapping["fields"].get(name)
        print(f"  {name}: suggested {_comparable(suggested) if name in TARGET_FIELDS else suggested}")
    approve(fmt.pk, reviewer, mapping, run_jobs, django_capture_on_commit_callbacks)
    assert_orders(file, case.orders, case.first, case.last, case.duplicates)
    stored = {as_fill(order) for order in orders_of(file)}
    for expected in case.also:
        assert expected in stored, f"{expected} not among the orders; {diagnose(file)}"


# --- 3. trade files the closed converter set cannot map ------------------------------------------------

UNMAPPABLE_CASES = [
    UnmappableCase(
        "crypto-com/rotki-transactions.csv",
        "7 single-row trades (crypto_purchase Buy MCO / Buy ETH, crypto_exchange MCO -> ETH, viban_purchase "
        "EUR -> BTC, crypto_viban_exchange DOGE -> EUR, 2 limit-order purchase_commit USD -> SOL / ETH) plus "
        "dust conversions and MCO/CRO swaps split over credited/debited rows",
        "Crypto.com puts the traded asset in a different column per kind of row: in 'Currency' for purchases "
        "and sales to fiat ('Buy MCO': MCO 50, 'DOGE -> EUR': DOGE -750) but in 'To Currency' when fiat pays "
        "('EUR -> BTC': Currency EUR, To Currency BTC 0.003; 'USD -> SOL'). A mapping takes each field from "
        "fixed columns, so one of the two groups would import EUR/USD as the symbol; the price (Native "
        "Amount / Amount or / To Amount) has the same problem. The dust conversions and swaps span rows.",
    ),
]


@pytest.mark.parametrize("case", UNMAPPABLE_CASES, ids=lambda case: case.path)
def test_a_trade_export_the_converters_cannot_map_is_staged_for_review_then_skipped_with_the_reason(
    case: UnmappableCase, builtins: Any, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload_corpus(user, case.path, run_jobs, django_capture_on_commit_callbacks)
    print(f"\nOUTCOME {case.path}: {file.status} staged={file.rows_staged} error={file.error[:150]!r}")
    assert file.status == FileStatus.PENDING_APPROVAL, diagnose(file)
    assert file.rows_staged > 0 and Order.objects.count() == 0
    pytest.skip(f"{case.trades}: {case.reason}")


LEDGER_CASES = [
    # (file, trades, first trade, last trade) -- counted by hand in
    # tests/fixtures/corpus_expected_trades.json (the notes say how).
    (
        "coinbase/rotki-coinbasepro-account.csv",
        5,
        fill("ETH", "BUY", "52.3", "0.0219372849", "2018-03-15T10:55:12.843Z"),
        fill("ETH", "BUY", "18.46", "0.0353892741", "2019-07-01T22:14:18.855Z"),
    ),
    (
        "binance/rotki-transaction-history.csv",
        21,
        fill("BNB", "BUY", "0.576474665", "425.4306648498", "2020-10-28T22:03:03Z"),
        fill("ZRX", "SELL", "25656", "0.0013817721", "2025-11-20T12:54:15Z"),
    ),
]


@pytest.mark.parametrize(("path", "trades", "first", "last"), LEDGER_CASES, ids=[case[0] for case in LEDGER_CASES])
def test_a_ledger_export_is_joined_into_one_order_per_trade_and_imports_as_suggested(
    path: str,
    trades: int,
    first: Fill,
    last: Fill,
    builtins: Any,
    user: Any,
    reviewer: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # One trade is two or three balance movements (asset received, asset paid, fee) sharing a trade id or
    # a time; deposits, transfers, staking and dust conversions are skipped, never imported.
    file = upload_corpus(user, path, run_jobs, django_capture_on_commit_callbacks)
    assert file.status == FileStatus.PENDING_APPROVAL, diagnose(file)
    approve(file.format_id, reviewer, None, run_jobs, django_capture_on_commit_callbacks)
    file.refresh_from_db()
    assert file.status == FileStatus.IMPORTED, diagnose(file)
    stored = orders_of(file)
    assert len(stored) == trades == file.rows_imported, diagnose(file)
    assert (as_fill(stored[0]), as_fill(stored[-1])) == (first, last)
    lines = sum(1 for _ in corpus_file(path).open(encoding="utf-8-sig")) - 1
    assert file.rows_imported + file.rows_skipped == lines, "every row of the ledger is accounted for"
    joined = lines - file.rows_total
    assert row_accounting(file) == f"{trades} rows = {trades} imported; {joined} other lines skipped while reading"


# --- 4. files without trades ----------------------------------------------------------------------------

NO_TRADES_CASES = [
    NoTradesCase("ibkr/e2g-flex-cash-dividends.csv", "IBKR Flex cash transactions (dividends, withholding tax)"),
    NoTradesCase("schwab/bci-all-accounts-positions.csv", "Schwab positions (holdings per account)"),
    NoTradesCase("schwab/bci-lot-details.csv", "Schwab lot details of one holding"),
    NoTradesCase("schwab/cgtcalc-equity-awards.csv", "Schwab equity awards (an RSU lapse)"),
    NoTradesCase("morgan-stanley/cgtcalc-releases-report.csv", "Morgan Stanley stock plan releases (vests)"),
    NoTradesCase("fidelity/reds-history-for-account-cma.csv", "Fidelity cash management account history"),
    NoTradesCase("tastytrade/tastyworkspnl-transactions-2024.csv", "tastytrade money movements (interest, wire)"),
]


@pytest.mark.parametrize("case", NO_TRADES_CASES, ids=lambda case: case.path)
def test_an_export_without_trades_ends_with_a_clear_message_and_no_orders(
    case: NoTradesCase,
    builtins: Any,
    user: Any,
    reviewer: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    file = upload_corpus(user, case.path, run_jobs, django_capture_on_commit_callbacks)
    print(f"\nOUTCOME {case.path}: {file.status} staged={file.rows_staged} error={file.error[:150]!r}")
    # Declared so, with the reason, and kept out of the review queue.
    assert file.status == FileStatus.NO_TRADES, diagnose(file)
    assert file.error.startswith("No trades found in this file: ") and len(file.error) > 60, diagnose(file)
    assert file.format.status == FormatStatus.NO_TRADES and file.format.verdict
    assert file.rows_invalid == 0 and file.rows_imported == 0
    assert Order.objects.count() == 0


# --- 5. messy CSVs of other domains ---------------------------------------------------------------------

MESSY_CASES = [
    # 100 data rows; the last one has 46 fields for a 44-field header (flagged at migration, not at reading).
    MessyCase("messy/clevercsv-imdb.csv", None, 100),
    # Tab-delimited despite the .csv name: 381 lines = header + 370 data rows + 1 blank line + 9 footnote
    # lines ('####', '1) Liquid milk that ...') that have only their first cell filled.
    MessyCase("messy/clevercsv-milk-tab.csv", None, 370),
    MessyCase("messy/csvkit-bad-ragged.csv", ["column_a", "column_b", "column_c"], 3),
    MessyCase("messy/csvkit-header-control-chars.csv", None, 1),
    MessyCase("messy/csvkit-latin1.csv", ["a", "b", "c"], 2),
    MessyCase("messy/csvkit-locale-decimal-comma.csv", ["a", "b", "c"], 1),
    # CR-only line ends, and a CR inside a quoted field: 2 rows, not 3.
    MessyCase("messy/csvkit-mac-cr-newlines.csv", ["a", "b", "c"], 2),
    MessyCase("messy/csvkit-null-byte.csv", ["a", "b", "c"], 1, failure_words=("nul", "null", "binary")),
    MessyCase("messy/csvkit-utf16le.csv", ["a", "b", "c"], 2),
    MessyCase("messy/csvkit-utf8-bom.csv", ["foo", "bar", "baz"], 2),
]
# What the staged cells must read after decoding (encoding files).
MESSY_LAST_CELL = {
    "messy/csvkit-latin1.csv": "©",
    "messy/csvkit-utf16le.csv": "ʤ",
    "messy/csvkit-utf8-bom.csv": "ʤ",
}


@pytest.mark.parametrize("case", MESSY_CASES, ids=lambda case: case.path)
def test_a_messy_csv_is_declared_no_trades_or_fails_clearly_never_a_crash(
    case: MessyCase, builtins: Any, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload_corpus(user, case.path, run_jobs, django_capture_on_commit_callbacks)
    print(f"\nOUTCOME {case.path}: {file.status} staged={file.rows_staged} error={file.error[:150]!r}")
    assert Order.objects.count() == 0
    if file.status == FileStatus.FAILED and case.failure_words:
        assert any(word in file.error.lower() for word in case.failure_words), diagnose(file)
        return
    # Not a list of trades: declared so (rows kept staged for an admin who disagrees), never queued.
    assert file.status == FileStatus.NO_TRADES, diagnose(file)
    assert file.format.status == FormatStatus.NO_TRADES and "unrelated data" in file.error
    if case.columns is not None:
        assert file.format.columns == case.columns, diagnose(file)
    assert file.rows_staged == case.rows, diagnose(file)
    if case.path in MESSY_LAST_CELL:
        last = StagedRow.objects.filter(file=file).order_by("-line").first()
        assert last.raw[-1] == MESSY_LAST_CELL[case.path], last.raw


# --- 6. the suggestion loop: every other broker's trade file approved exactly as suggested -------------

# Trade files whose import, with the suggestion approved unchanged, gives exactly the orders read off the
# file (count, and the first and last trade's symbol, side, quantity, price and trade date). Raise it when the
# suggestion gets better; the test fails when it drops.
# alone: each file as the first of its kind; learning: one after another, each approval teaching the next
# suggestions (learned evidence must not override what a file's own values say).
EXACT_AS_SUGGESTED_FLOOR = {"alone": 21, "learning": 21}


def _same_trade(got: Fill, want: Fill) -> str | None:
    """None when the orders agree (the date up to the time zone: a date-only trade is midnight where the
    broker is, which the suggestion cannot know); else the fields that differ."""
    wrong = [name for name in ("symbol", "side", "quantity", "price") if getattr(got, name) != getattr(want, name)]
    if abs((got.executed_at - want.executed_at).total_seconds()) > 14 * 3600:
        wrong.append("date")
    return ", ".join(wrong) or None


@pytest.mark.parametrize("order", ["alone", "learning"])
def test_the_suggestion_loop_imports_other_brokers_files_exactly_as_suggested(
    order: str,
    builtins: Any,
    reviewer: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
    django_user_model: Any,
) -> None:
    rows, exact = [], 0
    for number, case in enumerate(CORRECTED_CASES):
        with transaction.atomic():
            outcome = _loop_once(
                case, number, reviewer, run_jobs, django_capture_on_commit_callbacks, django_user_model
            )
            # alone: what this approval taught is rolled back before the next file
            transaction.set_rollback(order == "alone")
        exact += not outcome
        rows.append(f"{case.path:<55} {'EXACT' if not outcome else outcome}")
    title = f"Suggestion loop ({order}, approved unchanged):"
    print("\n".join(["", title, *rows, f"exact: {exact}/{len(CORRECTED_CASES)}"]))
    assert exact >= EXACT_AS_SUGGESTED_FLOOR[order]


def _loop_once(case: CorrectedCase, number: int, reviewer: Any, run_jobs: Any, capture: Any, users: Any) -> str:
    """'' when the file imports exactly as suggested, else what went wrong."""
    if True:
        owner = users.objects.create_user(username=f"loop-{number}")
        file = upload_corpus(owner, case.path, run_jobs, capture)
        outcome = ""
        if file.status == FileStatus.PENDING_APPROVAL:
            try:
                approve(file.format_id, reviewer, None, run_jobs, capture)
            except AppError as exc:
                outcome = f"not approvable as suggested: {exc.message[:90]}"
            file.refresh_from_db()
        else:
            outcome = f"{file.status}: {file.error[:90]}"
        if not outcome:
            stored = orders_of(file)
            if len(stored) != case.orders:
                outcome = f"{len(stored)} orders of {case.orders} ({file.rows_invalid} invalid)"
            else:
                first, last = _same_trade(as_fill(stored[0]), case.first), _same_trade(as_fill(stored[-1]), case.last)
                if first or last:
                    outcome = f"count right; first wrong: {first or '-'}; last wrong: {last or '-'}"
        return outcome
