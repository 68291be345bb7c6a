"""imports/lifecycle.py: the pipeline's steps refuse moves a file cannot make; a duplicate job leaves a file alone; a
file's job refreshes its batch as the locked refresh would, taking the batch's lock only when the batch may change."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError, connection, transaction

from imports.lifecycle import file_batch_refresh, file_start_reading, file_step, files_start_migrating
from imports.models import BatchStatus, FileStatus, ImportBatch, ImportFile
from imports.services.uploads import upload_batch_create

pytestmark = pytest.mark.django_db

TRADES = "Date,Symbol,Side,Qty,Price,Ccy\n2024-03-01,AAPL,Buy,1,10,USD\n"


def uploaded_file(owner: Any, name: str, text: str) -> ImportFile:
    """An upload as the web makes it, its job not run (the test's transaction never commits)."""
    _, files = upload_batch_create(owner=owner, files=[SimpleUploadedFile(name, text.encode(), "text/csv")])
    return files[0]


@pytest.mark.parametrize(
    ("status", "step"),
    [
        (FileStatus.ROLLED_BACK, FileStatus.MIGRATING),
        (FileStatus.REJECTED, FileStatus.MIGRATING),
        (FileStatus.UPLOADED, FileStatus.MIGRATING),
        (FileStatus.IMPORTED, FileStatus.PENDING_APPROVAL),
        (FileStatus.FAILED, FileStatus.PENDING_APPROVAL),
        (FileStatus.PURGED, FileStatus.PROCESSING),
    ],
)
def test_a_step_a_file_cannot_take_is_refused_and_changes_nothing(user: Any, status: str, step: str) -> None:
    file = uploaded_file(user, "t.csv", TRADES)
    ImportFile.objects.filter(pk=file.pk).update(status=status)
    file.refresh_from_db()
    with pytest.raises(ValueError, match=f"cannot go from {status} to {step}"):
        file_step(file, step)
    assert file.status == status and ImportFile.objects.get(pk=file.pk).status == status


def test_reading_starts_once_per_attempt_and_a_late_job_leaves_a_finished_file_alone(user: Any) -> None:
    file = uploaded_file(user, "t.csv", TRADES)
    started, due = file_start_reading(file.pk)
    assert due and started.status == FileStatus.PROCESSING and started.attempts == 1
    stored = ImportFile.objects.get(pk=file.pk)  # the file handed back is the row as stored, every field of it
    assert [getattr(started, f.attname) for f in ImportFile._meta.concrete_fields] == [
        getattr(stored, f.attname) for f in ImportFile._meta.concrete_fields
    ]
    ImportFile.objects.filter(pk=file.pk).update(status=FileStatus.IMPORTED)
    late, due = file_start_reading(file.pk)
    assert not due and late.status == FileStatus.IMPORTED and late.attempts == 1


def test_only_files_waiting_for_approval_start_migrating(user: Any) -> None:
    waiting = uploaded_file(user, "a.csv", TRADES)
    done = uploaded_file(user, "b.csv", TRADES.replace("AAPL", "MSFT"))
    ImportFile.objects.filter(pk=waiting.pk).update(status=FileStatus.PENDING_APPROVAL)
    ImportFile.objects.filter(pk=done.pk).update(status=FileStatus.IMPORTED)
    assert files_start_migrating(ImportFile.objects.filter(pk__in=[waiting.pk, done.pk]), progress=0.0) == 1
    statuses = dict(ImportFile.objects.filter(pk__in=[waiting.pk, done.pk]).values_list("pk", "status"))
    assert statuses == {waiting.pk: FileStatus.MIGRATING, done.pk: FileStatus.IMPORTED}


def _batch_of(owner: Any, batch_status: str, *statuses: str) -> tuple[ImportBatch, list[ImportFile]]:
    batch = ImportBatch.objects.create(owner=owner, status=batch_status, file_count=len(statuses))
    files = [
        ImportFile.objects.create(
            batch=batch,
            owner=owner,
            original_name=f"{n}.csv",
            stored_name=f"{n}",
            sha256=f"{n}" * 64,
            size=1,
            status=status,
        )
        for n, status in enumerate(statuses)
    ]
    return batch, files


@pytest.mark.django_db(transaction=True)
def test_a_file_ending_while_others_wait_leaves_its_batch_in_progress_without_waiting_for_the_batch_lock(
    user: Any,
) -> None:
    """While another session holds the batch's row lock, the refresh after a file that is not the batch's last
    answers at once (it would wait out the lock timeout if it took the lock); the last file's refresh settles it."""
    batch, (first, second) = _batch_of(user, BatchStatus.PROCESSING, FileStatus.IMPORTED, FileStatus.MIGRATING)
    locked, release = threading.Event(), threading.Event()

    def hold_the_batch_lock() -> None:
        try:
            with transaction.atomic():
                ImportBatch.objects.select_for_update().get(pk=batch.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_batch_lock)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '500ms'")
        assert file_batch_refresh(file_id=first.pk) == BatchStatus.PROCESSING
        ImportFile.objects.filter(pk=second.pk).update(status=FileStatus.PARTIAL)
        with pytest.raises(OperationalError, match="lock timeout"):  # this one must lock: the batch settles
            file_batch_refresh(file_id=second.pk)
    finally:
        release.set()
        holder.join(10)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert ImportBatch.objects.get(pk=batch.pk).status == BatchStatus.PROCESSING
    assert file_batch_refresh(file_id=second.pk) == BatchStatus.PARTIAL
    assert ImportBatch.objects.get(pk=batch.pk).status == BatchStatus.PARTIAL


@pytest.mark.parametrize(
    ("batch_status", "statuses", "derived"),
    [
        (BatchStatus.PENDING, (FileStatus.PROCESSING, FileStatus.UPLOADED), BatchStatus.PROCESSING),  # the first
        (BatchStatus.PROCESSING, (FileStatus.UPLOADED, FileStatus.UPLOADED), BatchStatus.PENDING),  # reset to waiting
        (BatchStatus.PROCESSING, (FileStatus.IMPORTED, FileStatus.PENDING_APPROVAL), BatchStatus.WAITING),
        (BatchStatus.PROCESSING, (FileStatus.FAILED, FileStatus.NO_TRADES), BatchStatus.FAILED),
        (BatchStatus.COMPLETED, (FileStatus.IMPORTED, FileStatus.MIGRATING), BatchStatus.PROCESSING),  # re-opened
    ],
)
def test_a_file_refresh_derives_its_batch_as_the_locked_refresh_does(
    user: Any, batch_status: str, statuses: tuple[str, ...], derived: str
) -> None:
    batch, files = _batch_of(user, batch_status, *statuses)
    assert file_batch_refresh(file_id=files[0].pk) == derived
    assert ImportBatch.objects.get(pk=batch.pk).status == derived
    assert file_batch_refresh(file_id=10**12) is None  # no such file


def test_a_settled_file_is_measured_from_its_formats_approval_not_from_its_wait(
    user: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from formats.models import CsvFormat
    from imports import lifecycle

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(lifecycle, "file_finished_observe", lambda **kwargs: seen.append(kwargs))
    file = uploaded_file(user, "t.csv", TRADES)
    approved_at = timezone.now() - timedelta(minutes=5)
    fmt = CsvFormat.objects.create(name="f", target=file.target, header=["a"], columns=["a"], fingerprint="x" * 64)
    CsvFormat.objects.filter(pk=fmt.pk).update(approved_at=approved_at)
    ImportFile.objects.filter(pk=file.pk).update(
        format=fmt, status=FileStatus.MIGRATING, rows_total=2, rows_imported=2, started_at=approved_at - timedelta(1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert lifecycle.file_settle(file_id=file.pk) == FileStatus.IMPORTED
    assert len(seen) == 1 and seen[0]["approved_at"] == approved_at and seen[0]["rows"] == 2
