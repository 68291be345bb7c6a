"""Issue 22's admin and number items in a real browser with a real worker: the format list names a new format
after its columns and shows what waits and how old it is; 'Restore this mapping…' shows what would change
before anything changes; and the user's orders page and API show numbers in plain notation.
Screenshots under test-artifacts/screenshots/ (40-format-list, 41-restore-confirmation)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import requests

from formats.models import CsvFormat
from imports.models import FileStatus, ImportFile
from imports.services.uploads import review_approve, review_save_mapping, upload_batch_create
from tests.conftest import api_key_for, csv_upload
from tests.e2e.test_admin_review_browser import SCREENSHOTS
from tests.e2e.test_browser import login

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TRADES = """Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref
2024-03-01 09:30:00,AAPL,Buy,300,2450,0.10,USD,T-1
2024-03-01 10:15:00,MSFT,Sell,0.000001,410.10,1.00,USD,T-2
"""


def test_the_format_list_the_restore_confirmation_and_plain_numbers(
    stack: Any, django_user_model: Any, reviewer: Any, chromium: Any
) -> None:
    reviewer.set_password("pw-reviewer-1")
    reviewer.save()
    trader = django_user_model.objects.create_user(username="trader", password="pw-trader-1")
    _, [file] = upload_batch_create(owner=trader, files=[csv_upload("tuxedeg-export.csv", TRADES)])
    stack.wait_for(lambda: ImportFile.objects.get(pk=file.pk).status == FileStatus.PENDING_APPROVAL, what="staging")
    fmt = CsvFormat.objects.get(pk=ImportFile.objects.get(pk=file.pk).format_id)
    assert fmt.name == "Orders: Trade Date, Ticker, Buy or Sell, Shares, Fill Price"
    base = stack.base_url  # gunicorn + WhiteNoise, as `make run` serves: the admin with its CSS
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/admin/login/?next=/admin/formats/csvformat/")
    page.fill("input[name=username]", "reviewer")
    page.fill("input[name=password]", "pw-reviewer-1")
    page.click("input[type=submit]")
    listed = page.locator("#result_list tbody tr", has_text="Orders: Trade Date, Ticker")
    listed.wait_for()
    headers = page.inner_text("#result_list thead").casefold()  # the admin CSS upper-cases them
    assert "files waiting" in headers and "age" in headers and "quality" in headers
    page.screenshot(path=str(SCREENSHOTS / "40-format-list.png"), full_page=True)

    # A saved edit, then the history's restore: a confirmation page first, nothing changes before 'Yes'.
    edited = copy.deepcopy(fmt.mapping)
    edited["fields"]["price"]["columns"] = ["Fee"]
    review_save_mapping(format_id=fmt.pk, actor=reviewer, mapping=edited)
    page.goto(f"{base}/admin/formats/csvformat/{fmt.pk}/history/")
    page.locator("a.restore-link").first.click()
    page.locator("#restore-confirmation").wait_for()
    assert "price: columns Fee → Fill Price" in page.inner_text("#restore-changes")
    page.screenshot(path=str(SCREENSHOTS / "41-restore-confirmation.png"), full_page=True)
    assert CsvFormat.objects.get(pk=fmt.pk).mapping["fields"]["price"]["columns"] == ["Fee"]
    page.click("#restore-confirm", no_wait_after=True)
    stack.wait_for(
        lambda: CsvFormat.objects.get(pk=fmt.pk).mapping["fields"]["price"]["columns"] == ["Fill Price"],
        what="the restore",
    )

    review_approve(format_id=fmt.pk, actor=reviewer)
    stack.wait_for(lambda: ImportFile.objects.get(pk=file.pk).status == FileStatus.IMPORTED, what="migration")
    page = chromium.new_context(viewport={"width": 1400, "height": 900}).new_page()  # the trader's own session
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, stack.base_url, "trader", "pw-trader-1")
    page.goto(f"{stack.base_url}/orders/")
    table = page.inner_text("#orders-table")
    assert "300" in table and "2,450" in table and "0.000001" in table and "E+" not in table
    orders = requests.get(
        f"{stack.base_url}/api/orders", headers={"Authorization": f"Bearer {api_key_for(trader)}"}, timeout=30
    ).json()["results"]
    assert sorted((o["quantity"], o["price"]) for o in orders) == [("0.000001", "410.1"), ("300", "2450")]
    assert not errors, errors
