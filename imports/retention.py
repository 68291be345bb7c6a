"""Retention: delete staged rows of finished files and expired uploads, one run at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.services import record
from imports.models import UNFINISHED_FILE_STATUSES, FileStatus, ImportFile
from imports.storage import delete_stored
from staging.models import StagedRow
from staging.services import staged_rows_delete_before

_LOCK_KEY = 0x41_49_52_4C  # "AIRL": session advisory lock id for cleanup runs


class CleanupBusy(Exception):
    """Another cleanup run holds the lock."""


def cleanup_staging(*, days: int | None = None, dry_run: bool = False, actor: Any = None) -> dict[str, Any]:
    """Delete staged rows of finished files older than the retention period and their stored uploads."""
    days = settings.AIRLOCK["RETENTION_DAYS"] if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY])
        if not cursor.fetchone()[0]:
            raise CleanupBusy("Another cleanup run is in progress; try again when it finishes.")
    try:
        finished = ImportFile.objects.exclude(status__in=UNFINISHED_FILE_STATUSES).exclude(
            status=FileStatus.PENDING_APPROVAL).filter(updated_at__lt=cutoff)
        file_ids = list(finished.values_list("pk", flat=True))
        rows = StagedRow.objects.filter(file_id__in=file_ids).count()
        # Raw files of files that were never imported (failed/rejected) are purged; imported ones keep
        # their orders, and their upload is deleted once past retention.
        purgeable = list(finished.exclude(status=FileStatus.PURGED).values_list("pk", "stored_name"))
        result = {"days": days, "dry_run": dry_run, "files": len(file_ids), "staged_rows": rows,
                  "uploads": len(purgeable)}
        if dry_run:
            return result
        deleted = 0
        for start in range(0, len(file_ids), 500):
            deleted += staged_rows_delete_before(file_ids=file_ids[start:start + 500])
        for file_id, stored_name in purgeable:
            delete_stored(stored_name)
            with transaction.atomic():
                ImportFile.objects.filter(pk=file_id, status__in=[FileStatus.FAILED, FileStatus.REJECTED]).update(
                    status=FileStatus.PURGED)
        result["staged_rows"] = deleted
        record(action="retention.cleanup", actor=actor,
               summary=f"Cleanup: {deleted} staged rows of {len(file_ids)} files older than {days} days deleted, "
                       f"{len(purgeable)} uploads removed", details=result)
        return result
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])
