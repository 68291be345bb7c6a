"""A real browser (Debian's Chromium via Playwright) against the real stack (gunicorn + RQ worker).

A user uploads two files (a known format and an unknown one), sees the first import and the second wait
for approval with the banner; an admin approves the second in the Django admin with a corrected mapping
in another browser context; the user's open page updates without a reload; the error report downloads.
Screenshots of every page go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import csv
import io
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from formats.models import CsvFormat
from formats.services import format_approve, format_get_or_create_pending
from imports.models import ImportFile, Order
from imports.reading import detect_layout
from tests.e2e.conftest import ROOT, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = ROOT / "test-artifacts" / "screenshots"

KNOWN = """Date,Symbol,Side,Quantity,Price,Commission,Currency,Trade ID
2024-05-02 14:30:00,AAPL,BUY,10,170.50,1.00,USD,K-1
2024-05-02 15:10:00,NVDA,SELL,2,880.00,1.00,USD,K-2
"""
# No currency column: the admin corrects the mapping with a constant currency. Line 4 is invalid (0 shares).
UNKNOWN = """Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ref
2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,T-1
2024-03-01 10:15:00,MSFT,Sell,5,410.10,1.00,T-2
2024-03-04 15:59:59,=HYPERLINK("http://evil"),Sell,0,174.00,-0.50,T-3
"""


def approved_format_for(text: str, tmp_path: Path, approver: Any) -> CsvFormat:
    """An approved format for this file's header, made through the services (as an admin would)."""
    path = tmp_path / "known-header.csv"
    path.write_text(text)
    layout = detect_layout(path)
    fmt, _ = format_get_or_create_pending(
        target="orders",
        header=layout.header,
        columns=layout.columns,
        sample_rows=[],
        section=layout.section,
        name="Known broker export",
        created_by=None,
        file_id=None,
        file_name="alpha-trades.csv",
    )
    return format_approve(format_id=fmt.pk, actor=approver)


