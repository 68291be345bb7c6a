"""Workbooks written for tests: .xlsx by XlsxWriter, .xls by xlwt, .ods and hostile archives by hand.

Every edge case is made here from code (1904 dates, formulas with saved values, merged cells, hidden
rows, zip bombs, entity tricks...), so a test shows the file it reads.
"""

# ruff: noqa: E501 - XML fixtures read best on one line

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import xlsxwriter
import xlwt

TRADES_HEADER = ["Trade Date", "Symbol", "Side", "Quantity", "Price", "Commission", "Currency", "Trade ID"]


def xlsx(path: Path, sheets: dict[str, list[list[Any]]], *, date1904: bool = False, **options: Any) -> Path:
    """A workbook with one sheet per entry; datetimes get a date-time format, dates a date format.

    options: `merge` {sheet: [(first_row, first_col, last_row, last_col, value)]} (0-based),
    `hidden_rows` {sheet: [row index]}, `hidden_sheets` [names], `formulas` {sheet: [(row, col, formula,
    saved value)]}."""
    book = xlsxwriter.Workbook(str(path), {"date_1904": date1904, "strings_to_numbers": False})
    when = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    day = book.add_format({"num_format": "dd/mm/yyyy"})
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, datetime):
                    sheet.write_datetime(r, c, value, when)
                elif isinstance(value, date):
                    sheet.write_datetime(r, c, datetime(value.year, value.month, value.day), day)
                elif isinstance(value, bool):
                    sheet.write_boolean(r, c, value)
                elif isinstance(value, int | float):
                    sheet.write_number(r, c, value)
                else:
                    sheet.write_string(r, c, str(value))
        for first_row, first_col, last_row, last_col, value in options.get("merge", {}).get(name, []):
            fmt = when if isinstance(value, datetime) else None
            sheet.merge_range(first_row, first_col, last_row, last_col, "", fmt)
            if isinstance(value, datetime):
                sheet.write_datetime(first_row, first_col, value, when)
            else:
                sheet.write(first_row, first_col, value)
        for row in options.get("hidden_rows", {}).get(name, []):
            sheet.set_row(row, None, None, {"hidden": True})
        for row, col, formula, saved in options.get("formulas", {}).get(name, []):
            sheet.write_formula(row, col, formula, None, saved)
        if name in options.get("hidden_sheets", []):
            sheet.hide()
    book.close()
    return path


def xls(
    path: Path, sheets: dict[str, list[list[Any]]], *, merge: dict | None = None, hidden_rows: dict | None = None
) -> Path:
    """An Excel 97-2003 workbook (xlwt)."""
    book = xlwt.Workbook()
    when = xlwt.easyxf(num_format_str="yyyy-mm-dd hh:mm:ss")
    day = xlwt.easyxf(num_format_str="dd/mm/yyyy")
    for name, rows in sheets.items():
        sheet = book.add_sheet(name)
        merged = {(r1, c1): (r1, r2, c1, c2, v) for r1, c1, r2, c2, v in (merge or {}).get(name, [])}
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None or (r, c) in merged:
                    continue
                if isinstance(value, datetime):
                    sheet.write(r, c, value, when)
                elif isinstance(value, date):
                    sheet.write(r, c, datetime(value.year, value.month, value.day), day)
                else:
                    sheet.write(r, c, value)
        for r1, r2, c1, c2, value in merged.values():
            style = when if isinstance(value, datetime) else xlwt.Style.default_style
            sheet.write_merge(r1, r2, c1, c2, value, style)
        for row in (hidden_rows or {}).get(name, []):
            sheet.row(row).hidden = True
    book.save(str(path))
    return path


# --------------------------------------------------------------------------------------------------
# OpenDocument, written by hand (the shape LibreOffice writes)

ODS_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"'
)


def ods_cell(value: Any, *, repeat: int = 1, span_rows: int = 1, formula: str | None = None) -> str:
    """One <table:table-cell> for a Python value (str, int/float, date, datetime, bool, None)."""
    attrs = ""
    if repeat > 1:
        attrs += f' table:number-columns-repeated="{repeat}"'
    if span_rows > 1:
        attrs += f' table:number-rows-spanned="{span_rows}"'
    if formula:
        attrs += f" table:formula={quoteattr(formula)}"
    if value is None:
        return f"<table:table-cell{attrs}/>"
    if isinstance(value, bool):
        word = "true" if value else "false"
        return (
            f'<table:table-cell{attrs} office:value-type="boolean" office:boolean-value="{word}">'
            f"<text:p>{word.upper()}</text:p></table:table-cell>"
        )
    if isinstance(value, datetime):
        return (
            f'<table:table-cell{attrs} office:value-type="date" office:date-value="{value.isoformat()}">'
            f"<text:p>{value:%d.%m.%Y %H:%M}</text:p></table:table-cell>"
        )
    if isinstance(value, date):
        return (
            f'<table:table-cell{attrs} office:value-type="date" office:date-value="{value.isoformat()}">'
            f"<text:p>{value:%d.%m.%Y}</text:p></table:table-cell>"
        )
    if isinstance(value, int | float):
        return (
            f'<table:table-cell{attrs} office:value-type="float" office:value="{value!r}">'
            f"<text:p>{value}</text:p></table:table-cell>"
        )
    return (
        f'<table:table-cell{attrs} office:value-type="string"><text:p>{escape(str(value))}</text:p></table:table-cell>'
    )


