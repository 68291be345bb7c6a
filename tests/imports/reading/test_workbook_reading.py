"""Reading spreadsheets (.xlsx, .xls, .ods) into the rows the pipeline imports: values, tables, sheets.

Runs without a database. The workbooks are written by tests/imports/reading/workbooks.py.
"""

# ruff: noqa: E501 - XML fixtures read best on one line

from __future__ import annotations

import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest

from config.errors import UnreadableFile
from imports.reading import ReaderOptions, Record, Skipped
from imports.sheets import cells as C
from imports.sheets import ods as ods_reader
from imports.sheets import xls as xls_reader
from imports.sheets import xlsx as xlsx_reader
from imports.sheets.workbook import SheetLimits, detect_book_layout, iter_book_records
from tests.imports.reading import workbooks as W

TRADES = [
    [datetime(2024, 1, 2, 9, 30, 5), "AAPL", "BUY", 10, 185.5, 1.25, "USD", "T-1"],
    [datetime(2024, 1, 2, 15, 0), "MSFT", "SELL", 5, 0.1 + 0.2, 0, "USD", "T-2"],
    [datetime(2024, 1, 3), "SAP", "BUY", 1, 1e-7, 2.5, "EUR", "T-3"],
]
EXPECTED = [
    ["2024-01-02 09:30:05", "AAPL", "BUY", "10", "185.5", "1.25", "USD", "T-1"],
    ["2024-01-02 15:00:00", "MSFT", "SELL", "5", "0.3", "0", "USD", "T-2"],
    ["2024-01-03 00:00:00", "SAP", "BUY", "1", "0.0000001", "2.5", "EUR", "T-3"],
]
OPENERS = {"xlsx": xlsx_reader.open_book, "xls": xls_reader.open_book, "ods": ods_reader.open_book}


def write(kind: str, tmp_path: Path, sheets: dict[str, list[list]], **options: object) -> Path:
    path = tmp_path / f"book.{kind}"
    if kind == "xlsx":
        return W.xlsx(path, sheets, **options)
    if kind == "xls":
        return W.xls(path, sheets, **options)
    return W.ods(path, sheets, **options)


def read(kind: str, path: Path, options: ReaderOptions | None = None, **limits: int) -> tuple:
    book = OPENERS[kind](path, SheetLimits(**limits))
    try:
        layout = detect_book_layout(book, options)
        items = list(iter_book_records(book, layout))
    finally:
        book.close()
    return layout, [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, Skipped)]


def unreadable(kind: str, path: Path, options: ReaderOptions | None = None, **limits: int) -> str:
    with pytest.raises(UnreadableFile) as caught:
        read(kind, path, options, **limits)
    return caught.value.message


# --------------------------------------------------------------------------------------------------
# Values


@pytest.mark.parametrize("kind", ["xlsx", "xls", "ods"])
def test_typed_cells_read_as_the_text_the_converters_understand(tmp_path: Path, kind: str) -> None:
    layout, records, skipped = read(kind, write(kind, tmp_path, {"Trades": [W.TRADES_HEADER, *TRADES]}))
    assert layout.header == W.TRADES_HEADER and layout.header_line == 1 and layout.section == "Trades"
    assert [r.cells for r in records] == EXPECTED
    assert [r.line for r in records] == [2, 3, 4] and not skipped


def test_numbers_are_plain_decimal_text_with_excels_fifteen_digits() -> None:
    assert C.number_text(0.1 + 0.2) == "0.3"
    assert C.number_text(-0.010713949999999999) == "-0.01071395"
    assert C.number_text(1e20) == "100000000000000000000"
    assert C.number_text(1.5e-10) == "0.00000000015"
    assert C.number_text(2090.0) == "2090" and C.number_text(-0.0) == "0"
    assert C.number_text_from_xml("1855.0") == "1855" and C.number_text_from_xml("1E-3") == "0.001"
    assert C.number_text_from_xml("0.30000000000000004") == "0.3"


