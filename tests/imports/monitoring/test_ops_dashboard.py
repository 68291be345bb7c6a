"""The ops dashboard (/admin/ops/): staff only, and charts drawn from the real figures."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record
from formats.models import CsvFormat
from imports.monitoring.alerts import alerts_evaluate
from imports.monitoring.charts import Bar, bar_list, column_chart, line_chart
from imports.services.uploads import review_approve, upload_batch_create
from tests.conftest import csv_upload
from tests.imports.monitoring.test_alerts import QUIET
from tests.imports.pipeline.test_pipeline import TRADES, upload

pytestmark = pytest.mark.django_db

URL = "/admin/ops/"


@pytest.fixture
def staff_client(reviewer: Any) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


def chart(html: str, section: str) -> str:
    """The <svg> inside the dashboard's module with this id."""
    match = re.search(rf'id="{section}".*?(<svg.*?</svg>)', html, re.S)
    assert match, f"no chart in #{section}"
    return match.group(1)


def bar_values(svg: str) -> list[float]:
    return [float(v) for v in re.findall(r'class="(?:bar|point)"[^>]*data-value="([^"]+)"', svg)]


def test_anonymous_visitors_are_sent_to_the_login_page() -> None:
    response = Client().get(URL)
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/ops/"


def test_a_user_who_is_not_staff_is_refused(user: Any) -> None:
    client = Client()
    client.force_login(user)
    assert client.get(URL).status_code == 403


def test_the_admin_index_links_to_the_dashboard(staff_client: Client) -> None:
    response = staff_client.get("/admin/")
    assert response.status_code == 200
    assert 'href="/admin/ops/"' in response.content.decode()


def test_an_empty_installation_shows_empty_charts_and_no_alert(staff_client: Client, redis_clean: Any) -> None:
    html = staff_client.get(URL).content.decode()
    assert "No alert is firing." in html
    assert set(bar_values(chart(html, "ops-rows"))) == {0}
    assert "No live worker" in html
    assert html.count('<svg class="ops-chart') == 5


def test_the_charts_show_the_imported_rows_the_error_rate_the_backlog_and_the_queue(
    staff_client: Client,
    user: Any,
    reviewer: Any,
    settings: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.AIRLOCK_ALERTS = {**QUIET, "ERROR_RATE": 0.05}
    first = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    CsvFormat.objects.filter(pk=first.format_id).update(name="Broker <b>X</b>")  # escaped in the SVG
    html = staff_client.get(URL).content.decode()
    backlog = chart(html, "ops-backlog")
    assert bar_values(backlog) == [3]
    assert "Broker &lt;b&gt;X&lt;/b&gt;" in backlog and "<b>X" not in backlog

    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=first.format_id, actor=reviewer)
    run_jobs()  # 2 imported, 1 invalid
    with django_capture_on_commit_callbacks(execute=True):
        upload_batch_create(owner=user, files=[csv_upload("waiting.csv", TRADES.replace("T-1", "T-7"))])
    alerts_evaluate()  # the error rate (33%) fires; nobody works the queue

    html = staff_client.get(URL).content.decode()
    rows = bar_values(chart(html, "ops-rows"))
    # The 2 imported rows in this hour's column (the one before, should the hour have turned meanwhile).
    assert len(rows) == 7 * 24 and sum(rows) == 2 and 2 in rows[-2:]
    errors = chart(html, "ops-errors")
    assert bar_values(errors) == [33.33]
    assert 'class="threshold"' in errors
    assert bar_values(chart(html, "ops-backlog")) == []
    queues = chart(html, "ops-queues")
    assert re.search(r"1 jobs wait in &#x27;high&#x27;", queues)
    assert sum(bar_values(queues)) == 1
    assert sum(bar_values(chart(html, "ops-approvals"))) == 1
    alerts = html[html.index('id="ops-alerts"') : html.index('id="ops-rows"')]
    assert "error_rate" in alerts and "33.3% of the rows" in alerts
    assert "Rows imported, 24 h" in html and ">2<" in html


def test_resolved_alerts_of_the_week_are_listed(staff_client: Client, settings: Any, redis_clean: Any) -> None:
    settings.AIRLOCK_ALERTS = dict(QUIET)
    record(action="migration.failed", summary="Migration of 'x.csv' failed", severity=AuditEvent.Severity.ERROR)
    assert "migration_failures: FIRING" in alerts_evaluate()
    assert "migration_failures: RESOLVED" in alerts_evaluate(now=timezone.now() + dt.timedelta(minutes=61))
    html = staff_client.get(URL).content.decode()
    resolved = html[html.index("Resolved in the last 7 days") : html.index('id="ops-rows"')]
    assert "migration_failures" in resolved


def test_chart_labels_and_tooltips_are_escaped() -> None:
    hostile = '"><script>alert(1)</script>'
    for svg in (
        column_chart([Bar(hostile, 1, hostile)], label=hostile),
        line_chart([Bar(hostile, 1, hostile), Bar("", 2, "b")], label=hostile, threshold=1),
        bar_list([Bar(hostile, 3, hostile)], label=hostile),
    ):
        assert "<script>" not in svg
        assert "&lt;script&gt;" in svg
