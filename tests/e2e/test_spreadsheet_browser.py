"""A real browser uploads workbooks through the page (real gunicorn, real RQ worker, Debian's Chromium).

A trader picks an .xlsx export (title rows, typed cells, one invalid row) and an XML file in the upload
page's file picker: the XML is refused at once with a message naming it, the workbook imports through the
approved format of its CSV twin; the file's page shows the sheet and header row, the invalid row under
its sheet row number, and the invalid rows download as an Excel workbook.
"""

from __future__ import annotations

from datetime import datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from imports.models import ImportFile, Order
from imports.reading import Record
from imports.sheets import xlsx as xlsx_reader
from imports.sheets.workbook import detect_book_layout, iter_book_records
from tests.e2e.conftest import Stack
from tests.e2e.test_browser import KNOWN, approved_format_for, login, shot
from tests.imports.reading import workbooks as W

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HEADER = KNOWN.splitlines()[0].split(",")
ROWS = [
    ["Trade confirmations"],
    ["Account", "U7654321"],
    HEADER,
    [datetime(2024, 5, 2, 14, 30), "AAPL", "BUY", 10, 170.5, 1, "USD", "X-1"],
    [datetime(2024, 5, 2, 15, 10), "NVDA", "SELL", 2, 880, 1, "USD", "X-2"],
    [datetime(2024, 5, 3, 9, 45), "MSFT", "BUY", 0, 410.1, 1, "USD", "X-3"],  # 0 shares: invalid
]


def test_a_user_uploads_an_xlsx_through_the_page_and_downloads_its_invalid_rows_as_excel(
    stack: Stack, chromium: Any, tmp_path: Path
) -> None:
    User = get_user_model()
    User.objects.create_user(username="trader", password="trader-pass-1")
    call_command("api_token", "checker", "--create", "--approver", stdout=StringIO())
    known = approved_format_for(KNOWN, tmp_path, User.objects.get(username="checker"))
    workbook = W.xlsx(tmp_path / "may-trades.xlsx", {"Summary": [["Cash", 100]], "Trades": ROWS}).read_bytes()

    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, stack.base_url, "trader", "trader-pass-1")
    page.goto(f"{stack.base_url}/")
    accept = page.get_attribute("#upload-form input[type=file]", "accept")
    assert all(ext in accept for ext in (".xlsx", ".xls", ".ods", ".json"))

    # An XML file first: refused in the answer, nothing stored.
    page.set_input_files(
        "#upload-form input[type=file]",
        files=[{"name": "orders.xml", "mimeType": "text/xml", "buffer": b'<?xml version="1.0"?><orders/>'}],
    )
    page.click("#upload-button")
    page.get_by_text("'orders.xml': This is an XML document").wait_for(timeout=30_000)
    shot(page, "20-upload-xml-refused")
    assert not ImportFile.objects.exists()

    page.goto(f"{stack.base_url}/")
    page.set_input_files(
        "#upload-form input[type=file]",
        files=[
            {
                "name": "may-trades.xlsx",
                "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "buffer": workbook,
            }
        ],
    )
    page.click("#upload-button")
    row = page.locator("#upload-results tr", has_text="may-trades.xlsx")
    try:
        row.locator("[data-field=status]", has_text="Imported with invalid rows").wait_for(timeout=60_000)
    finally:
        shot(page, "21-upload-xlsx")
    file = ImportFile.objects.get(original_name="may-trades.xlsx")
    assert file.format_id == known.pk and (file.rows_imported, file.rows_invalid) == (2, 1)
    assert sorted(Order.objects.filter(source_file=file).values_list("symbol", flat=True)) == ["AAPL", "NVDA"]

    page.goto(f"{stack.base_url}/imports/{file.pk}/")
    facts = page.inner_text("dl.facts")
    assert "Excel workbook (.xlsx)" in facts and "Trades" in facts and "(of 2 sheets)" in facts
    assert "(2 rows above it skipped)" in facts
    assert page.text_content("#errors-table thead th >> nth=0").strip() == "Row"
    assert page.inner_text("#errors-table tbody tr td >> nth=0") == "6"
    shot(page, "22-file-detail-xlsx")
    with page.expect_download() as info:
        page.click("#download-errors-xlsx")
    download = info.value
    assert download.suggested_filename == "may-trades-errors.xlsx"
    book = xlsx_reader.open_book(download.path())
    try:
        layout = detect_book_layout(book)
        [record] = [item for item in iter_book_records(book, layout) if isinstance(item, Record)]
    finally:
        book.close()
    assert layout.header == [*HEADER, "errors"]
    assert record.cells[:4] == ["2024-05-03 09:45:00", "MSFT", "BUY", "0"]
    assert record.cells[-1].startswith("sheet 'Trades', row 6: Quantity: quantity must be greater than 0")
    assert errors == [], f"JavaScript errors: {errors}"
    context.close()