def login(page: Any, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def drop_file(page: Any, selector: str, name: str, text: str) -> None:
    """Drag-and-drop a file onto an element, as a user dragging it from their desktop."""
    page.evaluate(
        """([selector, name, text]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], name, {type: "text/csv"}));
            const zone = document.querySelector(selector);
            for (const type of ["dragenter", "dragover", "drop"]) {
              zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
            }
        }""",
        [selector, name, text],
    )


def test_a_user_uploads_an_admin_approves_and_the_open_page_updates_by_itself(
    stack: Stack, chromium: Any, tmp_path: Path
) -> None:
    User = get_user_model()
    User.objects.create_user(username="trader", password="trader-pass-1", email="trader@example.com")
    call_command("api_token", "checker", "--create", "--approver", stdout=StringIO())
    checker = User.objects.get(username="checker")
    checker.set_password("checker-pass-1")
    checker.save()
    known_format = approved_format_for(KNOWN, tmp_path, checker)
    base = stack.base_url

    user_ctx = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = user_ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, base, "trader", "trader-pass-1")

    # Upload: one file through the picker, one dropped onto the drop zone, then one request.
    page.goto(f"{base}/")
    assert page.locator("link[rel=stylesheet]").count() == 1
    assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).position") == "sticky", (
        "app.css was not served"
    )
    shot(page, "01-upload-empty")
    page.set_input_files(
        "#upload-form input[type=file]",
        files=[{"name": "alpha-trades.csv", "mimeType": "text/csv", "buffer": KNOWN.encode()}],
    )
    drop_file(page, "#dropzone", "beta-export.csv", UNKNOWN)
    assert page.locator("#picked li").count() == 2
    assert page.inner_text("#upload-button") == "Upload 2 files"
    shot(page, "02-upload-picked")
    page.click("#upload-button")
    page.wait_for_selector("#upload-results tbody tr >> nth=1")
    known_row = page.locator("#upload-results tr", has_text="alpha-trades.csv")
    unknown_row = page.locator("#upload-results tr", has_text="beta-export.csv")
    try:
        known_row.locator("[data-field=status]", has_text="Imported").wait_for(timeout=60_000)
    finally:
        shot(page, "03-upload-progress")
    unknown_row.locator("[data-field=status]", has_text="Pending approval").wait_for(timeout=60_000)
    # The request's bar follows the processing after the bytes: done once no file is left to process.
    page.locator(".request.done").wait_for(timeout=15_000)
    assert page.get_attribute(".request .bar", "aria-valuenow") == "100"
    assert "Waiting for approval: 2 of 2 files done" in page.inner_text(".request .request-state")
    assert known_row.locator("[data-field=imported]").inner_text() == "2"
    assert unknown_row.locator("[data-field=staged]").inner_text() == "3"
    # The banner appears without a reload once the worker has staged the rows.
    banner = page.locator("#staging-banner")
    banner.wait_for(state="visible", timeout=15_000)
    assert "3 rows from 1 file are waiting for an admin to approve their format" in banner.inner_text()
    shot(page, "03-upload-done")

    unknown = ImportFile.objects.get(original_name="beta-export.csv")
    assert ImportFile.objects.get(original_name="alpha-trades.csv").format_id == known_format.pk
    assert Order.objects.filter(source_file=unknown).count() == 0

    page.goto(f"{base}/imports/")
    assert page.locator(f"tr[data-file-id='{unknown.pk}'] [data-field=status]").inner_text() == "Pending approval"
    shot(page, "04-my-imports")

    # The staged rows page stays open while the admin decides.
    page.goto(f"{base}/staged/")
    statuses = page.locator("[data-field=row-status]")
    assert statuses.count() == 3 and set(statuses.all_inner_texts()) == {"Pending approval"}
    assert page.locator("table.raw th", has_text="Ticker").count() == 1
    shot(page, "05-staged-pending")
    page.evaluate("window.__notReloaded = true")

    # The admin approves in the Django admin with a corrected mapping (a constant currency).
    admin_ctx = chromium.new_context(viewport={"width": 1280, "height": 1000})
    admin = admin_ctx.new_page()
    login(admin, base, "checker", "checker-pass-1")
    admin.goto(f"{base}/admin/formats/csvformat/{unknown.format_id}/change/")
    shot(admin, "06-admin-review")
    mapping = json.loads(admin.input_value("textarea[name=mapping]"))
    mapping["fields"]["currency"] = {"columns": [], "converter": "constant", "options": {"value": "EUR"}}
    admin.fill("textarea[name=mapping]", json.dumps(mapping))
    admin.click("input[name=_approve]")
    admin.wait_for_url(lambda url: url.rstrip("/").endswith("/admin/formats/csvformat"))
    assert "Approved" in admin.inner_text("ul.messagelist")

    # The user's open page follows: rows migrate (or fail), the file settles, the banner goes.
    page.locator("section[data-file-id] [data-field=file-status]", has_text="Imported with invalid rows").wait_for(
        timeout=60_000
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-field=row-status]')]"
        ".every(el => !/Pending|Approved|Importing/.test(el.textContent))",
        timeout=30_000,
    )
    assert sorted(statuses.all_inner_texts()) == ["Imported", "Imported", "Invalid"]
    assert "quantity" in page.inner_text("tr:has-text('T-3') [data-field=row-error]")
    decision = page.locator("[data-field=decision]")
    decision.wait_for(state="visible")
    assert "2 imported, 1 invalid" in decision.inner_text()
    banner.wait_for(state="hidden", timeout=15_000)
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    shot(page, "07-staged-after-approval")

    assert set(Order.objects.filter(source_file=unknown).values_list("currency", flat=True)) == {"EUR"}

    # The file's page: detection, counts, invalid rows; the error report downloads, formula-safe.
    page.goto(f"{base}/imports/{unknown.pk}/")
    assert page.inner_text("#file-status") == "Imported with invalid rows"
    # One invalid row, two errors: 0 shares, and a symbol holding markup characters (the quote marks).
    assert page.locator("#errors-table tbody tr").count() == 2
    assert "markup" in page.inner_text("#errors-table")
    shot(page, "08-file-detail")
    with page.expect_download() as info:
        page.click("#download-errors")
    download = info.value
    assert download.suggested_filename == "beta-export-errors.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8-sig"))))
    assert rows[0] == ["Trade Date", "Ticker", "Buy or Sell", "Shares", "Fill Price", "Fee", "Ref", "errors"]
    assert rows[1][:7] == [
        "2024-03-04 15:59:59",
        '\'=HYPERLINK("http://evil")',
        "Sell",
        "0",
        "174.00",
        "-0.50",
        "T-3",
    ]
    assert "quantity" in rows[1][7] and "symbol" in rows[1][7] and rows[1][7].startswith("line 4")

    page.goto(f"{base}/orders/")
    assert page.inner_text("#figure-trades") == "4"
    figures = page.inner_text("#order-figures")
    assert "EUR" in figures and "USD" in figures
    shot(page, "09-orders")
    page.goto(f"{base}/orders/?symbol=AAPL&side=BUY")
    assert page.inner_text("#figure-trades") == "2"
    shot(page, "10-orders-filtered")

    # The narrow (phone) layout of the imports page.
    phone = user_ctx.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"{base}/imports/")
    shot(phone, "11-my-imports-phone")
    phone.goto(f"{base}/imports/{unknown.pk}/")
    shot(phone, "12-file-detail-phone")
    assert errors == [], f"JavaScript errors: {errors}"
    admin_ctx.close()
    user_ctx.close()
