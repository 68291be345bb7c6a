"""Alert rules on real Postgres and Redis: each one from ok through firing to resolved, one email per transition."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import django_rq
import psycopg
import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rq import Worker

from audit.models import AuditEvent
from audit.services import record
from formats.models import CsvFormat
from imports.management.commands.airlock_cron import AlertingCronScheduler
from imports.models import Alert, AlertState
from imports.monitoring.alerts import ALERT_LOCK_KEY, alert_recipients, alerts_evaluate
from imports.services.uploads import review_approve, upload_batch_create
from tests.conftest import csv_upload
from tests.imports.monitoring.test_metrics import TOKEN, scrape, value
from tests.imports.pipeline.test_pipeline import TRADES, upload

pytestmark = pytest.mark.django_db

QUIET = {  # every rule out of the way; each test brings the one it drives within reach
    "EVALUATE_SECONDS": 60,
    "ERROR_RATE": 1.0,
    "ERROR_WINDOW_MINUTES": 60,
    "BACKLOG_ROWS": 1_000_000,
    "PENDING_FORMAT_HOURS": 10_000,
    "MIGRATION_FAILURE_WINDOW_MINUTES": 60,
    "QUEUE_LENGTH": 1_000_000,
    "QUEUE_MINUTES": 5,
    "REPEAT_MINUTES": 0,
    "WEBHOOK_URL": "",
    "WEBHOOK_TIMEOUT": 10,
}


@pytest.fixture
def rules(settings: Any) -> dict[str, Any]:
    settings.AIRLOCK_ALERTS = dict(QUIET)
    settings.AIRLOCK = {**settings.AIRLOCK, "SITE_URL": "https://airlock.example.com", "METRICS_TOKEN": TOKEN}
    return settings.AIRLOCK_ALERTS


@pytest.fixture
def approver(reviewer: Any) -> Any:
    reviewer.email = "ops@example.com"
    reviewer.save()
    return reviewer


@pytest.fixture
def live_worker(redis_clean: Any) -> Iterator[Worker]:
    """A real RQ worker registration for this process (alive: this pid exists and it has just heartbeat)."""
    queues = [django_rq.get_queue(name) for name in ("high", "default", "bulk")]
    worker = Worker(queues, connection=redis_clean)
    worker.register_birth()
    worker.heartbeat()
    yield worker
    worker.register_death()


def states() -> dict[str, str]:
    return {alert.rule: alert.state for alert in Alert.objects.all()}


def alert_mail() -> list[Any]:
    """The messages sent to the approver (the uploader's own notifications are not alerts)."""
    return [message for message in mail.outbox if "ops@example.com" in message.to]


def subjects() -> list[str]:
    return [message.subject for message in alert_mail()]


def test_a_staging_backlog_fires_once_and_resolves_once_with_one_email_each(
    rules: dict, approver: Any, user: Any, live_worker: Worker, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    rules["BACKLOG_ROWS"] = 2
    assert alerts_evaluate() == []
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)  # 3 rows staged

    assert alerts_evaluate() == ["staging_backlog: FIRING"]
    assert subjects() == ["[Airlock] FIRING: Staging backlog too large"]
    message = alert_mail()[0]
    assert message.to == ["ops@example.com"]
    assert "3 staged rows in 1 files" in message.body
    assert "https://airlock.example.com/admin/ops/" in message.body
    assert AuditEvent.objects.filter(action="alert.firing").count() == 1

    # Still holding: no second message, no second episode.
    assert alerts_evaluate() == []
    assert len(alert_mail()) == 1 and Alert.objects.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=approver)
    run_jobs()
    assert alerts_evaluate() == ["staging_backlog: RESOLVED"]
    assert subjects()[1:] == ["[Airlock] RESOLVED: Staging backlog too large"]
    assert alerts_evaluate() == []
    assert len(alert_mail()) == 2
    alert = Alert.objects.get()
    assert (alert.state, alert.fired_at is not None, alert.resolved_at is not None) == (AlertState.RESOLVED, True, True)
    assert AuditEvent.objects.filter(action="alert.resolved").count() == 1


def test_a_format_pending_for_too_long_fires_and_approval_resolves_it(
    rules: dict, approver: Any, user: Any, live_worker: Worker, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    rules["PENDING_FORMAT_HOURS"] = 24
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert alerts_evaluate() == []  # pending, but only just
    CsvFormat.objects.filter(pk=file.format_id).update(created_at=timezone.now() - dt.timedelta(hours=25))
    assert alerts_evaluate() == ["format_pending: FIRING"]
    assert "has waited 25.0 h" in alert_mail()[0].body
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=approver)
    assert alerts_evaluate() == ["format_pending: RESOLVED"]
    assert subjects() == [
        "[Airlock] FIRING: A format has waited too long for review",
        "[Airlock] RESOLVED: A format has waited too long for review",
    ]


