"""The 'no trades' verdict from the suggested mapping and the sample rows: positions, dividends and cash
statements, unrelated tables are declared with a reason; files whose trades are only harder to read are not."""

from __future__ import annotations

import pytest

from formats.suggest import suggest_mapping
from formats.suggest.verdict import rows_verdict, structural_verdict


def verdict(text: str) -> str | None:
    lines = [line.split(",") for line in text.strip().splitlines()]
    columns, rows = lines[0], lines[1:]
    mapping = suggest_mapping(target="orders", columns=columns, sample_rows=rows)
    return structural_verdict(mapping, columns, rows)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fn,title,year,rating\nx1,Alien,1979,8.5\nx2,Heat,1995,8.3", "unrelated data"),
        ("Date,Description,Amount,Balance\n2024-01-02,Deposit,1000,1000\n2024-01-31,Interest,1.25,1001.25", "cash"),
        (
            "Type,SettleDate,ISIN,Description,Amount,CurrencyPrimary\n"
            "Dividends,2024-01-02,US0378331005,AAPL CASH DIVIDEND,12.5,USD\n"
            "Withholding Tax,2024-01-02,US0378331005,AAPL TAX,-1.9,USD",
            "dividends",
        ),
        (
            "Symbol,Description,Quantity,Price,Market Value,As Of\n"
            "AAPL,APPLE INC,10,185.2,1852,2024-05-01\nMSFT,MICROSOFT,5,410,2050,2024-05-01",
            "positions snapshot",
        ),
    ],
)
def test_files_without_trades_are_declared_with_the_reason(text: str, expected: str) -> None:
    found = verdict(text)
    assert found is not None and expected in found


@pytest.mark.parametrize(
    "text",
    [
        "Date,Symbol,Action,Quantity,Price,Currency\n2024-01-02,AAPL,Buy,10,185.2,USD\n2024-01-03,MSFT,Sell,5,410,USD",
        # the trade is in free text without a side word, the price is pence: a reviewer's case, not 'no trades'
        "Trade date,Reference,Description,Quantity,Value\n"
        "04/04/2026,S302,Vanguard FTSE ETF 1000 @ 4500.00,1000,44988.05\n"
        "24/01/2026,FPC,Receipt Pay By Bank,n/a,50000",
        # a multi-row ledger whose trades carry trade ids
        "Type,Timestamp,Amount,Amount/balance unit,Trade id\nmatch,2018-03-15T10:42:31Z,2.5,BTC,301\n"
        "match,2018-03-15T10:42:31Z,-8000,EUR,301\nfee,2018-03-15T10:42:31Z,-2,EUR,301",
    ],
)
def test_files_with_trades_are_never_declared(text: str) -> None:
    assert verdict(text) is None


def test_rows_verdict_only_when_every_row_is_skipped() -> None:
    skipped = {
        "total": 3,
        "would_import": 0,
        "would_be_invalid": 0,
        "top_skips": [{"reason": "Action is 'Deposit'", "count": 3}],
    }
    reason = rows_verdict(skipped)
    assert reason is not None and "Action is 'Deposit' (3)" in reason
    assert rows_verdict({**skipped, "would_be_invalid": 1}) is None  # failing rows may be trades read wrong
    assert rows_verdict({**skipped, "would_import": 1}) is None
    assert rows_verdict({"total": 0}) is None
