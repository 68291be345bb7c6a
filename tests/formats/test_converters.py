"""Converters: quirky values of real broker exports (../shared/corpus/MANIFEST.tsv) become typed values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from config.errors import ConversionError, MappingError
from formats.converters import (
    CONVERTERS,
    CompiledMapping,
    build_cleaner,
    check_options,
    compile_mapping,
    parse_decimal,
    side_of,
)
from formats.converters.dates import datetime_builder


def clean(converter: str, value: str | list[str], **options: object) -> object:
    cells = value if isinstance(value, list) else [value]
    return build_cleaner(converter, dict(options))(cells)


# --- decimal ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1,234.56", "1234.56"),
        ("1.234,56", "1234.56"),
        ("1 234,56", "1234.56"),
        ("1'234.56", "1234.56"),
        ("$1,234.56", "1234.56"),
        ("€ 12,50", "12.50"),
        ("1.234,56 EUR", "1234.56"),
        ("2.00000000 ETH", "2.00000000"),
        ("89,162.28 SEK", "89162.28"),
        ("€3343.11229989", "3343.11229989"),
        ("-$694.48", "-694.48"),
        ("-€597.49846", "-597.49846"),
        ("(12.50)", "-12.50"),
        ("(1.5)", "-1.5"),
        ("1.5-", "-1.5"),
        ("-0.010713949999999999", "-0.010713949999999999"),
        ("1e-5", "0.00001"),
        ("+3", "3"),
        ("1,000", "1000"),
        ("500,135", "500135"),
        ("200.000.000", "200000000"),
        ("  42  ", "42"),
    ],
)
def test_it_parses_the_numbers_brokers_write(raw: str, expected: str) -> None:
    assert clean("decimal", raw) == Decimal(expected)


def test_it_parses_a_decimal_comma_with_dot_thousands() -> None:
    assert clean("decimal", "1.234,56") == Decimal("1234.56")


def test_it_reads_a_lone_comma_not_followed_by_three_digits_as_decimal_comma() -> None:
    assert clean("decimal", "12,5") == Decimal("12.5")
    assert clean("decimal", "0,25") == Decimal("0.25")
    assert clean("decimal", "1234,5") == Decimal("1234.5")
    assert clean("decimal", "-352,033838") == Decimal("-352.033838")  # Avanza


def test_it_reads_a_comma_and_three_digits_as_thousands_unless_told_otherwise() -> None:
    assert clean("decimal", "1,234") == Decimal("1234")
    assert clean("decimal", "1,234", decimal_sep=",") == Decimal("1.234")


def test_it_reads_dots_as_thousands_when_the_decimal_separator_is_a_comma() -> None:
    assert clean("decimal", "1.234", decimal_sep=",") == Decimal("1234")
    assert clean("decimal", "49,38", decimal_sep=",") == Decimal("49.38")
    assert clean("decimal", "3", decimal_sep=",") == Decimal("3")


def test_it_honours_an_explicit_thousands_separator() -> None:
    assert clean("decimal", "1 234.5", thousands_sep=" ") == Decimal("1234.5")
    assert clean("decimal", "1.234", thousands_sep=".") == Decimal("1234")


def test_it_reads_a_lone_dot_or_comma_as_the_decimal_point_when_told_there_is_no_thousands_separator() -> None:
    # Trade Republic (pytr) files merged from two locales: '10,799' and '86.714375' in one column.
    assert clean("decimal", "10,799", thousands_sep="") == Decimal("10.799")
    assert clean("decimal", "86.714375", thousands_sep="") == Decimal("86.714375")
    assert clean("decimal", "-690.25", thousands_sep="") == Decimal("-690.25")
    assert clean("decimal", "-5", thousands_sep="") == Decimal("-5")
    assert clean("quotient", ["10,799", "0,104341"], thousands_sep="", places=4) == Decimal("103.4972")
    for grouped in ("1,234.5", "1.234,5", "1,234,567"):
        with pytest.raises(ConversionError, match="thousands_sep '' means none"):
            clean("decimal", grouped, thousands_sep="")
    with pytest.raises(ConversionError, match="thousands_sep '' means none"):
        clean("decimal", "86.714375", thousands_sep="", decimal_sep=",")


@pytest.mark.parametrize("raw", ["abc", "NaN", "Infinity", "1-2", "--5", "12 %", "1.234.56", "1..2"])
def test_it_refuses_what_is_not_a_number(raw: str) -> None:
    with pytest.raises(ConversionError, match="not a number"):
        clean("decimal", raw)


def test_a_code_glued_to_digits_is_an_amount_only_when_it_is_a_currency() -> None:
    # 'SXR8' and 'CNX1' are tickers (iShares Core S&P 500 on Xetra, iShares Nasdaq 100), not 8 and 1.
    for ticker in ("SXR8", "CNX1", "EUNL5", "ABC1"):
        with pytest.raises(ConversionError, match="not a number"):
            clean("decimal", ticker)
    assert clean("decimal", "USD1,234.50") == Decimal("1234.50")
    assert clean("decimal", "BTC0.5") == Decimal("0.5")
    assert clean("decimal", "kr100") == Decimal("100")
    assert clean("decimal", "ABCD 5") == Decimal("5")  # a spaced unit: an asset code such as a crypto's


def test_it_refuses_misplaced_thousands_separators_when_the_separator_is_given() -> None:
    with pytest.raises(ConversionError):
        clean("decimal", "12,5", decimal_sep=".")


def test_it_drops_or_flips_the_sign_on_request() -> None:
    assert clean("decimal", "-5", abs=True) == Decimal("5")
    assert clean("decimal", "(1.5)", abs=True) == Decimal("1.5")
    assert clean("decimal", "5", negate=True) == Decimal("-5")


def test_it_parses_whole_numbers() -> None:
    assert clean("integer", "1,000") == 1000
    assert clean("integer", "-7", abs=True) == 7
    with pytest.raises(ConversionError, match="whole number"):
        clean("integer", "1.5")


def test_parse_decimal_is_usable_on_its_own() -> None:
    assert parse_decimal("1.234,56 EUR") == Decimal("1234.56")
    assert parse_decimal("1.234", thousands_sep=".") == Decimal("1234")


# --- empty cells, default, split_on ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "  ", "-", "--", "n/a", "N/A", "—"])
def test_it_returns_none_for_empty_and_placeholder_cells(raw: str) -> None:
    assert clean("decimal", raw) is None
    assert clean("text", raw) is None


def test_it_uses_the_default_for_empty_cells_converted_like_a_value() -> None:
    assert clean("decimal", "--", default="0") == Decimal("0")
    assert clean("decimal", "", default=0) == Decimal("0")
    assert clean("currency", "", default="usd") == "USD"


def test_it_rejects_a_default_the_converter_cannot_read() -> None:
    with pytest.raises(MappingError, match="default"):
        build_cleaner("decimal", {"default": "zero"})


def test_it_keeps_the_part_before_a_literal_separator() -> None:
    value = clean("datetime", "03/15/2024 as of 03/14/2024", formats=["%m/%d/%Y"], split_on="as of")
    assert value == datetime(2024, 3, 15, tzinfo=UTC)


def test_it_keeps_any_part_after_splitting() -> None:
    assert clean("text", "NKE/USD", split_on="/", upper=True) == "NKE"
    assert clean("text", "VWRL:xams", split_on=":", part=-1) == "xams"
    with pytest.raises(ConversionError, match="no part 3"):
        clean("text", "a/b", split_on="/", part=3)


# --- dates -------------------------------------------------------------------------------------------------


def test_it_parses_compact_ibkr_date_times() -> None:
    value = clean("datetime", "20240115;093512", formats=["%Y%m%d;%H%M%S"])
    assert value == datetime(2024, 1, 15, 9, 35, 12, tzinfo=UTC)


def test_it_parses_ibkr_activity_statement_date_times() -> None:
    value = clean("datetime", "2021-01-27, 13:31:38", formats=["%Y-%m-%d, %H:%M:%S"])
    assert value == datetime(2021, 1, 27, 13, 31, 38, tzinfo=UTC)


def test_it_parses_bitstamp_month_abbreviations_with_a_dot() -> None:
    value = clean("datetime", "Jan. 28, 2022, 12:13 AM", formats=["%b %d, %Y, %I:%M %p"])
    assert value == datetime(2022, 1, 28, 0, 13, tzinfo=UTC)
    also = clean("datetime", "Jan. 28, 2022, 12:31 PM", formats=["%b. %d, %Y, %I:%M %p"])
    assert also == datetime(2022, 1, 28, 12, 31, tzinfo=UTC)


def test_it_parses_revolut_dates_with_seconds_and_pm() -> None:
    value = clean("datetime", "May 5, 2020, 10:10:57 PM", formats=["%b %d, %Y, %I:%M:%S %p"])
    assert value == datetime(2020, 5, 5, 22, 10, 57, tzinfo=UTC)


def test_it_parses_iso_timestamps_with_z_offsets_or_utc_suffix() -> None:
    assert clean("datetime", "2024-01-16T10:01:02.811Z") == datetime(2024, 1, 16, 10, 1, 2, 811000, tzinfo=UTC)
    assert clean("datetime", "2024-02-16T23:00:00+0200") == datetime(2024, 2, 16, 21, 0, tzinfo=UTC)
    assert clean("datetime", "2025-01-17 16:57:02 UTC") == datetime(2025, 1, 17, 16, 57, 2, tzinfo=UTC)


def test_it_applies_the_timezone_to_values_without_an_offset() -> None:
    value = clean("datetime", "2024-01-15 09:30:00", formats=["iso"], tz="America/New_York")
    assert value == datetime(2024, 1, 15, 14, 30, tzinfo=UTC)
    summer = clean("datetime", "07/01/2024", formats=["%m/%d/%Y"], tz="Europe/Amsterdam")
    assert summer == datetime(2024, 6, 30, 22, 0, tzinfo=UTC)


def test_it_lets_an_explicit_offset_in_the_value_win_over_the_timezone() -> None:
    value = clean("datetime", "2024-01-15T09:30:00+01:00", formats=["iso"], tz="America/New_York")
    assert value == datetime(2024, 1, 15, 8, 30, tzinfo=UTC)


def test_it_joins_a_date_column_and_a_time_column_with_a_space() -> None:
    value = clean("datetime", ["08-01-2020", "15:30"], formats=["%d-%m-%Y %H:%M"], tz="Europe/Amsterdam")
    assert value == datetime(2020, 1, 8, 14, 30, tzinfo=UTC)


def test_it_tries_the_formats_in_order() -> None:
    formats = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"]
    assert clean("datetime", "2023-11-30 11:36:46.620", formats=formats) == datetime(
        2023, 11, 30, 11, 36, 46, 620000, tzinfo=UTC
    )
    assert clean("datetime", "2023-11-30 11:37:41", formats=formats) == datetime(2023, 11, 30, 11, 37, 41, tzinfo=UTC)


def test_it_parses_day_first_dates_with_month_names() -> None:
    assert clean("datetime", "02-Apr-2025", formats=["%d-%b-%Y"]) == datetime(2025, 4, 2, tzinfo=UTC)
    assert clean("datetime", "January 10, 2025", formats=["%B %d, %Y"]) == datetime(2025, 1, 10, tzinfo=UTC)


def test_it_parses_epoch_seconds_and_milliseconds() -> None:
    assert clean("datetime", "1700000000", formats=["epoch_s"]) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert clean("datetime", "1700000000000", formats=["epoch_ms"]) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_it_stores_a_date_as_midnight_in_the_timezone() -> None:
    value = clean("date", "2025-01-14 15:00:00", tz="Europe/Stockholm")
    assert value == datetime(2025, 1, 13, 23, 0, tzinfo=UTC)


def test_it_explains_a_date_that_matches_no_format() -> None:
    with pytest.raises(ConversionError, match="does not match the date format"):
        clean("datetime", "13/15/2024", formats=["%m/%d/%Y"])
    with pytest.raises(ConversionError, match="%d/%m/%Y, iso"):
        clean("datetime", "yesterday", formats=["%d/%m/%Y", "iso"], tz="Europe/Paris")


# --- side, map, currency, text, constant -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("BUY", "BUY"),
        ("sell", "SELL"),
        ("Bought", "BUY"),
        ("SOLD", "SELL"),
        ("BOT", "BUY"),
        ("SLD", "SELL"),
        ("B", "BUY"),
        ("S", "SELL"),
        ("Koop", "BUY"),
        ("Verkoop", "SELL"),
        ("Aankoop", "BUY"),
        ("Köp", "BUY"),
        ("Sälj", "SELL"),
        ("ACHAT", "BUY"),
        ("VENTE", "SELL"),
        ("Market buy", "BUY"),
        ("Limit sell", "SELL"),
        ("BUY - MARKET", "BUY"),
        ("Stocks/ETF purchase", "BUY"),
        ("Stocks/ETF sale", "SELL"),
        ("Ações/ETF compra", "BUY"),
        ("Ações/ETF vende", "SELL"),  # XTB in Portuguese
        ("Venda", "SELL"),
        ("YOU BOUGHT WASTE MANAGEMENT INC (WM) (Margin)", "BUY"),
        ("Sell 3 @ 139.74 USD", "SELL"),
        ("Buy to Open", "BUY"),
    ],
)
def test_it_reads_buy_and_sell_words_in_many_languages(raw: str, expected: str) -> None:
    assert clean("side", raw) == expected


@pytest.mark.parametrize("raw", ["Dividend", "Deposit", "TAXE DE VENTE DU QUÉBEC", "Buy Sell", "Open Position"])
def test_it_refuses_values_that_are_not_a_buy_or_a_sell(raw: str) -> None:
    assert side_of(raw) is None
    with pytest.raises(ConversionError, match="not a buy or a sell"):
        clean("side", raw)


def test_it_uses_the_side_map_before_the_built_in_words() -> None:
    assert clean("side", "Open", map={"open": "buy"}) == "BUY"
    assert clean("side", "S", map={"S": "BUY"}) == "BUY"


def test_it_reads_the_side_from_the_sign_of_a_number() -> None:
    assert clean("side_from_sign", "-352,033838") == "SELL"
    assert clean("side_from_sign", "6,3572") == "BUY"
    assert clean("side_from_sign", "-1", negative_is="BUY") == "BUY"
    with pytest.raises(ConversionError, match="zero"):
        clean("side_from_sign", "0")


def test_it_maps_values_case_insensitively() -> None:
    assert clean("map", "k", map={"K": "BUY", "V": "SELL"}) == "BUY"
    with pytest.raises(ConversionError, match="not in the map"):
        clean("map", "X", map={"K": "BUY"})


def test_it_reads_currency_codes_symbols_and_amounts() -> None:
    assert clean("currency", "usd") == "USD"
    assert clean("currency", "€") == "EUR"
    assert clean("currency", "£") == "GBP"
    assert clean("currency", "CAN") == "CAD"  # Desjardins Disnat
    assert clean("currency", "€35,761.54") == "EUR"  # Revolut prices carry their currency
    assert clean("currency", "89,162.28 SEK") == "SEK"
    assert clean("currency", "Kroner", map={"kroner": "DKK"}) == "DKK"
    with pytest.raises(ConversionError, match="names a currency but is not a code"):
        clean("currency", "Dollar")
    with pytest.raises(ConversionError, match="ISO 4217"):
        clean("currency", "XYZ")
    assert clean("currency", "usdt") == "USDT"  # crypto trades are quoted in asset codes


def test_it_trims_and_optionally_upper_cases_text() -> None:
    assert clean("text", "  aapl ") == "aapl"
    assert clean("text", " aapl ", upper=True) == "AAPL"


def test_it_returns_the_constant_whatever_the_cells() -> None:
    assert build_cleaner("constant", {"value": "USD"})([]) == "USD"


# --- options -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("converter", "options", "message"),
    [
        ("python", {}, "Unknown converter 'python'"),
        ("text", {"colour": "red"}, "Unknown option 'colour'"),
        ("text", {"upper": "yes"}, "must be true or false"),
        ("decimal", {"decimal_sep": ";"}, "'decimal_sep' must be"),
        ("decimal", {"decimal_sep": ",", "thousands_sep": ","}, "must differ"),
        ("datetime", {"tz": "Mars/Olympus"}, "Unknown timezone"),
        ("datetime", {"formats": ["%Q"]}, "is invalid"),
        ("datetime", {"formats": ["YYYY-MM-DD"]}, "not a strptime format"),
        ("datetime", {"formats": "%Y"}, "must be a list"),
        ("side", {"map": {"Open": "HOLD"}}, "must be one of BUY, SELL"),
        ("map", {}, "needs a non-empty 'map'"),
        ("constant", {}, "needs a 'value'"),
        ("text", {"part": 1}, "only makes sense with 'split_on'"),
        ("text", {"split_on": "/", "part": "first"}, "must be a whole number"),
        ("side_from_sign", {"negative_is": "HOLD"}, "'negative_is' must be"),
        ("trade_text", {}, "needs option 'take'"),
        ("trade_text", {"take": "symbol"}, "needs option 'take'"),
        ("pair", {"take": "middle"}, "one of base, quote"),
    ],
)
def test_it_rejects_bad_options_with_a_clear_message(converter: str, options: dict, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        check_options(converter, options)


def test_it_describes_every_converter_for_the_admin() -> None:
    assert set(CONVERTERS) == {
        "trade_text",
        "pair",
        "unit",
        "exchange_currency",
        "isin",
        "side_from_columns",
        "text",
        "decimal",
        "integer",
        "datetime",
        "date",
        "side",
        "side_from_sign",
        "quotient",
        "map",
        "currency",
        "constant",
    }
    for info in CONVERTERS.values():
        assert info.label and info.help
        assert all(isinstance(help_text, str) and help_text for help_text in info.options.values())


# --- compiled mappings -------------------------------------------------------------------------------------

IBKR_COLUMNS = [
    "DataDiscriminator",
    "Asset Category",
    "Currency",
    "Account",
    "Symbol",
    "Date/Time",
    "Exchange",
    "Quantity",
    "T. Price",
    "Proceeds",
    "Comm/Fee",
    "Basis",
    "Realized P/L",
    "Code",
]
IBKR_FIELDS = {
    "account": {"columns": ["Account"], "converter": "text"},
    "symbol": {"columns": ["Symbol"], "converter": "text", "options": {"upper": True}},
    "side": {"columns": ["Quantity"], "converter": "side_from_sign", "options": {}},
    "quantity": {"columns": ["Quantity"], "converter": "decimal", "options": {"abs": True}},
    "price": {"columns": ["T. Price"], "converter": "decimal"},
    "commission": {"columns": ["Comm/Fee"], "converter": "decimal", "options": {"abs": True, "default": "0"}},
    "currency": {"columns": ["Currency"], "converter": "currency"},
    "executed_at": {
        "columns": ["Date/Time"],
        "converter": "datetime",
        "options": {"formats": ["%Y-%m-%d, %H:%M:%S"], "tz": "America/New_York"},
        "confidence": 0.9,
        "reason": "informational keys are ignored",
    },
}


def test_it_converts_a_whole_row_with_a_compiled_mapping() -> None:
    mapping = compile_mapping(IBKR_FIELDS, IBKR_COLUMNS)
    row = [
        "Order",
        "Stocks",
        "USD",
        "U12345",
        "nok",
        "2021-01-27, 14:02:08",
        "-",
        "-1,000",
        "7.45",
        "3725",
        "-2.6418225",
        "-3367.5",
        "354.858177",
        "C;P",
    ]
    values, errors = mapping.apply(row)
    assert errors == []
    assert values == {
        "account": "U12345",
        "symbol": "NOK",
        "side": "SELL",
        "quantity": Decimal("1000"),
        "price": Decimal("7.45"),
        "commission": Decimal("2.6418225"),
        "currency": "USD",
        "executed_at": datetime(2021, 1, 27, 19, 2, 8, tzinfo=UTC),
    }


def test_it_reports_each_failing_field_with_the_raw_value() -> None:
    mapping = compile_mapping(IBKR_FIELDS, IBKR_COLUMNS)
    row = [
        "Order",
        "Stocks",
        "US Dollar",
        "U12345",
        "NOK",
        "27/01/2021",
        "-",
        "abc",
        "7.45",
        "",
        "",
        "",
        "",
        "",
    ]
    values, errors = mapping.apply(row)
    assert {error["field"] for error in errors} == {"currency", "executed_at", "quantity", "side"}
    by_field = {error["field"]: error for error in errors}
    assert by_field["executed_at"]["value"] == "27/01/2021"
    # In the user's words, with the technical detail (the converter's formats) kept for admins.
    assert "'27/01/2021' is not a valid date; expected" in by_field["executed_at"]["message"]
    assert "does not match" in by_field["executed_at"]["detail"]
    assert values["quantity"] is None
    assert values["commission"] == Decimal("0")


def test_it_treats_missing_cells_of_a_short_row_as_empty() -> None:
    mapping = compile_mapping(IBKR_FIELDS, IBKR_COLUMNS)
    values, errors = mapping.apply(
        ["Order", "Stocks", "USD", "U12345", "NOK", "2021-01-27, 14:02:08", "-", "5", "7.45"]
    )
    assert errors == []
    assert values["commission"] == Decimal("0")


def test_it_joins_several_columns_and_reports_their_raw_text() -> None:
    fields = {
        "executed_at": {
            "columns": ["Datum", "Čas"],
            "converter": "datetime",
            "options": {"formats": ["%d-%m-%Y %H:%M"]},
        }
    }
    mapping = compile_mapping(fields, ["Datum", "Čas", "Produkt"])
    assert mapping.apply(["08-01-2020", "15:30", "AMAZON"])[0]["executed_at"] == datetime(
        2020, 1, 8, 15, 30, tzinfo=UTC
    )
    _, errors = mapping.apply(["08-13-2020", "15:30", "AMAZON"])
    assert errors[0]["value"] == "08-13-2020 15:30"


def test_it_compiles_a_constant_without_columns() -> None:
    mapping = compile_mapping(
        {"currency": {"columns": [], "converter": "constant", "options": {"value": "GBP"}}}, ["Action"]
    )
    assert isinstance(mapping, CompiledMapping)
    assert mapping.apply(["Market buy"]) == ({"currency": "GBP"}, [])


def test_it_rejects_an_unknown_column_listing_the_available_ones() -> None:
    with pytest.raises(MappingError) as caught:
        compile_mapping({"price": {"columns": ["Trade Px"], "converter": "decimal"}}, ["Price", "Quantity"])
    assert "Trade Px" in caught.value.message
    assert "Price, Quantity" in caught.value.message
    assert caught.value.details["field"] == "price"


def test_it_names_the_field_whose_options_are_bad() -> None:
    with pytest.raises(MappingError, match="Field 'executed_at': Unknown timezone"):
        compile_mapping(
            {"executed_at": {"columns": ["Date"], "converter": "datetime", "options": {"tz": "CEST"}}},
            ["Date"],
        )


def test_it_requires_columns_unless_the_converter_is_constant() -> None:
    with pytest.raises(MappingError, match="at least one column"):
        compile_mapping({"symbol": {"columns": [], "converter": "text"}}, ["Symbol"])


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        (["%m/%d/%Y"], "'13/45/2023' is not a valid date; expected month/day/year like 03/14/2023"),
        (
            ["%d.%m.%Y %H:%M"],
            "'13/45/2023' is not a valid date; expected day.month.year hour:minute like 14.03.2023 09:30",
        ),
        (["iso"], "'13/45/2023' is not a valid date; expected a date like 2023-03-14 or 2023-03-14 09:30:00"),
    ],
)
def test_a_wrong_date_is_explained_in_plain_words_with_an_example(formats: list[str], expected: str) -> None:
    with pytest.raises(ConversionError) as caught:
        datetime_builder({"formats": formats})("13/45/2023")
    assert caught.value.plain == expected
    assert "does not match the date format" in str(caught.value)  # the technical detail, for admins


def test_side_from_columns_reads_which_money_column_a_row_fills() -> None:
    assert clean("side_from_columns", ["£986.00", "n/a"]) == "BUY"
    assert clean("side_from_columns", ["n/a", "£485.01"]) == "SELL"
    assert clean("side_from_columns", ["", "1.234,50"], decimal_sep=",") == "SELL"
    assert clean("side_from_columns", ["12", ""], first_is="SELL") == "SELL"
    for both_or_neither in (["1", "2"], ["", "-"], ["0", ""]):
        with pytest.raises(ConversionError, match="exactly one of the two columns"):
            clean("side_from_columns", both_or_neither)
    with pytest.raises(MappingError, match="first_is"):
        build_cleaner("side_from_columns", {"first_is": "HOLD"})
    with pytest.raises(MappingError, match="exactly two columns \\(money out, money in\\)"):
        compile_mapping({"side": {"columns": ["Debit"], "converter": "side_from_columns", "options": {}}}, ["Debit"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("03/15/2024 09:31:02 EDT", datetime(2024, 3, 15, 13, 31, 2, tzinfo=UTC)),
        ("03/08/2024 15:59:01 EST", datetime(2024, 3, 8, 20, 59, 1, tzinfo=UTC)),
        ("03/08/2024 15:59:01 CET", datetime(2024, 3, 8, 14, 59, 1, tzinfo=UTC)),
        ("03/08/2024 15:59:01", datetime(2024, 3, 8, 15, 59, 1, tzinfo=UTC)),  # no zone: the tz option (UTC)
    ],
)
def test_a_time_zone_abbreviation_after_the_time_gives_its_offset(text: str, expected: datetime) -> None:
    assert clean("datetime", [text], formats=["%m/%d/%Y %H:%M:%S"]) == expected


def test_an_unknown_or_ambiguous_zone_abbreviation_is_not_guessed() -> None:
    for text in ("03/08/2024 15:59:01 IST", "03/08/2024 15:59:01 XYZ"):
        with pytest.raises(ConversionError):
            clean("datetime", [text], formats=["%m/%d/%Y %H:%M:%S"])
