"""Formula-injection-safe CSV cells (imports/web/exports.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from imports.web.exports import csv_filename, iter_csv, safe_cell, safe_row


@pytest.mark.parametrize(
    "value",
    ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", '=HYPERLINK("http://e")', "-", "+", "- 5", "-12.5abc"],
)
def test_it_prefixes_a_cell_a_spreadsheet_would_evaluate(value: str) -> None:
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["-12.5", "+3", "-0.001", "-.5", "1e-3", "-1E+6", "12", "AAPL", "", "a=b", "T-1"])
def test_it_leaves_plain_numbers_and_ordinary_text_alone(value: str) -> None:
    assert safe_cell(value) == value


def test_it_keeps_numeric_types_as_numbers_and_none_as_empty() -> None:
    assert safe_row([-12.5, Decimal("-3"), 7, None, True]) == [-12.5, "-3", 7, "", "True"]


def test_decimals_lose_the_trailing_zeros_of_their_stored_scale_in_a_download() -> None:
    # The orders table stores 10 decimals: 300 comes back as 300.0000000000, written as the API writes it.
    assert safe_row([Decimal("300.0000000000"), Decimal("0E-10"), Decimal("-0")]) == ["300", "0", "0"]


def test_a_decimal_never_reaches_a_file_in_exponent_form() -> None:
    assert safe_row([Decimal("3E+2"), Decimal("2.45E+3"), Decimal("1E-7")]) == ["300", "2450", "0.0000001"]
    assert "".join(iter_csv(["q"], [[Decimal("3E+2")]])).endswith("q\r\n300\r\n")


def test_the_csv_stream_starts_with_a_bom_and_quotes_like_excel_expects() -> None:
    text = "".join(iter_csv(["a", "b"], [["=x", "1,5"]]))
    assert text == '\ufeffa,b\r\n\'=x,"1,5"\r\n'


def test_a_download_name_loses_quotes_and_slashes() -> None:
    assert csv_filename('../evil"name') == "_evil_name.csv"
    assert csv_filename("report.csv") == "report.csv"
