"""What happens when a job raises: transient faults are retried by RQ, the last failure FAILS the file.

RQ calls `job_failed` in the work horse on every failure, before it decides whether to retry. A
transient fault (the database or Redis connection dropped) keeps its remaining retries; anything else
is not retried (running a bug again changes nothing) and the file gets a human-readable reason at once.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import redis.exceptions
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections, transaction
from django.utils import timezone
from rq.exceptions import AbandonedJobError

from audit.models import AuditEvent
from audit.services import record
from imports.models import FileStatus, ImportFile
from imports.pipeline.locks import file_lock_held
from staging.models import StagedRow, StagedStatus

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
# Files a failed job leaves behind in one of these are its own unfinished work.
_OWNED_STATUSES = (FileStatus.UPLOADED, FileStatus.PROCESSING, FileStatus.MIGRATING)


def is_transient(exc: BaseException | None) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def failure_reason(exc: BaseException | None, attempts: int) -> str:
    """The message a user reads on the failed file."""
    name = exc.__class__.__name__ if exc else "error"
    text = str(exc).strip().splitlines()[0][:300] if exc and str(exc).strip() else "no details"
    if isinstance(exc, AbandonedJobError):
        return (
            f"The worker processing this file died {attempts} time{'s' if attempts != 1 else ''} (killed, out of "
            "memory or its machine lost); "
            "the file is not retried again on its own. Ask an admin to retry it once the cause is fixed."
        )
    if is_transient(exc):
        return (
            f"The import was interrupted by a temporary fault that persisted after {attempts} attempts "
            f"(lost connection to the database or Redis: {name}: {text}). Ask an admin to retry it."
        )
    return f"The import stopped on an unexpected error ({name}: {text}). Ask an admin to retry it once fixed."


def job_failed(
    job: Any, connection: Any, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
) -> None:
    """RQ on_failure callback: keep retries for transient faults, else fail the job's files with a reason."""
    if isinstance(exc, AbandonedJobError) and _resumable(job.id):
        # The worker died (killed, OOM, machine lost) and RQ's registry clean-up noticed: a transient fault.
        # Postgres says how far the file got; the files stay unfinished and the reconciler re-enqueues them
        # for the next worker, which resumes from there (nothing lost, nothing written twice).
        log.warning("job %s was abandoned by a dead worker; its files resume on the next worker", job.id)
        return
    if job.retries_left and is_transient(exc):
        log.warning("job %s hit a transient fault (%s); RQ retries it (%s left)", job.id, exc, job.retries_left)
        return
    # Not transient, or out of retries: make RQ put it in the failed registry now.
    job.retries_left = 0
    attempts = len(settings.AIRLOCK["JOB_RETRY_INTERVALS"]) + 1 if is_transient(exc) else 1
    if isinstance(exc, AbandonedJobError):
        attempts = settings.AIRLOCK["MAX_FILE_ATTEMPTS"]
    # The failed job may have left a broken connection behind (terminated backend). Not inside an
    # atomic block: that is a caller's transaction (an in-process worker), not ours to drop.
    if not any(conn.in_atomic_block for conn in connections.all(initialized_only=True)):
        close_old_connections()
        for conn in connections.all(initialized_only=True):
            if conn.connection is not None and not conn.is_usable():
                conn.close()
    files_fail_for_job(job_id=job.id, reason=failure_reason(exc, attempts))


def _resumable(job_id: str) -> bool:
    """A dead worker's file job is resumed unless its file was started too often (a file that kills its
    worker every time, e.g. by running it out of memory, must end FAILED with a reason, not loop)."""
    kind, _, raw_id = job_id.partition("-")
    if kind != "file" or not raw_id.isdigit():
        return kind == "format"  # a format's migration is re-enqueued by the reconciler as well
    attempts = ImportFile.objects.filter(pk=int(raw_id)).values_list("attempts", flat=True).first() or 0
    return attempts < settings.AIRLOCK["MAX_FILE_ATTEMPTS"]


def files_fail_for_job(*, job_id: str, reason: str) -> list[int]:
    """Mark the unfinished files a failed job was working on FAILED with a reason (and audit it)."""
    kind, _, raw_id = job_id.partition("-")
    if not raw_id.isdigit():
        return []
    if kind == "file":
        files = ImportFile.objects.filter(pk=int(raw_id), status__in=_OWNED_STATUSES)
    elif kind == "format":
        open_files = StagedRow.objects.filter(
            format_id=int(raw_id), status__in=[StagedStatus.APPROVED, StagedStatus.MIGRATING]
        ).values("file_id")
        # A format job migrates staged rows: a file still being read (a direct import whose failed rows a
        # mapping fix re-opened) is its reading job's, not this one's; and so is a file another job is
        # migrating right now (it holds the file's lock -- this job's went with its failure).
        files = [
            file
            for file in ImportFile.objects.filter(
                pk__in=open_files, status__in=[FileStatus.MIGRATING, FileStatus.PENDING_APPROVAL]
            )
            if not file_lock_held(file.pk)
        ]
    else:
        return []
    failed: list[int] = []
    for file in files:
        updated = ImportFile.objects.filter(pk=file.pk, status=file.status).update(
            status=FileStatus.FAILED, error=reason[:4000], finished_at=timezone.now(), updated_at=timezone.now()
        )
        if updated:
            failed.append(file.pk)
            record(
                action="file.failed",
                obj=file,
                severity=AuditEvent.Severity.ERROR,
                summary=f"'{file.original_name}' failed: {reason}",
                details={"job": job_id},
            )
    if failed:
        from imports.services.uploads import batches_refresh  # services -> jobs -> failures

        batches_refresh(batch_ids=[file.batch_id for file in files if file.pk in failed])
    return failed


def file_retry(*, file_id: int, actor: Any) -> str:
    """Admin retry of a FAILED file: reset it to where its data says it is and enqueue it again."""
    from config.errors import Conflict
    from imports.jobs import enqueue

    file = ImportFile.objects.select_related("format").get(pk=file_id)
    if file.status != FileStatus.FAILED:
        raise Conflict(
            f"'{file.original_name}' is {file.get_status_display().lower()}, not failed: "
            "only a failed import can be retried.",
            code="retry_refused",
        )
    if file.direct_read_part_way:
        # Read straight from the file and stopped part-way: its staged rows are only the failed rows read
        # so far, not the file. Processing it again resumes the reading after the last committed chunk.
        status = FileStatus.UPLOADED
    elif "direct" in (file.layout or {}) or StagedRow.objects.filter(file_id=file_id).exists():
        # Read to its end already (straight from the file, or staged): resume the migration (reading it
        # again would re-number identical fills and could import again what was skipped as a duplicate).
        # Without an approved format it waits for review. With every row done, the job only settles it.
        approved = file.format is not None and file.format.status == "APPROVED"
        status = FileStatus.MIGRATING if approved else FileStatus.PENDING_APPROVAL
    else:
        status = FileStatus.UPLOADED
    with transaction.atomic():
        ImportFile.objects.filter(pk=file_id, status=FileStatus.FAILED).update(
            status=status, error="", finished_at=None, updated_at=timezone.now()
        )
        record(
            action="file.retried",
            actor=actor,
            obj=file,
            summary=f"'{file.original_name}' retried by an admin (was failed: {file.error[:200]})",
            details={"status": status},
        )
        enqueue.enqueue_file_process(file_id)
    return status
