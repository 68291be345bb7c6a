"""The admin side of the JSON API: permissions on review endpoints and the staging stats."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from formats.models import CsvFormat
from imports.models import ImportFile
from imports.services.uploads import review_approve
from tests.imports.api.test_api import bearer
from tests.imports.pipeline.test_pipeline import TRADES, upload

pytestmark = pytest.mark.django_db

OTHER_FORMAT = """When,Instrument,Direction,Qty,Px,Currency
2024-03-01 09:30:00,IBM,Buy,3,180.5,USD
2024-03-01 09:31:00,IBM,Sell,1,181.0,USD
"""


def test_the_stats_need_the_approve_permission(client: Client, user: Any) -> None:
    assert client.get("/api/admin/staging/stats").status_code == 401
    response = client.get("/api/admin/staging/stats", **bearer(user))
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


def test_pending_formats_and_decisions_need_the_approve_permission(
    client: Client, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert client.get("/api/admin/formats/pending", **bearer(user)).status_code == 403
    approve = client.post(
        f"/api/admin/formats/{file.format_id}/approve", {}, content_type="application/json", **bearer(user)
    )
    assert approve.status_code == 403 and approve.json()["error"] == "permission_denied"
    reject = client.delete(
        f"/api/admin/formats/{file.format_id}/approve",
        {"reason": "no"},
        content_type="application/json",
        **bearer(user),
    )
    assert reject.status_code == 403


def test_deciding_on_an_unknown_format_answers_404(client: Client, reviewer: Any) -> None:
    response = client.post("/api/admin/formats/999999/approve", {}, content_type="application/json", **bearer(reviewer))
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_the_pending_list_shows_staged_rows_and_files(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    results = client.get("/api/admin/formats/pending", **bearer(reviewer)).json()["results"]
    assert [(f["id"], f["staged_rows"], f["files"], f["created_by"]) for f in results] == [
        (file.format_id, 3, 1, "uploader")
    ]


def test_the_stats_report_staging_approvals_throughput_and_error_rate(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    approved = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    waiting = upload(
        user,
        text=OTHER_FORMAT,
        name="other.csv",
        run_jobs=run_jobs,
        capture=django_capture_on_commit_callbacks,
    )
    # The first format waited two hours for its approval; the second has waited one hour so far.
    now = timezone.now()
    CsvFormat.objects.filter(pk=approved.format_id).update(created_at=now - dt.timedelta(hours=2))
    CsvFormat.objects.filter(pk=waiting.format_id).update(created_at=now - dt.timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=approved.format_id, actor=reviewer)
    run_jobs()
    assert ImportFile.objects.get(pk=approved.pk).status == "PARTIAL"

    stats = client.get("/api/admin/staging/stats", **bearer(reviewer)).json()
    assert stats["staged_rows"]["PENDING"] == 2  # the waiting file's rows
    # The 2 imported rows live on as orders only (deleted from staging as migrated); the invalid one stays.
    assert stats["staged_rows"]["MIGRATED"] == 0 and stats["staged_rows"]["FAILED"] == 1
    assert stats["pending_formats"] == 1
    assert 3590 <= stats["oldest_pending_format_age_seconds"] <= 3700
    assert stats["approvals"]["count"] == 1
    assert 7190 <= stats["approvals"]["median_seconds_to_approval"] <= 7300
    throughput = stats["migration_throughput"]
    assert throughput["migrations"] == 1 and throughput["rows"] == 3
    assert throughput["rows_per_second"] is None or throughput["rows_per_second"] > 0
    assert stats["error_rate"] == {
        "rows_processed": 3,
        "rows_invalid": 1,
        "rows_failed": 1,  # the older name, kept for existing clients
        "rate": 0.3333,
        "files_finished": 1,
        "files_failed": 0,
    }


def test_the_stats_are_empty_but_well_formed_on_a_new_install(client: Client, reviewer: Any) -> None:
    stats = client.get("/api/admin/staging/stats", **bearer(reviewer)).json()
    assert stats["oldest_pending_format_age_seconds"] is None
    assert stats["approvals"] == {"count": 0, "median_seconds_to_approval": None}
    assert stats["migration_throughput"]["rows_per_second"] is None
    assert stats["error_rate"]["rate"] is None
    assert set(stats["staged_rows"]) >= {"PENDING", "APPROVED", "MIGRATED", "FAILED", "REJECTED"}


def test_approved_file_rows_are_not_counted_as_waiting(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, text=TRADES, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    run_jobs()
    stats = client.get("/api/admin/staging/stats", **bearer(reviewer)).json()
    assert stats["staged_rows"]["PENDING"] == 0 and stats["pending_formats"] == 0
