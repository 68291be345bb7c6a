"""The reconciler: Postgres says what is due; RQ jobs are only kicks that may have been lost."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import django_rq
from django.conf import settings
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.worker import Worker

from config.worker import worker_alive
from formats.models import FormatStatus
from imports.jobs import enqueue
from imports.models import UNFINISHED_FILE_STATUSES, FileStatus, ImportFile
from imports.pipeline.locks import file_lock_held_elsewhere
from staging.models import StagedRow, StagedStatus

log = logging.getLogger(__name__)

LIVE_JOB_STATES = {"queued", "started", "scheduled", "deferred"}


def _worker_alive(name: str | None, connection: Any) -> bool:
    """Is the worker that started a job still there? Killed workers leave their registration behind."""
    if not name:
        return False
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=connection)
    return worker is not None and worker_alive(worker)


def _job_alive(job_id: str) -> bool:
    """A job is alive when it waits in a queue, is scheduled (e.g. a retry), or runs on a living worker."""
    connection = django_rq.get_connection("default")
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status not in LIVE_JOB_STATES:
        return False
    if status == "started" and not _worker_alive(job.worker_name, connection):
        # The horse was killed (SIGKILL, OOM, machine lost): RQ would only notice when the started
        # registry entry expires. Drop the entry so the re-enqueued job is the only one.
        StartedJobRegistry(job.origin, connection=connection).remove_executions(job)
        return False
    return True


def _file_groups(connection: Any) -> dict[int, str]:
    """Which group job (tasks.files_process_job) names each file, for the groups queued or started. Their ids list
    their files (enqueue.files_job_id): a few Redis reads for the whole run, not one per file."""
    groups: dict[int, str] = {}
    for name in settings.RQ_QUEUES:
        queue = django_rq.get_queue(name, connection=connection)
        for job_id in [*queue.get_job_ids(), *StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)]:
            for file_id in enqueue.files_of_job_id(job_id):
                groups[file_id] = job_id
    return groups


def reconcile(*, grace_seconds: int | None = None) -> dict[str, list[int]]:
    """Re-enqueue files and approved formats whose work is due but has no live job (e.g. Redis lost it).

    Work touched within the grace period is left alone (its job may not be enqueued yet: enqueues
    happen on commit), and so is work a live job or a process holding the file's lock is doing.
    """
    grace = settings.AIRLOCK["RECONCILE_GRACE_SECONDS"] if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    files: list[int] = []
    unfinished = list(
        ImportFile.objects.filter(status__in=UNFINISHED_FILE_STATUSES, updated_at__lt=cutoff).values_list(
            "pk", "format_id"
        )
    )
    groups = _file_groups(django_rq.get_connection("default")) if unfinished else {}
    for file_id, format_id in unfinished:
        if (
            _job_alive(enqueue.file_job_id(file_id))
            or (file_id in groups and _job_alive(groups[file_id]))
            or (format_id and _job_alive(enqueue.format_job_id(format_id)))
        ):
            continue
        if file_lock_held_elsewhere(file_id):
            continue
        files.append(file_id)
        enqueue.enqueue_now(
            "default", f"{enqueue.TASKS}.file_process_job", file_id, job_id=enqueue.file_job_id(file_id)
        )
    formats: list[int] = []
    due = (
        StagedRow.objects.filter(
            # PENDING too: rows of an approved format that its approval did not see.
            status__in=[StagedStatus.PENDING, StagedStatus.APPROVED],
            format__status=FormatStatus.APPROVED,
            format__approved_at__lt=cutoff,
            file__status=FileStatus.PENDING_APPROVAL,
        )
        .values_list("format_id", flat=True)
        .distinct()
    )
    for format_id in due:
        if not _job_alive(enqueue.format_job_id(format_id)):
            formats.append(format_id)
            enqueue.enqueue_now(
                "high", f"{enqueue.TASKS}.format_migrate_job", format_id, job_id=enqueue.format_job_id(format_id)
            )
    if files or formats:
        log.warning("reconciler re-enqueued files %s and formats %s", files, formats)
    return {"files": files, "formats": formats}
