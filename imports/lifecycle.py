"""Where a file ends up and the status of its upload (batch): written here.

A file's *end* -- failed, rejected, no trades, rolled back, purged -- and its reopening are set by the
functions below, whichever part of the product decides it (the pipeline, a job failure, a review, a rollback,
retention); the pipeline's own steps while it works on a file (reading, importing, imported) stay in
imports/pipeline/process.py, under the file's row lock.

A batch's status is never set by hand: every change of a file's status that can settle or reopen its
upload ends with `batch_refresh_status` (one file's job) or `batches_refresh` (a review, a rollback, a job
failure touching several files), which derive it under the batch's row lock and send the one summary of
an upload that just settled.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from imports.models import UNFINISHED_FILE_STATUSES, BatchStatus, FileStatus, ImportBatch, ImportFile
from imports.services.notifications import notify_batch_settled

# What a file can end as, and the message its owner reads with each (ImportFile.error).
ENDINGS = (FileStatus.FAILED, FileStatus.REJECTED, FileStatus.NO_TRADES, FileStatus.ROLLED_BACK, FileStatus.PURGED)


def files_end(files: QuerySet[ImportFile], *, status: str, message: str | None, **fields: Any) -> int:
    """End these files as `status` with the message their owners read (None keeps each file's own), in one
    UPDATE; `fields` are what else the ending records (attempts, progress, the rows left...). Returns how many."""
    if status not in ENDINGS:
        raise ValueError(f"{status} is not how a file ends: one of {', '.join(ENDINGS)}")
    now = timezone.now()
    changes: dict[str, Any] = {"status": status, "finished_at": now, "updated_at": now, **fields}
    if message is not None:
        changes["error"] = message[:4000]
    return files.update(**changes)


def file_end(file_id: int, *, status: str = FileStatus.FAILED, message: str | None, **fields: Any) -> bool:
    """End one file (see files_end); False when it is not there."""
    return bool(files_end(ImportFile.objects.filter(pk=file_id), status=status, message=message, **fields))


def file_resume(file_id: int, *, status: str) -> None:
    """A failed file goes back to work at `status` (where its data says it got: imports/services/retry.py)."""
    if status not in (*UNFINISHED_FILE_STATUSES, FileStatus.PENDING_APPROVAL):
        raise ValueError(f"a file resumes reading, importing or waiting for approval, not {status}")
    ImportFile.objects.filter(pk=file_id).update(status=status, error="", finished_at=None, updated_at=timezone.now())


def files_reopen(files: QuerySet[ImportFile]) -> int:
    """Files that ended as 'no trades' wait for an approval again (an admin overruled the verdict)."""
    return files.filter(status=FileStatus.NO_TRADES).update(
        status=FileStatus.PENDING_APPROVAL, error="", finished_at=None, progress=100.0, updated_at=timezone.now()
    )


def batches_refresh(*, batch_ids: list[int | None]) -> None:
    """Refresh the status of these batches (their files changed outside a file's own job)."""
    for batch_id in sorted({b for b in batch_ids if b}):
        batch_refresh_status(batch_id=batch_id)


def batch_refresh_status(*, batch_id: int) -> str:
    """Derive a batch's status from its files."""
    with transaction.atomic():
        # The batch row locked first, the file statuses read after: two workers finishing the batch's last
        # files at once take turns, and the second one reads both files finished (without the lock, the
        # first could write a status computed before the second file finished, after the second's).
        batch = ImportBatch.objects.select_for_update().get(pk=batch_id)
        statuses = list(batch.files.values_list("status", flat=True))
        if not statuses:
            return batch.status
        if any(s in UNFINISHED_FILE_STATUSES for s in statuses):
            status = BatchStatus.PROCESSING if any(s != FileStatus.UPLOADED for s in statuses) else BatchStatus.PENDING
        elif all(s == FileStatus.IMPORTED for s in statuses):
            status = BatchStatus.COMPLETED
        elif all(s in (FileStatus.FAILED, FileStatus.REJECTED, FileStatus.NO_TRADES) for s in statuses):
            status = BatchStatus.FAILED
        elif any(s == FileStatus.PENDING_APPROVAL for s in statuses):
            status = BatchStatus.WAITING
        else:
            status = BatchStatus.PARTIAL
        if status != batch.status:
            ImportBatch.objects.filter(pk=batch_id).update(status=status, updated_at=timezone.now())
            # Decided under the batch lock: exactly one refresh sees the upload go from in progress to
            # settled, so it gets one summary (not one email per file).
            if batch.status in (BatchStatus.PENDING, BatchStatus.PROCESSING) and status not in (
                BatchStatus.PENDING,
                BatchStatus.PROCESSING,
            ):
                if len(statuses) > 1:
                    notify_batch_settled(batch_id=batch_id)
    return status
