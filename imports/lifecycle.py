"""The status of uploads (batches) as their files move on: derived from the files, written here only.

A batch's status is never set by hand: every change of a file's status that can settle or reopen its
upload ends with `batch_refresh_status` (one file's job) or `batches_refresh` (a review, a rollback, a job
failure touching several files), which derive it under the batch's row lock and send the one summary of
an upload that just settled.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from imports.models import UNFINISHED_FILE_STATUSES, BatchStatus, FileStatus, ImportBatch
from imports.services.notifications import notify_batch_settled


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