def test_an_error_rate_above_the_threshold_fires_and_resolves_when_the_window_has_passed(
    rules: dict, approver: Any, user: Any, live_worker: Worker, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    rules["ERROR_RATE"] = 0.05
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=approver)
    run_jobs()  # 2 imported, 1 invalid: 33%
    assert alerts_evaluate() == ["error_rate: FIRING"]
    assert "33.3% of the rows" in alert_mail()[0].body
    later = timezone.now() + dt.timedelta(minutes=61)
    assert alerts_evaluate(now=later) == ["error_rate: RESOLVED"]
    assert len(alert_mail()) == 2


def test_a_migration_failure_fires_and_resolves_when_none_is_recent(
    rules: dict, approver: Any, live_worker: Worker
) -> None:
    record(action="migration.failed", summary="Migration of 'x.csv' failed", severity=AuditEvent.Severity.ERROR)
    assert alerts_evaluate() == ["migration_failures: FIRING"]
    assert alerts_evaluate(now=timezone.now() + dt.timedelta(minutes=30)) == []
    assert alerts_evaluate(now=timezone.now() + dt.timedelta(minutes=61)) == ["migration_failures: RESOLVED"]
    assert subjects() == ["[Airlock] FIRING: Migrations failed", "[Airlock] RESOLVED: Migrations failed"]


