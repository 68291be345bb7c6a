"""Derived values, one test per derivation and pattern, with the quirky values real exports hold: order
descriptions in several languages, pairs, number-plus-unit cells, exchange suffixes, Name / ISIN cells,
amount ÷ quantity; and the suggestion choosing them when no column gives the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from config.errors import ConversionError
from formats.converters import build_cleaner
from formats.converters.derive import exchange_currency_of, isin_in, parse_trade_text, split_pair, unit_of
from formats.filters import compile_filters
from formats.suggest import suggest_mapping


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Koop 1 @ 33,9 USD", {"side": "BUY", "quantity": Decimal("1"), "price": Decimal("33.9"), "currency": "USD"}),
        (
            "Verkoop 12 @ 1.063,97 EUR",
            {"side": "SELL", "quantity": Decimal("12"), "price": Decimal("1063.97"), "currency": "EUR"},
        ),
        ("OPEN BUY 34/42.5658 @ 11.7480", {"side": "BUY", "quantity": Decimal("34"), "price": Decimal("11.7480")}),
        ("CLOSE SELL 0.5 @ 1,234.50", {"side": "SELL", "quantity": Decimal("0.5"), "price": Decimal("1234.50")}),
        (
            "Sell 10 AAPL @ $185.20",
            {"side": "SELL", "quantity": Decimal("10"), "price": Decimal("185.20"), "currency": "USD", "name": "AAPL"},
        ),
        (
            "Achat 5 à 12,40 EUR",
            {"side": "BUY", "quantity": Decimal("5"), "price": Decimal("12.40"), "currency": "EUR"},
        ),
        ("Kauf 3 zu 99,5", {"side": "BUY", "quantity": Decimal("3"), "price": Decimal("99.5")}),
        ("Köp 7 @ SEK 101,5", {"side": "BUY", "quantity": Decimal("7"), "price": Decimal("101.5"), "currency": "SEK"}),
        (
            "Bought 1,550 Foo ETF Distributing (FOO)",
            {"side": "BUY", "quantity": Decimal("1550"), "name": "FOO ETF DISTRIBUTING (FOO)"},
        ),
        # No side word: '<name> <quantity> @ <price>' (Hargreaves Lansdown)
        (
            "Vanguard FTSE Developed World UCITS ETF 1000 @  4500.00",
            {
                "quantity": Decimal("1000"),
                "price": Decimal("4500.00"),
                "name": "VANGUARD FTSE DEVELOPED WORLD UCITS ETF",
            },
        ),
        (
            "Sell 4 AVIVA@496 GBX",
            {"side": "SELL", "quantity": Decimal("4"), "price": Decimal("496"), "currency": "GBX", "name": "AVIVA"},
        ),
        ("Interest From 10/02/2026 TO 09/03/2026", {}),
        ("rate @ 5", {}),  # no quantity before the '@'
        ("iDEAL Deposit", {}),
        ("Overboeking van uw geldrekening 26,45 EUR", {}),
        ("Dividend 0,45 USD per share", {}),
        ("is a b s c", {}),  # one-letter codes inside prose are no side
    ],
)
def test_order_descriptions_give_side_quantity_price_and_currency(text: str, expected: dict[str, Any]) -> None:
    assert parse_trade_text(text) == expected


def test_the_trade_text_converter_names_what_it_expected() -> None:
    assert build_cleaner("trade_text", {"take": "price", "decimal_sep": ","})(["Koop 1 @ 33,9 USD"]) == Decimal("33.9")
    with pytest.raises(ConversionError, match="expected an order description"):
        build_cleaner("trade_text", {"take": "price"})(["iDEAL Deposit"])


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("BTC-USDT", ("BTC", "USDT")),
        ("ETH/EUR", ("ETH", "EUR")),
        ("ETHUSD", ("ETH", "USD")),
        ("BTCUSDT", ("BTC", "USDT")),
        ("BINANCE:BTCUSDT", ("BTC", "USDT")),
        ("doge_usdt", ("DOGE", "USDT")),
        ("XXBTZEUR", ("BTC", "EUR")),  # Kraken's legacy X/Z prefixes unwrapped
        ("XETHZUSD", ("ETH", "USD")),
        ("AAPL", None),
        ("BRK.B", None),
        ("A-B-C", None),
    ],
)
def test_pairs_split_into_asset_and_quote(text: str, pair: tuple[str, str] | None) -> None:
    assert split_pair(text) == pair


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("2.00000000 ETH", "ETH"),
        ("€35.20", "EUR"),
        ("89,162.28 SEK", "SEK"),
        ("$ 12", "USD"),
        ("12", None),
        ("ETH", None),
    ],
)
def test_the_unit_of_an_amount(text: str, unit: str | None) -> None:
    assert unit_of(text) == unit


@pytest.mark.parametrize(
    ("ticker", "currency"),
    [("SPYL.DE", "EUR"), ("VOD.L", "GBP"), ("AAPL.US", "USD"), ("NESN.SW", "CHF"), ("BTC-EUR", "EUR"), ("AAPL", None)],
)
def test_the_currency_of_a_tickers_exchange(ticker: str, currency: str | None) -> None:
    assert exchange_currency_of(ticker) == currency


def test_the_isin_inside_a_name_cell_is_checked_by_its_check_digit() -> None:
    assert isin_in("APPLE INC / US0378331005") == "US0378331005"
    assert isin_in("Vanguard FTSE All-World (IE00B3RBWM25)") == "IE00B3RBWM25"
    assert isin_in("APPLE INC / US0378331006") is None  # wrong check digit
    assert build_cleaner("isin", {})(["APPLE INC"]) == "APPLE INC"


def test_the_side_word_filter_skips_rows_that_name_no_trade() -> None:
    keep = compile_filters([{"column": "Omschrijving", "op": "side_word"}], ["Datum", "Omschrijving"])
    assert keep(["1-1-2024", "Koop 1 @ 33,9 USD"]) is None
    assert keep(["1-1-2024", "iDEAL Deposit"]) == "Omschrijving names no buy or sell"


def fields_of(columns: list[str], rows: list[list[str]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    mapping = suggest_mapping(target="orders", columns=columns, sample_rows=rows)
    return mapping["fields"], mapping["filters"]


def test_a_ledger_with_order_descriptions_gets_side_quantity_price_currency_from_them() -> None:
    columns = ["Datum", "Product", "ISIN", "Omschrijving", "Mutatie"]
    rows = [
        ["15-12-2022", "VICI PROPERTIES", "US9256521090", "Koop 1 @ 33,9 USD", "-33,90"],
        ["17-12-2022", "", "", "iDEAL Deposit", "27,80"],
        ["10-08-2021", "BANK NOVA SCOTIA", "CA0641491075", "Verkoop 2 @ 63,97 USD", "127,94"],
        ["13-07-2020", "VANGUARD FTSE AW", "IE00B3RBWM25", "Koop 1 @ 79,35 EUR", "-79,35"],
    ]
    fields, filters = fields_of(columns, rows)
    for name in ("side", "quantity", "price", "currency"):
        assert fields[name]["columns"] == ["Omschrijving"], name
        assert fields[name]["converter"] == "trade_text"
        assert "order descriptions" in fields[name]["reason"]
    assert fields["price"]["options"] == {"take": "price", "decimal_sep": ","}
    assert {"column": "Omschrijving", "op": "side_word"} in filters


def test_without_a_price_column_the_price_is_the_amount_divided_by_the_quantity() -> None:
    columns = ["Datum", "Transactietype", "Waarde (netto)", "ISIN", "Aantal", "Valuta"]
    rows = [
        ["2024-01-02", "Aankoop", "1000,50", "US0378331005", "5", "EUR"],
        ["2024-02-03", "Verkoop", "420,00", "US5949181045", "1", "EUR"],
    ]
    fields, _ = fields_of(columns, rows)
    assert fields["price"]["converter"] == "quotient"
    assert fields["price"]["columns"] == ["Waarde (netto)", "Aantal"]
    assert "÷" in fields["price"]["reason"]


def test_pairs_give_the_asset_as_symbol_and_the_quote_as_currency() -> None:
    columns = ["tradeCreatedAt", "symbol", "side", "price", "size"]
    rows = [
        ["2021-01-01 10:00:00", "BTC-USDT", "buy", "30000", "0.1"],
        ["2021-01-02 10:00:00", "ETH-BTC", "sell", "0.03", "2"],
    ]
    fields, _ = fields_of(columns, rows)
    assert (fields["symbol"]["converter"], fields["symbol"]["options"]) == ("pair", {"take": "base"})
    assert (fields["currency"]["converter"], fields["currency"]["options"]) == ("pair", {"take": "quote"})


def test_units_on_the_quantities_give_the_symbol() -> None:
    columns = ["Type", "Datetime", "Amount", "Value", "Rate", "Sub Type"]
    rows = [
        ["Market", "2022-01-28 00:31:00", "1.00000000 ETH", "2214.01 EUR", "2214.01 EUR", "Sell"],
        ["Market", "2022-01-29 00:31:00", "0.50000000 BTC", "20000.00 EUR", "40000.00 EUR", "Buy"],
    ]
    fields, _ = fields_of(columns, rows)
    assert fields["symbol"]["converter"] == "unit" and fields["symbol"]["columns"] == ["Amount"]


def test_exchange_suffixes_give_the_currency_when_no_column_does() -> None:
    columns = ["ID", "Type", "Time", "Symbol", "Comment", "Amount"]
    rows = [
        ["1", "Stocks/ETF purchase", "12.04.2024 13:01:45", "SPYL.DE", "OPEN BUY 34/42.5658 @ 11.7480", "-399.43"],
        ["2", "Stocks/ETF sale", "13.04.2024 13:01:45", "VOD.L", "CLOSE SELL 8 @ 11.7480", "93.98"],
    ]
    fields, _ = fields_of(columns, rows)
    assert fields["currency"]["converter"] == "exchange_currency"
    assert fields["price"]["converter"] == "trade_text"


@pytest.mark.parametrize(("buy", "sell"), [("K", "V"), ("A", "V"), ("C", "V"), ("N", "P"), ("k", "v")])
def test_one_letter_side_codes_of_a_language_are_read_as_a_map(buy: str, sell: str) -> None:
    columns = ["Datum", "Fonds", "Typ", "Anzahl", "Kurs", "Währung"]
    rows = [
        ["02.01.2024", "DE0005140008", buy, "10", "12.5", "EUR"],
        ["03.01.2024", "DE0007164600", sell, "5", "130.2", "EUR"],
        ["04.01.2024", "DE0005140008", "D", "0", "0.5", "EUR"],  # a dividend: another code, filtered
    ]
    fields, filters = fields_of(columns, rows)
    assert fields["side"]["columns"] == ["Typ"]
    assert fields["side"]["options"] == {"map": {buy: "BUY", sell: "SELL"}}
    assert {"column": "Typ", "op": "in", "values": sorted([buy, sell])} in filters


def test_a_column_of_grades_is_not_read_as_sides() -> None:
    columns = ["Date", "Symbol", "Rating", "Quantity", "Price", "Currency"]
    rows = [["2024-01-02", "AAPL", "A", "10", "185", "USD"], ["2024-01-03", "MSFT", "C", "-5", "410", "USD"]]
    fields, _ = fields_of(columns, rows)
    assert fields["side"]["converter"] == "side_from_sign"


def test_cancelled_rows_are_skipped_by_a_suggested_filter() -> None:
    columns = ["Date", "Symbol", "Side", "Quantity", "Price", "Currency", "Status"]
    rows = [
        ["2024-01-02", "AAPL", "Buy", "10", "185.2", "USD", "Filled"],
        ["2024-01-03", "MSFT", "Sell", "5", "410", "USD", "Storniert"],
        ["2024-01-04", "AAPL", "Buy", "3", "186", "USD", "Filled"],
    ]
    _, filters = fields_of(columns, rows)
    assert {"column": "Status", "op": "not_in", "values": ["Storniert"]} in filters


def test_dollar_signs_on_the_amounts_give_the_currency_when_no_column_does() -> None:
    columns = ["Date", "Ticker", "Shares", "Cost Per Share", "Amount"]
    rows = [["01/02/2024", "AAPL", "10", "$185.20", "-$1852.00"], ["01/03/2024", "MSFT", "-5", "$410.00", "$2050.00"]]
    fields, _ = fields_of(columns, rows)
    assert fields["price"]["columns"] == ["Cost Per Share"]
    assert (fields["currency"]["converter"], fields["currency"]["options"]) == ("constant", {"value": "USD"})
    assert "written in USD" in fields["currency"]["reason"]


def test_a_date_column_constant_over_every_row_is_not_taken_as_the_trade_date() -> None:
    columns = ["Trade Date", "Booked", "Symbol", "Side", "Quantity", "Price", "Currency"]
    rows = [
        ["2024-06-30", "02/01/2024 09:30", "AAPL", "Buy", "10", "185.2", "USD"],
        ["2024-06-30", "03/01/2024 10:00", "MSFT", "Sell", "5", "410", "USD"],
        ["2024-06-30", "15/02/2024 15:45", "NVDA", "Buy", "3", "600", "USD"],
    ]
    fields, _ = fields_of(columns, rows)
    assert fields["executed_at"]["columns"] == ["Booked"]
    assert "same date on every row" in fields["executed_at"]["reason"]


def test_without_a_symbol_column_the_security_named_in_the_descriptions_is_the_symbol() -> None:
    columns = ["Trade date", "Reference", "Description", "Unit cost (p)", "Quantity", "Value (£)"]
    rows = [
        ["04/04/2026", "MANAGE FEE", "HL Fund & Share Account To A/C 01C0450818220", "n/a", "n/a", "-4.05"],
        ["25/02/2026", "S302087055", "Vanguard FTSE Developed World UCITS ETF 1000 @  4500.00", "4,500.000", "1,000",
         "44,988.05"],
        ["24/01/2026", "B302087054", "Vanguard FTSE Developed World UCITS ETF 4563 @  3287.199", "3,287.199", "4,563",
         "-150,006.84"],
        ["24/01/2026", "FPC", "HL Fund & Share Account Receipt Pay By Bank", "n/a", "n/a", "50,000.00"],
    ]  # fmt: skip
    fields, filters = fields_of(columns, rows)
    assert (fields["symbol"]["converter"], fields["symbol"]["options"]) == ("trade_text", {"take": "name"})
    assert build_cleaner("trade_text", {"take": "name"})([rows[1][2]]) == "VANGUARD FTSE DEVELOPED WORLD UCITS ETF"
    # No buy/sell column and unsigned quantities: the money paid out is a buy, received a sell.
    assert fields["side"]["columns"] == ["Value (£)"]
    side = build_cleaner("side_from_sign", fields["side"]["options"])
    assert (side(["-150,006.84"]), side(["44,988.05"])) == ("BUY", "SELL")
    # 'Unit cost (p)': prices in pence.
    assert fields["currency"]["options"] == {"value": "GBX"}
    # The fee, interest and receipt rows ('n/a' quantities) are skipped, not failed.
    assert filters == [{"column": "Quantity", "op": "not_in", "values": ["n/a"]}]
    keep = compile_filters(filters, columns)
    assert [keep(row) is None for row in rows] == [False, True, True, False]


def test_a_currency_named_above_the_table_is_the_currency_when_no_column_does() -> None:
    columns = ["Date", "Symbol", "Transaction Type", "Quantity", "Price"]
    rows = [["2025-08-15", "VWRL", "Sell", "-2.0", "1001.00"], ["2025-03-15", "VWRL", "Buy", "4.0", "1000.0"]]
    context = [["Title", "Transaction History"], ["Base Currency", "GBP"]]
    mapping = suggest_mapping(target="orders", columns=columns, sample_rows=rows, context=context)
    currency = mapping["fields"]["currency"]
    assert (currency["converter"], currency["options"]) == ("constant", {"value": "GBP"})
    assert "'Base Currency' GBP" in currency["reason"]
    inline = suggest_mapping(
        target="orders", columns=columns, sample_rows=rows, context=[["Account currency: eur", "x"]]
    )
    assert inline["fields"]["currency"]["options"] == {"value": "EUR"}
    # A label naming no ISO code, or no label at all, names nothing.
    for other in ([["Base Currency", "Pounds"]], [["Note", "GBP"]]):
        fields = suggest_mapping(target="orders", columns=columns, sample_rows=rows, context=other)["fields"]
        assert fields["currency"].get("options") != {"value": "GBP"}


def test_one_currency_written_against_numbers_around_the_table_is_a_weak_constant() -> None:
    columns = ["Date", "InvestmentName", "TransactionDetails", "Quantity", "Price"]
    rows = [["10/03/2022", "Foo ETF (FOO)", "Bought 1,550 Foo ETF (FOO)", "1550", "9.665845"]]
    cash_rows = [["09/04/2022", "DIV: FOO.XLON.GB @ GBP 0.4106", "225.83", "380.13"], ["Balance", "23.59"]]
    currency = suggest_mapping(target="orders", columns=columns, sample_rows=rows, context=cash_rows)["fields"][
        "currency"
    ]
    assert (currency["converter"], currency["options"], currency["confidence"]) == ("constant", {"value": "GBP"}, 0.4)
    assert "GBP (1×)" in currency["reason"]
    # Two currencies, or a code that is only a word ('TRY again'), name nothing.
    for other in (cash_rows + [["x", "Fee 1.50 USD"]], [["Note", "TRY again later", "5"]]):
        fields = suggest_mapping(target="orders", columns=columns, sample_rows=rows, context=other)["fields"]
        assert fields["currency"].get("converter") != "constant" or fields["currency"]["confidence"] < 0.4


def test_a_cost_column_equal_to_quantity_times_price_is_the_total_not_the_commission() -> None:
    columns = ["Date", "Symbol", "Action", "Quantity", "Price", "Cost", "Currency"]
    rows = [
        ["10/03/2022", "FOO", "Buy", "1550", "9.665845", "14982.06", "GBP"],
        ["29/05/2022", "BAR", "Buy", "294", "101.8614965", "29947.28", "GBP"],
        ["15/07/2022", "BAR", "Sell", "1", "104.06", "104.06", "GBP"],
    ]
    fields = suggest_mapping(target="orders", columns=columns, sample_rows=rows)["fields"]
    assert "commission" not in fields
    fees = [row[:5] + ["4.95", "GBP"] for row in rows]
    assert suggest_mapping(target="orders", columns=columns, sample_rows=fees)["fields"]["commission"]["columns"] == [
        "Cost"
    ]


def test_position_platforms_open_as_a_buy_and_close_as_a_sell_in_a_map_the_admin_checks() -> None:
    columns = ["Date", "Type", "Details", "Amount", "Units"]
    rows = [
        ["09/01/2024 15:30:40", "Position closed", "OLED/USD", "18.43", "0.102626"],
        ["02/01/2024 00:10:33", "Dividend", "NKE/USD", "0.17", "-"],
        ["20/05/2020 20:59:02", "Open Position", "NKE/USD", "392.16", "65.359477"],
    ]
    fields, filters = fields_of(columns, rows)
    side = fields["side"]
    assert side["columns"] == ["Type"]
    assert side["options"] == {"map": {"Open Position": "BUY", "Position closed": "SELL"}}
    assert side["confidence"] <= 0.7 and "check shorts" in side["reason"]
    assert {"column": "Type", "op": "in", "values": ["Open Position", "Position closed"]} in filters


def test_money_out_and_money_in_columns_give_the_side_when_no_column_names_it() -> None:
    # Interactive Investor: a buy's money in 'Debit', a sale's in 'Credit', quantities never negative.
    columns = ["Date", "Symbol", "Quantity", "Price", "Description", "Debit", "Credit", "Running Balance"]
    rows = [
        ["15/03/2024", "VWRL", "10", "£98.10", "VANGUARD FTSE ALL-WORLD", "£986.00", "n/a", "£1,014.00"],
        ["14/03/2024", "n/a", "n/a", "n/a", "Debit Card Payment", "n/a", "£2,000.00", "£2,000.00"],
        ["12/03/2024", "LGEN", "200", "£2.45", "LEGAL & GENERAL GROUP PLC", "n/a", "£485.01", "£1,499.01"],
    ]
    side = suggest_mapping(target="orders", columns=columns, sample_rows=rows)["fields"]["side"]
    assert (side["columns"], side["converter"], side["options"]) == (
        ["Debit", "Credit"],
        "side_from_columns",
        {"first_is": "BUY"},
    )
    assert "'Debit' (1×: BUY) or 'Credit' (1×: SELL)" in side["reason"]
    cleaner = build_cleaner(side["converter"], side["options"])
    assert [cleaner([row[5], row[6]]) for row in (rows[0], rows[2])] == ["BUY", "SELL"]


def test_us_time_zones_on_the_trade_times_give_usd_when_nothing_names_a_currency() -> None:
    columns = ["Symbol", "Side", "Filled", "Avg Price", "Filled Time"]
    rows = [
        ["AAPL", "Buy", "10", "172.50", "03/15/2024 09:31:02 EDT"],
        ["NVDA", "Buy", "1", "875.30", "03/08/2024 15:59:01 EST"],
    ]
    fields = suggest_mapping(target="orders", columns=columns, sample_rows=rows)["fields"]
    assert fields["executed_at"]["columns"] == ["Filled Time"]
    currency = fields["currency"]
    assert (currency["options"], currency["confidence"]) == ({"value": "USD"}, 0.3)
    assert "EDT, EST" in currency["reason"]


@pytest.mark.parametrize(
    ("words", "side"),
    [(["KÖPT", "SÅLD"], ["BUY", "SELL"]), (["Kjøpt", "Solgt"], ["BUY", "SELL"]), (["买入", "卖出"], ["BUY", "SELL"])],
)
def test_bought_and_sold_in_more_languages_are_sides(words: list[str], side: list[str]) -> None:
    assert [build_cleaner("side", {})([word]) for word in words] == side


def test_a_fiat_amount_beside_an_asset_amount_is_not_the_quantity() -> None:
    # Bitpanda: 'Amount Fiat' is the money, 'Amount Asset' the units bought.
    columns = ["Timestamp", "Transaction Type", "Amount Fiat", "Fiat", "Amount Asset", "Asset", "Asset market price"]
    rows = [
        ["2024-03-15T10:00:00+01:00", "buy", "100.00", "EUR", "0.00164500", "BTC", "60790.27"],
        ["2024-03-10T15:30:00+01:00", "sell", "250.00", "EUR", "0.08500000", "ETH", "2941.18"],
    ]
    fields = suggest_mapping(target="orders", columns=columns, sample_rows=rows)["fields"]
    assert fields["quantity"]["columns"] == ["Amount Asset"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B 100 CBA @ 115.50", {"side": "BUY", "quantity": Decimal("100"), "name": "CBA", "price": Decimal("115.50")}),
        ("S 200 BHP @ 44.10", {"side": "SELL", "quantity": Decimal("200"), "name": "BHP", "price": Decimal("44.10")}),
        ("10@172.50", {"quantity": Decimal("10"), "price": Decimal("172.50")}),
        ("B2B payment 100 @ 3", {}),  # a letter code only as a whole first word
        ("b 100 CBA @ 115.50", {}),  # and upper case
    ],
)
def test_commsec_letter_codes_and_bare_quantity_at_price(text: str, expected: dict[str, Any]) -> None:
    found = parse_trade_text(text)
    assert {key: found[key] for key in expected} == expected
    if not expected:
        assert "side" not in found


def test_a_generic_us_zone_name_after_the_time_is_new_york_with_daylight_saving() -> None:
    clean = build_cleaner("datetime", {"formats": ["%b %d %Y %H:%M:%S"]})
    assert clean(["Mar 15 2024 09:31:02 ET"]).isoformat() == "2024-03-15T13:31:02+00:00"  # EDT
    assert clean(["Jan 15 2024 09:31:02 ET"]).isoformat() == "2024-01-15T14:31:02+00:00"  # EST


def test_cusips_give_usd_at_the_weakest_confidence_when_nothing_names_a_currency() -> None:
    columns = ["Symbol", "Quantity", "Price", "Action", "TradeDate", "Amount", "CUSIP"]
    rows = [
        ["AAPL", "10", "172.5", "BUY", "2024-03-15", "-1725", "037833100"],
        ["MSFT", "-2", "405.1", "SELL", "2024-03-12", "810.2", "594918104"],
    ]
    currency = suggest_mapping(target="orders", columns=columns, sample_rows=rows)["fields"]["currency"]
    assert (currency["options"], currency["confidence"]) == ({"value": "USD"}, 0.3)
    assert "CUSIPs" in currency["reason"]
    # Not CUSIPs (ids of another shape): nothing assumed.
    other = [[*row[:6], "X-1"] for row in rows]
    fields = suggest_mapping(target="orders", columns=columns, sample_rows=other)["fields"]
    assert fields["currency"].get("options") != {"value": "USD"}
