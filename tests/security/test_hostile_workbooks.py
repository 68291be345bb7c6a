"""Hostile spreadsheets, archives and JSON: each is refused with a clear message before it costs much.

Zip bombs, entity tricks, encrypted workbooks, thousands of sheets, a million columns, huge string
tables, a renamed zip of something else, deeply nested or huge JSON, duplicate keys, bare JSON values,
and files that are not tables at all. Runs without a database (the readers and the content sniffing).
"""

# ruff: noqa: E501 - XML fixtures read best on one line

from __future__ import annotations

import io
import struct
import time
import zipfile
from pathlib import Path

import olefile
import pytest
from msoffcrypto.format.ooxml import OOXMLFile

from config.errors import UnreadableFile
from imports.reading import Record
from imports.sheets import ods as ods_reader
from imports.sheets import xls as xls_reader
from imports.sheets import xlsx as xlsx_reader
from imports.sheets.containers import ContainerLimits
from imports.sheets.jsonfile import JsonLimits, detect_json_layout, iter_json_records
from imports.sheets.sniff import sniff_kind
from imports.sheets.strings import StringTable
from imports.sheets.workbook import SheetLimits, detect_book_layout, iter_book_records
from tests.imports.reading import workbooks as W

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def sniff(path: Path, limits: ContainerLimits | None = None) -> str:
    with path.open("rb") as handle:
        return sniff_kind(handle, limits=limits)


def refusal(path: Path, limits: ContainerLimits | None = None) -> str:
    with pytest.raises(UnreadableFile) as caught:
        sniff(path, limits)
    return caught.value.message


def read_xlsx(path: Path, **limits: object) -> list[Record]:
    book = xlsx_reader.open_book(path, SheetLimits(**limits))
    try:
        layout = detect_book_layout(book)
        return [item for item in iter_book_records(book, layout) if isinstance(item, Record)]
    finally:
        book.close()


def xlsx_refusal(path: Path, **limits: object) -> str:
    with pytest.raises(UnreadableFile) as caught:
        read_xlsx(path, **limits)
    return caught.value.message


# --------------------------------------------------------------------------------------------------
# Zip bombs and other archives