def test_a_long_queue_fires_only_after_it_stayed_long_for_the_rules_minutes(
    rules: dict, approver: Any, user: Any, live_worker: Worker, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    rules["QUEUE_LENGTH"] = 1
    with django_capture_on_commit_callbacks(execute=True):
        upload_batch_create(owner=user, files=[csv_upload("a.csv", TRADES)])
        upload_batch_create(owner=user, files=[csv_upload("b.csv", TRADES.replace("T-1", "T-9"))])
    start = timezone.now()
    assert alerts_evaluate(now=start) == []
    assert states() == {"queue_length": AlertState.PENDING}
    assert alerts_evaluate(now=start + dt.timedelta(minutes=4)) == []
    assert alert_mail() == []
    assert alerts_evaluate(now=start + dt.timedelta(minutes=5)) == ["queue_length: FIRING"]
    assert "2 jobs wait in the queue 'high'" in alert_mail()[0].body
    run_jobs()
    assert alerts_evaluate(now=start + dt.timedelta(minutes=6)) == ["queue_length: RESOLVED"]
    assert len(alert_mail()) == 2


def test_a_queue_that_drains_before_its_minutes_are_up_never_fires(
    rules: dict, approver: Any, user: Any, live_worker: Worker, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    rules["QUEUE_LENGTH"] = 1
    with django_capture_on_commit_callbacks(execute=True):
        upload_batch_create(owner=user, files=[csv_upload("a.csv", TRADES)])
        upload_batch_create(owner=user, files=[csv_upload("b.csv", TRADES.replace("T-1", "T-9"))])
    assert alerts_evaluate() == []
    run_jobs()
    assert alerts_evaluate() == []
    assert Alert.objects.count() == 0 and alert_mail() == []


def test_no_live_worker_fires_and_a_worker_coming_back_resolves_it(
    rules: dict, approver: Any, redis_clean: Any
) -> None:
    assert alerts_evaluate() == ["no_worker: FIRING"]
    assert "0 live RQ workers" in alert_mail()[0].body
    worker = Worker([django_rq.get_queue("default")], connection=redis_clean, name=f"w-{socket.gethostname()}")
    worker.register_birth()
    worker.heartbeat()
    try:
        assert alerts_evaluate() == ["no_worker: RESOLVED"]
    finally:
        worker.register_death()
    assert subjects() == ["[Airlock] FIRING: No live worker", "[Airlock] RESOLVED: No live worker"]


def test_a_failing_mail_server_is_audited_and_the_message_goes_out_at_the_next_evaluation(
    rules: dict, approver: Any, settings: Any, live_worker: Worker
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens
    record(action="migration.failed", summary="Migration of 'x.csv' failed", severity=AuditEvent.Severity.ERROR)
    assert alerts_evaluate() == ["migration_failures: FIRING"]  # the evaluation itself went through
    alert = Alert.objects.get()
    assert (alert.state, alert.fire_notified_at, alert.notify_failures) == (AlertState.FIRING, None, 1)
    assert AuditEvent.objects.filter(action="alert.notification_failed").count() == 1

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert alerts_evaluate() == []
    assert subjects() == ["[Airlock] FIRING: Migrations failed"]
    assert alerts_evaluate() == []
    assert len(alert_mail()) == 1


def test_a_reminder_goes_out_at_the_repeat_interval_while_an_alert_fires(
    rules: dict, approver: Any, live_worker: Worker
) -> None:
    rules["REPEAT_MINUTES"] = 30
    rules["MIGRATION_FAILURE_WINDOW_MINUTES"] = 600
    record(action="migration.failed", summary="Migration of 'x.csv' failed", severity=AuditEvent.Severity.ERROR)
    start = timezone.now()
    alerts_evaluate(now=start)
    alerts_evaluate(now=start + dt.timedelta(minutes=10))
    alerts_evaluate(now=start + dt.timedelta(minutes=31))
    alerts_evaluate(now=start + dt.timedelta(minutes=40))
    assert subjects() == ["[Airlock] FIRING: Migrations failed", "[Airlock] STILL FIRING: Migrations failed"]


def test_a_second_evaluator_skips_its_turn_while_one_is_running(rules: dict, approver: Any, redis_clean: Any) -> None:
    s = connection.settings_dict
    other = psycopg.connect(
        dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"], host=s["HOST"], port=s["PORT"] or 5432
    )
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [ALERT_LOCK_KEY])
        assert alerts_evaluate() == []  # no worker, but the other evaluator decides (and tells) that
        assert Alert.objects.count() == 0 and alert_mail() == []
        # The other evaluator ends its turn. (Closing its connection alone would race the next evaluation: the
        # server releases a closed session's locks when it gets to the disconnect, which CI once saw come after.)
        other.execute("SELECT pg_advisory_unlock(%s)", [ALERT_LOCK_KEY])
    finally:
        other.close()
    assert alerts_evaluate() == ["no_worker: FIRING"]


def test_only_active_staff_who_may_approve_get_the_messages(approver: Any, user: Any, django_user_model: Any) -> None:
    user.is_staff = True
    user.save()  # staff, but without the approve permission
    django_user_model.objects.create_superuser(username="root", email="root@example.com", password="pw-root-1")
    django_user_model.objects.create_superuser(username="gone", email="gone@example.com", password="x", is_active=False)
    assert alert_recipients() == ["ops@example.com", "root@example.com"]


def test_the_scheduler_evaluates_the_rules_in_its_own_process_every_interval(
    rules: dict, approver: Any, redis_clean: Any
) -> None:
    scheduler = AlertingCronScheduler(connection=redis_clean)
    scheduler.enqueue_jobs()
    assert states() == {"no_worker": AlertState.FIRING}  # no job, no worker needed to find that out
    Alert.objects.all().delete()
    scheduler.enqueue_jobs()
    assert Alert.objects.count() == 0  # not due again before EVALUATE_SECONDS
    assert 0 < scheduler.calculate_sleep_interval() <= 60


def test_the_command_and_metrics_show_what_fires(rules: dict, approver: Any, capsys: Any) -> None:
    call_command("airlock_alerts", "--evaluate")
    out = capsys.readouterr().out
    assert "Evaluated: no_worker: FIRING" in out
    assert "no_worker            FIRING" in out
    assert "staging_backlog      ok" in out
    assert "Recent alerts:" in out and "still firing: 0 live RQ workers" in out
    samples = scrape()
    assert value(samples, "airlock_alerts_firing", rule="no_worker") == 1
    assert value(samples, "airlock_alerts_firing", rule="staging_backlog") == 0


class _Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver on loopback: records each JSON body, answers with the status the test sets."""

    bodies: list[dict[str, Any]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        length = int(self.headers.get("Content-Length") or 0)
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"bodies": [], "status": 200})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/airlock", handler
    server.shutdown()
    server.server_close()


def test_a_webhook_gets_each_transition_as_slack_compatible_json_and_a_failure_is_retried(
    rules: dict,
    approver: Any,
    user: Any,
    live_worker: Worker,
    receiver: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    url, handler = receiver
    rules.update(BACKLOG_ROWS=2, WEBHOOK_URL=url, WEBHOOK_TIMEOUT=5)
    handler.status = 500  # the receiver is down at first: nothing counts as sent, the evaluation goes on
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert alerts_evaluate() == ["staging_backlog: FIRING"]
    assert len(handler.bodies) == 1 and subjects() == []
    assert Alert.objects.get().notify_failures == 1
    assert AuditEvent.objects.filter(action="alert.notification_failed").exists()

    handler.status = 200
    alerts_evaluate()
    assert len(handler.bodies) == 2 and subjects() == ["[Airlock] FIRING: Staging backlog too large"]
    body = handler.bodies[-1]
    assert body["text"].startswith("*[Airlock] FIRING: Staging backlog too large*")
    assert body["alert"]["rule"] == "staging_backlog" and body["alert"]["kind"] == "FIRING"
    assert body["alert"]["dashboard"] == "https://airlock.example.com/admin/ops/"
    alerts_evaluate()
    assert len(handler.bodies) == 2  # still firing: no second message

    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=approver)
    run_jobs()
    assert alerts_evaluate() == ["staging_backlog: RESOLVED"]
    assert handler.bodies[-1]["alert"]["kind"] == "RESOLVED" and len(handler.bodies) == 3
