"""Reads for the ops dashboard (/admin/ops/): the last 7 days by hour, the backlog, queues, workers, alerts."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass
from typing import Any

import django_rq
from django.conf import settings
from django.db.models import Count, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job

from formats.models import CsvFormat
from imports.models import Alert, AlertState, FileStatus, ImportFile
from imports.monitoring.charts import Bar, bar_list, column_chart, line_chart
from imports.monitoring.readings import REDIS_DOWN, QueueReading, database_reading, redis_reading
from staging.models import OPEN_STATUSES, StagedRow

DAYS = 7
# Time to approval, in buckets an admin thinks in.
APPROVAL_BUCKETS = [
    ("< 1 h", 3600),
    ("1-8 h", 8 * 3600),
    ("8-24 h", 86400),
    ("1-2 days", 2 * 86400),
    ("2-7 days", 7 * 86400),
    ("> 7 days", float("inf")),
]


@dataclass(frozen=True)
class HourFigure:
    hour: dt.datetime
    imported: int
    invalid: int
    handled: int

    @property
    def error_rate(self) -> float:
        return self.invalid / self.handled if self.handled else 0.0


def hourly_figures(*, now: dt.datetime, days: int = DAYS) -> list[HourFigure]:
    """Rows of the files that finished in each hour of the last `days` days (oldest first, empty hours as 0)."""
    last = now.replace(minute=0, second=0, microsecond=0)
    first = last - dt.timedelta(hours=days * 24 - 1)
    rows = (
        ImportFile.objects.filter(
            finished_at__gte=first, status__in=[FileStatus.IMPORTED, FileStatus.PARTIAL, FileStatus.FAILED]
        )
        .annotate(hour=TruncHour("finished_at"))
        .order_by()
        .values("hour")
        .annotate(
            imported=Sum("rows_imported"),
            invalid=Sum("rows_invalid"),
            skipped=Sum("rows_skipped"),
            dup=Sum("rows_duplicate"),
        )
    )
    by_hour = {row["hour"]: row for row in rows}
    figures = []
    for i in range(days * 24):
        hour = first + dt.timedelta(hours=i)
        row = by_hour.get(hour, {})
        imported, invalid = row.get("imported") or 0, row.get("invalid") or 0
        handled = imported + invalid + (row.get("skipped") or 0) + (row.get("dup") or 0)
        figures.append(HourFigure(hour=hour, imported=imported, invalid=invalid, handled=handled))
    return figures


def _day_label(hour: dt.datetime) -> str:
    return f"{hour:%a %d}" if hour.hour == 0 else ""


def backlog_by_format(limit: int = 8) -> list[Bar]:
    rows = (
        StagedRow.objects.filter(status__in=OPEN_STATUSES)
        .order_by()
        .values("format__name")
        .annotate(n=Count("id"))
        .order_by("-n")[:limit]
    )
    return [Bar(row["format__name"], row["n"], f"{row['n']:,} staged rows of '{row['format__name']}'") for row in rows]


def approval_buckets(*, now: dt.datetime, days: int = 30) -> tuple[list[Bar], float | None]:
    """How long formats approved in the last `days` days waited, bucketed; and the median wait in seconds."""
    waits = [
        (approved - created).total_seconds()
        for created, approved in CsvFormat.objects.filter(
            approved_at__gte=now - dt.timedelta(days=days), builtin=False
        ).values_list("created_at", "approved_at")
    ]
    bars, lower = [], 0.0
    for label, upper in APPROVAL_BUCKETS:
        n = sum(1 for wait in waits if lower <= wait < upper)
        bars.append(Bar(label, n, f"{n} formats approved after {label}"))
        lower = upper
    return bars, (statistics.median(waits) if waits else None)


def _job_description(job_id: str | None) -> str:
    if not job_id:
        return ""
    try:
        job = Job.fetch(job_id, connection=django_rq.get_connection("default"))
    except (NoSuchJobError, *REDIS_DOWN):
        return job_id
    return f"{job_id}: {job.func_name.rsplit('.', 1)[-1]}"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 2 * 86400 else f"{seconds / 86400:.1f} days"


def _error_title(h: HourFigure) -> str:
    return f"{h.hour:%a %d %b %H:00}: {h.error_rate:.1%} invalid ({h.invalid:,} of {h.handled:,} rows)"


def _queue_title(q: QueueReading) -> str:
    oldest = f", the oldest for {q.oldest_age:,.0f} s" if q.oldest_age else ""
    return f"{q.length:,} jobs wait in '{q.name}'{oldest}"


def dashboard_context(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything /admin/ops/ shows, charts drawn."""
    now = now or timezone.now()
    hours = hourly_figures(now=now)
    db = database_reading(now=now)
    redis = redis_reading(now=now)
    threshold = settings.AIRLOCK_ALERTS["ERROR_RATE"]
    last_day = hours[-24:]
    handled_24h = sum(h.handled for h in last_day)
    approvals, median_wait = approval_buckets(now=now)
    rows_chart = column_chart(
        [Bar(_day_label(h.hour), h.imported, f"{h.hour:%a %d %b %H:00}: {h.imported:,} rows imported") for h in hours],
        label=f"Rows imported per hour, last {DAYS} days",
    )
    error_chart = line_chart(
        [Bar(_day_label(h.hour), round(h.error_rate * 100, 2), _error_title(h)) for h in hours],
        label=f"Error rate per hour, last {DAYS} days (%)",
        unit="%",
        threshold=threshold * 100,
    )
    queue_bars = [Bar(q.name, q.length, _queue_title(q)) for q in redis.queues]
    return {
        "now": now,
        "tiles": [
            ("Rows imported, 24 h", f"{sum(h.imported for h in last_day):,}"),
            ("Error rate, 24 h", f"{sum(h.invalid for h in last_day) / handled_24h:.1%}" if handled_24h else "–"),
            ("Staging backlog", f"{db.backlog_rows:,} rows in {db.backlog_files:,} files"),
            ("Formats pending", f"{db.pending_formats}"),
            (
                "Oldest pending format",
                f"{db.oldest_pending_format_age / 3600:,.1f} h" if db.oldest_pending_format_age is not None else "–",
            ),
            ("Live workers", f"{len(redis.workers)}" if redis.up else "Redis does not answer"),
        ],
        "rows_chart": rows_chart,
        "error_chart": error_chart,
        "error_threshold": threshold,
        "backlog_chart": bar_list(backlog_by_format(), label="Staged rows waiting, by format", color="#c28c00"),
        "queue_chart": bar_list(queue_bars, label="Jobs waiting per queue"),
        "queues": redis.queues,
        "approval_chart": bar_list(approvals, label="Time from a format's creation to its approval, last 30 days"),
        "median_approval": _duration(median_wait) if median_wait is not None else None,
        "redis_up": redis.up,
        "workers": [
            {"name": w.name, "state": w.state, "queues": ", ".join(w.queues), "job": _job_description(w.current_job)}
            for w in redis.workers
        ],
        "firing": Alert.objects.filter(state__in=[AlertState.FIRING, AlertState.PENDING]).order_by("first_seen_at"),
        "recent_alerts": Alert.objects.filter(
            state=AlertState.RESOLVED, resolved_at__gte=now - dt.timedelta(days=DAYS)
        ).order_by("-resolved_at")[:10],
    }
