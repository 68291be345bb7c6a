"""manage.py airlock_status: the ops dashboard's picture for a terminal (health, queues, backlog, alerts,
the last failures). Exit code 0 when the product is healthy (as /healthz), 1 when not, so scripts can use it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError

from imports.models import Alert, AlertState, FileStatus, ImportFile
from imports.monitoring.readings import database_reading, redis_reading


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


class Command(BaseCommand):
    help = "Print health, queues, staging backlog, pending formats, alerts and the last failed files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--failures", type=int, default=5, help="How many recent failed files to list.")

    def handle(self, *args: Any, **options: Any) -> None:
        out = self.stdout
        try:
            db = database_reading()
        except DatabaseError as exc:
            out.write(f"database: DOWN ({exc.__class__.__name__})")
            raise SystemExit(1) from None
        cache = redis_reading()
        workers = len(cache.workers)
        healthy = cache.up and workers > 0
        out.write(f"health: {'ok' if healthy else 'DOWN'}")
        out.write("  database: ok")
        out.write(f"  redis: {'ok' if cache.up else 'DOWN'}")
        out.write(f"  workers alive: {workers}" + ("" if workers or not cache.up else "  (no RQ worker is running)"))
        for worker in cache.workers:
            out.write(
                f"    {worker.name}: {worker.state}, queues {','.join(worker.queues)}, job {worker.current_job or '-'}"
            )
        out.write("queues:")
        for queue in cache.queues:
            out.write(f"  {queue.name:<8} {queue.length:>6} jobs, oldest waiting {_age(queue.oldest_age)}")
        if not cache.up:
            out.write("  (Redis is unreachable: queue lengths unknown)")
        out.write(f"staging backlog: {db.backlog_rows} rows in {db.backlog_files} files")
        out.write(f"pending formats: {db.pending_formats}, the oldest waiting {_age(db.oldest_pending_format_age)}")
        files = ", ".join(f"{status.lower()} {n}" for status, n in db.files_by_status.items() if n)
        out.write(f"files: {files or 'none'}")
        out.write(f"migration failures (all time): {db.migration_failures}")
        firing = Alert.objects.filter(state__in=[AlertState.FIRING, AlertState.PENDING]).order_by("first_seen_at")
        out.write(f"alerts: {firing.count() or 'none'}")
        for alert in firing:
            out.write(f"  {alert.state.lower()} {alert.rule}: {alert.summary}")
        failed = ImportFile.objects.filter(status=FileStatus.FAILED).order_by("-updated_at")[: options["failures"]]
        out.write("last failures:" if failed else "last failures: none")
        for file in failed:
            out.write(f"  #{file.pk} {file.original_name} ({file.updated_at:%Y-%m-%d %H:%M}): {file.error[:120]}")
        if not healthy:
            raise SystemExit(1)
