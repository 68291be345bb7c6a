"""Mapping suggestion on real broker headers and sample rows (snippets copied from ../shared/corpus)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from formats.converters import compile_mapping
from formats.filters import compile_filters
from formats.suggest import learned_key, suggest_mapping


def table(lines: list[str], delimiter: str = ",") -> tuple[list[str], list[str], list[list[str]]]:
    """(header, unique column names as the reader makes them, data rows) of a CSV snippet."""
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    header, data = rows[0], rows[1:]
    columns: list[str] = []
    for position, cell in enumerate(header, start=1):
        name = cell.strip() or f"column_{position}"
        count = sum(1 for existing in columns if existing == name or existing.startswith(f"{name} ("))
        columns.append(f"{name} ({count + 1})" if count else name)
    return header, columns, data


def suggest(lines: list[str], delimiter: str = ",", **kwargs: Any) -> tuple[dict[str, Any], list[str], list[list[str]]]:
    header, columns, data = table(lines, delimiter)
    mapping = suggest_mapping(target="orders", columns=columns, sample_rows=data, header=header, **kwargs)
    return mapping, columns, data


def source(mapping: dict[str, Any], field: str) -> tuple[list[str], str]:
    spec = mapping["fields"][field]
    return spec["columns"], spec["converter"]


def convert_all(mapping: dict[str, Any], columns: list[str], data: list[list[str]]) -> list[dict[str, Any]]:
    """Run the suggestion through the real converters and filters; every kept row must convert cleanly."""
    compiled = compile_mapping(mapping["fields"], columns)
    keep = compile_filters(mapping["filters"], columns)
    converted = []
    for row in data:
        if keep(row) is None:
            values, errors = compiled.apply(row)
            assert errors == [], (row, errors)
            converted.append(values)
    return converted


# --- real brokers ------------------------------------------------------------------------------------------

# ibkr/irp-activity-trades-quoted-thousands.csv: the 'Trades' section without its 2 lead cells
IBKR_ACTIVITY_TRADES = [
    "DataDiscriminator,Asset Category,Currency,Account,Symbol,Date/Time,Exchange,Quantity,T. Price,Proceeds,"
    "Comm/Fee,Basis,Realized P/L,Code",
    'Order,Stocks,USD,U12345,NOK,"2021-01-27, 13:31:38",-,500,6.73,-3365,-2.5,3367.5,0,O',
    'Trade,Stocks,USD,U12345,NOK,"2021-01-27, 13:31:38",NYSE,500,6.73,-3365,-2.5,3367.5,0,O',
    'Order,Stocks,USD,U12345,NOK,"2021-01-27, 14:02:08",-,-500,7.45,3725,-2.6418225,-3367.5,354.858177,C;P',
    'Trade,Stocks,USD,U12345,NOK,"2021-01-27, 14:02:08",DRCTEDGE,-300,7.45,2235,-1.5850935,-2020.5,212.914907,C;P',
    "ClosedLot,Stocks,USD,,NOK,2021-01-27,,300,6.735,,,2020.5,212.914907,ST",
    'Order,Stocks,USD,U12345,NOK,"2021-01-28, 10:33:59",-,"1,000",4.775,-4775,-5,4780,0,O',
    'Order,Stocks,USD,U12345,NOK,"2021-01-28, 12:31:18",-,"-1,000",4.982,4982,-5.2291022,-4780,196.770898,C',
]


def test_it_maps_an_ibkr_activity_statement_trades_section() -> None:
    mapping, columns, data = suggest(IBKR_ACTIVITY_TRADES)
    assert source(mapping, "symbol") == (["Symbol"], "text")
    assert source(mapping, "quantity") == (["Quantity"], "decimal")
    assert source(mapping, "price") == (["T. Price"], "decimal")
    assert source(mapping, "commission") == (["Comm/Fee"], "decimal")
    assert source(mapping, "currency") == (["Currency"], "currency")
    assert source(mapping, "account") == (["Account"], "text")
    assert source(mapping, "executed_at") == (["Date/Time"], "datetime")
    assert "%Y-%m-%d, %H:%M:%S" in mapping["fields"]["executed_at"]["options"]["formats"]


def test_it_reads_the_side_from_the_sign_of_the_quantity_when_there_is_no_side_column() -> None:
    mapping, columns, data = suggest(IBKR_ACTIVITY_TRADES)
    side = mapping["fields"]["side"]
    assert (side["columns"], side["converter"]) == (["Quantity"], "side_from_sign")
    assert side["options"]["negative_is"] == "SELL"
    assert "signed" in side["reason"]
    assert mapping["fields"]["quantity"]["options"]["abs"] is True


def test_it_keeps_only_the_order_rows_of_an_ibkr_activity_statement() -> None:
    mapping, columns, data = suggest(IBKR_ACTIVITY_TRADES)
    assert {"column": "DataDiscriminator", "op": "in", "values": ["Order"]} in mapping["filters"]
    orders = convert_all(mapping, columns, data)
    assert [(order["side"], str(order["quantity"])) for order in orders] == [
        ("BUY", "500"),
        ("SELL", "500"),
        ("BUY", "1000"),
        ("SELL", "1000"),
    ]


IBKR_FLEX_TRADES = [  # ibkr/e2g-flex-trades.csv: a user-chosen Flex Query field subset without Symbol
    '"Buy/Sell","TradeDate","ISIN","Quantity","TradePrice","TradeMoney","CurrencyPrimary","IBCommission",'
    '"IBCommissionCurrency"',
    '"BUY","20230522","CH0111762537","7","282.7","1978.9","CHF","-5","CHF"',
    '"BUY","20230522","US9220427424","95","93.78","8909.1","USD","-1","USD"',
    '"BUY","20230803","US9220427424","1","97.84","97.84","USD","-0.979","USD"',
    '"SELL","20231228","US9220427424","-2","103.18","-206.36","USD","-1","USD"',
]


def test_it_maps_an_ibkr_flex_query_and_falls_back_to_the_isin_for_the_symbol() -> None:
    mapping, columns, data = suggest(IBKR_FLEX_TRADES)
    assert source(mapping, "side") == (["Buy/Sell"], "side")
    assert source(mapping, "quantity") == (["Quantity"], "decimal")
    assert source(mapping, "price") == (["TradePrice"], "decimal")
    assert source(mapping, "currency") == (["CurrencyPrimary"], "currency")
    assert source(mapping, "commission") == (["IBCommission"], "decimal")
    assert source(mapping, "executed_at") == (["TradeDate"], "datetime")
    assert mapping["fields"]["executed_at"]["options"]["formats"] == ["%Y%m%d"]
    assert source(mapping, "symbol") == (["ISIN"], "text")
    assert mapping["fields"]["symbol"]["confidence"] < 0.5
    assert mapping["filters"] == []
    assert len(convert_all(mapping, columns, data)) == 4


IBKR_FLEX_FULL = [  # ibkr/ghostfolio-flex-trades-all-fields.csv: a contiguous-enough subset of the ~80 fields
    '"CurrencyPrimary","Symbol","DateTime","TradeDate","TransactionType","Quantity","TradePrice","Buy/Sell",'
    '"ClientAccountID","TradeID","ReportDate","IBCommission","IBCommissionCurrency","OrderTime"',
    '"USD","VTI","20230403;095853","20230403","ExchTrade","17","204.3473","BUY","U1234567","1234567890",'
    '"20230403","-1","USD","20230403;095853"',
]


def test_it_prefers_the_date_time_column_with_a_time_over_the_trade_date() -> None:
    mapping, columns, data = suggest(IBKR_FLEX_FULL)
    assert source(mapping, "executed_at") == (["DateTime"], "datetime")
    assert mapping["fields"]["executed_at"]["options"]["formats"] == ["%Y%m%d;%H%M%S"]
    assert source(mapping, "symbol") == (["Symbol"], "text")
    assert source(mapping, "account") == (["ClientAccountID"], "text")
    assert source(mapping, "broker_trade_id") == (["TradeID"], "text")
    assert source(mapping, "currency") == (["CurrencyPrimary"], "currency")


SCHWAB = [  # schwab/cgtcalc-transactions-2023.csv plus 'as of' rows of schwab/e2g-transactions.csv
    '"Date","Action","Symbol","Description","Quantity","Price","Fees & Comm","Amount"',
    '"03/01/2022","MoneyLink Transfer","","Tfr BANK","","","","$1000000.00"',
    '"10/09/2023","Buy","BAR","BAR CORP ROUNDING CASE","300","$135.0075","$1.34","-$40503.61"',
    '"10/24/2023","Sell","BAR","BAR CORP","300","$140.35","$1.34","$42103.66"',
    '"12/01/2023","Buy","FOO","FOO CORP","500","$90.1234","","-$45061.70"',
    '"09/08/2023","Sell","SNAXX","SCHWAB VALUE ADVANTAGE MONEY ULTRA","500,135","$1.00","","$500135.00"',
    '"07/15/2024 as of 07/12/2024","Stock Split","AVGO","BROADCOM INC","9","$170.067","",""',
    '"10/14/2024 as of 10/10/2024","Cash In Lieu","SCHB","SCHWAB US LARGE CAP ETF","","","","$5.49"',
]


def test_it_maps_a_schwab_export_with_as_of_dates_and_dollar_prices() -> None:
    mapping, columns, data = suggest(SCHWAB)
    assert source(mapping, "symbol") == (["Symbol"], "text")
    assert source(mapping, "side") == (["Action"], "side")
    assert source(mapping, "quantity") == (["Quantity"], "decimal")
    assert source(mapping, "price") == (["Price"], "decimal")
    assert source(mapping, "commission") == (["Fees & Comm"], "decimal")
    executed_at = mapping["fields"]["executed_at"]
    assert executed_at["columns"] == ["Date"]
    assert executed_at["options"] == {"formats": ["%m/%d/%Y"], "tz": "UTC", "split_on": "as of", "part": 0}


def test_it_suggests_a_constant_currency_when_the_prices_carry_a_dollar_sign() -> None:
    mapping, columns, data = suggest(SCHWAB)
    currency = mapping["fields"]["currency"]
    assert (currency["columns"], currency["converter"], currency["options"]) == (
        [],
        "constant",
        {"value": "USD"},
    )
    assert currency["confidence"] < 0.6


def test_it_filters_a_schwab_action_column_to_its_trades() -> None:
    mapping, columns, data = suggest(SCHWAB)
    assert mapping["filters"] == [{"column": "Action", "op": "in", "values": ["Buy", "Sell"]}]
    orders = convert_all(mapping, columns, data)
    assert [(order["side"], str(order["quantity"]), str(order["price"])) for order in orders] == [
        ("BUY", "300", "135.0075"),
        ("SELL", "300", "140.35"),
        ("BUY", "500", "90.1234"),
        ("SELL", "500135", "1.00"),
    ]


DEGIRO_CZ = [  # degiro/tuxedeg-transactions-cz.csv: Czech headers, unnamed currency columns
    "Datum,Čas,Produkt,ISIN,Reference,Venue,Počet,Cena,,Hodnota v domácí měně,,Hodnota,,Směnný kurz,"
    "Transaction and/or third,,Celkem,,ID objednávky",
    "08-01-2020,15:30,AMAZON.COM INC. - COM,US0231351067,NDQ,CDED,-1,1897.2600,USD,1897.26,USD,1707.11,EUR,"
    "1.1114,-0.50,EUR,1706.61,EUR,7955f0f1-a0b2-455e-bf94-701ec4c9100d",
    "07-01-2020,21:42,XPEL INC. - COMMON STOCK,US98379L1008,NDQ,CDED,6,14.4700,USD,-86.82,USD,-77.84,EUR,"
    "1.1154,-0.52,EUR,-78.36,EUR,ed7732a6-b232-491b-b335-38936478fd6a",
    "30-12-2019,17:19,XPEL INC. - COMMON STOCK,US98379L1008,NDQ,XNAS,6,14.5800,USD,-87.48,USD,-77.92,EUR,"
    "1.1226,-0.52,EUR,-78.44,EUR,6b987be6-232e-41bf-ace2-326f53d4a9c6",
    "13-12-2019,15:40,ADVANCED MICRO DEVICES,US0079031078,NDQ,ARCX,-3,42.1800,USD,126.54,USD,113.51,EUR,"
    "1.1148,-0.51,EUR,113.00,EUR,87a9d22b-2bd1-437c-ae2b-060b64d72496",
]


def test_it_maps_a_czech_degiro_export_joining_date_and_time() -> None:
    mapping, columns, data = suggest(DEGIRO_CZ)
    assert source(mapping, "symbol") == (["ISIN"], "text")  # the ISIN identifies the security better than the name
    assert source(mapping, "quantity") == (["Počet"], "decimal")
    assert source(mapping, "side") == (["Počet"], "side_from_sign")
    assert source(mapping, "price") == (["Cena"], "decimal")
    assert source(mapping, "commission") == (["Transaction and/or third"], "decimal")
    assert source(mapping, "broker_trade_id") == (["ID objednávky"], "text")
    executed_at = mapping["fields"]["executed_at"]
    assert executed_at["columns"] == ["Datum", "Čas"]
    assert executed_at["options"]["formats"] == ["%d-%m-%Y %H:%M"]


def test_it_takes_the_currency_from_the_unnamed_column_after_the_price() -> None:
    mapping, columns, data = suggest(DEGIRO_CZ)
    assert columns[8] == "column_9"
    assert source(mapping, "currency") == (["column_9"], "currency")
    assert "after 'Cena'" in mapping["fields"]["currency"]["reason"]
    orders = convert_all(mapping, columns, data)
    assert [(order["side"], order["currency"]) for order in orders] == [
        ("SELL", "USD"),
        ("BUY", "USD"),
        ("BUY", "USD"),
        ("SELL", "USD"),
    ]


AVANZA = [  # avanza/e2g-transactions.csv: Swedish headers, semicolons, decimal comma, signed sells
    "Datum;Konto;Typ av transaktion;Värdepapper/beskrivning;Antal;Kurs;Belopp;Transaktionsvaluta;"
    "Courtage (SEK);Valutakurs;Instrumentvaluta;ISIN;Resultat",
    "2025-01-14;Savings;Uttag;Uttag till X;;;-54400;SEK;;;;;",
    "2025-01-13;Savings;Sälj;DNB Global Indeks S;-352,033838;154,665276;54447,41;SEK;0;;SEK;NO0010827280;14650,376974",
    "2019-04-04;8346000;Köp;Avanza 75;6,3572;191,120305;-1214,99;SEK;0;;SEK;SE0004841500;",
    "2019-04-01;8346000;Insättning;Insättning från Avanzakonto Y;;;1215;SEK;0;;;;",
    "2022-09-19;Investments;Köp;CoinShares XBT Provider Bitcoin Tracker One;2;890,47;-1800;SEK;19;;SEK;SE0007126000;",
]


def test_it_maps_a_swedish_avanza_export() -> None:
    mapping, columns, data = suggest(AVANZA, delimiter=";")
    assert source(mapping, "account") == (["Konto"], "text")
    assert source(mapping, "symbol") == (["ISIN"], "text")  # preferred over the names
    assert source(mapping, "side") == (["Typ av transaktion"], "side")
    assert source(mapping, "quantity") == (["Antal"], "decimal")
    assert source(mapping, "price") == (["Kurs"], "decimal")
    assert source(mapping, "commission") == (["Courtage (SEK)"], "decimal")
    assert source(mapping, "currency") == (["Transaktionsvaluta"], "currency")
    assert source(mapping, "executed_at") == (["Datum"], "datetime")


def test_it_detects_the_decimal_comma_and_maps_the_swedish_side_words() -> None:
    mapping, columns, data = suggest(AVANZA, delimiter=";")
    assert mapping["fields"]["quantity"]["options"] == {"decimal_sep": ",", "abs": True}
    assert mapping["fields"]["price"]["options"] == {"decimal_sep": ","}
    assert mapping["fields"]["side"]["options"] == {"map": {"Köp": "BUY", "Sälj": "SELL"}}
    assert mapping["filters"] == [{"column": "Typ av transaktion", "op": "in", "values": ["Köp", "Sälj"]}]
    orders = convert_all(mapping, columns, data)
    assert [(order["side"], str(order["quantity"]), str(order["price"])) for order in orders] == [
        ("SELL", "352.033838", "154.665276"),
        ("BUY", "6.3572", "191.120305"),
        ("BUY", "2", "890.47"),
    ]


TRADING212 = [  # trading212/cgtcalc-2020.csv: older column set with '(GBP)' in headers
    "Action,Time,ISIN,Ticker,Name,No. of shares,Price / share,Currency (Price / share),Exchange rate,"
    "Result (GBP),Total (GBP),Withholding tax,Currency (Withholding tax),Charge amount (GBP),"
    "Transaction fee (GBP),Finra fee,Currency (Finra fee),Notes,ID",
    'Deposit,2020-06-24 04:06:06,,,,,,,,,9000.00,,,9000.00,,,"Transaction ID: xxxxxxx",,123',
    'Market buy,2020-06-24 14:33:50,IE00BK5BQW10,VNRG,"VNRG",1.0000000000,10.74,USD,1.33080,,8.07,,,,,,GBP,,124',
    'Limit buy,2020-11-27 14:30:11,US67066G1040,NVDA,"Nvidia",1.0000000000,535.00,USD,1.33413,,401.01,,,,,,'
    "GBP,,EOF609036047",
    'Market sell,2021-02-01 14:30:40,US36467W1099,GME,"GameStop",200.0000000000,225.00,USD,1.38661,-421.96,'
    "32453.25,,,,,,GBP,,EOF1022055909",
    'Dividend (Ordinary),2021-04-02 10:15:07,US67066G1040,NVDA,"Nvidia",1.0000000000,0.14,USD,Not available,,'
    "0.10,0.02,USD,,,,GBP,,",
]


def test_it_maps_a_trading_212_export() -> None:
    mapping, columns, data = suggest(TRADING212)
    assert source(mapping, "side") == (["Action"], "side")
    assert source(mapping, "symbol") == (["Ticker"], "text")
    assert source(mapping, "quantity") == (["No. of shares"], "decimal")
    assert source(mapping, "price") == (["Price / share"], "decimal")
    assert source(mapping, "currency") == (["Currency (Price / share)"], "currency")
    assert source(mapping, "executed_at") == (["Time"], "datetime")
    assert source(mapping, "broker_trade_id") == (["ID"], "text")


def test_it_keeps_trading_212_order_kinds_not_seen_in_the_samples() -> None:
    mapping, columns, data = suggest(TRADING212)
    [side_filter] = mapping["filters"]
    assert side_filter["column"] == "Action"
    assert side_filter["op"] == "in"
    assert {"Market buy", "Market sell", "Limit buy", "Limit sell", "Stop buy", "Stop sell"} <= set(
        side_filter["values"]
    )
    assert "Deposit" not in side_filter["values"]
    assert mapping["fields"]["side"]["options"]["map"]["Market sell"] == "SELL"
    assert len(convert_all(mapping, columns, data)) == 3


SWISSQUOTE = [  # swissquote/e2g-transactions.csv
    "Date;Order #;Transaction;Symbol;Name;ISIN;Quantity;Unit price;Costs;Accrued Interest;Net Amount;Balance;Currency",
    "24-08-2022 07:00:15;00000000;Debit;;;;1.0;2000.00;2.00;0.00;-2002.00;6612.40;CHF",
    "23-08-2022 12:00:25;114723639;Forex credit;;;;1.0;1995.39;0.00;0.00;1995.39;2937.32;EUR",
    "10-08-2022 15:30:02;113947121;Buy;ORFN;CONSTRAINED CAPITAL ESG ORPHAN;US8863645383;200.0;19.85;5.96;"
    "0.00;-3975.96;168660.08;USD",
    "09-08-2022 12:22:24;113885172;Buy;XDWU;MSCI World Utilities UCITS ETF;IE00BM67HQ30;640.0;31.255;44.35;"
    "0.00;-20047.55;8614.40;CHF",
    "09-08-2022 10:37:37;113880776;Sell;VDEM;VANGUARD FTSE EMERG MARKET UCI;IE00B3VVMM84;537.0;55.945;180.91;"
    "0.00;29861.56;304217.01;USD",
]


def test_it_maps_a_swissquote_export_with_day_first_dates() -> None:
    mapping, columns, data = suggest(SWISSQUOTE, delimiter=";")
    assert source(mapping, "side") == (["Transaction"], "side")
    assert source(mapping, "symbol") == (["Symbol"], "text")
    assert source(mapping, "quantity") == (["Quantity"], "decimal")
    assert source(mapping, "price") == (["Unit price"], "decimal")
    assert source(mapping, "commission") == (["Costs"], "decimal")
    assert source(mapping, "currency") == (["Currency"], "currency")
    assert source(mapping, "broker_trade_id") == (["Order #"], "text")
    assert source(mapping, "executed_at") == (["Date"], "datetime")
    assert mapping["fields"]["executed_at"]["options"]["formats"] == ["%d-%m-%Y %H:%M:%S"]
    assert mapping["filters"] == [{"column": "Transaction", "op": "in", "values": ["Buy", "Sell"]}]
    assert len(convert_all(mapping, columns, data)) == 3


DESJARDINS = [  # desjardins-disnat/e2g-transactions.csv: French headers, '-' placeholders, decimal comma
    "Date de transaction,Date de règlement,Type de transaction,Classe d'actif,Symbole,Description,Marché,"
    "Quantité,Prix,Devise du prix,Commission payée,Montant de l'opération,Devise du compte",
    '-,2025-09-29,DIVIDENDE SOCIÉTÉ FIDUCIE,Actions,XIC,ISHRS CORE S&P/TSX CAPPED,-,9,-,CAN,0,"2,53",CAN',
    '-,2025-09-04,TAXE DE VENTE DU QUÉBEC,-,-,TVQ FRAIS REER 2025,-,0,-,CAN,0,"-9,98",CAN',
    "2025-08-01,2025-08-05,VENTE,Actions,CASH-C,GLB X HIGH INT SVGS-A ETF,CAN,-10,50,CAN,0,500,CAN",
    '2025-07-31,2025-08-01,ACHAT,Actions,VEQT-C,VANGUARD ALL-EQ ETF PTFL,CAN,10,"49,38",CAN,0,"-493,8",CAN',
    '2025-07-31,2025-08-01,ACHAT,Actions,DMEC-C,DESJARDINS CDN EQUITY ETF,CAN,5,"25,46",CAN,0,"-127,3",CAN',
]


def test_it_maps_a_french_desjardins_export() -> None:
    mapping, columns, data = suggest(DESJARDINS)
    assert source(mapping, "executed_at") == (["Date de transaction"], "datetime")
    assert source(mapping, "side") == (["Type de transaction"], "side")
    assert source(mapping, "symbol") == (["Symbole"], "text")
    assert source(mapping, "quantity") == (["Quantité"], "decimal")
    assert source(mapping, "price") == (["Prix"], "decimal")
    assert source(mapping, "currency") == (["Devise du prix"], "currency")
    assert source(mapping, "commission") == (["Commission payée"], "decimal")
    assert mapping["fields"]["price"]["options"]["decimal_sep"] == ","


def test_it_does_not_take_a_sales_tax_for_a_sale() -> None:
    mapping, columns, data = suggest(DESJARDINS)
    assert mapping["filters"] == [{"column": "Type de transaction", "op": "in", "values": ["ACHAT", "VENTE"]}]
    orders = convert_all(mapping, columns, data)
    assert [(order["side"], order["currency"], str(order["price"])) for order in orders] == [
        ("SELL", "CAD", "50"),
        ("BUY", "CAD", "49.38"),
        ("BUY", "CAD", "25.46"),
    ]


REVOLUT_INVEST = [  # revolut/e2g-invest.csv: '$' in amounts, 'BUY - MARKET'
    "Date,Ticker,Type,Quantity,Price per share,Total Amount,Currency,FX Rate",
    "2019-12-02T08:23:08.459586Z,,CASH WITHDRAWAL,,,-$30.93,USD,1.1019",
    "2023-09-22T13:30:10.514Z,O,BUY - MARKET,1.63453043,$52.07,$85.11,USD,1.0665",
    "2023-07-14T13:30:00.797Z,MA,SELL - MARKET,0.1998348,$402.13,$80.34,USD,1.1241",
    "2019-12-13T08:40:00.835101Z,MSFT,DIVIDEND,,,$0.08,USD,1.1179",
]


def test_it_maps_a_revolut_stocks_export() -> None:
    mapping, columns, data = suggest(REVOLUT_INVEST)
    assert source(mapping, "executed_at") == (["Date"], "datetime")
    assert mapping["fields"]["executed_at"]["options"]["formats"] == ["iso"]
    assert source(mapping, "symbol") == (["Ticker"], "text")
    assert source(mapping, "side") == (["Type"], "side")
    assert source(mapping, "quantity") == (["Quantity"], "decimal")
    assert source(mapping, "price") == (["Price per share"], "decimal")
    assert source(mapping, "currency") == (["Currency"], "currency")
    assert {"BUY - MARKET", "SELL - MARKET"} <= set(mapping["filters"][0]["values"])
    assert len(convert_all(mapping, columns, data)) == 2


REVOLUT_CRYPTO = [  # revolut/e2g-crypto.csv: prices in several currencies, 'Mon D, YYYY, h:mm:ss AM' dates
    "Symbol,Type,Quantity,Price,Value,Fees,Date",
    'BTC,Buy,0.00056077,"89,162.28 SEK",50.00 SEK,0.00 SEK,"May 5, 2020, 10:10:57 PM"',
    'BTC,Sell,0.00001082,"86,557.95 SEK",0.93 SEK,0.00 SEK,"Jun 2, 2020, 9:10:31 PM"',
    'BTC,Send,0.00056077,"137,211.36 SEK",76.94 SEK,0.00 SEK,"Nov 9, 2020, 3:50:00 AM"',
    'BTC,Buy,0.00027963,"€35,761.54",€10.00,€0.24,"Mar 8, 2022, 2:08:54 PM"',
    'BTC,Buy,0.00009518,"$105,058.55",$10.00,$0.24,"May 9, 2025, 10:03:50 AM"',
]


def test_it_reads_the_currency_from_prices_written_in_several_currencies() -> None:
    mapping, columns, data = suggest(REVOLUT_CRYPTO)
    assert source(mapping, "currency") == (["Price"], "currency")
    assert mapping["fields"]["executed_at"]["options"]["formats"] == ["%b %d, %Y, %I:%M:%S %p"]
    orders = convert_all(mapping, columns, data)
    assert [order["currency"] for order in orders] == ["SEK", "SEK", "EUR", "USD"]


# --- behaviour ---------------------------------------------------------------------------------------------


def test_it_returns_the_full_mapping_document() -> None:
    mapping, columns, data = suggest(SWISSQUOTE, delimiter=";")
    assert mapping["version"] == 1
    assert mapping["reader"] == {"section": None, "header_line": None}
    for spec in mapping["fields"].values():
        assert set(spec) == {"columns", "converter", "options", "confidence", "reason"}
        assert 0.0 <= spec["confidence"] <= 1.0
        assert spec["reason"]
    assert json.loads(json.dumps(mapping)) == mapping


def test_it_is_deterministic() -> None:
    first, _, _ = suggest(DEGIRO_CZ)
    second, _, _ = suggest(DEGIRO_CZ)
    assert first == second


def test_it_explains_its_choices_in_sentences() -> None:
    mapping, columns, data = suggest(SCHWAB)
    assert mapping["fields"]["quantity"]["reason"].startswith("header 'Quantity' = quantity (synonym)")
    assert "values parse as dates with format %m/%d/%Y (7/7 samples)" in mapping["fields"]["executed_at"]["reason"]


def test_it_lets_what_admins_approved_win_over_synonyms() -> None:
    lines = ["Trade Px,Price,Qty,Symbol,Side,Date,Ccy", "101.5,99.0,10,AAPL,BUY,2024-01-02,USD"]
    without, _, _ = suggest(lines)
    assert source(without, "price") == (["Price"], "decimal")
    learned = {"trade px": {"price": 2}}
    mapping, _, _ = suggest(lines, learned=learned)
    assert source(mapping, "price") == (["Trade Px"], "decimal")
    assert "admins mapped 'Trade Px' to price in 2 approved formats" in mapping["fields"]["price"]["reason"]
    assert mapping["fields"]["price"]["confidence"] >= 0.97


def test_it_ignores_learned_evidence_that_the_values_contradict() -> None:
    lines = ["Stamp,Price,Qty,Symbol,Side,Ccy", "hello,99.0,10,AAPL,BUY,USD"]
    mapping, _, _ = suggest(lines, learned={"stamp": {"executed_at": 3}})
    assert mapping["fields"]["executed_at"]["columns"] == []


def test_it_names_the_currency_of_the_headers_when_there_is_no_currency_column() -> None:
    lines = [
        "Action,Time,Ticker,No. of shares,Price / share,Result (GBP),Total (GBP)",
        "Market buy,2020-06-24 14:33:50,VNRG,1.0000000000,10.74,,8.07",
    ]
    mapping, _, _ = suggest(lines)
    currency = mapping["fields"]["currency"]
    assert (currency["columns"], currency["converter"], currency["options"]) == (
        [],
        "constant",
        {"value": "GBP"},
    )
    assert "Result (GBP)" in currency["reason"]
    assert currency["confidence"] <= 0.5


def test_it_leaves_the_currency_unmapped_when_nothing_names_one() -> None:
    lines = ["Date,Action,Symbol,Quantity,Price", "2024-01-02,Buy,AAPL,10,99.5"]
    mapping, _, _ = suggest(lines)
    currency = mapping["fields"]["currency"]
    assert currency["columns"] == []
    assert currency["confidence"] == 0.0
    assert currency["reason"] == "no column looks like a currency"


def test_it_picks_the_day_first_format_when_a_day_is_above_twelve() -> None:
    lines = [
        "Date,Type,Units,Price,Currency,Symbol",
        "01/01/2024 05:50:54,Buy,1,2,USD,AMD",
        "15/01/2024 13:09:09,Sell,1,2,USD,AMD",
    ]
    mapping, _, _ = suggest(lines)
    assert mapping["fields"]["executed_at"]["options"]["formats"] == ["%d/%m/%Y %H:%M:%S"]
    assert "ambiguous" not in mapping["fields"]["executed_at"]["reason"]


def test_it_says_when_day_and_month_cannot_be_told_apart() -> None:
    lines = [
        "Date,Type,Units,Price,Currency,Symbol",
        "01/02/2024,Buy,1,2,USD,AMD",
        "03/04/2024,Sell,1,2,USD,AMD",
    ]
    mapping, _, _ = suggest(lines)
    executed_at = mapping["fields"]["executed_at"]
    assert "ambiguous" in executed_at["reason"]
    assert executed_at["confidence"] < 0.85


def test_it_prefers_the_trade_date_over_the_settlement_date() -> None:
    lines = [
        "Settlement Date,Trade Date,Action,Symbol,Quantity,Price,Currency",
        "01/05/2024,01/03/2024,Buy,AAPL,1,100,USD",
    ]
    mapping, _, _ = suggest(lines)
    assert source(mapping, "executed_at") == (["Trade Date"], "datetime")


def test_it_uses_each_column_for_one_field_only() -> None:
    mapping, _, _ = suggest(TRADING212)
    used = [column for name, spec in mapping["fields"].items() if name != "side" for column in spec["columns"]]
    assert len(used) == len(set(used))


def test_it_keeps_free_text_trade_rows_by_their_first_words() -> None:
    lines = [
        "Run Date,Account,Action,Symbol,Quantity,Price,Currency",
        "12/03/2025,IRA,YOU BOUGHT WASTE MANAGEMENT INC (WM) (Margin),WM,2,210.5,USD",
        "12/02/2025,IRA,YOU SOLD VALVOLINE INC COM (VVV) (Margin),VVV,-5,35.1,USD",
        "12/01/2025,IRA,DIVIDEND RECEIVED VANGUARD TOTAL BND MRKT (BND) (Cash),BND,0,,USD",
    ]
    mapping, columns, data = suggest(lines)
    assert mapping["filters"] == [{"column": "Action", "op": "startswith", "values": ["YOU BOUGHT", "YOU SOLD"]}]
    assert "map" not in mapping["fields"]["side"]["options"]
    assert [order["side"] for order in convert_all(mapping, columns, data)] == ["BUY", "SELL"]


def test_it_splits_pair_symbols_on_their_separator() -> None:
    lines = [
        "Date,Type,Details,Units,Price,Currency",
        "02/01/2024 00:10:33,Buy,NKE/USD,1,100,USD",
        "15/01/2024 00:10:33,Sell,LRCX/USD,1,100,USD",
    ]
    mapping, _, _ = suggest(lines)
    assert mapping["fields"]["symbol"]["options"] == {"upper": True, "split_on": "/", "part": 0}


def test_it_copes_with_no_sample_rows() -> None:
    mapping = suggest_mapping(target="orders", columns=["Symbol", "Quantity", "Price"], sample_rows=[])
    assert source(mapping, "symbol") == (["Symbol"], "text")
    assert mapping["fields"]["symbol"]["confidence"] < 0.9


@pytest.mark.parametrize(
    ("cell", "key"),
    [
        ("Värdepapper/beskrivning", "vardepapper beskrivning"),
        ("tradeCreatedAt", "trade created at"),
        ("Comm/Fee", "comm fee"),
        ("\ufeffČas ", "cas"),
        ("Price / share", "price share"),
        ("  Trade   Px ", "trade px"),
    ],
)
def test_it_normalises_header_cells_for_learned_evidence(cell: str, key: str) -> None:
    assert learned_key(cell) == key
