"""A file's status and the status of its upload (batch): written here and nowhere else.

The pipeline's steps (reading, waiting for approval, importing) go through `file_start_reading`, `file_step` and
`files_start_migrating`, which refuse a move a file cannot make; its outcome (imported, partially imported, failed)
is decided by `file_settle` from what Postgres says about its rows. A file's other *ends* -- failed, rejected, no
trades, rolled back, purged -- and its reopening are set by `files_end`, `file_resume` and `files_reopen`, whichever
part of the product decides them (the pipeline, a job failure, a review, a rollback, retention).

A batch's status is never set by hand: every change of a file's status that can settle or reopen its
upload ends with `batch_refresh_status` (one file's job) or `batches_refresh` (a review, a rollback, a job
failure touching several files), which derive it under the batch's row lock and send the one summary of
an upload that just settled.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import connection, models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import record
from formats.models import CsvFormat
from imports.models import UNFINISHED_FILE_STATUSES, BatchStatus, FileStatus, ImportBatch, ImportFile
from imports.monitoring.metrics import file_finished_observe
from imports.services.notifications import notify_batch_settled, notify_file_outcome
from imports.targets.base import occurrences_forget
from staging.services import staged_rows_open

# What a file can end as, and the message its owner reads with each (ImportFile.error).
ENDINGS = (FileStatus.FAILED, FileStatus.REJECTED, FileStatus.NO_TRADES, FileStatus.ROLLED_BACK, FileStatus.PURGED)


# The pipeline's working steps, each with the statuses a file may take it from. Importing (MIGRATING) follows
# the reading, an approval, a resumed run, or a mapping fix that re-opens rows of a file that ended; never a
# file whose import was undone (rolled back, purged) or refused, nor one that was not read.
STEPS_FROM = {
    FileStatus.PROCESSING: (FileStatus.UPLOADED, FileStatus.PROCESSING),
    # Staged after reading; or staged again when a reviewer pins where the table is (imports/services/review.py).
    FileStatus.PENDING_APPROVAL: (FileStatus.PROCESSING, FileStatus.PENDING_APPROVAL, FileStatus.NO_TRADES),
    FileStatus.MIGRATING: (
        FileStatus.PROCESSING,
        FileStatus.PENDING_APPROVAL,
        FileStatus.MIGRATING,
        FileStatus.IMPORTED,
        FileStatus.PARTIAL,
        FileStatus.FAILED,
        FileStatus.NO_TRADES,
    ),
}


def file_start_reading(file_id: int) -> tuple[ImportFile, bool]:
    """Lock the file and start (or go on) reading it, one attempt more; (the file, False) when it is past reading
    (a duplicate or late job: the caller leaves it as it is)."""
    # One statement (the row's lock is the UPDATE's): a small file's job starts with one round trip, not four.
    now = timezone.now()
    started = list(
        ImportFile.objects.raw(
            f"UPDATE {ImportFile._meta.db_table} SET status = %s, started_at = coalesce(started_at, %s), "
            "attempts = attempts + 1, updated_at = %s WHERE id = %s AND status = ANY(%s) RETURNING *",
            [FileStatus.PROCESSING, now, now, file_id, [str(s) for s in STEPS_FROM[FileStatus.PROCESSING]]],
        )
    )
    if started:
        return started[0], True
    return ImportFile.objects.get(pk=file_id), False


def file_step(file: ImportFile, status: str) -> None:
    """Move a file the pipeline holds (its row lock) to its next working status; the caller saves it together with
    the counters of the same step. ValueError for a move the file cannot make."""
    if file.status not in STEPS_FROM.get(status, ()):
        raise ValueError(f"a file cannot go from {file.status} to {status}")
    file.status = status


def files_start_migrating(files: QuerySet[ImportFile], **fields: Any) -> int:
    """The files among these that wait for approval start importing (their format was approved)."""
    now = timezone.now()
    return files.filter(status=FileStatus.PENDING_APPROVAL).update(
        status=FileStatus.MIGRATING, updated_at=now, **fields
    )


def file_settle(*, file_id: int) -> str:
    """Set a file's final status from what Postgres says about its rows.

    Plain SQL (a locked read and an UPDATE): it runs once per file, and the ORM's read and save of the file's
    row cost ~0.9 ms more than their statements, a tenth of a small file's time outside its rows."""
    table = ImportFile._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        # (its format's approval time read along, for the histograms below; only the file's row is locked)
        cursor.execute(
            f"""
            SELECT f.status, f.original_name, f.rows_imported, f.rows_invalid, f.rows_skipped, f.rows_duplicate,
                   f.started_at, f.layout ? 'direct', fmt.approved_at
            FROM {table} f LEFT JOIN {CsvFormat._meta.db_table} fmt ON fmt.id = f.format_id
            WHERE f.id = %s FOR UPDATE OF f
            """,
            [file_id],
        )
        found = cursor.fetchone()
        if found is None:
            raise ImportFile.DoesNotExist(f"file {file_id} is not there")
        status, name, imported, invalid, skipped, duplicate, started_at, direct, approved_at = found
        if staged_rows_open(file_id=file_id) or status not in (FileStatus.MIGRATING, FileStatus.PENDING_APPROVAL):
            return status
        error = None
        if imported == 0 and invalid > 0:
            status = FileStatus.FAILED
            error = f"None of the {invalid} rows could be imported; see the row errors."
        elif invalid:
            status = FileStatus.PARTIAL
        else:
            status = FileStatus.IMPORTED
        now = timezone.now()
        cursor.execute(
            f"UPDATE {table} SET status = %s, error = coalesce(%s, error), progress = 100.0, finished_at = %s, "
            "updated_at = %s WHERE id = %s",
            [status, error, now, now, file_id],
        )
        occurrences_forget(file_ids=[file_id])
        record(
            action="migration.finished",
            obj=ImportFile(pk=file_id),
            summary=f"'{name}': {imported} imported, {invalid} invalid, {skipped} skipped, {duplicate} duplicate",
            details={"status": status},
        )
        notify_file_outcome(file_id=file_id)
        # The histograms count committed outcomes only (a rolled-back settle must not be measured).
        observe = partial(
            file_finished_observe,
            path="direct" if direct else "staged",
            started_at=started_at,
            approved_at=approved_at,
            finished_at=now,
            rows=imported + invalid + skipped + duplicate,
        )
        transaction.on_commit(observe, robust=True)
    return status


