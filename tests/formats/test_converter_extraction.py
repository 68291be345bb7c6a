"""Options that pull values out of free text: number, drop_trailing_numbers, scale."""

from decimal import Decimal

import pytest

from config.errors import ConversionError, MappingError
from formats.converters import build_cleaner


def test_it_takes_the_first_number_of_an_xtb_comment() -> None:
    clean = build_cleaner("decimal", {"number": "first"})
    assert clean(["OPEN BUY 34/42.5658 @ 11.7480"]) == Decimal("34")


def test_it_takes_the_last_number_after_splitting() -> None:
    clean = build_cleaner("decimal", {"split_on": "@", "part": 1, "number": "last"})
    assert clean(["OPEN BUY 34/42.5658 @ 11.7480"]) == Decimal("11.7480")


def test_it_reads_a_decimal_comma_price_after_the_at_sign() -> None:
    clean = build_cleaner("decimal", {"split_on": "@", "part": 1, "decimal_sep": ","})
    assert clean(["Compra 6 ISHARES MSCI WOR A@49,785 EUR"]) == Decimal("49.785")


def test_it_says_when_there_is_no_number() -> None:
    with pytest.raises(ConversionError, match="no number"):
        build_cleaner("decimal", {"number": "first"})(["Dividend"])


def test_it_drops_the_quantity_after_a_fund_name() -> None:
    clean = build_cleaner("text", {"split_on": "@", "part": 0, "drop_trailing_numbers": True, "upper": True})
    assert clean(["Vanguard FTSE Developed World UCITS ETF 1000 @  4500.00"]) == (
        "VANGUARD FTSE DEVELOPED WORLD UCITS ETF"
    )


def test_it_scales_prices_in_pence_to_pounds() -> None:
    assert build_cleaner("decimal", {"scale": "0.01"})(["4500.00"]) == Decimal("45.0000")


@pytest.mark.parametrize("bad", [{"scale": "abc"}, {"scale": 0}, {"number": "middle"}])
def test_it_refuses_bad_extraction_options(bad: dict) -> None:
    with pytest.raises(MappingError):
        build_cleaner("decimal", bad)


def test_a_price_is_the_net_value_divided_by_the_quantity() -> None:
    from formats.converters import compile_mapping

    mapping = compile_mapping(
        {"price": {"columns": ["Value", "Qty"], "converter": "quotient", "options": {"abs": True, "places": 4}}},
        ["Value", "Qty"],
    )
    values, errors = mapping.apply(["-1.234,50", "10"])
    assert errors == [] and values["price"] == Decimal("123.4500")


def test_a_quotient_by_zero_is_a_row_error() -> None:
    from formats.converters import compile_mapping

    mapping = compile_mapping({"price": {"columns": ["V", "Q"], "converter": "quotient"}}, ["V", "Q"])
    _, errors = mapping.apply(["10", "0"])
    assert errors[0]["field"] == "price" and "zero" in errors[0]["message"]


def test_a_quotient_needs_two_columns() -> None:
    from formats.converters import compile_mapping

    with pytest.raises(MappingError, match="exactly two columns"):
        compile_mapping({"price": {"columns": ["V"], "converter": "quotient"}}, ["V"])


@pytest.mark.parametrize("typo", ["12x", "T-1", "12 abc", "x12"])
def test_a_number_with_a_stray_letter_is_not_guessed(typo: str) -> None:
    with pytest.raises(ConversionError, match="is not a number"):
        build_cleaner("decimal", {})([typo])


@pytest.mark.parametrize(
    ("text", "value"),
    [("2.00000000 ETH", "2"), ("150 kr", "150"), ("12,50 Kč", "12.50"), ("US$ 3.5", "3.5"), ("100 USDT", "100")],
)
def test_amounts_with_a_currency_unit_still_parse(text: str, value: str) -> None:
    assert build_cleaner("decimal", {})([text]) == Decimal(value)