def test_date_serials_follow_both_date_systems_and_the_phantom_leap_day() -> None:
    assert C.serial_text(45293.39589120371, C.DATETIME) == "2024-01-02 09:30:05"
    assert C.serial_text(43830, C.DATE, date1904=True) == "2024-01-01"  # 45292 in the 1900 system
    assert C.serial_text(0, C.DATE, date1904=True) == "1904-01-01"
    assert C.serial_text(59, C.DATE) == "1900-02-28" and C.serial_text(61, C.DATE) == "1900-03-01"
    assert C.serial_text(60, C.DATE) == "60"  # 1900-02-29 never existed: the number as stored
    assert C.serial_text(45293.5, C.DATE) == "2024-01-02 12:00:00"  # a time hidden by the format is kept
    assert C.serial_text(0.5, C.TIME) == "12:00:00" and C.serial_text(1.5, C.DURATION) == "36:00:00"
    assert C.serial_text(45293.0000011574, C.DATETIME) == "2024-01-02 00:00:00.100"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("General", None),
        ("0.00", None),
        ('#,##0.00 "EUR"', None),
        ("0.00E+00", None),
        ("[Red]0.00", None),
        ("yyyy-mm-dd", C.DATE),
        ("[$-409]d-mmm-yy;@", C.DATE),
        ("dd/mm/yyyy hh:mm", C.DATETIME),
        ("h:mm AM/PM", C.TIME),
        ("mm:ss", C.TIME),
        ("[h]:mm:ss", C.DURATION),
    ],
)
def test_number_formats_that_show_dates_and_times_are_recognised(code: str, kind: str | None) -> None:
    assert C.format_kind(code) == kind


def test_the_1904_date_system_reads_the_same_dates(tmp_path: Path) -> None:
    rows = [W.TRADES_HEADER, *TRADES]
    _, in_1900, _ = read("xlsx", W.xlsx(tmp_path / "a.xlsx", {"Trades": rows}))
    _, in_1904, _ = read("xlsx", W.xlsx(tmp_path / "b.xlsx", {"Trades": rows}, date1904=True))
    assert [r.cells for r in in_1904] == [r.cells for r in in_1900] == EXPECTED


def test_formulas_read_as_their_saved_values_and_are_never_evaluated(tmp_path: Path) -> None:
    path = W.xlsx(
        tmp_path / "f.xlsx",
        {"Trades": [["Symbol", "Quantity", "Price", "Amount"], ["AAPL", 10, 2.5, None], ["MSFT", 3, 1, None]]},
        formulas={"Trades": [(1, 3, "=B2*C2", 25), (2, 3, "=B3*C3+1000", 3)]},  # the saved 3 is not B3*C3+1000
    )
    _, records, _ = read("xlsx", path)
    assert [r.cells[3] for r in records] == ["25", "3"]


def test_booleans_errors_and_rich_text_keep_what_excel_shows(tmp_path: Path) -> None:
    path = W.xlsx(
        tmp_path / "v.xlsx",
        {"Trades": [["Symbol", "Flag", "Note"], ["AAPL", True, None], ["MSFT", False, None]]},
        formulas={"Trades": [(1, 2, "=1/0", "#DIV/0!"), (2, 2, '="a"&"b"', "ab")]},
    )
    _, records, _ = read("xlsx", path)
    assert [r.cells for r in records] == [["AAPL", "TRUE", "#DIV/0!"], ["MSFT", "FALSE", "ab"]]


def test_excel_escapes_in_text_are_decoded(tmp_path: Path) -> None:
    sheet = W.sheet_xml(
        [
            '<row r="1"><c r="A1" t="inlineStr"><is><t>Symbol</t></is></c><c r="B1" t="inlineStr"><is><t>Note</t></is></c></row>',
            '<row r="2"><c r="A2" t="inlineStr"><is><t>AAPL</t></is></c>'
            '<c r="B2" t="inlineStr"><is><r><t xml:space="preserve">line_x000D_ </t></r><r><t>two &amp; more</t></r>'
            "<rPh><t>phonetic</t></rPh></is></c></row>",
        ]
    )
    _, records, _ = read("xlsx", W.xlsx_package(tmp_path / "e.xlsx", sheet_xml=sheet))
    assert records[0].cells == ["AAPL", "line\r two & more"]


