"""RQ jobs: thin wrappers that take ids and call a service (enqueued by imports/jobs/enqueue.py)."""

from __future__ import annotations

from formats.approval import formats_escalate
from imports.jobs.reconcile import reconcile
from imports.lifecycle import batches_refresh, file_batch_refresh
from imports.models import FileStatus, ImportFile
from imports.pipeline.migrate import format_migrate
from imports.pipeline.process import file_process
from imports.services.retention import cleanup_staging
from imports.services.uploads import review_auto_approve


def file_process_job(file_id: int) -> str:
    """Read, fingerprint, stage and (if approved) migrate one file."""
    status = file_process(file_id=file_id)
    if status == FileStatus.PENDING_APPROVAL and review_auto_approve(file_id=file_id):
        status = FileStatus.MIGRATING  # approved by policy: the format's migration is queued
    file_batch_refresh(file_id=file_id)
    return status


def format_migrate_job(format_id: int) -> dict:
    """Migrate all staged rows of an approved format."""
    results = format_migrate(format_id=format_id)
    batches_refresh(batch_ids=list(ImportFile.objects.filter(pk__in=results).values_list("batch_id", flat=True)))
    return results


def reconcile_job() -> dict:
    """Periodic: re-enqueue work Postgres says is due but no job is running for."""
    return reconcile()


def escalate_job() -> list[int]:
    """Periodic: escalate the pending formats that waited longer than the approval policy allows."""
    return formats_escalate()


def cleanup_job() -> dict:
    """Daily: retention cleanup of staged rows and expired uploads."""
    return cleanup_staging(dry_run=False)
