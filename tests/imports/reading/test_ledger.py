"""Ledgers (imports/reading/ledger.py): balance movements joined into one row per trade by the reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from formats.converters.derive import asset_code
from imports.reading import Record, Skipped
from imports.reading import ledger as ledger_module
from imports.reading.ledger import JOINED_COLUMNS, TRADE_ID_COLUMN, number
from imports.sheets.dispatch import detect_layout, iter_records

KRAKEN = """txid,refid,time,type,subtype,aclass,asset,amount,fee,balance
L1,TA1,2024-02-01 10:00:00,deposit,,currency,ZEUR,1000.0000,0.0000,1000.0000
L2,TB1,2024-02-02 11:30:05,trade,,currency,ZEUR,-500.0000,1.3000,498.7000
L3,TB1,2024-02-02 11:30:05,trade,,currency,XXBT,0.0125000000,0.0000000000,0.0125000000
L4,TB2,2024-02-03 09:15:00,trade,,currency,XXBT,-0.0050000000,0.0000000000,0.0075000000
L5,TB2,2024-02-03 09:15:00,trade,,currency,ZEUR,210.0000,0.5500,707.1500
L6,TC1,2024-02-04 08:00:00,staking,,currency,XETH,0.0100000000,0.0000000000,0.0100000000
"""

BY_TIME = """Time,Operation,Coin,Change
2024-03-01 09:00:00,Buy,EUR,-30.00
2024-03-01 09:00:00,Buy,ETH,0.0100
2024-03-01 09:00:00,Fee,BNB,-0.0001
2024-03-01 09:00:00,Buy,EUR,-20.00
2024-03-01 09:00:00,Buy,BTC,0.0004

