"""The rough edges of issue 22, in a real browser (Debian's Chromium via Playwright) against the real stack.

Rollback: the admin's action shows a confirmation page first (what will be deleted, which other files'
duplicates pointed at these orders, a reason); the owner's open file page then shows who rolled it back,
when and why without a reload. Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from imports.models import FileStatus, ImportFile, Order
from imports.services.uploads import review_approve, upload_batch_create
from tests.conftest import csv_upload
from tests.e2e.conftest import Stack
from tests.e2e.test_browser import login, shot
from tests.e2e.test_faults import MAPPING, trades_csv

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {"AIRLOCK_UPLOADS_PER_HOUR": "100000"}


def upload(owner: Any, name: str, data: bytes) -> ImportFile:
    """An upload through the service (the running worker takes its job)."""
    _, files = upload_batch_create(owner=owner, files=[csv_upload(name, data)], dedupe=True)
    return files[0]


def settled(stack: Stack, file_id: int, *statuses: str) -> ImportFile:
    def check() -> ImportFile | None:
        file = ImportFile.objects.get(pk=file_id)
        return file if file.status in statuses else None

    return stack.wait_for(check, timeout=90, what=f"file {file_id} to reach {statuses}")


def test_a_rollback_is_confirmed_with_a_reason_and_the_owners_open_page_shows_it(stack: Stack, chromium: Any) -> None:
    User = get_user_model()
    trader = User.objects.create_user(username="trader", password="trader-pass-1", email="trader@example.com")
    call_command("api_token", "checker", "--create", "--approver", stdout=StringIO())
    checker = User.objects.get(username="checker")
    checker.set_password("checker-pass-1")
    checker.is_superuser = True  # holds the rollback permission too
    checker.save()

    first = upload(trader, "january-trades.csv", trades_csv(20))
    settled(stack, first.pk, FileStatus.PENDING_APPROVAL)
    review_approve(format_id=ImportFile.objects.get(pk=first.pk).format_id, actor=checker, mapping=MAPPING)
    settled(stack, first.pk, FileStatus.IMPORTED)
    overlap = upload(trader, "jan-feb-trades.csv", trades_csv(20, start=10))
    assert settled(stack, overlap.pk, FileStatus.IMPORTED).rows_duplicate == 10

    # The owner keeps the first file's page open.
    user_ctx = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = user_ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, stack.base_url, "trader", "trader-pass-1")
    page.goto(f"{stack.base_url}/imports/{first.pk}/")
    assert page.inner_text("#file-status") == "Imported"
    assert page.locator("#rollback-note").is_hidden()
    page.evaluate("window.__notReloaded = true")

    admin_ctx = chromium.new_context(viewport={"width": 1280, "height": 1000})
    admin = admin_ctx.new_page()
    login(admin, stack.base_url, "checker", "checker-pass-1")
    admin.goto(f"{stack.base_url}/admin/imports/importfile/")
    admin.check(f"input[name=_selected_action][value='{first.pk}']")
    admin.select_option("select[name=action]", "rollback_selected")
    admin.click("button[name=index]")
    admin.wait_for_selector("#rollback-confirmation")
    # Nothing happened yet: the page says what will.
    assert Order.objects.filter(source_file_id=first.pk).count() == 20
    assert "20 orders will be deleted" in admin.inner_text("#rollback-total")
    other = admin.locator(f"#rollback-duplicates li[data-other-file-id='{overlap.pk}']")
    assert "jan-feb-trades.csv" in other.inner_text() and "10 rows were duplicates" in other.inner_text()
    assert other.locator("a").get_attribute("href").endswith(f"/admin/imports/importfile/{overlap.pk}/change/")
    admin.fill("#rollback-reason", "Uploaded to the wrong account")
    shot(admin, "ux-01-rollback-confirmation")
    admin.click("#rollback-confirm")
    admin.wait_for_selector("ul.messagelist")
    assert "20 orders deleted" in admin.inner_text("ul.messagelist")
    assert Order.objects.filter(source_file_id=first.pk).count() == 0

    # The owner's open page follows by itself: status, counts, who, when and why.
    page.locator("#file-status", has_text="Rolled back").wait_for(timeout=30_000)
    note = page.locator("#rollback-note")
    note.wait_for(state="visible")
    assert "checker" in note.inner_text() and "Uploaded to the wrong account" in note.inner_text()
    assert "20 orders removed from production" in note.inner_text()
    assert page.inner_text(".tiles [data-field=imported]") == "0"
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    shot(page, "ux-02-file-after-rollback")
    # And after a reload, the same.
    page.reload()
    assert "Uploaded to the wrong account" in page.inner_text("#rollback-note")
    assert errors == []


def test_every_row_of_identical_files_in_one_upload_gets_its_status(stack: Stack, chromium: Any) -> None:
    get_user_model().objects.create_user(username="trader", password="trader-pass-1")
    same = trades_csv(5)
    page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    login(page, stack.base_url, "trader", "trader-pass-1")
    page.goto(f"{stack.base_url}/")
    page.set_input_files(
        "#upload-form input[type=file]",
        files=[
            {"name": "export.csv", "mimeType": "text/csv", "buffer": same},
            {"name": "export (1).csv", "mimeType": "text/csv", "buffer": same},
            {"name": "export (2).csv", "mimeType": "text/csv", "buffer": same},
            {"name": "other.csv", "mimeType": "text/csv", "buffer": trades_csv(3, start=100)},
        ],
    )
    page.click("#upload-button")
    page.wait_for_selector("#upload-results tbody tr >> nth=3")
    file_id = ImportFile.objects.get(original_name="export.csv").pk
    rows = page.locator(f"#upload-results tr[data-file-id='{file_id}']")
    assert rows.count() == 3
    page.wait_for_function(
        "() => [...document.querySelectorAll('#upload-results [data-field=status]')]"
        ".every(el => el.textContent === 'Pending approval')",
        timeout=60_000,
    )
    for i in range(3):
        assert rows.nth(i).locator("[data-field=total]").inner_text() == "5"


def test_a_300_file_upload_shows_its_processing_and_ends_waiting_for_approval(stack: Stack, chromium: Any) -> None:
    get_user_model().objects.create_user(username="trader", password="trader-pass-1")
    page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, stack.base_url, "trader", "trader-pass-1")
    page.goto(f"{stack.base_url}/")
    # An unknown format: every file ends waiting for an admin's approval.
    files = [
        {"name": f"day-{i:03}.csv", "mimeType": "text/csv", "buffer": trades_csv(2, start=10 * i)} for i in range(300)
    ]
    page.set_input_files("#upload-form input[type=file]", files=files)
    page.click("#upload-button")
    state = page.locator(".request .request-state")
    # After the bytes are sent the request's bar follows the processing: files done out of 300.
    state.filter(has_text="of 300 files done").wait_for(timeout=60_000)
    shot(page, "ux-03-upload-300-files")
    # The page stays short: the 300 rows scroll inside their card.
    assert page.locator("#upload-results tbody tr").count() == 300
    assert page.evaluate("document.documentElement.scrollHeight") < 2500
    state.filter(has_text="Waiting for approval: 300 of 300 files done").wait_for(timeout=240_000)
    assert "600 waiting for approval" in state.inner_text()
    assert page.get_attribute(".request .bar", "aria-valuenow") == "100"
    shot(page, "ux-04-upload-300-files-waiting")

    batch_id = ImportFile.objects.filter(original_name="day-000.csv").values_list("batch_id", flat=True).get()
    page.goto(f"{stack.base_url}/imports/")
    section = page.locator(f"section.batch[data-batch-id='{batch_id}']")
    assert section.locator("[data-batch=status]").inner_text() == "Waiting for approval"
    assert "300 of 300 files done" in section.locator("[data-batch=files]").inner_text()
    assert section.locator("tr[data-file-id]").count() == 10
    assert page.evaluate("document.documentElement.scrollHeight") < 2500
    page.click(f"a[href='/imports/uploads/{batch_id}/']:has-text('All 300 files')")
    assert page.locator("#batch-files tbody tr").count() == 50
    assert "Page 1 of 6" in page.inner_text(".pager")
    assert errors == []