def test_a_sheet_written_with_a_namespace_prefix_reads_like_any_other(tmp_path: Path) -> None:
    rows = [
        '<x:row r="1"><x:c r="A1" t="inlineStr"><x:is><x:t>Symbol</x:t></x:is></x:c>'
        '<x:c r="B1" t="inlineStr"><x:is><x:t>Qty</x:t></x:is></x:c></x:row>',
        '<x:row r="2"><x:c r="A2" t="inlineStr"><x:is><x:t>AAPL</x:t></x:is></x:c><x:c r="B2"><x:v>7</x:v></x:c></x:row>',
    ]
    _, records, _ = read("xlsx", W.xlsx_package(tmp_path / "p.xlsx", sheet_xml=W.sheet_xml(rows, prefix="x")))
    assert records[0].cells == ["AAPL", "7"]


def test_cells_without_a_reference_and_sparse_rows_land_in_their_columns(tmp_path: Path) -> None:
    rows = [
        '<row><c t="inlineStr"><is><t>A</t></is></c><c t="inlineStr"><is><t>B</t></is></c>'
        '<c t="inlineStr"><is><t>C</t></is></c></row>',
        '<row><c r="A2"><v>1</v></c><c r="C2"><v>3</v></c></row>',
    ]
    _, records, _ = read("xlsx", W.xlsx_package(tmp_path / "s.xlsx", sheet_xml=W.sheet_xml(rows)))
    assert records[0].line == 2 and records[0].cells == ["1", "", "3"]


# --------------------------------------------------------------------------------------------------
# Tables: title rows, offsets, totals, hidden rows, merged cells


@pytest.mark.parametrize("kind", ["xlsx", "xls", "ods"])
def test_the_header_is_found_under_title_rows_and_the_total_row_is_skipped(tmp_path: Path, kind: str) -> None:
    rows = [
        ["Trade confirmations"],
        ["Account", "U1234567"],
        [],
        W.TRADES_HEADER,
        *TRADES,
        [],
        ["Total", None, None, 16, None, 3.75],
    ]
    layout, records, skipped = read(kind, write(kind, tmp_path, {"Trades": rows}))
    assert layout.header_line == 4 and layout.skipped_preamble == 3
    assert [r.cells for r in records] == EXPECTED
    assert [(s.line, s.reason) for s in skipped] == [(9, 'summary row "Total"')]


@pytest.mark.parametrize("kind", ["xlsx", "xls", "ods"])
def test_a_table_starting_in_column_c_drops_the_empty_columns_before_it(tmp_path: Path, kind: str) -> None:
    rows = [[None, None, *row] for row in [W.TRADES_HEADER, *TRADES]]
    layout, records, _ = read(kind, write(kind, tmp_path, {"Trades": rows}))
    assert layout.column_offset == 2 and layout.header == W.TRADES_HEADER
    assert [r.cells for r in records] == EXPECTED


@pytest.mark.parametrize("kind", ["xlsx", "xls"])
def test_hidden_rows_are_skipped_with_a_reason(tmp_path: Path, kind: str) -> None:
    path = write(kind, tmp_path, {"Trades": [W.TRADES_HEADER, *TRADES]}, hidden_rows={"Trades": [2]})
    _, records, skipped = read(kind, path)
    assert [r.line for r in records] == [2, 4]
    assert [(s.line, s.reason) for s in skipped] == [(3, "hidden row")]


def test_hidden_and_filtered_ods_rows_are_skipped_but_collapsed_groups_are_data(tmp_path: Path) -> None:
    header, a, b, c = W.TRADES_HEADER, *TRADES
    rows = [
        W.ods_row(header),
        W.ods_row(a, visibility="filter"),
        "<table:table-row-group>" + W.ods_row(b, visibility="collapse") + "</table:table-row-group>",
        W.ods_row(c, visibility="collapse"),
    ]
    _, records, skipped = read("ods", W.ods(tmp_path / "h.ods", {"Trades": rows}))
    assert [r.cells[1] for r in records] == ["MSFT"]
    assert [(s.line, s.reason) for s in skipped] == [(2, "hidden row"), (4, "hidden row")]


