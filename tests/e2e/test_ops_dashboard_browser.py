"""The ops dashboard in a real browser, after a real worker imported a file: the SVG charts render with data."""

from __future__ import annotations

from typing import Any

import pytest

from imports.models import FileStatus, ImportFile
from imports.services.uploads import review_approve, upload_batch_create
from tests.conftest import csv_upload
from tests.e2e.conftest import Stack
from tests.e2e.test_admin_review_browser import SCREENSHOTS
from tests.imports.pipeline.test_pipeline import TRADES

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_staff_user_sees_the_charts_drawn_from_the_imports(
    stack: Stack, reviewer: Any, user: Any, chromium: Any
) -> None:
    reviewer.set_password("pw-reviewer-1")
    reviewer.save()
    _, files = upload_batch_create(owner=user, files=[csv_upload("trades.csv", TRADES)])
    file_id = files[0].pk
    stack.wait_for(lambda: ImportFile.objects.get(pk=file_id).status == FileStatus.PENDING_APPROVAL, what="staging")
    review_approve(format_id=ImportFile.objects.get(pk=file_id).format_id, actor=reviewer)
    stack.wait_for(lambda: ImportFile.objects.get(pk=file_id).status == FileStatus.PARTIAL, what="the migration")
    # The production web server (gunicorn + WhiteNoise): the admin's hashed static files are served too.
    base = stack.base_url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    missing: list[str] = []
    page.on("response", lambda r: missing.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("input[name=username]", "reviewer")
    page.fill("input[name=password]", "pw-reviewer-1")
    page.click("input[type=submit]")
    page.click("#ops-link a")  # linked from the admin's index
    page.wait_for_url("**/admin/ops/")

    charts = page.locator("svg.ops-chart")
    assert charts.count() == 5
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 20, f"chart {i} is not drawn: {box}"
    # This hour's column holds the 2 imported rows, and is drawn with a height.
    filled = page.locator("#ops-rows rect.bar[data-value='2']")
    assert filled.count() == 1
    assert filled.bounding_box()["height"] > 10
    assert page.locator("#ops-errors circle.point[data-value='33.33']").count() == 1
    assert page.locator("#ops-approvals rect.bar[data-value='1']").count() == 1
    workers = page.inner_text("#ops-workers")
    assert "busy" in workers or "idle" in workers
    # The admin's own stylesheets and ours load (the dashboard is in the admin's look), nothing is missing.
    assert not missing, missing
    assert page.locator("#header").evaluate("e => getComputedStyle(e).display") == "flex"
    page.screenshot(path=str(SCREENSHOTS / "admin-ops-dashboard.png"), full_page=True)
    assert not errors, errors