def test_a_zip_bomb_is_refused_from_its_directory_before_anything_is_inflated(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    # 200 MB of zeros packs into ~200 KB: the sheet would unpack ~1000 times larger than it is packed.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            block = b"\0" * 2**20
            for _ in range(200):
                sheet.write(block)
    started = time.perf_counter()
    message = refusal(path)
    assert "unpacks 1,0" in message and "times larger than it is packed" in message and "zip bomb" in message
    assert time.perf_counter() - started < 1.0  # decided from the directory, not by inflating 200 MB
    with pytest.raises(UnreadableFile, match="zip bomb"):
        xlsx_reader.open_book(path)


def test_an_archive_unpacking_past_the_total_limit_is_refused(tmp_path: Path) -> None:
    path = W.xlsx(tmp_path / "ok.xlsx", {"Trades": [["Symbol", "Qty"], ["AAPL", 1]]})
    assert sniff(path) == "xlsx"
    message = refusal(path, ContainerLimits(max_unpacked_bytes=1000))
    assert message.startswith("The archive unpacks to more than") and "Nothing was read" in message


def test_an_archive_listing_too_many_files_is_refused_before_its_directory_is_read(tmp_path: Path) -> None:
    path = tmp_path / "many.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for i in range(10_001):
            archive.writestr(f"f{i}", b"")
    assert refusal(path).startswith("The archive lists 10,001 files")


def test_a_damaged_or_truncated_archive_is_refused(tmp_path: Path) -> None:
    good = W.xlsx(tmp_path / "ok.xlsx", {"Trades": [["Symbol", "Qty"], ["AAPL", 1]]}).read_bytes()
    cut = tmp_path / "cut.xlsx"
    cut.write_bytes(good[: len(good) // 2])
    assert "damaged" in refusal(cut)


def test_zip_entries_with_duplicate_names_or_encryption_are_refused(tmp_path: Path) -> None:
    twice = tmp_path / "twice.xlsx"
    with zipfile.ZipFile(twice, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with pytest.warns(UserWarning):
            archive.writestr("[Content_Types].xml", "<Types/>")
    assert refusal(twice) == "The archive holds two files named '[Content_Types].xml'."
    data = bytearray(W.zip_bytes({"[Content_Types].xml": "<Types/>"}))
    for signature in (b"PK\x03\x04", b"PK\x01\x02"):  # set the encryption flag in both headers
        at = data.find(signature)
        offset = at + (6 if signature == b"PK\x03\x04" else 8)
        data[offset] |= 1
    locked = tmp_path / "locked.xlsx"
    locked.write_bytes(bytes(data))
    assert "password-protected" in refusal(locked)


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        (
            {"[Content_Types].xml": "<Types/>", "word/document.xml": "<w/>"},
            "This is a Word document (.docx), not a spreadsheet.",
        ),
        (
            {"[Content_Types].xml": "<Types/>", "ppt/presentation.xml": "<p/>"},
            "This is a PowerPoint presentation (.pptx), not a spreadsheet.",
        ),
        ({"[Content_Types].xml": "<Types/>", "xl/workbook.bin": "x"}, "Excel binary workbook (.xlsb)"),
        (
            {"mimetype": "application/vnd.oasis.opendocument.text"},
            "This is an OpenDocument text document (.odt), not a spreadsheet.",
        ),
        ({"trades.csv": "a,b\n1,2\n", "more.csv": "a,b\n"}, "Unzip it and upload the files inside."),
        ({"notes.bin": "x"}, "This is a ZIP archive of 1 file ('notes.bin'), not a spreadsheet"),
    ],
)
def test_a_renamed_zip_of_something_else_is_named_in_the_refusal(tmp_path: Path, members: dict, expected: str) -> None:
    path = tmp_path / "renamed.xlsx"
    path.write_bytes(W.zip_bytes(members))
    assert expected in refusal(path)


# --------------------------------------------------------------------------------------------------
# XML entity tricks

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + "]>"
)
EXTERNAL = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


@pytest.mark.parametrize("prolog", [BILLION_LAUGHS, EXTERNAL], ids=["billion-laughs", "external-entity"])
@pytest.mark.parametrize("part", ["sheet", "shared strings", "workbook"])
def test_entity_tricks_in_any_part_are_refused_for_their_dtd(tmp_path: Path, prolog: str, part: str) -> None:
    entity = "&lol9;" if prolog is BILLION_LAUGHS else "&xxe;"
    body = f'<worksheet xmlns="{MAIN}"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>{entity}</t></is></c></row></sheetData></worksheet>'
    sst = f'<sst xmlns="{MAIN}"><si><t>{entity}</t></si></sst>'
    workbook = f'<workbook xmlns="{MAIN}" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="{entity}" sheetId="1" r:id="rId1"/></sheets></workbook>'
    path = W.xlsx_package(
        tmp_path / "x.xlsx",
        sheet_xml=prolog + body if part == "sheet" else None,
        shared_strings=prolog + sst if part == "shared strings" else None,
        workbook_xml=prolog + workbook if part == "workbook" else None,
    )
    message = xlsx_refusal(path)
    assert "declares a document type (DTD)" in message and "refused" in message


def test_an_ods_with_a_dtd_is_refused(tmp_path: Path) -> None:
    content = (
        EXTERNAL
        + f"<office:document-content {W.ODS_NS}><office:body><office:spreadsheet/></office:body></office:document-content>"
    )
    path = W.ods(tmp_path / "x.ods", {}, content=content)
    with pytest.raises(UnreadableFile, match=r"declares a document type \(DTD\)"):
        ods_reader.open_book(path)


def test_a_part_that_is_not_well_formed_xml_is_named_in_the_refusal(tmp_path: Path) -> None:
    path = W.xlsx_package(tmp_path / "bad.xlsx", sheet_xml=f'<worksheet xmlns="{MAIN}"><sheetData><row>')
    assert "'xl/worksheets/sheet1.xml' is not well-formed XML" in xlsx_refusal(path)


def test_a_part_that_is_not_a_worksheet_is_refused(tmp_path: Path) -> None:
    path = W.xlsx_package(
        tmp_path / "other.xlsx", sheet_xml='<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>'
    )
    assert "is not a worksheet" in xlsx_refusal(path)


# --------------------------------------------------------------------------------------------------
# Encrypted workbooks


def test_a_password_protected_xlsx_is_refused_at_once(tmp_path: Path) -> None:
    plain = W.xlsx(tmp_path / "plain.xlsx", {"Trades": [["Symbol", "Qty"], ["AAPL", 1]]})
    locked = tmp_path / "locked.xlsx"
    with plain.open("rb") as source, locked.open("wb") as target:
        document = OOXMLFile(source)
        document.encrypt("secret", target)
    assert "password-protected (encrypted)" in refusal(locked)
    with pytest.raises(UnreadableFile, match="password-protected"):
        xlsx_reader.open_book(locked)


def test_a_password_protected_xls_is_refused(tmp_path: Path) -> None:
    path = W.xls(tmp_path / "book.xls", {"Trades": [["Symbol", "Qty"], ["AAPL", 1]]})
    # Turn the globals' INTERFACEHDR record (type 0x00E1, 2 bytes) into a FILEPASS record (0x002F): what
    # Excel writes first in an encrypted workbook's stream.
    with olefile.OleFileIO(str(path), write_mode=True) as ole:
        stream = bytearray(ole.openstream("Workbook").read())
        at = 0
        while at < len(stream):
            kind, length = struct.unpack_from("<HH", stream, at)
            if kind == 0x00E1:
                struct.pack_into("<H", stream, at, 0x002F)
                break
            at += 4 + length
        ole.write_stream("Workbook", bytes(stream))
    assert "password-protected (encrypted)" in refusal(path)
    with pytest.raises(UnreadableFile, match="password-protected"):
        xls_reader.open_book(path)


def test_a_password_protected_ods_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "locked.ods"
    manifest = (
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">'
        '<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x"/></manifest:file-entry>'
        "</manifest:manifest>"
    )
    path.write_bytes(
        W.zip_bytes(
            {
                "mimetype": "application/vnd.oasis.opendocument.spreadsheet",
                "META-INF/manifest.xml": manifest,
                "content.xml": b"\x8f\x02",
            }
        )
    )
    assert "password-protected (encrypted)" in refusal(path)


def test_an_xls_over_its_size_limit_is_refused_with_a_way_out(tmp_path: Path) -> None:
    path = W.xls(tmp_path / "book.xls", {"Trades": [["Symbol", "Qty"], ["AAPL", 1]]})
    assert sniff(path) == "xls"
    message = refusal(path, ContainerLimits(max_xls_bytes=1000))
    assert "at most" in message and "Save it as .xlsx" in message


# --------------------------------------------------------------------------------------------------
# Sheets, columns, strings


def test_thousands_of_sheets_are_refused(tmp_path: Path) -> None:
    path = W.xlsx_package(tmp_path / "sheets.xlsx", sheets=250)
    with pytest.raises(UnreadableFile, match=r"more than 200 sheets"):
        xlsx_reader.open_book(path, SheetLimits(max_sheets=200))
    tables = {f"S{i}": [["a", "b"]] for i in range(250)}
    with pytest.raises(UnreadableFile, match=r"more than 200 sheets"):
        ods_reader.open_book(W.ods(tmp_path / "sheets.ods", tables), SheetLimits(max_sheets=200))


def test_a_value_in_a_far_column_is_refused_and_a_claimed_dimension_costs_nothing(tmp_path: Path) -> None:
    header = '<row r="1"><c r="A1" t="inlineStr"><is><t>Symbol</t></is></c><c r="B1" t="inlineStr"><is><t>Qty</t></is></c></row>'
    far = W.sheet_xml(
        [header, '<row r="2"><c r="A2" t="inlineStr"><is><t>AAPL</t></is></c><c r="ZZZZ2"><v>1</v></c></row>']
    )
    assert "has a value in column" in xlsx_refusal(W.xlsx_package(tmp_path / "far.xlsx", sheet_xml=far))
    wide = W.sheet_xml(
        [header, '<row r="2"><c r="A2" t="inlineStr"><is><t>AAPL</t></is></c><c r="SG2"><v>1</v></c></row>']
    )
    assert "(column 501); at most 500 columns are read" in xlsx_refusal(
        W.xlsx_package(tmp_path / "w.xlsx", sheet_xml=wide), max_columns=500
    )
    # A sheet claiming a million columns and rows, and styled empty cells far right: nothing is allocated.
    claimed = W.sheet_xml(
        [
            header,
            '<row r="2"><c r="A2" t="inlineStr"><is><t>AAPL</t></is></c><c r="B2"><v>1</v></c><c r="XFD2" s="1"/></row>',
        ],
    ).replace("<sheetData>", '<dimension ref="A1:XFD1048576"/><sheetData>')
    records = read_xlsx(W.xlsx_package(tmp_path / "c.xlsx", sheet_xml=claimed))
    assert [r.cells for r in records] == [["AAPL", "1"]]


def test_an_ods_row_or_cell_repeated_beyond_the_sheet_limits_is_refused(tmp_path: Path) -> None:
    rows = [W.ods_row(["Symbol", "Qty"]), W.ods_row(["AAPL", 1], repeat=2_000_000)]
    with pytest.raises(UnreadableFile, match="repeats row 2 2,000,000 times"):
        book = ods_reader.open_book(W.ods(tmp_path / "rows.ods", {"Trades": rows}))
        list(book.rows(book.sheets[0]))
    wide = [W.ods_row(["Symbol", "Qty"]), "<table:table-row>" + W.ods_cell("x", repeat=16384) + "</table:table-row>"]
    with pytest.raises(UnreadableFile, match="at most 500 columns are read"):
        book = ods_reader.open_book(W.ods(tmp_path / "cols.ods", {"Trades": wide}))
        list(book.rows(book.sheets[0]))


def test_a_huge_shared_string_table_spills_to_disk_and_reads_the_same(tmp_path: Path) -> None:
    count = 30_000
    sst = f'<sst xmlns="{MAIN}">' + "".join(f"<si><t>trade-{i:08d}</t></si>" for i in range(count)) + "</sst>"
    rows = [
        '<row r="1"><c r="A1" t="inlineStr"><is><t>Trade ID</t></is></c><c r="B1" t="inlineStr"><is><t>Qty</t></is></c></row>'
    ]
    rows += [
        f'<row r="{i + 2}"><c r="A{i + 2}" t="s"><v>{count - 1 - i}</v></c><c r="B{i + 2}"><v>{i}</v></c></row>'
        for i in range(count)
    ]
    path = W.xlsx_package(tmp_path / "sst.xlsx", sheet_xml=W.sheet_xml(rows), shared_strings=sst)
    book = xlsx_reader.open_book(path, SheetLimits(strings_memory=64 * 1024))
    try:
        assert book.strings().spilled > 20_000  # most strings live on disk under a 64 KB budget
        layout = detect_book_layout(book)
        records = [item for item in iter_book_records(book, layout) if isinstance(item, Record)]
    finally:
        book.close()
    assert len(records) == count
    assert records[0].cells == [f"trade-{count - 1:08d}", "0"] and records[-1].cells == [
        "trade-00000000",
        str(count - 1),
    ]


def test_the_string_table_stores_any_text_compactly_and_in_order() -> None:
    texts = ["", "a", "é" * 3, "\U0001f600", "x" * 5000, *[str(i) for i in range(10_000)]]
    for budget in (10**9, 1000):
        with StringTable(budget) as table:
            for text in texts:
                table.append(text)
            table.seal()
            assert len(table) == len(texts) and [table[i] for i in range(len(texts))] == texts
            with pytest.raises(IndexError):
                table[len(texts)]


def test_a_cell_using_a_too_long_shared_string_or_a_missing_one_is_refused(tmp_path: Path) -> None:
    sst = f'<sst xmlns="{MAIN}"><si><t>Symbol</t></si><si><t>{"x" * 200}</t></si></sst>'
    long_row = W.sheet_xml(
        ['<row r="1"><c r="A1" t="s"><v>0</v></c></row>', '<row r="2"><c r="A2" t="s"><v>1</v></c></row>']
    )
    message = xlsx_refusal(
        W.xlsx_package(tmp_path / "l.xlsx", sheet_xml=long_row, shared_strings=sst), max_field_chars=100
    )
    assert "row 2, column A holds more than 100 characters" in message
    missing = W.sheet_xml(
        ['<row r="1"><c r="A1" t="s"><v>0</v></c></row>', '<row r="2"><c r="A2" t="s"><v>99</v></c></row>']
    )
    assert "refers to shared string '99'" in xlsx_refusal(
        W.xlsx_package(tmp_path / "m.xlsx", sheet_xml=missing, shared_strings=sst)
    )


def test_rows_out_of_order_are_refused_as_damage(tmp_path: Path) -> None:
    rows = ['<row r="5"><c r="A5"><v>1</v></c></row>', '<row r="3"><c r="A3"><v>2</v></c></row>']
    book = xlsx_reader.open_book(W.xlsx_package(tmp_path / "o.xlsx", sheet_xml=W.sheet_xml(rows)))
    with pytest.raises(UnreadableFile, match="row 3 comes after row 5"):
        list(book.rows(book.sheets[0]))


# --------------------------------------------------------------------------------------------------
# JSON


def json_refusal(path: Path, **limits: int) -> str:
    with pytest.raises(UnreadableFile) as caught:
        layout = detect_json_layout(path, limits=JsonLimits(**limits))
        list(iter_json_records(path, layout, JsonLimits(**limits)))
    return caught.value.message


@pytest.mark.parametrize("shape", ["array", "object", "ndjson"])
def test_deeply_nested_json_is_refused_without_exhausting_the_worker(tmp_path: Path, shape: str) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    text = {"array": deep, "object": '{"trades": ' + deep + "}", "ndjson": '{"a": 1}\n{"b": ' + deep + "}\n"}[shape]
    path = tmp_path / "deep.json"
    path.write_text(text)
    assert "nested more than 32 levels deep" in json_refusal(path)


def test_a_100_mb_single_line_json_streams_or_is_refused_quickly(tmp_path: Path) -> None:
    one_string = tmp_path / "string.json"
    with one_string.open("w") as out:
        out.write('[{"symbol": "')
        for _ in range(100):
            out.write("x" * 2**20)
        out.write('"}]')
    started = time.perf_counter()
    assert json_refusal(one_string, max_field_chars=10_000).startswith("The JSON holds a string longer than 10,000")
    assert time.perf_counter() - started < 2.0  # refused at the first chunk over the limit, not after 100 MB
    records = tmp_path / "records.json"
    record = '{"symbol":"AAPL","qty":1,"price":1.5},'
    with records.open("w") as out:  # ~20 MB on one line
        out.write("[" + record * 500_000 + '{"symbol":"MSFT","qty":2,"price":3}]')
    layout = detect_json_layout(records)
    assert layout.rows == 500_001 and layout.header == ["symbol", "qty", "price"]


def test_a_huge_number_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    path.write_text('[{"qty": ' + "9" * 100_000 + "}]")
    assert json_refusal(path) == "The JSON holds a number longer than 1000 characters."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[{"qty": 1, "qty": 2}]', 'An object (record 1) has the key "qty" twice'),
        ('{"trades": [], "trades": []}', 'An object (at the top level) has the key "trades" twice'),
        ('{"a": 1}\n{"b": 2, "b": 3}\n', 'An object (line 2) has the key "b" twice'),
        ('[{"fill": {"p": 1, "p": 1}}]', 'An object (record 1) has the key "p" twice'),
        ('[{"a.b": 1, "a": {"b": 2}}]', "Record 1 has the field 'a.b' twice"),
    ],
)
def test_duplicate_keys_are_refused_because_the_meant_value_is_unknown(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "dup.json"
    path.write_text(text)
    assert expected in json_refusal(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", "The file is JSON holding a number, not records."),
        ('"hello"', "The file is JSON holding a string, not records."),
        ("null", "The file is JSON holding null, not records."),
        ('{"config": true}', "The JSON object holds no array of objects"),
        ("[1, 2, 3]", "The array holds no objects"),
        ('[{"a": 1}', "The JSON is malformed"),
        ('{"a": 1}\n[1]\n', "Line 2 holds an array, not an object"),
    ],
)
def test_json_that_holds_no_records_is_refused_with_what_it_holds(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(text)
    assert expected in json_refusal(path)


# --------------------------------------------------------------------------------------------------
# What is not a table at all


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b'<?xml version="1.0"?><orders><order id="1"/></orders>',
            "This is an XML document, not a CSV, spreadsheet or JSON file",
        ),
        (b"\xef\xbb\xbf<!DOCTYPE html><html><body><table><tr><td>1</td></tr></table>", "This is an HTML page"),
        (
            b'<?xml version="1.0"?><?mso-application progid="Excel.Sheet"?><Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet"/>',
            "Excel 2003 XML spreadsheet",
        ),
        ("<?xml version='1.0' encoding='utf-16'?><a/>".encode("utf-16"), "This is an XML document"),
        (bytes(range(256)) * 64, "The file looks binary"),
        (bytes(range(128, 256)) * 64, "The file has no line break and no delimiter"),
        (b"%PDF-1.7\n...", "This is a PDF document"),
        (b"MZ\x90\x00", "This is a Windows executable"),
        (b"", "The file is empty"),
        (b"42\n", "The file is JSON holding a single number, not records."),
        (b'"just a string"', "The file is JSON holding a single string"),
    ],
)
def test_what_is_not_tabular_is_refused_by_its_content(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "upload.csv"
    path.write_bytes(data)
    assert expected in refusal(path)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"Date,Symbol\n2024-01-02,AAPL\n", "csv"),
        ("Дата;Тикер;Цена\n02.01.2024;SBER;270,5\n".encode("cp1251") * 50, "csv"),  # mostly undecodable as UTF-8
        ("約定日,銘柄,数量\n2024/01/02,トヨタ,100\n".encode("shift_jis") * 50, "csv"),
        (b"[Trades]\nDate,Symbol\n", "csv"),
        (b'[{"a": 1}]', "json"),
        (b'  \n{"a": 1}\n{"a": 2}\n', "json"),
        (b'\xef\xbb\xbf[\n  {"a": 1}\n]', "json"),
    ],
)
def test_csv_text_and_json_are_told_apart_by_content(tmp_path: Path, data: bytes, kind: str) -> None:
    path = tmp_path / "upload.xlsx"  # the name says xlsx: the content decides
    path.write_bytes(data)
    assert sniff(path) == kind


def test_workbooks_are_recognised_whatever_their_name(tmp_path: Path) -> None:
    rows = {"Trades": [["Symbol", "Qty"], ["AAPL", 1]]}
    assert sniff(W.xlsx(tmp_path / "a.csv", rows)) == "xlsx"
    assert sniff(W.xls(tmp_path / "b.csv", rows)) == "xls"
    assert sniff(W.ods(tmp_path / "c.csv", rows)) == "ods"


def test_a_zip_header_on_garbage_is_refused_as_damaged() -> None:
    handle = io.BytesIO(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(UnreadableFile, match="damaged"):
        sniff_kind(handle)