@pytest.mark.parametrize("kind", ["xlsx", "xls"])
def test_a_value_merged_over_several_rows_is_repeated_on_each(tmp_path: Path, kind: str) -> None:
    day = datetime(2024, 1, 5, 10, 0)
    rows = [
        W.TRADES_HEADER,
        [None, "TSLA", "BUY", 3, 200, 0, "USD", "T-7"],
        [None, "NVDA", "SELL", 4, 400, 0, "USD", "T-8"],
    ]
    merge = {"Trades": [(1, 0, 2, 0, day)]}
    if kind == "xlsx":
        merge["Trades"].append((0, 8, 0, 10, "merged sideways"))  # beside the header: stays in its first cell
    _, records, _ = read(kind, write(kind, tmp_path, {"Trades": rows}, merge=merge))
    assert [r.cells[0] for r in records] == ["2024-01-05 10:00:00", "2024-01-05 10:00:00"]


def test_an_ods_cell_spanning_rows_is_repeated_and_covered_cells_read_empty(tmp_path: Path) -> None:
    header = W.ods_row(["Date", "Symbol", "Quantity"])
    first = (
        "<table:table-row>"
        + W.ods_cell(date(2024, 1, 5), span_rows=2)
        + W.ods_cell("TSLA")
        + W.ods_cell(3)
        + "</table:table-row>"
    )
    second = (
        '<table:table-row><table:covered-table-cell office:value-type="string"><text:p>hidden</text:p>'
        "</table:covered-table-cell>" + W.ods_cell("NVDA") + W.ods_cell(4) + "</table:table-row>"
    )
    _, records, _ = read("ods", W.ods(tmp_path / "m.ods", {"Trades": [header, first, second]}))
    assert [r.cells for r in records] == [["2024-01-05", "TSLA", "3"], ["2024-01-05", "NVDA", "4"]]


def test_ods_repeated_rows_and_columns_are_followed_without_materialising_empty_cells(tmp_path: Path) -> None:
    rows = [
        W.ods_row(["Symbol", "Quantity"]),
        W.ods_row(["AAPL", 1], repeat=3),
        '<table:table-row table:number-rows-repeated="5000"><table:table-cell table:number-columns-repeated="16000"/></table:table-row>',
        W.ods_row(["MSFT", 2]),
    ]
    _, records, _ = read("ods", W.ods(tmp_path / "r.ods", {"Trades": rows}))
    assert [(r.line, r.cells) for r in records] == [
        (2, ["AAPL", "1"]),
        (3, ["AAPL", "1"]),
        (4, ["AAPL", "1"]),
        (5005, ["MSFT", "2"]),
    ]


def test_ods_comments_and_paragraphs_are_not_mixed_into_cell_text(tmp_path: Path) -> None:
    note = (
        '<table:table-cell office:value-type="string"><office:annotation><text:p>a comment</text:p></office:annotation>'
        '<text:p>first<text:s text:c="2"/>line</text:p><text:p>second</text:p></table:table-cell>'
    )
    rows = [W.ods_row(["Symbol", "Note"]), f"<table:table-row>{W.ods_cell('AAPL')}{note}</table:table-row>"]
    _, records, _ = read("ods", W.ods(tmp_path / "c.ods", {"Trades": rows}))
    assert records[0].cells == ["AAPL", "first  line\nsecond"]


# --------------------------------------------------------------------------------------------------
# Sheets


@pytest.mark.parametrize("kind", ["xlsx", "ods"])
def test_the_sheet_with_the_trades_is_chosen_over_a_summary_and_a_hidden_sheet(tmp_path: Path, kind: str) -> None:
    sheets = {
        "Summary": [["Account summary"], ["Cash", 1000], ["Positions", 3]],
        "Secret": [W.TRADES_HEADER, *TRADES, *TRADES, *TRADES],
        "Orders 2024": [W.TRADES_HEADER, *TRADES],
    }
    layout, records, _ = read(
        kind,
        write(kind, tmp_path, sheets, **({"hidden_sheets": ["Secret"]} if kind == "xlsx" else {"hidden": ["Secret"]})),
    )
    assert layout.section == "Orders 2024" and layout.sections == ["Summary", "Secret", "Orders 2024"]
    assert len(records) == 3


