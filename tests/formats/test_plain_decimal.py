"""The one rendering of decimals (formats.converters.plain_decimal) and the pages' filter built on it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from formats.converters import plain_decimal
from imports.templatetags.airlock import plain_decimal as plain_decimal_filter


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("3E+2", "300"),
        ("2.45E+3", "2450"),
        ("1E+18", "1000000000000000000"),
        ("300.0000000000", "300"),
        ("1E-7", "0.0000001"),
        ("-0", "0"),
        ("0E-10", "0"),
        # More digits than Decimal's default 28: written exactly, never rounded.
        ("123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"),
    ],
)
def test_it_writes_plain_notation_without_trailing_zeros_and_never_rounds(value: str, text: str) -> None:
    assert plain_decimal(Decimal(value)) == text


def test_the_pages_filter_adds_thousands_separators_to_the_same_text() -> None:
    assert plain_decimal_filter(Decimal("2.45E+3")) == "2,450"
    assert plain_decimal_filter(Decimal("-1234567.5000")) == "-1,234,567.5"
    assert plain_decimal_filter(Decimal("-0E-8")) == "0"
    assert plain_decimal_filter(Decimal("1E+30")) == "1," + ",".join(["000"] * 10)