2024-03-02 10:00:00,Deposit,EUR,100.00
2024-03-02 10:00:00,Small assets exchange BNB,SOL,-0.002
2024-03-02 10:00:00,Small assets exchange BNB,BNB,0.0001
2024-03-05 12:00:00,Sell,ETH,-0.0050
2024-03-05 12:00:00,Sell,USDT,17.50
2024-03-05 12:00:00,Fee,USDT,-0.0175
"""


def write(tmp_path: Path, text: str, name: str = "ledger.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def read(path: Path) -> tuple[list[str], list[Record], dict[int, str]]:
    layout = detect_layout(path)
    items = list(iter_records(path, layout))
    records = [item for item in items if isinstance(item, Record)]
    skipped = {item.line: item.reason for item in items if isinstance(item, Skipped)}
    return layout.columns, records, skipped


def as_dicts(columns: list[str], records: list[Record]) -> list[dict[str, str]]:
    return [dict(zip(columns, record.cells, strict=True)) for record in records]


def test_a_kraken_ledger_joins_by_refid_with_its_fee_column_and_prefixed_asset_codes(tmp_path: Path) -> None:
    columns, records, skipped = read(write(tmp_path, KRAKEN))
    assert columns == [*JOINED_COLUMNS, TRADE_ID_COLUMN]
    trades = as_dicts(columns, records)
    assert [
        (r.line, t["Symbol"], t["Side"], t["Quantity"], t["Price"], t["Currency"])
        for r, t in zip(records, trades, strict=True)
    ] == [(3, "BTC", "BUY", "0.0125", "40000", "EUR"), (5, "BTC", "SELL", "0.005", "42000", "EUR")]
    assert [t["Commission"] for t in trades] == ["1.3", "0.55"]  # the fee column, in the quote asset
    assert [t["Trade ID"] for t in trades] == ["TB1", "TB2"]
    assert skipped[2].startswith("ledger row that is not a trade (deposit ZEUR")
    assert skipped[4] == "ledger row joined into the trade on line 3"
    assert skipped[6] == "ledger row joined into the trade on line 5"
    assert skipped[7].startswith("ledger row that is not a trade (staking")


def test_legs_sharing_a_time_pair_in_file_order_into_one_trade_per_pair_of_assets(tmp_path: Path) -> None:
    columns, records, skipped = read(write(tmp_path, BY_TIME))
    assert columns == JOINED_COLUMNS  # no trade id column: grouped by time
    trades = as_dicts(columns, records)
    assert [(t["Symbol"], t["Side"], t["Quantity"], t["Price"], t["Currency"]) for t in trades] == [
        ("ETH", "BUY", "0.01", "3000", "EUR"),
        ("BTC", "BUY", "0.0004", "50000", "EUR"),
        ("ETH", "SELL", "0.005", "3500", "USDT"),
    ]
    # A fee in another asset than the quote cannot be a commission in EUR: named, not added.
    assert (trades[0]["Commission"], trades[0]["Fees"]) == ("0", "0.0001 BNB")
    assert trades[2]["Commission"] == "0.0175"
    assert [record.line for record in records] == [2, 5, 11]
    assert skipped[7] == "blank line"  # the reader's own skipped lines stay, in file order
    assert skipped[4] == "ledger row joined into the trade on line 2"  # the BNB fee of the first trade
    for line in (8, 9, 10):
        assert "not a trade" in skipped[line]  # a deposit and a dust conversion (two assets, not a trade)
    every = {record.line for record in records} | set(skipped)
    assert every == set(range(2, 14)), "every line is a trade or skipped with why"


@pytest.mark.parametrize(
    "text",
    [
        # An ordinary trade table: a price column, one row per trade.
        "Date,Symbol,Side,Quantity,Price\n2024-01-02 10:00,AAPL,Buy,1,190\n2024-01-02 10:00,MSFT,Sell,-2,410\n"
        "2024-01-03 10:00,AAPL,Sell,-1,195\n2024-01-03 10:00,MSFT,Buy,2,400\n",
        # Both sides of a trade on one row (Crypto.com): a second asset column.
        "Timestamp,Description,Currency,Amount,To Currency,To Amount\n"
        "2024-01-02 10:00:00,EUR -> BTC,EUR,-100,BTC,0.002\n2024-01-02 10:00:00,Fee,EUR,-1,,\n"
        "2024-01-03 10:00:00,ETH -> USDT,ETH,-1,USDT,3000\n2024-01-03 10:00:00,Fee,USDT,-3,,\n",
        # Movements that never pair two assets: deposits and withdrawals.
        "Time,Type,Asset,Amount\n2024-01-02 10:00:00,deposit,EUR,100\n2024-01-02 10:00:00,withdrawal,EUR,-50\n"
        "2024-01-03 10:00:00,deposit,BTC,1\n2024-01-04 10:00:00,withdrawal,BTC,-1\n",
    ],
    ids=["trade-table", "two-asset-columns", "no-trades"],
)
def test_tables_that_are_not_ledgers_are_read_as_they_are(tmp_path: Path, text: str) -> None:
    layout = detect_layout(write(tmp_path, text))
    assert layout.ledger is None
    assert layout.columns == text.split("\n", 1)[0].split(",")


def test_a_group_longer_than_the_bound_is_cut_and_still_accounts_for_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "MAX_GROUP_ROWS", 4)
    legs = "".join("2024-03-01 09:00:00,Buy,EUR,-10\n2024-03-01 09:00:00,Buy,ETH,0.005\n" for _ in range(5))
    text = (
        "Time,Operation,Coin,Change\n" + legs + "2024-03-02 09:00:00,Buy,EUR,-10\n2024-03-02 09:00:00,Buy,ETH,0.005\n"
    )
    columns, records, skipped = read(write(tmp_path, text))
    trades = as_dicts(columns, records)
    assert sum(float(t["Quantity"]) for t in trades) == pytest.approx(0.03)
    assert all(t["Price"] == "2000" for t in trades)
    assert {record.line for record in records} | set(skipped) == set(range(2, 14))


def test_numbers_and_codes_are_read_strictly_and_in_bounded_time() -> None:
    assert number("-3.605E-05") is not None and number("1,234.5") == number("1234.5")
    assert number("1.2.3") is None and number("12abc") is None and number("9" * 100) is None
    assert number("1" + "e9" * 10_000) is None  # a hostile cell is refused by its length first
    assert (asset_code("XXBT"), asset_code("ZEUR"), asset_code("XETH"), asset_code("USDT")) == (
        "BTC",
        "EUR",
        "ETH",
        "USDT",
    )


def test_a_group_moving_many_assets_pairs_nothing_and_stays_linear(tmp_path: Path) -> None:
    # Two real trades, then one second in which 900 rows move 300 different assets: no trade, each row
    # skipped with why; pairing never scans the group row by row.
    legs = [f"2024-03-03 10:00:00,Buy,{code},{'-' if n % 2 else ''}1.5\n" for n, code in enumerate(_codes(300) * 3)]
    text = BY_TIME + "".join(legs)
    columns, records, skipped = read(write(tmp_path, text))
    assert len(records) == 3  # the three trades of BY_TIME
    hostile = [reason for line, reason in skipped.items() if line >= 14]
    assert len(hostile) == 900 and all("more than 20 assets" in reason for reason in hostile)


def _codes(count: int) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [letters[n // 676 % 26] + letters[n // 26 % 26] + letters[n % 26] + "X" for n in range(count)]


def test_a_header_with_a_price_column_is_no_ledger_and_no_sample_is_read_to_tell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imports.sheets import dispatch

    def no_sample(*args: object, **kwargs: object) -> None:
        raise AssertionError("the rows were read for the ledger test")

    path = write(tmp_path, "Time,Asset,Amount,Price\n2024-01-02 10:00,BTC,0.5,40000\n2024-01-02 10:00,EUR,-20000,1\n")
    monkeypatch.setattr(dispatch, "_table_records", no_sample)
    layout = detect_layout(path)
    assert layout.columns == ["Time", "Asset", "Amount", "Price"] and not layout.ledger
    assert not ledger_module.ledger_possible(layout.columns) and ledger_module.ledger_possible(
        ["Time", "Asset", "Amount"]
    )