@pytest.mark.parametrize("kind", ["xlsx", "xls", "ods"])
def test_the_format_can_pin_the_sheet_and_the_header_row(tmp_path: Path, kind: str) -> None:
    sheets = {
        "Trades": [W.TRADES_HEADER, *TRADES],
        "Fees": [
            ["Fee report"],
            ["Date", "Symbol", "Amount"],
            [date(2024, 1, 2), "AAPL", 1.25],
            [date(2024, 1, 3), "SAP", 2],
        ],
    }
    path = write(kind, tmp_path, sheets)
    layout, records, _ = read(kind, path, ReaderOptions(section="fees", header_line=2))
    assert layout.section == "Fees" and layout.header == ["Date", "Symbol", "Amount"] and layout.header_line == 2
    assert [r.cells for r in records] == [["2024-01-02", "AAPL", "1.25"], ["2024-01-03", "SAP", "2"]]
    assert 'Sheet "Nope" not found; the workbook has sheets "Trades", "Fees".' == unreadable(
        kind, path, ReaderOptions(section="Nope")
    )


def test_an_empty_sheet_and_a_blank_pinned_header_row_are_refused_clearly(tmp_path: Path) -> None:
    path = W.xlsx(tmp_path / "e.xlsx", {"Trades": [["Symbol", "Qty"], [], ["AAPL", 1]], "Empty": []})
    assert unreadable("xlsx", path, ReaderOptions(section="Empty")) == "Sheet 'Empty' is empty."
    assert "Row 2 of sheet 'Trades' is empty; it cannot be the header." == unreadable(
        "xlsx", path, ReaderOptions(header_line=2)
    )
    assert "Sheet 'Trades' has no rows at or below row 9." == unreadable("xlsx", path, ReaderOptions(header_line=9))


def test_a_workbook_without_worksheets_is_refused(tmp_path: Path) -> None:
    workbook = '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheets/></workbook>'
    path = W.xlsx_package(tmp_path / "n.xlsx", workbook_xml=workbook)
    with pytest.raises(UnreadableFile, match="The workbook has no worksheet"):
        xlsx_reader.open_book(path)


def test_a_big_sheet_streams_in_bounded_memory(tmp_path: Path) -> None:
    """60,000 rows: the reader holds a chunk of rows at a time, not the sheet (tracemalloc peak; the sheet's
    cells as Python objects would take ~70 MB)."""
    import tracemalloc

    from imports.bench import data

    path = tmp_path / "big.xlsx"
    data.write_trades_xlsx(path, 60_000, seed=3)
    book = xlsx_reader.open_book(path)
    try:
        layout = detect_book_layout(book)
        tracemalloc.start()
        count = sum(1 for item in iter_book_records(book, layout) if isinstance(item, Record))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        book.close()
    assert count == 60_000
    assert peak < 10 * 2**20, f"reading 60,000 rows peaked at {peak / 2**20:.0f} MB of Python objects"


def test_a_pretty_printed_sheet_with_empty_values_reads_like_a_compact_one(tmp_path: Path) -> None:
    sheet = """<?xml version="1.0"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
  <sheetData>
    <row r="1">
      <c r="A1" t="inlineStr"><is><t>Symbol</t></is></c>
      <c r="B1" t="inlineStr"><is><t>Note</t></is></c>
      <c r="C1" t="inlineStr"><is><t>Qty</t></is></c>
    </row>
    <row r="2">
      <c r="A2" t="inlineStr">
        <is>
          <r><t>AA</t></r>
          <r><t>PL</t></r>
        </is>
      </c>
      <c r="B2" t="s"><v/></c>
      <c r="C2"><v>
        7
      </v></c>
    </row>
  </sheetData>
</worksheet>"""
    _, records, _ = read("xlsx", W.xlsx_package(tmp_path / "pretty.xlsx", sheet_xml=sheet))
    assert records[0].cells == ["AAPL", "", "7"]


def test_part_names_match_case_insensitively_and_with_windows_backslashes(tmp_path: Path) -> None:
    """Real workbooks (Excel opens both): 'xl/SharedStrings.xml' for 'sharedStrings.xml', and zips written
    by Windows tools with 'xl\\worksheets\\sheet1.xml' names."""
    source = W.xlsx(tmp_path / "plain.xlsx", {"Trades": [W.TRADES_HEADER, *TRADES]})
    renamed = tmp_path / "renamed.xlsx"
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(renamed, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            name = info.filename.replace("sharedStrings", "SharedStrings")
            name = name.replace("/", "\\") if name.startswith("xl/") else name
            new.writestr(name, old.read(info.filename))
    _, records, _ = read("xlsx", renamed)
    assert [r.cells for r in records] == EXPECTED