def ods_row(cells: Iterable[Any], *, repeat: int = 1, visibility: str | None = None) -> str:
    attrs = (f' table:number-rows-repeated="{repeat}"' if repeat > 1 else "") + (
        f' table:visibility="{visibility}"' if visibility else ""
    )
    body = "".join(cell if isinstance(cell, str) and cell.startswith("<table:") else ods_cell(cell) for cell in cells)
    return f"<table:table-row{attrs}>{body}</table:table-row>"


def ods(
    path: Path, tables: dict[str, list[str | list[Any]]], *, hidden: Iterable[str] = (), content: str | None = None
) -> Path:
    """An .ods whose tables hold the given rows (a row is a list of values or ready <table:table-row> XML)."""
    hidden = set(hidden)
    styles = (
        '<office:automatic-styles><style:style style:name="hidden" style:family="table">'
        '<style:table-properties table:display="false"/></style:style></office:automatic-styles>'
    )
    body = []
    for name, rows in tables.items():
        style = ' table:style-name="hidden"' if name in hidden else ""
        xml_rows = "".join(row if isinstance(row, str) else ods_row(row) for row in rows)
        # LibreOffice ends every sheet with the rest of its rows as one empty repeated row.
        body.append(
            f"<table:table table:name={quoteattr(name)}{style}><table:table-column/>{xml_rows}"
            '<table:table-row table:number-rows-repeated="1048000"><table:table-cell table:number-columns-repeated="1024"/>'
            "</table:table-row></table:table>"
        )
    document = content or (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODS_NS} office:version="1.3">{styles}'
        f"<office:body><office:spreadsheet>{''.join(body)}</office:spreadsheet></office:body></office:document-content>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr(
            "META-INF/manifest.xml",
            '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
            'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
            '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
            '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>',
            compress_type=zipfile.ZIP_DEFLATED,
        )
        archive.writestr("content.xml", document, compress_type=zipfile.ZIP_DEFLATED)
    return path


# --------------------------------------------------------------------------------------------------
# Hand-made .xlsx packages (to put any XML in any part)

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def xlsx_package(
    path: Path,
    *,
    sheet_xml: str | bytes | None = None,
    shared_strings: str | bytes | None = None,
    workbook_xml: str | None = None,
    styles_xml: str | None = None,
    sheets: int = 1,
    compress: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """A minimal workbook package with the given parts (defaults: one sheet, 'Trades')."""
    names = ["Trades"] + [f"Sheet{i}" for i in range(2, sheets + 1)]
    workbook_xml = workbook_xml or (
        f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><sheets>'
        + "".join(f'<sheet name="{n}" sheetId="{i}" r:id="rId{i}"/>' for i, n in enumerate(names, start=1))
        + "</sheets></workbook>"
    )
    rels = "".join(
        f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, sheets + 1)
    )
    rels += (
        f'<Relationship Id="rIdS" Type="{_REL}/sharedStrings" Target="sharedStrings.xml"/>' if shared_strings else ""
    )
    rels += f'<Relationship Id="rIdT" Type="{_REL}/styles" Target="styles.xml"/>' if styles_xml else ""
    default_sheet = f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{_MAIN}"><sheetData/></worksheet>'
    with zipfile.ZipFile(path, "w", compress) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        )
        archive.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        archive.writestr("xl/workbook.xml", workbook_xml)
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>',
        )
        for i in range(1, sheets + 1):
            archive.writestr(f"xl/worksheets/sheet{i}.xml", sheet_xml if (i == 1 and sheet_xml) else default_sheet)
        if shared_strings:
            archive.writestr("xl/sharedStrings.xml", shared_strings)
        if styles_xml:
            archive.writestr("xl/styles.xml", styles_xml)
    return path


def sheet_xml(rows: list[str], *, prefix: str = "", extra: str = "") -> str:
    """A worksheet part with the given <row> elements (written with `prefix` on every element)."""
    p = f"{prefix}:" if prefix else ""
    xmlns = f"xmlns:{prefix}" if prefix else "xmlns"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><{p}worksheet {xmlns}="{_MAIN}"><{p}sheetData>'
        + "".join(rows)
        + f"</{p}sheetData>{extra}</{p}worksheet>"
    )


def zip_bytes(members: dict[str, bytes | str], *, compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compress) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()
