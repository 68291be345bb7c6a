"""The reconciler: Postgres says what is due; RQ jobs are only kicks that may have been lost."""

from __future__ import annotations

from datetime import timedelta

import django_rq
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job

from formats.models import FormatStatus
from imports import jobs
from imports.models import UNFINISHED_FILE_STATUSES, ImportFile
from staging.models import StagedRow, StagedStatus

LIVE_JOB_STATES = {"queued", "started", "scheduled", "deferred"}


def _job_alive(job_id: str) -> bool:
    connection = django_rq.get_connection("default")
    try:
        return Job.fetch(job_id, connection=connection).get_status(refresh=False) in LIVE_JOB_STATES
    except NoSuchJobError:
        return False


def reconcile(*, grace_seconds: int = 60) -> dict[str, list[int]]:
    """Re-enqueue files and approved formats whose work is due but has no live job (e.g. Redis lost it)."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    files: list[int] = []
    for file_id in ImportFile.objects.filter(status__in=UNFINISHED_FILE_STATUSES, updated_at__lt=cutoff).values_list(
        "pk", flat=True
    ):
        if not _job_alive(jobs.file_job_id(file_id)):
            files.append(file_id)
            django_rq.get_queue("default").enqueue(jobs.file_process_job, file_id, job_id=jobs.file_job_id(file_id))
    formats: list[int] = []
    due = (
        StagedRow.objects.filter(status__in=[StagedStatus.PENDING, StagedStatus.APPROVED],
                                 format__status=FormatStatus.APPROVED)
        .values_list("format_id", flat=True).distinct()
    )
    for format_id in due:
        if not _job_alive(jobs.format_job_id(format_id)):
            formats.append(format_id)
            django_rq.get_queue("high").enqueue(jobs.format_migrate_job, format_id, job_id=jobs.format_job_id(format_id))
    return {"files": files, "formats": formats}
