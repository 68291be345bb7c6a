"""Retrying a failed file: an admin's Retry, or its owner sending the same bytes again."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.services import record
from config.errors import Conflict
from imports.jobs import enqueue
from imports.lifecycle import file_resume
from imports.models import FileStatus, ImportFile
from staging.models import StagedRow


def file_retry(*, file_id: int, actor: Any, by_owner: bool = False, how: str = "") -> str:
    """Retry a FAILED file (an admin's Retry, or its owner uploading the same bytes again, `by_owner`): reset it
    to where its data says it is and enqueue it again. Decided under the file's row lock: of two retries at
    once, the second finds it no longer failed."""
    with transaction.atomic():
        file = ImportFile.objects.select_for_update(of=("self",)).select_related("format").get(pk=file_id)
        if file.status != FileStatus.FAILED:
            raise Conflict(
                f"'{file.original_name}' is {file.get_status_display().lower()}, not failed: "
                "only a failed import can be retried.",
                code="retry_refused",
            )
        status = _retry_status(file)
        file_resume(file_id, status=status)
        who = how or ("by its owner uploading the same file again" if by_owner else "by an admin")
        record(
            action="file.retried",
            actor=actor,
            obj=file,
            summary=f"'{file.original_name}' retried {who} (was failed: {file.error[:200]})",
            details={"status": status, "by_owner": by_owner},
        )
        enqueue.enqueue_file_process(file_id)
    return status


def _retry_status(file: ImportFile) -> str:
    """Where a failed file resumes: what its data in Postgres says is done."""
    if file.direct_read_part_way:
        # Read straight from the file and stopped part-way: its staged rows are only the invalid rows read
        # so far, not the file. Processing it again resumes the reading after the last committed chunk.
        return FileStatus.UPLOADED
    if "direct" in (file.layout or {}) or StagedRow.objects.filter(file_id=file.pk).exists():
        # Read to its end already (straight from the file, or staged): resume the migration (reading it
        # again would re-number identical fills and could import again what was skipped as a duplicate).
        # Without an approved format it waits for review. With every row done, the job only settles it.
        approved = file.format is not None and file.format.status == "APPROVED"
        return FileStatus.MIGRATING if approved else FileStatus.PENDING_APPROVAL
    return FileStatus.UPLOADED
