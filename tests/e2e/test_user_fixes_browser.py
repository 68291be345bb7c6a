"""A new user's fixes in a real browser, real web server and worker: an invalid row corrected in place on the
file page and imported, a failed file retried from its page, and the styled page of an unknown address.
Screenshots under test-artifacts/screenshots/ (30-fix-rows-before, 31-fix-rows-after, 32-retry, 33-404)."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from audit.models import AuditEvent
from imports.models import FileStatus, ImportFile, Order
from imports.services.uploads import upload_batch_create
from tests.conftest import csv_upload
from tests.e2e.conftest import Stack
from tests.e2e.test_browser import KNOWN, approved_format_for, login, shot

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Line 3's quantity has a typo ('2x').
TYPO = KNOWN + "2024-05-03 09:45:00,MSFT,BUY,2x,410.00,1.00,USD,K-3\n"


def test_a_user_fixes_an_invalid_row_on_the_file_page_retries_a_failed_file_and_meets_a_styled_404(
    stack: Stack, chromium: Any, tmp_path: Path
) -> None:
    User = get_user_model()
    trader = User.objects.create_user(username="trader", password="trader-pass-1")
    call_command("api_token", "checker", "--create", "--approver", stdout=StringIO())
    approved_format_for(KNOWN, tmp_path, User.objects.get(username="checker"))
    _, [file] = upload_batch_create(owner=trader, files=[csv_upload("may.csv", TYPO)])
    stack.wait_for(lambda: ImportFile.objects.get(pk=file.pk).status == FileStatus.PARTIAL, what="the import")

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, stack.base_url, "trader", "trader-pass-1")
    page.goto(f"{stack.base_url}/imports/{file.pk}/")
    cell = page.locator("#fix-form input[data-column=Quantity]")
    assert cell.input_value() == "2x"
    assert page.inner_text(".tiles [data-field=invalid]") == "1"
    assert "Quantity" in page.inner_text("#fix-table")
    shot(page, "30-fix-rows-before")
    cell.fill("2")
    page.click("#fix-submit")
    page.get_by_text("1 corrected row sent to import again.").wait_for()
    page.locator("#file-status", has_text="Imported").wait_for(timeout=60_000)
    page.locator(".tiles [data-field=imported]", has_text="3").wait_for(timeout=30_000)
    page.locator(".tiles [data-field=invalid]", has_text="0").wait_for(timeout=30_000)  # updated live
    shot(page, "31-fix-rows-after")
    assert Order.objects.filter(source_file_id=file.pk).count() == 3
    assert AuditEvent.objects.filter(action="row.fixed", actor=trader).count() == 1

    # A failed file: retried from its page, without uploading it again.
    _, [other] = upload_batch_create(owner=trader, files=[csv_upload("june.csv", KNOWN.replace("K-", "J-"))])
    stack.wait_for(lambda: ImportFile.objects.get(pk=other.pk).status == FileStatus.IMPORTED, what="june")
    # As if its worker had died at the very end: FAILED with its orders written (the retry resumes from what
    # Postgres says, so nothing is imported twice).
    ImportFile.objects.filter(pk=other.pk).update(status=FileStatus.FAILED, error="The worker stopped.")
    page.goto(f"{stack.base_url}/imports/{other.pk}/")
    page.click("#retry-button")
    page.get_by_text("Retrying the import from where it stopped.").wait_for()
    page.locator("#file-status", has_text="Imported").wait_for(timeout=60_000)
    shot(page, "32-retry")
    assert Order.objects.filter(source_file_id=other.pk).count() == 2
    assert ImportFile.objects.get(pk=other.pk).status == FileStatus.IMPORTED

    response = page.goto(f"{stack.base_url}/no/such/page/")
    assert response is not None and response.status == 404
    assert "Page not found" in page.inner_text("#error-page")
    assert page.locator("link[rel=stylesheet]").count() >= 1
    shot(page, "33-404")
    assert errors == [], f"JavaScript errors: {errors}"
