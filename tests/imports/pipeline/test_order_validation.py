"""The orders target's checks a reviewer expects: trade dates in a plausible range, symbols without markup,
currencies that are ISO 4217 codes or crypto asset codes; each message says what was expected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from config.errors import ConversionError
from formats.converters import build_cleaner
from imports.targets.orders import validate_order


def order(**changes: Any) -> dict[str, Any]:
    values = {
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": Decimal("2"),
        "price": Decimal("10.5"),
        "currency": "USD",
        "executed_at": datetime(2024, 1, 5, 9, 30, tzinfo=UTC),
    }
    return {**values, **changes}


def messages(values: dict[str, Any]) -> dict[str, str]:
    return {error["field"]: error["message"] for error in validate_order(values)}


def test_a_valid_order_has_no_errors() -> None:
    assert validate_order(order()) == []


@pytest.mark.parametrize("year", [1850, 1899, 1])
def test_a_trade_before_1900_is_invalid_and_says_so(year: int) -> None:
    found = messages(order(executed_at=datetime(year, 6, 1, tzinfo=UTC)))
    assert "before 1900" in found["executed_at"]


def test_a_trade_after_tomorrow_is_invalid_but_today_and_tomorrow_are_not() -> None:
    assert "in the future" in messages(order(executed_at=datetime(2099, 1, 5, tzinfo=UTC)))["executed_at"]
    now = datetime.now(UTC)
    assert validate_order(order(executed_at=now)) == []
    assert validate_order(order(executed_at=now + timedelta(hours=23))) == []
    assert "executed_at" in messages(order(executed_at=now + timedelta(days=2)))


@pytest.mark.parametrize("symbol", ['"><svg onload=alert(1)>', "<b>AAPL</b>", "A{B}", "AAPL`", "A\\B"])
def test_a_symbol_with_markup_characters_is_invalid(symbol: str) -> None:
    assert "markup" in messages(order(symbol=symbol))["symbol"]


@pytest.mark.parametrize("symbol", ["BRK.B", "AAPL:xnas", "US0378331005", "APPLE INC", "L'OREAL", "BTC-USDT"])
def test_real_symbols_stay_valid(symbol: str) -> None:
    assert validate_order(order(symbol=symbol)) == []


@pytest.mark.parametrize("code", ["USD", "EUR", "CNH", "BTC", "ETH", "USDT", "USDC", "DOGE", "1INCH", "MATIC"])
def test_fiat_and_crypto_codes_are_currencies(code: str) -> None:
    assert validate_order(order(currency=code)) == []
    assert build_cleaner("currency", {})([code.lower()]) == code


@pytest.mark.parametrize(
    ("code", "expected"),
    [("XYZ", "ISO 4217"), ("EURO", "not a code"), ("US$D", "not a currency code"), ("12", "not a currency code")],
)
def test_fiat_looking_codes_are_checked_against_iso_4217(code: str, expected: str) -> None:
    assert expected in messages(order(currency=code))["currency"]
    with pytest.raises(ConversionError, match=expected.split()[0]):
        build_cleaner("currency", {})([code])
