"""RQ jobs: thin wrappers that take ids and call a service (enqueued by imports/jobs/enqueue.py)."""

from __future__ import annotations

import logging

from rq import get_current_job

from config.worker import stop_requested
from formats.approval import formats_escalate
from imports.jobs import enqueue
from imports.jobs.failures import connections_drop_broken
from imports.jobs.reconcile import reconcile
from imports.lifecycle import batches_refresh, file_batch_refresh
from imports.models import UNFINISHED_FILE_STATUSES, FileStatus, ImportFile
from imports.pipeline.migrate import format_migrate
from imports.pipeline.process import file_process
from imports.services.retention import cleanup_staging
from imports.services.uploads import review_auto_approve

log = logging.getLogger(__name__)


def file_process_job(file_id: int) -> str:
    """Read, fingerprint, stage and (if approved) migrate one file."""
    status = file_process(file_id=file_id)
    if status == FileStatus.PENDING_APPROVAL and review_auto_approve(file_id=file_id):
        status = FileStatus.MIGRATING  # approved by policy: the format's migration is queued
    file_batch_refresh(file_id=file_id)
    return status


def files_process_job(file_ids: list[int]) -> dict[int, str]:
    """Several small files of one upload (imports/jobs/enqueue.py), one after the other, each exactly as its own
    job would process it. The group never fails a file itself: a file that raises is handed, with the files after
    it, to jobs of their own (the retries and failure handling of any file's job), and so are the files not started
    when the worker is asked to stop. Returns each processed file's status."""
    job = get_current_job()
    queue = job.origin if job is not None else "default"
    done: dict[int, str] = {}
    for n, file_id in enumerate(file_ids):
        try:
            status = done[file_id] = file_process_job(file_id)
        except Exception as exc:  # noqa: BLE001 - handed over, not swallowed: the file's own job meets it again
            log.warning("file %s of a group job raised (%s: %s)", file_id, exc.__class__.__name__, exc, exc_info=True)
            connections_drop_broken()
            enqueue.files_hand_over(file_ids[n:], queue=queue, reason=f"file {file_id} raised {exc!r}")
            break
        if stop_requested():  # (SIGTERM) the file itself stopped after its batch, if it had more to do
            rest = file_ids[n:] if status in UNFINISHED_FILE_STATUSES else file_ids[n + 1 :]
            enqueue.files_hand_over(rest, queue=queue, reason="the worker is stopping")
            break
    return done


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
