"""What the product looks like right now, read from Postgres and Redis at the moment someone asks.

/metrics, the alert rules and the ops dashboard all read these: Postgres holds the truth about files, rows,
formats and failures, so computing them at scrape time is correct with any number of web and worker
processes, and survives restarts. Redis holds the queues and the workers' registrations.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import django_rq
import redis.exceptions
from django.conf import settings
from django.db.models import Count, Min, Sum
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.queue import Queue

from audit.models import AuditEvent
from config.worker import live_workers
from formats.models import CsvFormat, FormatStatus
from imports.models import Alert, AlertState, FileStatus, ImportFile
from staging.models import OPEN_STATUSES, StagedRow

QUEUE_NAMES = ("high", "default", "bulk")
# Rows by outcome, in the results vocabulary: the ImportFile counter each one is summed from.
ROW_OUTCOMES = {
    "imported": "rows_imported",
    "invalid": "rows_invalid",
    "skipped": "rows_skipped",
    "duplicate": "rows_duplicate",
    "staged": "rows_staged",
}
MIGRATION_FAILED = "migration.failed"
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@dataclass
class DatabaseReading:
    """Figures from Postgres."""

    files_by_status: dict[str, int]
    rows_by_outcome: dict[str, int]
    backlog_rows: int
    backlog_files: int
    pending_formats: int
    oldest_pending_format_age: float | None
    approval_waits: list[float]  # seconds from creation to approval, per approved (non built-in) format
    migration_failures: int
    firing_alerts: list[str]  # rules with a FIRING episode now


@dataclass
class QueueReading:
    name: str
    length: int
    oldest_age: float | None


@dataclass
class WorkerReading:
    name: str
    state: str
    queues: list[str]
    current_job: str | None


@dataclass
class RedisReading:
    """Figures from Redis: the queues and the live workers. `up` is False when Redis did not answer."""

    up: bool
    queues: list[QueueReading] = field(default_factory=list)
    workers: list[WorkerReading] = field(default_factory=list)


def database_reading(*, now: dt.datetime | None = None) -> DatabaseReading:
    """Files, rows, staging backlog, pending formats, approvals and migration failures, as Postgres has them."""
    now = now or timezone.now()
    by_status = dict(ImportFile.objects.order_by().values_list("status").annotate(n=Count("id")))
    sums = ImportFile.objects.aggregate(**{outcome: Sum(column) for outcome, column in ROW_OUTCOMES.items()})
    backlog = StagedRow.objects.filter(status__in=OPEN_STATUSES).aggregate(
        rows=Count("id"), files=Count("file_id", distinct=True)
    )
    pending = CsvFormat.objects.filter(status=FormatStatus.PENDING).aggregate(n=Count("id"), oldest=Min("created_at"))
    approvals = CsvFormat.objects.filter(approved_at__isnull=False, builtin=False).values_list(
        "created_at", "approved_at"
    )
    return DatabaseReading(
        files_by_status={status: by_status.get(status, 0) for status in FileStatus.values},
        rows_by_outcome={outcome: sums[outcome] or 0 for outcome in ROW_OUTCOMES},
        backlog_rows=backlog["rows"],
        backlog_files=backlog["files"],
        pending_formats=pending["n"],
        oldest_pending_format_age=(now - pending["oldest"]).total_seconds() if pending["oldest"] else None,
        approval_waits=[max((approved - created).total_seconds(), 0.0) for created, approved in approvals],
        # The audit log is append-only, so this count only grows: a true counter.
        migration_failures=AuditEvent.objects.filter(action=MIGRATION_FAILED).count(),
        firing_alerts=list(Alert.objects.filter(state=AlertState.FIRING).values_list("rule", flat=True)),
    )


def _queue_reading(queue: Queue, now: dt.datetime) -> QueueReading:
    length = queue.count
    oldest_age = None
    # RQ appends to the right and workers pop from the left: the first id is the job waiting longest.
    for job_id in queue.get_job_ids(0, 1):
        try:
            job = Job.fetch(job_id, connection=queue.connection)
        except NoSuchJobError:
            continue  # expired or deleted while we looked: its id alone says nothing about age
        if job.enqueued_at is not None:
            enqueued = job.enqueued_at if job.enqueued_at.tzinfo else job.enqueued_at.replace(tzinfo=dt.UTC)
            oldest_age = max((now - enqueued).total_seconds(), 0.0)
    return QueueReading(name=queue.name, length=length, oldest_age=oldest_age)


def redis_reading(*, now: dt.datetime | None = None) -> RedisReading:
    """Queue lengths, the oldest job's age per queue and the live workers; up=False when Redis is away."""
    now = now or timezone.now()
    try:
        queues = [_queue_reading(django_rq.get_queue(name), now) for name in QUEUE_NAMES if name in settings.RQ_QUEUES]
        connection = django_rq.get_connection("default")
        workers = [
            WorkerReading(
                name=worker.name,
                state=str(getattr(worker.get_state(), "value", worker.get_state())),
                queues=worker.queue_names(),
                current_job=worker.get_current_job_id(),
            )
            for worker in live_workers(connection)
        ]
    except (*REDIS_DOWN, redis.exceptions.ResponseError):
        return RedisReading(up=False)
    return RedisReading(up=True, queues=queues, workers=workers)


def error_rate_since(since: dt.datetime) -> tuple[int, int]:
    """(invalid rows, rows handled) of the files that finished since then: the error rate's two terms."""
    totals = ImportFile.objects.filter(
        finished_at__gte=since, status__in=[FileStatus.IMPORTED, FileStatus.PARTIAL, FileStatus.FAILED]
    ).aggregate(
        invalid=Sum("rows_invalid"),
        imported=Sum("rows_imported"),
        skipped=Sum("rows_skipped"),
        dup=Sum("rows_duplicate"),
    )
    invalid = totals["invalid"] or 0
    return invalid, invalid + (totals["imported"] or 0) + (totals["skipped"] or 0) + (totals["dup"] or 0)


def migration_failures_since(since: dt.datetime) -> int:
    return AuditEvent.objects.filter(action=MIGRATION_FAILED, created_at__gte=since).count()
