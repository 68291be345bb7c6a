"""The reconciliation queue in a real browser: a value no instrument was found for, its candidates with scores and
why, one decision linking every order with that value; then the next file with that value links by itself."""

from __future__ import annotations

from typing import Any

import pytest

from imports.models import FileStatus, ImportFile, Instrument, InstrumentLink, Order
from imports.services.uploads import review_approve, upload_batch_create
from tests.conftest import csv_upload
from tests.e2e.conftest import Stack
from tests.e2e.test_admin_review_browser import SCREENSHOTS, static_server
from tests.imports.targets.test_reconciliation import FUZZY, INSTRUMENTS

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def imported(stack: Stack, owner: Any, reviewer: Any, name: str, text: str, target: str) -> ImportFile:
    """Upload through the product, approve a new format, wait until the real worker has imported the file."""
    _, [file] = upload_batch_create(owner=owner, files=[csv_upload(name, text)], target=target)
    done = (FileStatus.IMPORTED, FileStatus.PENDING_APPROVAL)
    stack.wait_for(lambda: ImportFile.objects.get(pk=file.pk).status in done, what=name)
    if ImportFile.objects.get(pk=file.pk).status == FileStatus.PENDING_APPROVAL:
        review_approve(format_id=ImportFile.objects.get(pk=file.pk).format_id, actor=reviewer)
    stack.wait_for(lambda: ImportFile.objects.get(pk=file.pk).status == FileStatus.IMPORTED, what=f"{name} imported")
    return ImportFile.objects.get(pk=file.pk)


def test_a_reviewer_decides_a_waiting_value_in_the_queue_and_the_next_file_follows_the_decision(
    stack: Stack, django_user_model: Any, reviewer: Any, chromium: Any
) -> None:
    reviewer.set_password("pw-reviewer-1")
    reviewer.save()
    trader = django_user_model.objects.create_user(username="trader", password="pw-trader-1")
    imported(stack, trader, reviewer, "instruments.csv", INSTRUMENTS, "instruments")
    first = imported(stack, trader, reviewer, "fuzzy.csv", FUZZY, "orders")
    assert Order.objects.filter(source_file=first, instrument__isnull=True).count() == 2
    apple = Instrument.objects.get(owner=trader, ticker="AAPL")

    base = static_server(stack)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/admin/login/?next=/admin/imports/instrument/")
    page.fill("input[name=username]", "reviewer")
    page.fill("input[name=password]", "pw-reviewer-1")
    page.click("input[type=submit]")
    page.click("#reconcile-link")
    row = page.locator("#reconcile-queue tr[data-value='APPLE COMPUTER']")
    row.wait_for()
    assert "fuzzy.csv" in row.inner_text() and row.locator("td.num").inner_text() == "2"
    first_candidate = row.locator(".candidates label").first
    assert "Apple Inc (US0378331005)" in first_candidate.inner_text()
    assert "name 'Apple Inc' is close" in first_candidate.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "admin-reconcile-queue.png"), full_page=True)
    assert first_candidate.locator("input").is_checked()
    row.locator("input[type=submit]").click()
    page.locator("ul.messagelist", has_text="'APPLE COMPUTER': decision recorded, 2 orders changed.").wait_for()
    assert page.locator("#reconcile-empty").is_visible()
    assert set(Order.objects.filter(source_file=first).values_list("instrument", flat=True)) == {apple.pk}
    assert InstrumentLink.objects.get(owner=trader, value="APPLE COMPUTER").decided_by.username == "reviewer"

    later = imported(
        stack, trader, reviewer, "fuzzy-may.csv", FUZZY.replace("C-", "D-").replace("-04-", "-05-"), "orders"
    )
    assert set(Order.objects.filter(source_file=later).values_list("instrument", flat=True)) == {apple.pk}
    assert errors == []
