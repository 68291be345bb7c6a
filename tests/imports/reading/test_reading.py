"""The streaming CSV reader: detection and records on synthetic files for each rule, then the real corpus.

Runs without a database: `.venv/bin/python -m pytest -q tests/imports/reading/test_reading.py` (or, without
pytest-django, add `-p no:django --noconftest -o addopts=""`).
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from config.errors import UnreadableFile
from imports import reading
from imports.reading import (
    FileLayout,
    ReaderOptions,
    Record,
    Skipped,
    detect_layout,
    iter_records,
    sample_records,
)

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"
needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(),
    reason=f"the broker corpus is not at {CORPUS} (it sits next to the project in the shared workspace; "
    "GPL/AGPL files are not copied into this repository)",
)


def write(tmp_path: Path, content: str | bytes, *, encoding: str = "utf-8", name: str = "export.csv") -> Path:
    """A file holding exactly these bytes (str is encoded without newline translation)."""
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def read(path: Path, options: ReaderOptions | None = None, **limits: int) -> tuple[FileLayout, list, list]:
    """Layout, records and skipped lines of a file."""
    layout = detect_layout(path, options, **limits)
    items = list(iter_records(path, layout, **{k: v for k, v in limits.items() if k == "max_field_chars"}))
    return layout, [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, Skipped)]


def cells(records: list[Record]) -> list[list[str]]:
    return [record.cells for record in records]


def lines(items: list[Record] | list[Skipped]) -> list[int]:
    return [item.line for item in items]


def reasons(skipped: list[Skipped]) -> dict[int, str]:
    return {item.line: item.reason for item in skipped}


def unreadable(path: Path, options: ReaderOptions | None = None, **limits: int) -> str:
    """The message of the UnreadableFile that reading the file raises."""
    with pytest.raises(UnreadableFile) as caught:
        read(path, options, **limits)
    return caught.value.message


# --------------------------------------------------------------------------------------------------
# Encodings


def test_it_reads_utf8_with_accents(tmp_path: Path) -> None:
    layout, records, _ = read(write(tmp_path, "Datum,Värdepapper,Antal\n2025-01-13,Sälj DNB,3\n"))
    assert layout.encoding == "utf-8"
    assert layout.header == ["Datum", "Värdepapper", "Antal"]
    assert cells(records) == [["2025-01-13", "Sälj DNB", "3"]]


def test_it_removes_a_utf8_bom_from_the_first_header_cell(tmp_path: Path) -> None:
    layout, records, _ = read(write(tmp_path, "\ufeffDate,Symbol\n2024-01-02,AAPL\n"))
    assert layout.encoding == "utf-8-sig"
    assert layout.header == ["Date", "Symbol"]
    assert cells(records) == [["2024-01-02", "AAPL"]]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_it_reads_excel_unicode_text_in_utf16_with_a_bom(tmp_path: Path, encoding: str) -> None:
    bom = codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE
    text = "Date\tSymbol\tAmount\r\n2024-01-02\tAAPL\t1 234,50 €\r\n"
    layout, records, _ = read(write(tmp_path, bom + text.encode(encoding)))
    assert (layout.encoding, layout.delimiter, layout.newline) == ("utf-16", "\t", "CRLF")
    assert layout.header == ["Date", "Symbol", "Amount"]
    assert cells(records) == [["2024-01-02", "AAPL", "1 234,50 €"]]


def test_it_recognises_utf16_without_a_bom_from_its_nul_pattern(tmp_path: Path) -> None:
    layout, records, _ = read(write(tmp_path, "Date;Qty\n2024-01-02;5\n", encoding="utf-16-le"))
    assert (layout.encoding, layout.delimiter) == ("utf-16-le", ";")
    assert cells(records) == [["2024-01-02", "5"]]


def test_it_reads_windows_cp1252_when_the_bytes_are_not_utf8(tmp_path: Path) -> None:
    layout, records, _ = read(write(tmp_path, "Value (£),Fee (€)\n12,1\n", encoding="cp1252"))
    assert layout.encoding == "cp1252"
    assert layout.header == ["Value (£)", "Fee (€)"]
    assert cells(records) == [["12", "1"]]


def test_it_falls_back_to_latin1_when_the_bytes_are_not_valid_cp1252_either(tmp_path: Path) -> None:
    # 0x81 is undefined in cp1252; latin-1 maps every byte.
    layout, records, _ = read(write(tmp_path, b"Name,Code\nCaf\xe9,\x81\n"))
    assert layout.encoding == "latin-1"
    assert cells(records) == [["Café", "\x81"]]


def test_it_switches_to_cp1252_when_invalid_utf8_appears_after_the_detection_prefix(tmp_path: Path) -> None:
    rows = "".join(f"2024-01-02,ROW{i},1.5\n" for i in range(20_000))  # > HEAD_BYTES of plain ASCII
    path = write(tmp_path, b"Date,Name,Price\n" + rows.encode() + b"2024-01-03,Soci\xe9t\xe9 G\xe9n\xe9rale,2\n")
    assert path.stat().st_size > reading.HEAD_BYTES
    layout, records, _ = read(path)
    assert layout.encoding == "cp1252"
    assert records[-1].cells == ["2024-01-03", "Société Générale", "2"]


def test_it_names_the_line_of_bytes_that_a_forced_encoding_cannot_decode(tmp_path: Path) -> None:
    path = write(tmp_path, b"Name,City\nA,Paris\nB,K\xf6ln\n")
    message = unreadable(path, ReaderOptions(encoding="utf-8"))
    assert message.startswith("Line 3 cannot be read as utf-8: invalid start byte (byte 0xF6).")


def test_it_refuses_a_file_whose_utf8_bom_is_followed_by_invalid_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, codecs.BOM_UTF8 + b"Name,City\nB,K\xf6ln\n")
    assert "Line 2 cannot be read as utf-8-sig although it starts with a byte-order mark" in unreadable(path)


def test_it_refuses_an_unknown_forced_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n1,2\n")
    assert unreadable(path, ReaderOptions(encoding="klingon-8")) == 'Unknown encoding "klingon-8".'


# --------------------------------------------------------------------------------------------------
# Delimiters, quoting, newlines


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_it_detects_each_delimiter(tmp_path: Path, delimiter: str) -> None:
    rows = [
        ["Date", "Symbol", "Qty", "Price"],
        ["2024-01-02", "AAPL", "10", "185.5"],
        ["2024-01-03", "MSFT", "5", "370"],
    ]
    layout, records, _ = read(write(tmp_path, "".join(delimiter.join(row) + "\n" for row in rows)))
    assert layout.delimiter == delimiter
    assert layout.quotechar == '"'
    assert cells(records) == rows[1:]


def test_it_detects_semicolons_in_a_decimal_comma_file(tmp_path: Path) -> None:
    text = "Datum;Antal;Kurs\n2025-01-13;-352,033838;154,665276\n2025-01-10;1,5;2,25\n2025-01-09;3;4,1\n"
    layout, records, _ = read(write(tmp_path, text))
    assert layout.delimiter == ";"
    assert cells(records)[0] == ["2025-01-13", "-352,033838", "154,665276"]


def test_it_ignores_delimiter_candidates_inside_quoted_fields(tmp_path: Path) -> None:
    text = 'Symbol,Note,Amount\nAAPL,"a;b;c|d|e;f",1\nMSFT,"x;y;z|w|v;u",2\nIBM,"p;q;r|s|t;o",3\n'
    layout, records, _ = read(write(tmp_path, text))
    assert layout.delimiter == ","
    assert cells(records)[0] == ["AAPL", "a;b;c|d|e;f", "1"]


def test_it_uses_a_forced_delimiter(tmp_path: Path) -> None:
    layout, records, _ = read(write(tmp_path, "a b,c\n1 2,3\n"), ReaderOptions(delimiter=" "))
    assert layout.delimiter == " "
    assert layout.header == ["a", "b,c"]
    assert cells(records) == [["1", "2,3"]]


def test_it_reads_quoted_fields_with_delimiters_quotes_and_newlines(tmp_path: Path) -> None:
    text = 'Symbol,Description,Amount\nAAPL,"Apple, Inc. ""common""\nline two",1\nMSFT,Microsoft,2\n'
    layout, records, _ = read(write(tmp_path, text))
    assert cells(records) == [["AAPL", 'Apple, Inc. "common"\nline two', "1"], ["MSFT", "Microsoft", "2"]]
    assert lines(records) == [2, 4]


@pytest.mark.parametrize(("newline", "name"), [("\r\n", "CRLF"), ("\n", "LF"), ("\r", "CR")])
def test_it_reads_each_line_ending_and_numbers_lines_alike(tmp_path: Path, newline: str, name: str) -> None:
    text = newline.join(["Date,Symbol", "2024-01-02,AAPL", "", "2024-01-03,MSFT", ""])
    layout, records, skipped = read(write(tmp_path, text))
    assert layout.newline == name
    assert cells(records) == [["2024-01-02", "AAPL"], ["2024-01-03", "MSFT"]]
    assert lines(records) == [2, 4]
    assert reasons(skipped) == {3: "blank line"}


def test_a_record_spanning_lines_moves_the_next_records_line_number(tmp_path: Path) -> None:
    text = 'Date,Note,Qty\n2024-01-02,"one\ntwo\r\nthree",1\n2024-01-03,plain,2\n2024-01-04,"a\rb",3\n2024-01-05,x,4\n'
    _, records, _ = read(write(tmp_path, text))
    assert lines(records) == [2, 5, 6, 8]  # each record's first line, as a text editor shows it


def test_it_strips_whitespace_around_data_cells_but_keeps_them_otherwise_verbatim(tmp_path: Path) -> None:
    text = 'Date,Action,Symbol,Amount\n01/27/2023, DIRECT DEBIT  (Cash),  , " -1 000,50 "\n'
    _, records, _ = read(write(tmp_path, text))
    assert cells(records) == [["01/27/2023", "DIRECT DEBIT  (Cash)", "", "-1 000,50"]]


# --------------------------------------------------------------------------------------------------
# Header row: found, cleaned, named


def test_it_finds_the_header_below_a_title_line(tmp_path: Path) -> None:
    text = (
        '"Transactions  for account XXXX-1234 as of 11/15/2020 18:00:21 ET"\n'
        '"Date","Action","Symbol","Quantity","Amount"\n'
        '"11/13/2020","Buy","AAPL","10","-$1,190.00"\n'
    )
    layout, records, _ = read(write(tmp_path, text))
    assert (layout.header_line, layout.skipped_preamble) == (2, 1)
    assert layout.columns == ["Date", "Action", "Symbol", "Quantity", "Amount"]
    assert lines(records) == [3]


def test_it_skips_comma_only_lines_above_the_header(tmp_path: Path) -> None:
    text = ",,,,\r\n,,,,\r\n,,,,\r\nRun Date,Action,Symbol,Quantity,Amount\r\n01/27/2023,YOU BOUGHT,AAPL,10,-1900\r\n"
    layout, records, _ = read(write(tmp_path, text))
    assert layout.header_line == 4
    assert layout.skipped_preamble == 3
    assert lines(records) == [5]


def test_it_skips_key_value_preamble_lines_and_blank_lines(tmp_path: Path) -> None:
    text = (
        "Transaction Summary, , , ,\n"
        "Client Name:,Anonymous User, , ,\n"
        "Client Number:,1234567, , ,\n"
        "Valuation as at,09-08-2026 16:40, , ,\n"
        "\n"
        "Trade date,Settle date,Reference,Description,Unit cost (p),Quantity,Value,\n"
        '"04/04/2026","04/04/2026","MANAGE FEE","Fee","n/a","n/a","-4.05"\n'
        '"25/02/2026","27/02/2026","S302087055","ETF 1000 @ 4500.00","4,500.000","1,000","44,988.05"\n'
    )
    layout, records, _ = read(write(tmp_path, text))
    assert layout.header_line == 6
    assert len(layout.columns) == 7  # the trailing delimiter of the header row is not a column
    assert lines(records) == [7, 8]
    # The key-value rows above the table are kept as its context (filled cells only; the title is one cell).
    assert layout.context == [
        ["Client Name:", "Anonymous User"],
        ["Client Number:", "1234567"],
        ["Valuation as at", "09-08-2026 16:40"],
    ]


def test_a_header_line_option_overrides_detection(tmp_path: Path) -> None:
    text = "Title,Report\nDate,Symbol\n2024-01-02,AAPL\n"
    layout, records, _ = read(write(tmp_path, text), ReaderOptions(header_line=2))
    assert layout.header_line == 2
    assert layout.header == ["Date", "Symbol"]
    assert cells(records) == [["2024-01-02", "AAPL"]]


def test_a_header_line_option_inside_a_quoted_field_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'Date,Note\n2024-01-02,"one\ntwo"\n')
    assert "Line 3 is inside a quoted field" in unreadable(path, ReaderOptions(header_line=3))


def test_it_reports_a_missing_header_when_every_row_is_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "".join(f"{i},{i * 2},{i * 3}\n" for i in range(1, 6)))
    assert unreadable(path) == "No header row found in the first 5 lines."


def test_a_file_with_only_a_header_has_a_layout_and_no_records(tmp_path: Path) -> None:
    layout, records, skipped = read(write(tmp_path, "Date,Symbol,Quantity\n"))
    assert layout.columns == ["Date", "Symbol", "Quantity"]
    assert records == skipped == []


def test_it_cleans_header_cells_of_bom_control_characters_and_extra_whitespace(tmp_path: Path) -> None:
    text = '"\t\n\x0b\x0c\r start \t\n\x0b\x0c\r end \t\n",  Gross Amount  ,\ufeffCode\nd,e,f\n'
    layout, records, _ = read(write(tmp_path, text))
    assert layout.header == ["start end", "Gross Amount", "Code"]
    assert lines(records) == [7]  # the quoted header cell spans lines 1-6 (a lone CR ends a line too)


def test_it_names_blank_and_duplicate_header_cells(tmp_path: Path) -> None:
    text = "Date,Price,,Value,,Value,Value\n2024-01-02,1,USD,2,EUR,3,4\n"
    layout, _, _ = read(write(tmp_path, text))
    assert layout.header == ["Date", "Price", "", "Value", "", "Value", "Value"]
    assert layout.columns == ["Date", "Price", "column_3", "Value", "column_5", "Value (2)", "Value (3)"]


def test_trailing_blank_header_cells_that_rows_fill_become_columns(tmp_path: Path) -> None:
    text = "Date,Details,Amount,,\n08/03/2022,Deposit,15000,GBP,\n"
    layout, records, _ = read(write(tmp_path, text))
    assert layout.columns == ["Date", "Details", "Amount", "column_4"]
    assert cells(records) == [["08/03/2022", "Deposit", "15000", "GBP"]]


# --------------------------------------------------------------------------------------------------
# Trailers, summaries, repeated headers, ragged rows


def test_it_skips_blank_summary_and_disclaimer_lines_with_reasons(tmp_path: Path) -> None:
    text = (
        "Date,Action,Symbol,Amount\n"
        "11/20/2020,Buy,ICLN,-2.11\n"
        ",,,\n"
        "\n"
        "Transactions Total,,,$0.00\n"
        '"Account Total","--","--","$13,727.00"\n'
        "Total,20,--,$200.00\n"
        "The data and information in this spreadsheet is provided to you solely for your use,,,\n"
        "Date downloaded 01/24/2023 10:28 am\n"
    )
    _, records, skipped = read(write(tmp_path, text))
    assert lines(records) == [2]
    assert reasons(skipped) == {
        3: "blank line",
        4: "blank line",
        5: 'summary row "Transactions Total"',
        6: 'summary row "Account Total"',
        7: 'summary row "Total"',
        8: "text line with 1 non-empty field (expected 4)",
        9: 'summary row "Date downloaded 01/24/2023 10:28 am"',
    }


def test_a_one_field_text_line_reports_the_expected_width(tmp_path: Path) -> None:
    text = 'Date,Action,Symbol\n2024-01-02,Buy,AAPL\n"Disclaimers"\n'
    _, _, skipped = read(write(tmp_path, text))
    assert reasons(skipped) == {3: "text line with 1 field (expected 3)"}


def test_it_keeps_data_rows_after_a_blank_line(tmp_path: Path) -> None:
    text = "Date,Action,Symbol\n2024-01-02,Buy,AAPL\n\n\n2024-01-03,Sell,AAPL\n"
    _, records, _ = read(write(tmp_path, text))
    assert lines(records) == [2, 5]


def test_it_skips_a_repeated_header_and_reads_the_rows_below_it(tmp_path: Path) -> None:
    text = (
        '"Brokerage XXXX-1234"\n"Symbol","Quantity","Price"\n"AAPL","1","$2"\n"Account Total","","$2"\n\n'
        '"Intelligent XXXX-4321"\n"Symbol","Quantity","Price"\n"MSFT","3","$4"\n'
    )
    _, records, skipped = read(write(tmp_path, text))
    assert cells(records) == [["AAPL", "1", "$2"], ["MSFT", "3", "$4"]]
    assert reasons(skipped)[7] == "repeated header"


def test_of_stacked_tables_it_reads_the_one_whose_header_names_the_trade_fields(tmp_path: Path) -> None:
    # Vanguard UK: a cash table (date, details, amount, balance) above the investment transactions.
    text = (
        "Cash Transactions,,,\n,,,\nDate,Details,Amount,Balance\n08/03/2022,Deposit,15000,15000\nBalance,15000,,\n"
        ",,,\n,,,\nInvestment Transactions,,,\n,,,\nDate,InvestmentName,Quantity,Price\n10/03/2022,FOO,1550,9.66\n"
    )
    path = write(tmp_path, text)
    layout, records, _ = read(path)
    assert layout.header_line == 10
    assert layout.columns == ["Date", "InvestmentName", "Quantity", "Price"]
    assert cells(records) == [["10/03/2022", "FOO", "1550", "9.66"]]
    assert layout.skipped_preamble == 9  # the cash table is above the header: not read as data


def test_it_stops_at_a_second_table_with_a_different_header(tmp_path: Path) -> None:
    text = (
        "Cash Transactions,,,\n,,,\nDate,Details,Amount,Balance\n08/03/2022,Deposit,15000,15000\nBalance,15000,,\n"
        ",,,\n,,,\nInvestment Transactions,,,\n,,,\nDate,InvestmentName,Quantity,Price\n10/03/2022,FOO,1550,9.66\n"
    )
    path = write(tmp_path, text)
    layout, records, skipped = read(path, ReaderOptions(header_line=3))  # a format pinned to the cash table
    assert layout.columns == ["Date", "Details", "Amount", "Balance"]
    assert lines(records) == [4]
    assert reasons(skipped)[10] == reasons(skipped)[11] == "after the table (another table starts at line 10)"


def test_a_later_table_naming_no_more_trade_fields_leaves_the_first_as_the_files_table(tmp_path: Path) -> None:
    text = (
        "Date,Symbol,Quantity,Price\n2024-01-02,AAPL,1,190\n2024-01-03,MSFT,2,410\n\n"
        "Totals by currency\nCurrency,Amount\nUSD,1010\n"
    )
    layout, records, _ = read(write(tmp_path, text))
    assert layout.header_line == 1
    assert lines(records) == [2, 3]


def test_it_pads_short_rows_and_trims_empty_extra_cells(tmp_path: Path) -> None:
    text = "Date,Symbol,Qty,Price\n2024-01-02,AAPL\n2024-01-03,MSFT,1,2,,,\n"
    _, records, _ = read(write(tmp_path, text))
    assert cells(records) == [["2024-01-02", "AAPL", "", ""], ["2024-01-03", "MSFT", "1", "2"]]


def test_it_keeps_non_empty_extra_cells_for_the_caller_to_flag(tmp_path: Path) -> None:
    text = 'column_a,column_b,column_c\n1,27,,"I\'m too long!"\n,"I\'m too short!"\n'
    _, records, _ = read(write(tmp_path, text))
    assert cells(records) == [["1", "27", "", "I'm too long!"], ["", "I'm too short!", ""]]


# --------------------------------------------------------------------------------------------------
# Multi-section statements (Interactive Brokers)

IBKR = (
    "Statement,Header,Field Name,Field Value\n"
    "Statement,Data,Title,Activity Statement\n"
    'Statement,Data,Period,"January 1, 2022 - December 31, 2022"\n'
    "Forex Balances,Header,Asset Category,Currency,Description,Quantity\n"
    "Forex Balances,Data,Forex,CZK,CZK,1000\n"
    "Trades,Header,DataDiscriminator,Asset Category,Currency,Symbol,Date/Time,Quantity,T. Price,Code\n"
    'Trades,Data,Order,Stocks,EUR,CNDX,"2022-03-15, 11:48:34",10,700.5,O\n'
    "Trades,SubTotal,,Stocks,EUR,CNDX,,10,,\n"
    "Trades,Total,,Stocks,EUR,,,,,\n"
    "Trades,Header,DataDiscriminator,Asset Category,Currency,Symbol,Date/Time,Quantity,T. Price,,\n"
    'Trades,Data,Order,Forex,USD,EUR.USD,"2022-03-15, 11:53:40",-100,1.09,\n'
    "Trades,Total,,Forex,USD,,,,,\n"
    "Notes/Legal Notes,Header,Type,Note\n"
    'Notes/Legal Notes,Data,Legal Notes,"IBIE is regulated by the Central Bank of Ireland."\n'
)


def test_it_reads_the_trades_section_of_a_multi_section_statement(tmp_path: Path) -> None:
    layout, records, skipped = read(write(tmp_path, IBKR))
    assert layout.sections == ["Statement", "Forex Balances", "Trades", "Notes/Legal Notes"]
    assert (layout.section, layout.header_line) == ("Trades", 6)
    assert layout.columns == [
        "DataDiscriminator",
        "Asset Category",
        "Currency",
        "Symbol",
        "Date/Time",
        "Quantity",
        "T. Price",
        "Code",
    ]
    assert cells(records) == [
        ["Order", "Stocks", "EUR", "CNDX", "2022-03-15, 11:48:34", "10", "700.5", "O"],
        ["Order", "Forex", "USD", "EUR.USD", "2022-03-15, 11:53:40", "-100", "1.09", ""],
    ]
    assert lines(records) == [7, 11]
    assert reasons(skipped) == {
        1: 'section "Statement"',
        2: 'section "Statement"',
        3: 'section "Statement"',
        4: 'section "Forex Balances"',
        5: 'section "Forex Balances"',
        8: 'summary row "SubTotal"',
        9: 'summary row "Total"',
        10: "repeated header",
        12: 'summary row "Total"',
        13: 'section "Notes/Legal Notes"',
        14: 'section "Notes/Legal Notes"',
    }


def test_it_reads_the_section_asked_for(tmp_path: Path) -> None:
    layout, records, _ = read(write(tmp_path, IBKR), ReaderOptions(section="Forex Balances"))
    assert (layout.section, layout.header_line) == ("Forex Balances", 4)
    assert layout.columns == ["Asset Category", "Currency", "Description", "Quantity"]
    assert cells(records) == [["Forex", "CZK", "CZK", "1000"]]


def test_without_a_trades_section_it_picks_the_section_with_the_most_data_rows(tmp_path: Path) -> None:
    text = (
        "Statement,Header,Field Name,Field Value\nStatement,Data,Title,Transaction History\n"
        "Transaction History,Header,Date,Description,Net Amount\n"
        "Transaction History,Data,2025-01-01,Deposit,5000.0\nTransaction History,Data,2025-01-02,Fee,-1\n"
        "Transaction History,Data,2025-01-03,Fee,-1\n"
    )
    layout, records, _ = read(write(tmp_path, text))
    assert layout.section == "Transaction History"
    assert lines(records) == [4, 5, 6]


def test_it_refuses_a_section_the_file_does_not_have(tmp_path: Path) -> None:
    message = unreadable(write(tmp_path, IBKR), ReaderOptions(section="Dividends"))
    assert message == (
        'Section "Dividends" not found; the file has sections '
        '"Statement", "Forex Balances", "Trades", "Notes/Legal Notes".'
    )


def test_it_finds_sections_that_start_beyond_the_detection_sample(tmp_path: Path) -> None:
    notes = "".join(f"Notes,Data,Note,Line {i}\n" for i in range(reading.SAMPLE_ROWS * 2))
    text = "Notes,Header,Type,Note\n" + notes + "Trades,Header,Symbol,Quantity\nTrades,Data,AAPL,10\n"
    layout, records, _ = read(write(tmp_path, text))
    assert layout.sections == ["Notes", "Trades"]
    assert layout.section == "Trades"
    assert cells(records) == [["AAPL", "10"]]


# --------------------------------------------------------------------------------------------------
# Hostile and broken input


@pytest.mark.parametrize(
    ("magic", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "This is a PNG image, not a CSV file."),
        (b"PK\x03\x04\x14\x00\x06\x00", "This is a ZIP archive (an Excel .xlsx workbook is one), not a CSV file."),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "This is a PDF document, not a CSV file."),
        (b"\x7fELF\x02\x01\x01\x00", "This is an ELF executable, not a CSV file."),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "This is a GZIP archive, not a CSV file."),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00", "This is an Excel 97-2003 (.xls) workbook, not a CSV file."),
    ],
)
def test_it_refuses_binary_files_by_their_signature(tmp_path: Path, magic: bytes, message: str) -> None:
    assert unreadable(write(tmp_path, magic + b"a,b\n1,2\n")) == message


def test_it_refuses_content_made_mostly_of_control_bytes(tmp_path: Path) -> None:
    blob = bytes((i * 37 + 11) % 256 for i in range(4096)).replace(b"\x00", b"\x01")
    assert unreadable(write(tmp_path, blob)).startswith("The file looks binary (")


def test_it_names_the_line_of_a_nul_byte(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,b,c\n1,2,3\n4,\x00,6\n")
    assert unreadable(path) == "NUL byte at line 3: the file looks binary or corrupted."


def test_it_finds_a_nul_byte_beyond_the_detection_prefix(tmp_path: Path) -> None:
    rows = b"".join(b"2024-01-02,AAPL,1\n" for _ in range(20_000))
    path = write(tmp_path, b"Date,Symbol,Qty\n" + rows + b"2024-01-03,\x00,2\n")
    assert unreadable(path) == "NUL byte at line 20002: the file looks binary or corrupted."


def test_it_refuses_an_empty_file(tmp_path: Path) -> None:
    assert unreadable(write(tmp_path, b"")) == "The file is empty."


@pytest.mark.parametrize("content", ["\n\n  \n", ",,,\n,,,\n"])
def test_it_refuses_a_file_of_blank_lines(tmp_path: Path, content: str) -> None:
    assert unreadable(write(tmp_path, content)) == "The file holds only blank lines."


def test_it_refuses_more_columns_than_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,c\n1,2,3\n1,2,3,4,5,6,7\n")
    assert unreadable(path, max_columns=5) == "Line 3 has 7 fields; at most 5 are allowed."


def test_it_refuses_a_field_longer_than_allowed_while_detecting(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Note\n2024-01-02," + "x" * 500 + "\n")
    assert unreadable(path, max_field_chars=100).startswith("Line 2: a field is longer than 100 characters")


def test_it_refuses_a_field_longer_than_allowed_while_streaming(tmp_path: Path) -> None:
    rows = "".join(f"2024-01-02,row {i}\n" for i in range(reading.SAMPLE_ROWS + 100))
    path = write(tmp_path, "Date,Note\n" + rows + "2024-01-03," + "y" * 500 + "\n")
    layout = detect_layout(path, max_field_chars=100)
    with pytest.raises(UnreadableFile) as caught:
        list(iter_records(path, layout, max_field_chars=100))
    assert caught.value.message == (
        f"Line {reading.SAMPLE_ROWS + 102}: a field is longer than 100 characters "
        "(an unclosed quote may have swallowed the rest of the file)."
    )


def test_it_refuses_an_unclosed_quote_that_swallows_the_rows_below(tmp_path: Path) -> None:
    path = write(tmp_path, 'Date,Symbol,Qty\n2024-01-02,"AAPL,1\n2024-01-03,MSFT,2\n2024-01-04,IBM,3\n')
    assert unreadable(path) == (
        'Line 2: a quoted field runs to line 4 and holds what look like 2 whole rows; a closing quote (") '
        "is probably missing."
    )


def test_it_refuses_a_line_too_long_to_be_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "MAX_LINE_CHARS", 1000)
    path = write(tmp_path, "a,b\n1,2\n" + "z" * 5000)
    assert unreadable(path).startswith("Line 3 is longer than")


# --------------------------------------------------------------------------------------------------
# Layout round trip and streaming helpers


def test_a_layout_survives_a_json_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path, IBKR)
    layout = detect_layout(path)
    again = FileLayout.from_dict(json.loads(json.dumps(layout.as_dict())))
    assert again == layout
    assert cells(sample_records(path, again)) == cells(sample_records(path, layout))


def test_it_refuses_to_stream_a_file_that_no_longer_matches_its_layout(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Symbol\n2024-01-02,AAPL\n")
    layout = detect_layout(path)
    path.write_text("Title\nDate,Symbol\n2024-01-02,AAPL\n")
    with pytest.raises(UnreadableFile) as caught:
        list(iter_records(path, layout))
    assert caught.value.message.startswith("Line 1 does not hold the expected header")


def test_sample_records_returns_only_the_first_n_records(tmp_path: Path) -> None:
    rows = "".join(f"2024-01-02,R{i}\n" if i % 3 else f"2024-01-02,R{i}\n\n" for i in range(50))
    path = write(tmp_path, "Date,Name\n" + rows)
    sample = sample_records(path, detect_layout(path), 5)
    assert [record.cells[1] for record in sample] == ["R0", "R1", "R2", "R3", "R4"]
    assert all(isinstance(record, Record) for record in sample)


def test_iter_records_is_lazy(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Name\n" + "2024-01-02,x\n" * 1000)
    items = iter_records(path, detect_layout(path))
    assert next(items) == Record(2, ["2024-01-02", "x"])
    items.close()


# --------------------------------------------------------------------------------------------------
# The real corpus of broker exports (/work/shared/corpus). Counts were taken from the files by hand
# and cross-checked with `grep`/`awk` (non-blank lines minus preamble, header and trailer).

CORPUS_FILES = [
    # path, encoding, delimiter, header line, first column, last column, columns, records, first/last record line
    ("avanza/e2g-transactions.csv", "utf-8", ";", 1, "Datum", "Resultat", 13, 20, 2, 21),
    ("binance/rotki-transaction-history.csv", "utf-8", ",", 1, "User_ID", "Remark", 7, 230, 2, 231),
    ("bitstamp/rotki-transactions.csv", "utf-8", ",", 1, "Type", "Sub Type", 8, 3, 2, 4),
    ("bitvavo/e2g-transactions.csv", "utf-8", ",", 1, "Timezone", "Address", 15, 34, 2, 35),
    ("coinbase/e2g-transactions.csv", "utf-8", ",", 1, "ID", "Notes", 11, 8, 2, 9),
    ("coinbase/rotki-coinbasepro-account.csv", "utf-8", ",", 1, "Portfolio", "Order id", 9, 21, 2, 22),
    ("crypto-com/rotki-transactions.csv", "utf-8-sig", ",", 1, "Timestamp (UTC)", "Transaction Kind", 10, 48, 2, 49),
    ("degiro/e2g-account-nl.csv", "utf-8", ",", 1, "Datum", "Order Id", 12, 74, 2, 75),
    ("degiro/tuxedeg-transactions-cz.csv", "utf-8", ",", 1, "Datum", "ID objednávky", 19, 156, 2, 157),
    ("degiro/tuxedeg-transactions-en.csv", "utf-8", ",", 1, "Date", "Order ID", 19, 88, 2, 89),
    (
        "desjardins-disnat/e2g-transactions.csv",
        "utf-8",
        ",",
        1,
        "Date de transaction",
        "Devise du compte",
        13,
        23,
        2,
        24,
    ),
    ("etoro/e2g-account-activity.csv", "utf-8", ",", 1, "Date", "NWA", 11, 28, 2, 29),
    ("fidelity/reds-all-accounts-2025.csv", "utf-8", ",", 1, "Run Date", "Settlement Date", 18, 21, 2, 22),
    ("fidelity/reds-history-for-account-cma.csv", "utf-8", ",", 6, "Run Date", "Settlement Date", 12, 11, 7, 17),
    ("freetrade/cgtcalc-transactions.csv", "utf-8", ",", 1, "Title", "Dividend Withheld Tax Amount", 29, 17, 2, 18),
    ("hargreaves-lansdown/cgtcalc-transaction-summary.csv", "cp1252", ",", 6, "Trade date", "Value (£)", 7, 5, 7, 11),
    ("ibkr/cgtcalc-transaction-history.csv", "utf-8", ",", 10, "Date", "Net Amount", 10, 12, 11, 22),
    ("ibkr/e2g-flex-cash-dividends.csv", "utf-8", ",", 1, "Type", "CurrencyPrimary", 6, 11, 2, 12),
    ("ibkr/e2g-flex-trades.csv", "utf-8", ",", 1, "Buy/Sell", "IBCommissionCurrency", 9, 11, 2, 12),
    ("ibkr/ghostfolio-flex-trades-all-fields.csv", "utf-8", ",", 1, "CurrencyPrimary", "Weight", 81, 1, 2, 2),
    ("ibkr/irp-activity-trades-multi-account.csv", "utf-8", ",", 1, "DataDiscriminator", "Code", 14, 19, 2, 23),
    ("ibkr/irp-activity-trades-option-assignment.csv", "utf-8", ",", 1, "DataDiscriminator", "Code", 15, 32, 2, 37),
    ("ibkr/irp-activity-trades-quoted-thousands.csv", "utf-8", ",", 1, "DataDiscriminator", "Code", 14, 16, 2, 17),
    ("ibkr/tuxedeg-activity-statement-2022-czk.csv", "utf-8-sig", ",", 8, "DataDiscriminator", "Code", 14, 279, 9, 322),
    ("kucoin/rotki-order-history.csv", "utf-8", ",", 1, "tradeCreatedAt", "feeCurrency", 8, 2, 2, 3),
    ("messy/clevercsv-imdb.csv", "utf-8", ",", 1, "fn", "Western", 44, 100, 2, 101),
    (
        "messy/clevercsv-milk-tab.csv",
        "utf-8",
        "\t",
        1,
        "UK Availability Disposals and Production of Milk and Milk Products Year",
        "INTERVENTION STOCKS Skimmed Milk Powder th. tonnes (2)",  # the header repeats this name
        23,
        370,
        2,
        372,
    ),
    ("messy/csvkit-bad-ragged.csv", "utf-8", ",", 1, "column_a", "column_c", 3, 3, 2, 4),
    ("messy/csvkit-header-control-chars.csv", "utf-8", ",", 1, "start end", "c", 3, 1, 8, 8),
    ("messy/csvkit-latin1.csv", "cp1252", ",", 1, "a", "c", 3, 2, 2, 3),
    ("messy/csvkit-locale-decimal-comma.csv", "utf-8", ",", 1, "a", "c", 3, 1, 2, 2),
    ("messy/csvkit-mac-cr-newlines.csv", "utf-8", ",", 1, "a", "c", 3, 2, 2, 3),
    ("messy/csvkit-utf16le.csv", "utf-16", ",", 1, "a", "c", 3, 2, 2, 3),
    ("messy/csvkit-utf8-bom.csv", "utf-8-sig", ",", 1, "foo", "baz", 3, 2, 2, 3),
    ("morgan-stanley/cgtcalc-releases-report.csv", "utf-8", ",", 1, "Vest Date", "Tax Payment Method", 10, 2, 2, 3),
    ("rbc-direct-investing/acb-activity-export.csv", "utf-8", ",", 9, "Date", "Description", 11, 12, 10, 21),
    ("revolut/e2g-crypto.csv", "utf-8", ",", 1, "Symbol", "Date", 7, 13, 2, 14),
    ("revolut/e2g-invest.csv", "utf-8", ",", 1, "Date", "FX Rate", 8, 12, 2, 13),
    ("saxo/e2g-transactions.csv", "utf-8", ",", 1, "Client ID", "Conversion Rate", 13, 30, 2, 31),
    ("schwab/bci-all-accounts-positions.csv", "utf-8", ",", 4, "Symbol", "Security Type", 25, 5, 5, 14),
    ("schwab/bci-brokerage-transactions-2020.csv", "utf-8", ",", 2, "Date", "Amount", 8, 21, 3, 23),
    ("schwab/bci-lot-details.csv", "utf-8", ",", 3, "Open Date", "Holding Period", 9, 2, 4, 5),
    ("schwab/cgtcalc-equity-awards.csv", "utf-8", ",", 1, "Date", "Taxes", 15, 2, 2, 3),
    ("schwab/cgtcalc-transactions-2023.csv", "utf-8", ",", 1, "Date", "Amount", 8, 7, 2, 8),
    ("schwab/e2g-transactions.csv", "utf-8", ",", 1, "Date", "Amount", 8, 119, 2, 120),
    ("schwab/reds-brokerage-transactions-2023.csv", "utf-8", ",", 2, "Date", "Amount", 8, 11, 3, 13),
    ("sharesight/cgtcalc-all-trades-report.csv", "utf-8", ",", 3, "Market", "Comments", 13, 13, 4, 16),
    ("swissquote/e2g-transactions.csv", "utf-8", ";", 1, "Date", "Currency", 13, 21, 2, 22),
    ("tastytrade/tastyworkspnl-transactions-2024.csv", "utf-8", ",", 1, "Date", "Currency", 20, 2, 2, 3),
    ("traderepublic/e2g-transactions.csv", "utf-8", ";", 1, "Datum", "Belasting", 8, 9, 2, 10),
    ("trading212/cgtcalc-2020.csv", "utf-8", ",", 1, "Action", "ID", 19, 8, 2, 9),
    ("trading212/cgtcalc-2026.csv", "utf-8", ",", 1, "Action", "Merchant category", 33, 5, 2, 6),
    ("trading212/e2g-2023.csv", "utf-8", ",", 1, "Action", "Currency (Currency conversion fee)", 19, 13, 2, 14),
    ("vanguard/cgtcalc-uk-cash-investment-report.csv", "utf-8", ",", 29, "Date", "Cost", 6, 6, 30, 35),
    ("xtb/e2g-cash-operations.csv", "utf-8", ";", 1, "ID", "Amount", 6, 46, 2, 47),
]
CORPUS_ERRORS = {"messy/csvkit-null-byte.csv": "NUL byte at line 2: the file looks binary or corrupted."}


@needs_corpus
@pytest.mark.parametrize(
    ("name", "encoding", "delimiter", "header_line", "first", "last", "ncols", "count", "first_line", "last_line"),
    CORPUS_FILES,
    ids=[row[0] for row in CORPUS_FILES],
)
def test_it_reads_each_corpus_file(
    name: str,
    encoding: str,
    delimiter: str,
    header_line: int,
    first: str,
    last: str,
    ncols: int,
    count: int,
    first_line: int,
    last_line: int,
) -> None:
    layout, records, _ = read(CORPUS / name)
    assert (layout.encoding, layout.delimiter, layout.header_line) == (encoding, delimiter, header_line)
    assert (layout.columns[0], layout.columns[-1], len(layout.columns)) == (first, last, ncols)
    assert len(records) == count
    assert (records[0].line, records[-1].line) == (first_line, last_line)


@needs_corpus
def test_every_corpus_file_has_an_expectation() -> None:
    on_disk = {str(path.relative_to(CORPUS)) for path in CORPUS.glob("*/*.csv")}
    assert on_disk == {row[0] for row in CORPUS_FILES} | set(CORPUS_ERRORS)


@needs_corpus
@pytest.mark.parametrize(("name", "message"), CORPUS_ERRORS.items())
def test_it_refuses_broken_corpus_files_with_a_clear_message(name: str, message: str) -> None:
    assert unreadable(CORPUS / name) == message


@needs_corpus
def test_fidelity_disclaimer_footer_and_download_date_are_skipped() -> None:
    layout, records, skipped = read(CORPUS / "fidelity/reds-history-for-account-cma.csv")
    assert (layout.newline, layout.skipped_preamble) == ("CRLF", 5)
    assert records[0].cells[:3] == ["01/27/2023", "DIRECT DEBIT TREASURY DIRECTREAS DRCT (Cash)", ""]
    found = reasons(skipped)
    assert found[23] == found[31] == "text line with 1 non-empty field (expected 12)"
    assert found[33] == 'summary row "Date downloaded 01/24/2023 10:28 am"'
    assert sorted(found) == [*range(18, 34)]


@needs_corpus
@pytest.mark.parametrize(
    "name",
    [
        "schwab/bci-brokerage-transactions-2020.csv",
        "schwab/e2g-transactions.csv",
        "schwab/reds-brokerage-transactions-2023.csv",
    ],
)
def test_schwab_transactions_total_footer_is_skipped(name: str) -> None:
    _, records, skipped = read(CORPUS / name)
    assert [item.reason for item in skipped] == ['summary row "Transactions Total"']
    assert skipped[0].line == records[-1].line + 1


@needs_corpus
def test_ibkr_activity_statement_lists_its_sections_and_skips_the_rest() -> None:
    layout, records, skipped = read(CORPUS / "ibkr/tuxedeg-activity-statement-2022-czk.csv")
    assert layout.section == "Trades"
    assert layout.sections == [
        "Statement",
        "Collateral for Customer Borrowing",
        "Forex Balances",
        "Trades",
        "Corporate Actions",
        "Notes/Legal Notes",
    ]
    found = reasons(skipped)
    assert found[1] == 'section "Statement"'
    assert found[321] == "repeated header"
    assert found[325] == 'section "Corporate Actions"'
    assert records[0].cells[:4] == ["Order", "Stocks", "EUR", "CNDX"]


@needs_corpus
def test_ibkr_transaction_history_defaults_to_its_largest_section() -> None:
    layout = detect_layout(CORPUS / "ibkr/cgtcalc-transaction-history.csv")
    assert (layout.section, layout.sections) == ("Transaction History", ["Statement", "Summary", "Transaction History"])
    assert layout.columns[7] == "Gross Amount"  # 'Gross Amount ' in the file
    # The other sections' data rows are the table's context: the base currency is named there only.
    assert ["Base Currency", "GBP"] in layout.context
    assert ["Field Name", "Field Value"] not in layout.context  # header rows are not data


@needs_corpus
def test_messy_files_keep_their_odd_characters() -> None:
    _, records, _ = read(CORPUS / "messy/csvkit-mac-cr-newlines.csv")
    assert cells(records) == [["1", "2", "3"], ["Once upon\ra time", "5", "6"]]
    _, records, _ = read(CORPUS / "messy/csvkit-utf16le.csv")
    assert cells(records)[-1] == ["4", "5", "ʤ"]
    _, records, _ = read(CORPUS / "messy/csvkit-latin1.csv")
    assert cells(records)[-1] == ["4", "5", "©"]
    _, records, _ = read(CORPUS / "messy/csvkit-bad-ragged.csv")
    assert cells(records) == [
        ["1", "27", "", "I'm too long!"],
        ["", "I'm too short!", ""],
        ["0", "mixed types.... uh oh", "17"],
    ]


@needs_corpus
def test_vanguard_investment_table_is_read_and_the_cash_table_above_it_with_a_header_line() -> None:
    path = CORPUS / "vanguard/cgtcalc-uk-cash-investment-report.csv"
    layout, records, _ = read(path)
    assert layout.columns == ["Date", "InvestmentName", "TransactionDetails", "Quantity", "Price", "Cost"]
    assert lines(records)[:5] == [30, 31, 32, 33, 34]
    layout, _, skipped = read(path, ReaderOptions(header_line=5))
    assert layout.columns == ["Date", "Details", "Amount", "Balance"]
    assert reasons(skipped)[23] == 'summary row "Balance"'
    assert reasons(skipped)[29] == "after the table (another table starts at line 29)"
