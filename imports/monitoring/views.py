"""GET /metrics: the Prometheus text format, behind a bearer token (AIRLOCK_METRICS_TOKEN).

Which figure comes from where (see also the README's monitoring section):
* computed from Postgres at scrape time (the truth, whatever the number of processes): files by status, rows
  by outcome, staging backlog (rows and files), pending formats and the oldest one's age, approvals and time
  to approval, migration failures, alerts firing (imports/monitoring/alerts.py records them);
* read from Redis at scrape time: queue length and oldest job's age per RQ queue, live and busy workers;
* multiprocess-mode histograms written by the workers (imports/monitoring/metrics.py): processing duration
  and rows/s per finished file.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from imports.monitoring.alerts import rules
from imports.monitoring.dashboard import dashboard_context
from imports.monitoring.metrics import multiprocess_dir
from imports.monitoring.readings import database_reading, redis_reading

# Time from a format's creation to its approval: an admin's working day, not a job's run time.
APPROVAL_BUCKETS = (60, 300, 900, 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 7 * 86400)


def _histogram(name: str, documentation: str, values: list[float], buckets: tuple[float, ...]) -> Metric:
    """A histogram family built from a list of values (cumulative buckets, +Inf, sum)."""
    cumulative = [(str(float(bound)), sum(1 for v in values if v <= bound)) for bound in buckets]
    cumulative.append(("+Inf", len(values)))
    return HistogramMetricFamily(name, documentation, buckets=cumulative, sum_value=sum(values))


class AirlockCollector(Collector):
    """The figures Postgres and Redis hold, read when Prometheus scrapes (nothing cached between scrapes)."""

    def collect(self) -> Iterator[Metric]:
        db = database_reading()
        # From Postgres at scrape time.
        files = GaugeMetricFamily("airlock_files", "Files by status now.", labels=["status"])
        for status, count in db.files_by_status.items():
            files.add_metric([status.lower()], count)
        yield files
        # From Postgres at scrape time: the files' counters summed (a gauge: a rollback takes rows back).
        rows = GaugeMetricFamily("airlock_rows", "Rows of all files by outcome.", labels=["outcome"])
        for outcome, count in db.rows_by_outcome.items():
            rows.add_metric([outcome], count)
        yield rows
        # From Postgres at scrape time.
        yield GaugeMetricFamily(
            "airlock_staging_backlog_rows", "Staged rows not settled yet (pending, approved, migrating).",
            value=db.backlog_rows,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "airlock_staging_backlog_files", "Files with staged rows not settled yet.", value=db.backlog_files
        )
        yield GaugeMetricFamily("airlock_formats_pending", "Formats waiting for review.", value=db.pending_formats)
        yield GaugeMetricFamily(
            "airlock_formats_pending_oldest_age_seconds",
            "Age of the oldest format waiting for review (0 when none waits).",
            value=db.oldest_pending_format_age or 0,
        )
        yield CounterMetricFamily(
            "airlock_format_approvals", "Formats approved (built-in ones excluded).", value=len(db.approval_waits)
        )
        yield _histogram(
            "airlock_format_time_to_approval_seconds",
            "Time from a format's creation to its approval, per approved format.",
            db.approval_waits,
            APPROVAL_BUCKETS,
        )
        yield CounterMetricFamily(
            "airlock_migration_failures", "Migrations that failed (audit log).", value=db.migration_failures
        )
        # From Postgres at scrape time: the episodes the alert evaluation recorded.
        firing = GaugeMetricFamily("airlock_alerts_firing", "1 while the alert rule fires.", labels=["rule"])
        for rule in rules():
            firing.add_metric([rule.name], int(rule.name in db.firing_alerts))
        yield firing
        yield from self.collect_redis()

    def collect_redis(self) -> Iterator[Metric]:
        # From Redis at scrape time. A Redis outage is a figure (airlock_redis_up 0), not a failed scrape.
        reading = redis_reading()
        yield GaugeMetricFamily("airlock_redis_up", "1 when Redis answered this scrape.", value=int(reading.up))
        if not reading.up:
            return
        length = GaugeMetricFamily("airlock_queue_length", "Jobs waiting per RQ queue.", labels=["queue"])
        oldest = GaugeMetricFamily(
            "airlock_queue_oldest_job_age_seconds",
            "How long the job first in line has waited, per RQ queue (0 when empty).",
            labels=["queue"],
        )
        for queue in reading.queues:
            length.add_metric([queue.name], queue.length)
            oldest.add_metric([queue.name], queue.oldest_age or 0)
        yield length
        yield oldest
        yield GaugeMetricFamily("airlock_workers_alive", "Live RQ workers.", value=len(reading.workers))
        busy = sum(1 for worker in reading.workers if worker.current_job)
        yield GaugeMetricFamily("airlock_workers_busy", "Live RQ workers running a job.", value=busy)


def exposition() -> bytes:
    """The whole /metrics body: the scrape-time figures, then the workers' histograms."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AirlockCollector())
    body = generate_latest(registry)
    if multiprocess_dir():
        merged = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(merged)
        return body + generate_latest(merged)
    # One process only (no PROMETHEUS_MULTIPROC_DIR): its own histograms and process figures.
    return body + generate_latest(REGISTRY)


def _authorized(request: HttpRequest, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """GET /metrics: 404 while AIRLOCK_METRICS_TOKEN is unset, 401 without that bearer token."""
    token = settings.AIRLOCK["METRICS_TOKEN"]
    if not token:
        raise Http404("metrics are off: set AIRLOCK_METRICS_TOKEN")
    if not _authorized(request, token):
        response = HttpResponse("A bearer token is required (AIRLOCK_METRICS_TOKEN).\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        response["Content-Type"] = "text/plain; charset=utf-8"
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


@never_cache
@require_safe
def ops_dashboard(request: HttpRequest) -> HttpResponse:
    """GET /admin/ops/: the ops dashboard for staff (anonymous: to the login page; not staff: 403)."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    if not (request.user.is_active and request.user.is_staff):
        raise PermissionDenied("The ops dashboard is for staff.")
    context = {**admin.site.each_context(request), "title": "Operations", **dashboard_context()}
    return render(request, "admin/ops/dashboard.html", context)
