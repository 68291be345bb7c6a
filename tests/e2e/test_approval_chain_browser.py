"""The approval chain on the review screen, in a real browser, with a real worker: a two-approver policy,
the first approval recorded, the second approver sees who approved and that one more is needed, approves,
and the rows are imported. Screenshots under test-artifacts/screenshots/."""

from __future__ import annotations

from typing import Any

import pytest

from formats.approval import policy_current
from formats.models import CsvFormat, FormatStatus
from imports.models import FileStatus, ImportFile, Order
from imports.services.uploads import review_approve, upload_batch_create
from tests.conftest import csv_upload
from tests.e2e.test_admin_review_browser import SCREENSHOTS, static_server
from tests.formats.test_admin_review import TRADES

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_second_approver_sees_the_chain_and_completes_it(
    stack: Any, django_user_model: Any, reviewer: Any, chromium: Any
) -> None:
    policy = policy_current()
    policy.approvers_required = policy.risky_approvers_required = 2
    policy.save()
    second = django_user_model.objects.create_user(username="second", password="pw-second-1", is_staff=True)
    second.user_permissions.set(reviewer.user_permissions.all())
    uploader = django_user_model.objects.create_user(username="trader", password="pw-trader-1")
    _, files = upload_batch_create(owner=uploader, files=[csv_upload("trades.csv", TRADES)])
    file_id = files[0].pk
    stack.wait_for(lambda: ImportFile.objects.get(pk=file_id).status == FileStatus.PENDING_APPROVAL, what="staging")
    fmt = ImportFile.objects.get(pk=file_id).format
    review_approve(format_id=fmt.pk, actor=reviewer, comment="columns and dates checked")
    base = static_server(stack)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/admin/login/?next=/admin/formats/csvformat/{fmt.pk}/change/")
    page.fill("input[name=username]", "second")
    page.fill("input[name=password]", "pw-second-1")
    page.click("input[type=submit]")
    chain = page.locator("#approval-chain")
    chain.wait_for()
    assert "1 of 2 approvals of this mapping: 1 more needed" in chain.inner_text()
    steps = page.inner_text("#chain-steps tbody")
    assert "reviewer" in steps and "columns and dates checked" in steps and "yes" in steps
    page.screenshot(path=str(SCREENSHOTS / "admin-approval-chain.png"), full_page=True)
    assert Order.objects.count() == 0, "one approval of two imports nothing"

    page.fill("input[name=comment]", "second pair of eyes")
    page.click("input[name=_approve]")
    page.wait_for_url("**/admin/formats/csvformat/")
    assert "Approved" in page.inner_text("ul.messagelist")
    stack.wait_for(lambda: ImportFile.objects.get(pk=file_id).status == FileStatus.PARTIAL, what="migration")
    assert CsvFormat.objects.get(pk=fmt.pk).status == FormatStatus.APPROVED
    assert Order.objects.filter(source_file_id=file_id).count() == 2
    page.goto(f"{base}/admin/formats/csvformat/{fmt.pk}/change/")
    steps = page.inner_text("#chain-steps tbody")
    assert "second pair of eyes" in steps
    page.screenshot(path=str(SCREENSHOTS / "admin-approval-chain-complete.png"), full_page=True)
    assert not errors, errors
