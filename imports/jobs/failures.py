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
from imports.jobs import enqueue
from imports.lifecycle import batches_refresh, file_end, files_end
from imports.models import UNFINISHED_FILE_STATUSES, FileStatus, ImportFile
from imports.pipeline.locks import file_lock_held, file_lock_held_elsewhere
from staging.models import OPEN_STATUSES, StagedRow

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
# Files a failed job leaves behind unfinished (UNFINISHED_FILE_STATUSES) are its own work.


def is_transient(exc: BaseException | None) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def failure_reason(exc: BaseException | None, attempts: int) -> str:
    """The message a user reads on the failed file."""
    name = exc.__class__.__name__ if exc else "error"
    text = str(exc).strip().splitlines()[0][:300] if exc and str(exc).strip() else "no details"
    if isinstance(exc, AbandonedJobError):
        return (
            f"The worker processing this file died (killed, out of memory or its machine lost) after the file was "
            f"started {attempts} time{'s' if attempts != 1 else ''} (AIRLOCK_MAX_FILE_ATTEMPTS); the file is not "
            "resumed again on its own. Ask an admin to retry it once the cause is fixed."
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
    connections_drop_broken()
    if job.id.startswith(enqueue.GROUP_JOB_PREFIX):
        _group_failed(job, exc)
        return
    if isinstance(exc, AbandonedJobError):
        _job_abandoned(job)
        return
    if job.retries_left and is_transient(exc):
        log.warning("job %s hit a transient fault (%s); RQ retries it (%s left)", job.id, exc, job.retries_left)
        return
    # Not transient, or out of retries: make RQ put it in the failed registry now.
    job.retries_left = 0
    attempts = len(settings.AIRLOCK["JOB_RETRY_INTERVALS"]) + 1 if is_transient(exc) else 1
    files_fail_for_job(job_id=job.id, reason=failure_reason(exc, attempts))


def _group_failed(job: Any, exc: BaseException | None) -> None:
    """A group of files (tasks.files_process_job) ended without handing its files over: its worker died, or it
    raised outside a file (its timeout). Each unfinished file goes on in a job of its own -- after a death, only
    once the death is counted against it, as for a file's own job (MAX_FILE_ATTEMPTS)."""
    job.retries_left = 0
    file_ids = enqueue.files_of_job_id(job.id)
    if isinstance(exc, AbandonedJobError):
        resumed: list[int] = []
        for file_id in file_ids:
            resumed += files_resume_or_fail_after_death(job_id=enqueue.file_job_id(file_id))[0]
    else:
        unfinished = ImportFile.objects.filter(pk__in=file_ids, status__in=UNFINISHED_FILE_STATUSES)
        resumed = [pk for pk in unfinished.values_list("pk", flat=True) if not file_lock_held_elsewhere(pk)]
    enqueue.files_hand_over(sorted(resumed), queue=job.origin, reason=f"their group job {job.id} ended on {exc!r}")


def connections_drop_broken() -> None:
    # The failed job may have left a broken connection behind (terminated backend). Not inside an
    # atomic block: that is a caller's transaction (an in-process worker), not ours to drop.
    if not any(conn.in_atomic_block for conn in connections.all(initialized_only=True)):
        close_old_connections()
        for conn in connections.all(initialized_only=True):
            if conn.connection is not None and not conn.is_usable():
                conn.close()


def _job_abandoned(job: Any) -> None:
    """The worker running `job` died (killed, out of memory, machine lost) and RQ's registry clean-up noticed.

    A transient fault: Postgres says how far each file got, so the job is queued again (with its whole retry
    budget, after the first retry interval) and the next worker resumes from there -- nothing lost, nothing
    written twice. A file whose worker died MAX_FILE_ATTEMPTS times ends FAILED saying so instead (a file that
    kills its worker every time, e.g. by running it out of memory, must not loop).
    """
    if job.id.partition("-")[0] not in ("file", "format"):
        return  # not a file's work (the reconciler, the clean-up): RQ's own handling
    resumed, failed = files_resume_or_fail_after_death(job_id=job.id)
    if failed and not resumed:
        job.retries_left = 0  # RQ records it in its failed registry
        log.warning("job %s was abandoned by a dead worker once too often: files %s FAILED", job.id, failed)
        return
    # RQ's clean-up retries the job when it has retries left; give it the whole budget again (the death was
    # not one of the transient faults the retries count). The reconciler is the safety net if this is lost.
    job.retries_left = len(settings.AIRLOCK["JOB_RETRY_INTERVALS"]) + 1
    log.warning("job %s was abandoned by a dead worker; files %s resume on the next worker", job.id, resumed)


def _job_files(kind: str, raw_id: str, statuses: tuple[str, ...]) -> Any:
    """The unfinished files of a job (locked with select_for_update by the caller's transaction)."""
    if kind == "file":
        return ImportFile.objects.select_for_update().filter(pk=int(raw_id), status__in=statuses)
    if kind == "format":
        open_files = StagedRow.objects.filter(format_id=int(raw_id), status__in=OPEN_STATUSES).values("file_id")
        return ImportFile.objects.select_for_update().filter(pk__in=open_files, status__in=statuses)
    return ImportFile.objects.none()


def files_resume_or_fail_after_death(*, job_id: str) -> tuple[list[int], list[int]]:
    """Count a worker's death against each file the dead job left unfinished; FAIL those out of attempts.

    Returns (files left to resume, files failed). The file row is the truth: each is decided under its row
    lock, and a file another session holds the advisory lock of is being worked on by a live job (the
    reconciler re-enqueued it already): it is neither counted nor failed.
    """
    kind, _, raw_id = job_id.partition("-")
    if not raw_id.isdigit():
        return [], []
    limit = settings.AIRLOCK["MAX_FILE_ATTEMPTS"]
    resumed: list[int] = []
    failed: list[ImportFile] = []
    with transaction.atomic():
        for file in _job_files(kind, raw_id, (*UNFINISHED_FILE_STATUSES, FileStatus.PENDING_APPROVAL)):
            if file_lock_held_elsewhere(file.pk):
                continue
            if file.status == FileStatus.PENDING_APPROVAL:
                if kind == "format":
                    resumed.append(file.pk)  # its migration had not started: nothing to count
                continue
            # A start of reading counts itself (file_process); a migration's death is counted here.
            reading = file.status in (FileStatus.UPLOADED, FileStatus.PROCESSING)
            attempts = file.attempts if reading else file.attempts + 1
            if attempts < limit:
                if attempts != file.attempts:
                    ImportFile.objects.filter(pk=file.pk).update(attempts=attempts, updated_at=timezone.now())
                resumed.append(file.pk)
                continue
            reason = failure_reason(AbandonedJobError(), attempts)
            file_end(file.pk, status=FileStatus.FAILED, message=reason, attempts=attempts)
            failed.append(file)
            record(
                action="file.failed",
                obj=file,
                severity=AuditEvent.Severity.ERROR,
                summary=f"'{file.original_name}' failed: {reason}",
                details={"job": job_id, "attempts": attempts},
            )
    if failed:
        batches_refresh(batch_ids=[file.batch_id for file in failed])
    return resumed, [file.pk for file in failed]


def files_fail_for_job(*, job_id: str, reason: str) -> list[int]:
    """Mark the unfinished files a failed job was working on FAILED with a reason (and audit it)."""
    kind, _, raw_id = job_id.partition("-")
    if not raw_id.isdigit():
        return []
    if kind == "file":
        # Decided under the row lock, and never while another session holds the file's advisory lock: a late
        # failure of an old job must not fail the file a live job (re-enqueued by the reconciler) works on.
        with transaction.atomic():
            files = [
                file
                for file in ImportFile.objects.select_for_update().filter(
                    pk=int(raw_id), status__in=UNFINISHED_FILE_STATUSES
                )
                if not file_lock_held_elsewhere(file.pk)
            ]
            return _files_fail(files, job_id=job_id, reason=reason)
    if kind == "format":
        open_files = StagedRow.objects.filter(format_id=int(raw_id), status__in=OPEN_STATUSES).values("file_id")
        # A format job migrates staged rows: a file still being read (a direct import whose invalid rows a
        # mapping fix re-opened) is its reading job's, not this one's; and so is a file another job is
        # migrating right now (it holds the file's lock -- this job's went with its failure).
        files = [
            file
            for file in ImportFile.objects.filter(
                pk__in=open_files, status__in=[FileStatus.MIGRATING, FileStatus.PENDING_APPROVAL]
            )
            if not file_lock_held(file.pk)
        ]
        return _files_fail(files, job_id=job_id, reason=reason)
    return []


def _files_fail(files: list[ImportFile], *, job_id: str, reason: str) -> list[int]:
    failed: list[int] = []
    for file in files:
        updated = files_end(
            ImportFile.objects.filter(pk=file.pk, status=file.status), status=FileStatus.FAILED, message=reason
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
        batches_refresh(batch_ids=[file.batch_id for file in files if file.pk in failed])
    return failed
