"""RQ jobs: thin wrappers that take ids and call a service. Enqueued on commit."""

from __future__ import annotations

import logging

import django_rq
import redis.exceptions
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)


def enqueue_now(queue: str, func: object, *args: object, job_id: str | None = None) -> None:
    """Enqueue with retries for transient faults (growing delays) and the failure callback that FAILS files."""
    from rq import Callback, Retry

    from imports.jobs.failures import job_failed

    intervals = settings.AIRLOCK["JOB_RETRY_INTERVALS"]
    django_rq.get_queue(queue).enqueue(
        func,
        *args,
        job_id=job_id,
        failure_ttl=7 * 24 * 3600,
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        on_failure=Callback(job_failed),
    )


def _enqueue(queue: str, func: object, *args: object, job_id: str | None = None) -> None:
    transaction.on_commit(lambda: _enqueue_committed(queue, func, *args, job_id=job_id))


def _enqueue_committed(queue: str, func: object, *args: object, job_id: str | None = None) -> None:
    """After the commit the work is saved in Postgres: a Redis outage now must not turn it into an error."""
    try:
        enqueue_now(queue, func, *args, job_id=job_id)
    except redis.exceptions.RedisError as exc:
        log.warning("could not enqueue %s (%s): saved, the reconciler enqueues it when Redis is back", job_id, exc)


def file_job_id(file_id: int) -> str:
    return f"file-{file_id}"


def format_job_id(format_id: int) -> str:
    return f"format-{format_id}"


def enqueue_file_process(file_id: int, *, queue: str = "default") -> None:
    """Queue reading + staging of one file, after the upload's transaction commits."""
    _enqueue(queue, file_process_job, file_id, job_id=file_job_id(file_id))


def enqueue_format_migrate(format_id: int) -> None:
    """Queue the migration of an approved format's staged rows."""
    _enqueue("high", format_migrate_job, format_id, job_id=format_job_id(format_id))


def file_process_job(file_id: int) -> str:
    """Read, fingerprint, stage and (if approved) migrate one file."""
    from imports.models import FileStatus, ImportFile
    from imports.pipeline.process import file_process
    from imports.services.uploads import batch_refresh_status, review_auto_approve

    status = file_process(file_id=file_id)
    if status == FileStatus.PENDING_APPROVAL and review_auto_approve(file_id=file_id):
        status = FileStatus.MIGRATING  # approved by policy: the format's migration is queued
    batch_id = ImportFile.objects.filter(pk=file_id).values_list("batch_id", flat=True).first()
    if batch_id:
        batch_refresh_status(batch_id=batch_id)
    return status


def format_migrate_job(format_id: int) -> dict:
    """Migrate all staged rows of an approved format."""
    from imports.models import ImportFile
    from imports.pipeline.process import format_migrate
    from imports.services.uploads import batches_refresh

    results = format_migrate(format_id=format_id)
    batches_refresh(batch_ids=list(ImportFile.objects.filter(pk__in=results).values_list("batch_id", flat=True)))
    return results


def reconcile_job() -> dict:
    """Periodic: re-enqueue work Postgres says is due but no job is running for."""
    from imports.jobs.reconcile import reconcile

    return reconcile()


def escalate_job() -> list[int]:
    """Periodic: escalate the pending formats that waited longer than the approval policy allows."""
    from formats.approval import formats_escalate

    return formats_escalate()


def cleanup_job() -> dict:
    """Daily: retention cleanup of staged rows and expired uploads."""
    from imports.services.retention import cleanup_staging

    return cleanup_staging(dry_run=False)
