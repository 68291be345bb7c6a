"""Retention: old finished work is cleaned; unfinished work and pending approvals never are."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from imports.models import FileStatus, ImportFile
from imports.services.retention import _LOCK_KEY, CleanupBusy, cleanup_staging
from imports.services.uploads import upload_batch_create
from staging.models import StagedRow
from tests.conftest import csv_upload
from tests.e2e.test_faults import trades_csv
from tests.imports.services.test_idempotency import approved_import

pytestmark = pytest.mark.django_db

# Trades under a header no format knows: a pending format (junk such as 'A,B,C' is declared "no trades").
OTHER_TRADES = (
    "When,Ticker,Action,Qty,Px,Ccy\n"
    "2024-01-02 09:30:00,AAPL,Buy,10,185.2,USD\n2024-01-03 10:00:00,MSFT,Sell,5,410,USD\n"
)


def age(file: ImportFile, days: int) -> None:
    # QuerySet.update leaves auto_now alone: the file looks untouched for `days`.
    ImportFile.objects.filter(pk=file.pk).update(updated_at=timezone.now() - timedelta(days=days))


def stage_rows(file: ImportFile, status: str) -> ImportFile:
    """Ten staged rows of the file in this status. A migrated row is deleted with its batch today; files imported
    before that keep one MIGRATED row per order, which retention must clean up like any finished file's rows."""
    StagedRow.objects.bulk_create(
        StagedRow(file=file, format_id=file.format_id, line=line, raw=["x"], status=status) for line in range(2, 12)
    )
    return file


@pytest.fixture
def files(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any, settings: Any
) -> dict[str, ImportFile]:
    """One file in each interesting state, all but 'recent' untouched for 40 days."""

    def imported(data: bytes) -> ImportFile:
        return approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, data)

    made = {
        "imported": stage_rows(imported(trades_csv(10)), "MIGRATED"),
        "recent": imported(trades_csv(10, start=100)),
        "failed": imported(trades_csv(0)),
    }
    with django_capture_on_commit_callbacks(execute=True):
        _, pending = upload_batch_create(owner=user, files=[csv_upload("other.csv", OTHER_TRADES)])
    run_jobs()
    made["pending"] = ImportFile.objects.get(pk=pending[0].pk)
    # Staged like the files of a format approved after their upload (not imported straight from the file),
    # then made into a migration in progress: its rows are still open.
    settings.AIRLOCK = {**settings.AIRLOCK, "DIRECT_IMPORT": False}
    made["migrating"] = imported(trades_csv(10, start=200))
    stage_rows(made["migrating"], "APPROVED")
    ImportFile.objects.filter(pk=made["migrating"].pk).update(status=FileStatus.MIGRATING)
    assert made["pending"].status == FileStatus.PENDING_APPROVAL and made["failed"].status == FileStatus.FAILED
    for name, file in made.items():
        if name != "recent":
            age(file, 40)
    return {name: ImportFile.objects.get(pk=file.pk) for name, file in made.items()}


def staged(file: ImportFile) -> int:
    return StagedRow.objects.filter(file=file).count()


def test_it_cleans_old_finished_files_and_never_unfinished_or_pending_ones(
    files: dict[str, ImportFile],
) -> None:
    before = {name: staged(file) for name, file in files.items()}
    assert before["imported"] == 10 and before["pending"] == 2 and before["migrating"] == 10
    result = cleanup_staging(days=30)
    assert (result["files"], result["staged_rows"], result["uploads"], result["purged"]) == (2, 10, 2, 1)
    after = {name: ImportFile.objects.get(pk=file.pk) for name, file in files.items()}
    assert staged(after["imported"]) == 0 and after["imported"].status == FileStatus.IMPORTED
    assert after["imported"].upload_deleted_at is not None
    assert not default_storage.exists(after["imported"].stored_name)
    assert after["failed"].status == FileStatus.PURGED
    for name in ("pending", "migrating", "recent"):
        assert staged(after[name]) == before[name], f"{name} must not be touched"
        assert after[name].status == files[name].status and after[name].upload_deleted_at is None
        assert default_storage.exists(after[name].stored_name)
    assert AuditEvent.objects.filter(action="retention.cleanup").count() == 1


def test_a_dry_run_changes_nothing_and_a_second_run_finds_nothing(files: dict[str, ImportFile]) -> None:
    out = StringIO()
    call_command("cleanup_staging", "--days", "30", "--dry-run", stdout=out)
    assert "would delete 10 staged rows of 2 files, 2 stored uploads" in out.getvalue()
    assert staged(files["imported"]) == 10 and not AuditEvent.objects.filter(action="retention.cleanup").exists()
    call_command("cleanup_staging", "--days", "30", stdout=StringIO())
    again = StringIO()
    call_command("cleanup_staging", "--days", "30", stdout=again)
    assert "deleted 0 staged rows of 0 files, 0 stored uploads" in again.getvalue()


@pytest.fixture
def lock_held_elsewhere() -> Iterator[None]:
    """Another session (its own connection, in a thread) holds the cleanup lock."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_LOCK_KEY])
            taken.set()
            release.wait(30)
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])
        connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(10)
    yield
    release.set()
    thread.join(10)


def test_a_concurrent_run_reports_the_lock_and_does_nothing(
    files: dict[str, ImportFile], lock_held_elsewhere: None
) -> None:
    with pytest.raises(CleanupBusy):
        cleanup_staging(days=30)
    with pytest.raises(CommandError, match="Another cleanup run is in progress"):
        call_command("cleanup_staging", "--days", "30", stdout=StringIO())
    assert staged(files["imported"]) == 10


def test_the_cron_endpoint_needs_the_secret(files: dict[str, ImportFile], client: Client, settings: Any) -> None:
    settings.CRON_SECRET = ""
    off = client.post("/api/cron/cleanup-staging", HTTP_AUTHORIZATION="Bearer ")
    assert off.status_code == 403 and off.json()["error"] == "invalid_cron_secret"
    settings.CRON_SECRET = "s3cret-value"
    assert client.post("/api/cron/cleanup-staging").status_code == 403
    assert client.post("/api/cron/cleanup-staging", HTTP_X_CRON_SECRET="wrong").status_code == 403
    assert client.get("/api/cron/cleanup-staging", HTTP_X_CRON_SECRET="s3cret-value").status_code == 405
    dry = client.post("/api/cron/cleanup-staging?dry_run=1", HTTP_X_CRON_SECRET="s3cret-value")
    assert dry.status_code == 200 and dry.json()["dry_run"] is True and staged(files["imported"]) == 10
    done = client.post("/api/cron/cleanup-staging", HTTP_AUTHORIZATION="Bearer s3cret-value")
    assert done.status_code == 200 and done.json()["staged_rows"] == 10
    assert staged(files["imported"]) == 0
