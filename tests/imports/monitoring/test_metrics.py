"""GET /metrics on real Postgres and Redis: the token, and figures that follow what the product does."""

from __future__ import annotations

import runpy
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import django_rq
import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from audit.models import AuditEvent
from audit.services import record
from imports.models import FileStatus
from imports.services.uploads import review_approve, upload_batch_create
from tests.conftest import csv_upload
from tests.imports.pipeline.test_pipeline import TRADES, upload

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "metrics-token-for-tests"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def metrics_on(settings: Any) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "METRICS_TOKEN": TOKEN}


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by name and labels (a real parser: it refuses junk)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: Client | None = None) -> Samples:
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse(response.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_are_off_while_no_token_is_set(settings: Any) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "METRICS_TOKEN": ""}
    assert Client().get("/metrics").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_it_refuses_a_scrape_without_the_right_bearer_token(metrics_on: None, user: Any) -> None:
    assert Client().get("/metrics").status_code == 401
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x")
    assert wrong.status_code == 401
    assert wrong["WWW-Authenticate"].startswith("Bearer")
    # A logged-in user is not enough either: the metrics are for the monitoring system.
    logged_in = Client()
    logged_in.force_login(user)
    assert logged_in.get("/metrics").status_code == 401


def test_the_token_is_not_taken_for_a_users_api_token(metrics_on: None) -> None:
    # The API middleware refuses unknown bearer tokens with 401 JSON; /metrics has its own token.
    assert scrape()[("airlock_redis_up", frozenset())] == 1


def test_an_imported_upload_moves_the_file_and_row_figures(
    metrics_on: None, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    before = scrape()
    assert value(before, "airlock_files", status="imported") == 0
    assert value(before, "airlock_rows", outcome="imported") == 0
    assert value(before, "airlock_formats_pending") == 0

    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    staged = scrape()
    assert value(staged, "airlock_files", status="pending_approval") == 1
    assert value(staged, "airlock_staging_backlog_rows") == 3
    assert value(staged, "airlock_staging_backlog_files") == 1
    assert value(staged, "airlock_formats_pending") == 1
    assert value(staged, "airlock_formats_pending_oldest_age_seconds") >= 0
    assert value(staged, "airlock_format_approvals_total") == 0

    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    with django_capture_on_commit_callbacks(execute=True):  # the job's own after-commit work (the histogram)
        run_jobs()
    after = scrape()
    assert value(after, "airlock_files", status="partial") == 1
    assert value(after, "airlock_files", status="pending_approval") == 0
    assert value(after, "airlock_rows", outcome="imported") == 2
    assert value(after, "airlock_rows", outcome="invalid") == 1
    assert value(after, "airlock_staging_backlog_rows") == 0
    assert value(after, "airlock_formats_pending") == 0
    assert value(after, "airlock_format_approvals_total") == 1
    assert value(after, "airlock_format_time_to_approval_seconds_count") == 1
    assert value(after, "airlock_format_time_to_approval_seconds_bucket", le="+Inf") == 1
    # The in-process worker observed the finished file (one process here: no PROMETHEUS_MULTIPROC_DIR);
    # the histograms are process-wide, so compare with the scrape before.
    seen = (
        value(before, "airlock_file_processing_seconds_count", path="staged")
        if (("airlock_file_processing_seconds_count", frozenset({("path", "staged")})) in before)
        else 0
    )
    assert value(after, "airlock_file_processing_seconds_count", path="staged") == seen + 1


def test_queue_length_and_the_oldest_jobs_age_come_from_redis(
    metrics_on: None, user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any
) -> None:
    assert value(scrape(), "airlock_queue_length", queue="high") == 0
    with django_capture_on_commit_callbacks(execute=True):
        upload_batch_create(owner=user, files=[csv_upload("a.csv", TRADES)])
        upload_batch_create(owner=user, files=[csv_upload("b.csv", TRADES.replace("T-1", "T-9"))])
    samples = scrape()
    # Small files go to the interactive queue.
    assert value(samples, "airlock_queue_length", queue="high") == 2
    assert value(samples, "airlock_queue_oldest_job_age_seconds", queue="high") > 0
    assert value(samples, "airlock_queue_length", queue="bulk") == 0
    # No worker runs in this test.
    assert value(samples, "airlock_workers_alive") == 0
    assert len(django_rq.get_queue("high")) == 2


def test_a_failed_migration_counts(metrics_on: None, user: Any) -> None:
    assert value(scrape(), "airlock_migration_failures_total") == 0
    record(action="migration.failed", summary="Migration of 'x.csv' failed", severity=AuditEvent.Severity.ERROR)
    assert value(scrape(), "airlock_migration_failures_total") == 1


def test_a_redis_outage_is_a_figure_not_a_failed_scrape(metrics_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # The queues' Redis is a port nothing listens on (django-rq reads its queue settings once, at import).
    dead = {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}
    monkeypatch.setattr(django_rq.settings, "QUEUES", {name: dead for name in ("high", "default", "bulk")})
    samples = scrape()
    assert value(samples, "airlock_redis_up") == 0
    assert ("airlock_queue_length", frozenset({("queue", "default")})) not in samples
    assert value(samples, "airlock_files", status=FileStatus.IMPORTED.lower()) == 0


def test_gunicorn_drops_an_exited_workers_live_gauge_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gunicorn_settings = runpy.run_path(str(ROOT / "config" / "gunicorn.py"))
    host = socket.gethostname()
    for name in (f"gauge_livesum_{host}-123.db", f"gauge_livesum_{host}-456.db", f"histogram_{host}-123.db"):
        (tmp_path / name).write_bytes(b"")
    gunicorn_settings["child_exit"](None, SimpleNamespace(pid=123))
    # Only the exited worker's live gauges go; histograms stay (their counts must not go backwards).
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == [f"gauge_livesum_{host}-456.db", f"histogram_{host}-123.db"]


def test_every_metric_the_grafana_dashboard_queries_is_one_metrics_exports(metrics_on: None, user: Any) -> None:
    import json
    import re

    dashboard = json.loads((Path(__file__).parents[3] / "deploy/grafana/dashboards/airlock.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bairlock_[a-z_]+", target["expr"])
    }
    exported = set()
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    for family in text_string_to_metric_families(response.content.decode()):
        exported.add(family.name)
        exported.update(sample.name for sample in family.samples)
    assert queried and queried <= exported, sorted(queried - exported)
    uids = {panel["targets"][0]["datasource"]["uid"] for panel in dashboard["panels"]}
    provisioned = (Path(__file__).parents[3] / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    assert uids == {"airlock-prometheus"} and "uid: airlock-prometheus" in provisioned
