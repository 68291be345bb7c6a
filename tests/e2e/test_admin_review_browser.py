"""The review screen in a real browser: edit the mapping in the table, preview, approve; screenshots."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import requests

from formats.models import CsvFormat, FormatStatus
from imports.models import FileStatus, ImportFile, Order
from imports.services.uploads import upload_batch_create
from tests.conftest import csv_upload
from tests.e2e.conftest import ROOT, Stack, free_port
from tests.formats.test_admin_review import GOOD, TRADES

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


def static_server(stack: Stack) -> str:
    """Django's server with --insecure (as `make run` does) so the admin's CSS is served too."""
    port = free_port()
    log = stack.media_root.parent / "runserver.log"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"],
        cwd=ROOT,
        env=stack.env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.processes.append(proc)
    stack.logs.append(log)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{base}/admin/login/", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    stack.wait_for(up, timeout=60, what="runserver")
    return base


def test_a_reviewer_edits_the_mapping_in_the_table_previews_and_approves(
    stack: Stack, django_user_model: Any, reviewer: Any, chromium: Any
) -> None:
    reviewer.set_password("pw-reviewer-1")
    reviewer.save()
    uploader = django_user_model.objects.create_user(username="trader", password="pw-trader-1")
    _, files = upload_batch_create(owner=uploader, files=[csv_upload("trades.csv", TRADES)])
    file_id = files[0].pk
    stack.wait_for(lambda: ImportFile.objects.get(pk=file_id).status == FileStatus.PENDING_APPROVAL, what="staging")
    fmt = ImportFile.objects.get(pk=file_id).format
    base = static_server(stack)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/admin/login/?next=/admin/formats/csvformat/{fmt.pk}/change/")
    page.fill("input[name=username]", "reviewer")
    page.fill("input[name=password]", "pw-reviewer-1")
    page.click("input[type=submit]")
    page.wait_for_selector("#mapping-table tbody tr[data-field=price]")
    page.screenshot(path=str(SCREENSHOTS / "admin-format-review.png"), full_page=True)

    # Edit in the table: price takes 'Fee' instead of what was suggested; the JSON follows.
    row = page.locator("#mapping-table tr[data-field=price]")
    while row.locator(".chip button").count():
        row.locator(".chip button").first.click()
        row = page.locator("#mapping-table tr[data-field=price]")
    row.locator("select").first.select_option("Fee")
    stored = json.loads(page.input_value("textarea[name=mapping]"))
    assert stored["fields"]["price"]["columns"] == ["Fee"]
    assert stored["fields"]["price"]["reason"] == "edited by reviewer"

    # Preview without saving: counts over every staged row come back.
    page.click("#preview-button")
    # (wait_for_function would evaluate a string: the page's CSP forbids that, rightly.)
    page.locator("#preview-status", has_text="updated").wait_for()
    preview = page.inner_text("#preview-body")
    assert "2 would import" in preview and "1 would be invalid" in preview
    assert "\t1.00\t1.00\tUSD" in preview, "the price column now shows the Fee values"
    assert CsvFormat.objects.get(pk=fmt.pk).mapping != stored, "a preview does not save"
    page.screenshot(path=str(SCREENSHOTS / "admin-format-review-after-preview.png"), full_page=True)

    # Options and filters are editable too; bad options JSON is flagged and never reaches the stored JSON.
    options = page.locator("#mapping-table tr[data-field=quantity] input.options")
    options.fill('{"abs": tru')
    assert "quantity options" in page.inner_text("#mapping-editor-error")
    options.fill('{"abs": true}')
    assert page.locator("#mapping-editor-error").is_hidden()
    page.click("#add-filter")
    filter_row = page.locator("#filters-table tbody tr").first
    filter_row.locator("select").first.select_option("Ticker")
    filter_row.locator("input[type=text]").fill("MSFT")
    stored = json.loads(page.input_value("textarea[name=mapping]"))
    assert stored["fields"]["quantity"]["options"] == {"abs": True}
    assert stored["filters"] == [{"column": "Ticker", "op": "in", "values": ["MSFT"]}]
    page.click("#preview-button")
    page.locator("#preview-status", has_text="updated").wait_for()
    assert "2 would be skipped" in page.inner_text("#preview-body")

    # Editing the JSON re-draws the table; then approve with it.
    page.fill("textarea[name=mapping]", json.dumps(GOOD, indent=2))
    page.dispatch_event("textarea[name=mapping]", "input")
    assert page.locator("#mapping-table tr[data-field=price] .chip").inner_text().startswith("Fill Price")
    page.click("input[name=_approve]")
    page.wait_for_url("**/admin/formats/csvformat/")
    assert "Approved" in page.inner_text("ul.messagelist")
    page.screenshot(path=str(SCREENSHOTS / "admin-format-list-after-approval.png"), full_page=True)
    page.goto(f"{base}/admin/formats/csvformat/{fmt.pk}/history/")
    history = page.inner_text("#mapping-history")
    assert "status PENDING → APPROVED" in history and "reviewer" in history
    assert "price: columns Fee → Fill Price" not in history, "the previewed edit was never saved"
    page.screenshot(path=str(SCREENSHOTS / "admin-format-history.png"), full_page=True)
    assert not errors, errors

    stack.wait_for(lambda: ImportFile.objects.get(pk=file_id).status == FileStatus.PARTIAL, what="migration")
    assert CsvFormat.objects.get(pk=fmt.pk).status == FormatStatus.APPROVED
    assert Order.objects.filter(source_file_id=file_id).count() == 2