def files_end(files: QuerySet[ImportFile], *, status: str, message: str | None, **fields: Any) -> int:
    """End these files as `status` with the message their owners read (None keeps each file's own), in one
    UPDATE; `fields` are what else the ending records (attempts, progress, the rows left...). Returns how many."""
    if status not in ENDINGS:
        raise ValueError(f"{status} is not how a file ends: one of {', '.join(ENDINGS)}")
    now = timezone.now()
    changes: dict[str, Any] = {"status": status, "finished_at": now, "updated_at": now, **fields}
    if message is not None:
        changes["error"] = message[:4000]
    ended = list(files.values_list("pk", flat=True))
    occurrences_forget(file_ids=ended)
    return ImportFile.objects.filter(pk__in=ended).update(**changes)


def file_end(file_id: int, *, status: str = FileStatus.FAILED, message: str | None, **fields: Any) -> bool:
    """End one file (see files_end); False when it is not there."""
    return bool(files_end(ImportFile.objects.filter(pk=file_id), status=status, message=message, **fields))


def file_fail(file_id: int, message: str, *, status: str = FileStatus.FAILED) -> None:
    """End one file as failed (or rejected) with the message its owner reads, and tell the owner."""
    file_end(file_id, status=status, message=message)
    notify_file_outcome(file_id=file_id)


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


def file_batch_refresh(*, file_id: int) -> str | None:
    """After one file's job: refresh its batch's status (batch_refresh_status); None when the file has no batch.

    Most files of an upload end while others are still waiting: the batch is in progress and stays so. Its status
    and its files' statuses are read without the batch's lock, in one statement; only a status that would change
    takes the lock. (An unlocked read cannot miss the batch settling: each file's job reads after its own file's
    change committed, so the job whose change committed last reads every file of the batch in its final state.)"""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT b.id, b.status, ARRAY(SELECT DISTINCT o.status FROM {ImportFile._meta.db_table} o
                                         WHERE o.batch_id = b.id)
            FROM {ImportFile._meta.db_table} f JOIN {ImportBatch._meta.db_table} b ON b.id = f.batch_id
            WHERE f.id = %s
            """,
            [file_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    batch_id, status, statuses = row
    if statuses and _batch_status(set(statuses)) == status:
        return status  # what batch_refresh_status would derive, and leave as it is
    return batch_refresh_status(batch_id=batch_id)


def _batch_status(statuses: set[str]) -> str:
    """A batch's status from the (non-empty) set of its files' statuses."""
    if any(s in UNFINISHED_FILE_STATUSES for s in statuses):
        return BatchStatus.PROCESSING if any(s != FileStatus.UPLOADED for s in statuses) else BatchStatus.PENDING
    if all(s == FileStatus.IMPORTED for s in statuses):
        return BatchStatus.COMPLETED
    if all(s in (FileStatus.FAILED, FileStatus.REJECTED, FileStatus.NO_TRADES) for s in statuses):
        return BatchStatus.FAILED
    if any(s == FileStatus.PENDING_APPROVAL for s in statuses):
        return BatchStatus.WAITING
    return BatchStatus.PARTIAL


def batch_refresh_status(*, batch_id: int) -> str:
    """Derive a batch's status from its files."""
    with transaction.atomic():
        # The batch row locked first, the file statuses read after: two workers finishing the batch's last
        # files at once take turns, and the second one reads both files finished (without the lock, the
        # first could write a status computed before the second file finished, after the second's).
        batch = ImportBatch.objects.select_for_update().get(pk=batch_id)
        # Counted by status in Postgres: a refresh per finished file reads a few rows, not the whole upload's.
        counts = dict(batch.files.order_by().values_list("status").annotate(n=models.Count("id")))
        if not counts:
            return batch.status
        status = _batch_status(set(counts))
        if status != batch.status:
            ImportBatch.objects.filter(pk=batch_id).update(status=status, updated_at=timezone.now())
            # Decided under the batch lock: exactly one refresh sees the upload go from in progress to
            # settled, so it gets one summary (not one email per file).
            if batch.status in (BatchStatus.PENDING, BatchStatus.PROCESSING) and status not in (
                BatchStatus.PENDING,
                BatchStatus.PROCESSING,
            ):
                if sum(counts.values()) > 1:
                    notify_batch_settled(batch_id=batch_id)
    return status
