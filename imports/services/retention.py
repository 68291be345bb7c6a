"""Retention: delete staged rows of finished files and expired uploads, one run at a time."""

from __future__ import annotations

import operator
from datetime import timedelta
from functools import reduce
from itertools import islice
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from audit.services import record
from config.errors import Conflict, InvalidRequest
from imports.lifecycle import files_end
from imports.models import DirectUploadSlot, FileStatus, ImportFile
from imports.services.direct_uploads import direct_uploads_expire
from imports.services.idempotency import idempotency_keys_expire
from imports.storage import delete_stored, stored_older_than
from imports.targets import WRITERS
from staging.models import StagedRow
from staging.services import staged_rows_delete_before

_LOCK_KEY = 0x41_49_52_4C  # "AIRL": session advisory lock id for cleanup runs


class CleanupBusy(Conflict):
    """Another cleanup run holds the lock."""

    code = "cleanup_busy"


# Only these are touched: never unfinished work, never files waiting for an approval.
FINISHED_STATUSES = (
    FileStatus.IMPORTED,
    FileStatus.PARTIAL,
    FileStatus.FAILED,
    FileStatus.REJECTED,
    FileStatus.NO_TRADES,
    FileStatus.ROLLED_BACK,
    FileStatus.PURGED,
)
# Past retention, files of these statuses that never produced orders are purged (and may be uploaded again).
_PURGE_STATUSES = (FileStatus.FAILED, FileStatus.REJECTED, FileStatus.NO_TRADES)
_CHUNK = 200


def cleanup_staging(*, days: int | None = None, dry_run: bool = False, actor: Any = None) -> dict[str, Any]:
    """Delete staged rows and stored uploads of finished files untouched for `days`; one run at a time."""
    days = settings.AIRLOCK["RETENTION_DAYS"] if days is None else days
    if days < 0:
        raise InvalidRequest("days must be 0 or more.", code="invalid_days")
    cutoff = timezone.now() - timedelta(days=days)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY])
        if not cursor.fetchone()[0]:
            raise CleanupBusy("Another cleanup run is in progress; nothing was done. Try again when it finishes.")
    try:
        due = _due_files(cutoff)
        file_ids = list(due.values_list("pk", flat=True))
        result: dict[str, Any] = {
            "days": days,
            "dry_run": dry_run,
            "files": len(file_ids),
            "staged_rows": StagedRow.objects.filter(file_id__in=file_ids).count(),
            "uploads": due.filter(upload_deleted_at__isnull=True).count(),
            "purged": _purgeable(due).count(),
            "idempotency_keys": 0,
            "direct_uploads": 0,
            "orphans": 0,
        }
        if dry_run:
            return result
        result.update(staged_rows=0, uploads=0, purged=0)
        for start in range(0, len(file_ids), _CHUNK):
            _cleanup_chunk(file_ids[start : start + _CHUNK], cutoff, result)

        result["idempotency_keys"] = idempotency_keys_expire()
        # Direct-upload slots never confirmed: the objects a browser sent for them go too.
        result["direct_uploads"] = direct_uploads_expire()
        result["orphans"] = stored_orphans_delete()
        record(
            action="retention.cleanup",
            actor=actor,
            summary=(
                f"Cleanup (older than {days} days): {result['staged_rows']} staged rows of "
                f"{result['files']} files deleted, {result['uploads']} uploads removed, "
                f"{result['purged']} files purged"
            ),
            details=result,
        )
        return result
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])


# An upload is written to the storage before its row commits; one older than this with no row is a leftover.
ORPHAN_AGE = timedelta(days=1)


def stored_orphans_delete(*, older_than: timedelta = ORPHAN_AGE) -> int:
    """Delete stored objects that no import file or upload slot names: the leftovers of an upload whose request
    failed while the storage could not be reached to clean up (or a process that died between the two)."""
    removed = 0
    names = stored_older_than("uploads/", timezone.now() - older_than)
    while chunk := list(islice(names, 1000)):
        known = set(ImportFile.objects.filter(stored_name__in=chunk).values_list("stored_name", flat=True))
        known |= set(DirectUploadSlot.objects.filter(key__in=chunk).values_list("key", flat=True))
        for name in chunk:
            if name not in known:
                delete_stored(name)
                removed += 1
    return removed


def _purgeable(files: Any) -> Any:
    """The files among these that never produced orders. A failed import can have written some before its
    fault: it stays FAILED (so the same bytes stay one import) and only its rows and upload are cleaned."""
    wrote = [Exists(writer.model.objects.filter(source_file_id=OuterRef("pk"))) for writer in WRITERS.values()]
    return files.filter(status__in=_PURGE_STATUSES).exclude(reduce(operator.or_, wrote))


def _due_files(cutoff: Any) -> Any:
    has_rows = StagedRow.objects.filter(file_id=OuterRef("pk"))
    return ImportFile.objects.filter(status__in=FINISHED_STATUSES, updated_at__lt=cutoff).filter(
        Q(Exists(has_rows)) | Q(upload_deleted_at__isnull=True)
    )


def _cleanup_chunk(file_ids: list[int], cutoff: Any, result: dict[str, Any]) -> None:
    with transaction.atomic():
        # Re-checked under row locks: an admin retry in between moves a file out of the finished set
        # (and waits for this transaction), so retention never deletes rows a worker is about to use.
        files = list(
            ImportFile.objects.select_for_update().filter(
                pk__in=file_ids, status__in=FINISHED_STATUSES, updated_at__lt=cutoff
            )
        )
        ids = [f.pk for f in files]
        purgeable = set(_purgeable(ImportFile.objects.filter(pk__in=ids)).values_list("pk", flat=True))
        result["staged_rows"] += staged_rows_delete_before(file_ids=ids)
        now = timezone.now()
        for file in files:
            if file.upload_deleted_at is None:
                result["uploads"] += 1
            purge = file.pk in purgeable
            result["purged"] += purge
            # updated_at stays: the file's age is not reset by cleaning it.
            if purge:
                # Past retention with no order made: purged, and the same bytes may be uploaded again.
                files_end(
                    ImportFile.objects.filter(pk=file.pk),
                    status=FileStatus.PURGED,
                    message=None,
                    upload_deleted_at=file.upload_deleted_at or now,
                    finished_at=file.finished_at,
                    updated_at=file.updated_at,
                )
            else:
                ImportFile.objects.filter(pk=file.pk).update(upload_deleted_at=file.upload_deleted_at or now)
        # Storage deletes last, still inside the transaction: a crash before commit leaves the file for
        # the next run (delete_stored of a missing file is a no-op), never a row pointing at nothing.
        for file in files:
            if file.upload_deleted_at is None:
                delete_stored(file.stored_name)
