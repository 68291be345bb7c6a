"""imports/lifecycle.py: the pipeline's steps refuse moves a file cannot make; a duplicate job leaves a file alone."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imports.lifecycle import file_start_reading, file_step, files_start_migrating
from imports.models import FileStatus, ImportFile
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
