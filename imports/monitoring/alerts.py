"""Alert rules, evaluated every minute by the cron scheduler (manage.py airlock_cron), kept in Postgres.

Each rule looks at a reading (imports/monitoring/readings.py) and says whether its condition holds. An episode
is an Alert row: PENDING while the condition holds for less than the rule's minimum duration, FIRING after,
RESOLVED when it stops. Each transition is audited, and the approvers (active staff with the approve
permission) get one email when an alert fires and one when it resolves (and, with AIRLOCK_ALERT_REPEAT_MINUTES,
a reminder at that interval while it fires).

No storm, whatever the number of schedulers: an evaluation runs under a Postgres advisory lock (a second
evaluator skips its turn), a partial unique constraint allows one open episode per rule, and each message is
marked sent on its row. A failed delivery is logged and audited, and tried again at the next evaluation; it
never stops the evaluation.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import Error, connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record
from formats.approval import approver_emails
from imports.models import Alert, AlertState
from imports.monitoring.readings import (
    DatabaseReading,
    RedisReading,
    database_reading,
    error_rate_since,
    migration_failures_since,
    redis_reading,
)

log = logging.getLogger(__name__)

ALERT_LOCK_KEY = 0x4149_414C  # "AIAL": one evaluation at a time across all processes
OPS_DASHBOARD_PATH = "/admin/ops/"  # config/urls.py: ops-dashboard
# A resolution whose message could not go out is retried for this long, then left (the history keeps it).
RESOLVE_RETRY_FOR = dt.timedelta(days=1)


@dataclass(frozen=True)
class Snapshot:
    """Everything the rules look at, read once per evaluation."""

    now: dt.datetime
    db: DatabaseReading
    redis: RedisReading
    invalid_rows: int
    handled_rows: int
    recent_migration_failures: int


@dataclass(frozen=True)
class Check:
    """A rule's verdict: holds None means "cannot tell now" (Redis away): the episode is left as it is."""

    holds: bool | None
    value: float
    threshold: float
    summary: str


@dataclass(frozen=True)
class Rule:
    name: str
    title: str
    for_seconds: float
    check: Callable[[Snapshot, dict], Check]


def _error_rate(s: Snapshot, conf: dict) -> Check:
    rate = s.invalid_rows / s.handled_rows if s.handled_rows else 0.0
    window = conf["ERROR_WINDOW_MINUTES"]
    return Check(
        holds=rate > conf["ERROR_RATE"],
        value=rate,
        threshold=conf["ERROR_RATE"],
        summary=f"{rate:.1%} of the rows of files finished in the last {window} min were invalid "
        f"({s.invalid_rows:,} of {s.handled_rows:,}; threshold {conf['ERROR_RATE']:.1%})",
    )


def _staging_backlog(s: Snapshot, conf: dict) -> Check:
    rows = s.db.backlog_rows
    return Check(
        holds=rows > conf["BACKLOG_ROWS"],
        value=rows,
        threshold=conf["BACKLOG_ROWS"],
        summary=f"{rows:,} staged rows in {s.db.backlog_files:,} files are waiting "
        f"(threshold {conf['BACKLOG_ROWS']:,})",
    )


def _format_pending(s: Snapshot, conf: dict) -> Check:
    hours = (s.db.oldest_pending_format_age or 0) / 3600
    return Check(
        holds=hours > conf["PENDING_FORMAT_HOURS"],
        value=hours,
        threshold=conf["PENDING_FORMAT_HOURS"],
        summary=f"the oldest of {s.db.pending_formats} pending formats has waited {hours:.1f} h for review "
        f"(threshold {conf['PENDING_FORMAT_HOURS']:g} h)",
    )


def _migration_failures(s: Snapshot, conf: dict) -> Check:
    failures = s.recent_migration_failures
    return Check(
        holds=failures > 0,
        value=failures,
        threshold=0,
        summary=f"{failures} migrations failed in the last {conf['MIGRATION_FAILURE_WINDOW_MINUTES']} min",
    )


def _queue_length(s: Snapshot, conf: dict) -> Check:
    if not s.redis.up:
        return Check(holds=None, value=0, threshold=conf["QUEUE_LENGTH"], summary="Redis does not answer")
    longest = max(s.redis.queues, key=lambda q: q.length, default=None)
    length = longest.length if longest else 0
    return Check(
        holds=length > conf["QUEUE_LENGTH"],
        value=length,
        threshold=conf["QUEUE_LENGTH"],
        summary=f"{length:,} jobs wait in the queue '{longest.name if longest else '-'}' "
        f"(threshold {conf['QUEUE_LENGTH']:,} for {conf['QUEUE_MINUTES']:g} min)",
    )


def _no_worker(s: Snapshot, conf: dict) -> Check:
    if not s.redis.up:
        return Check(holds=True, value=0, threshold=1, summary="Redis does not answer: no worker can take jobs")
    alive = len(s.redis.workers)
    return Check(holds=alive == 0, value=alive, threshold=1, summary=f"{alive} live RQ workers")


def rules() -> list[Rule]:
    """The rules with their settings (AIRLOCK_ALERTS)."""
    conf = settings.AIRLOCK_ALERTS
    return [
        Rule("error_rate", "Error rate above threshold", 0, _error_rate),
        Rule("staging_backlog", "Staging backlog too large", 0, _staging_backlog),
        Rule("format_pending", "A format has waited too long for review", 0, _format_pending),
        Rule("migration_failures", "Migrations failed", 0, _migration_failures),
        Rule("queue_length", "Job queue too long", conf["QUEUE_MINUTES"] * 60, _queue_length),
        Rule("no_worker", "No live worker", 0, _no_worker),
    ]


def rule_titles() -> dict[str, str]:
    return {rule.name: rule.title for rule in rules()}


def snapshot_take(*, now: dt.datetime | None = None) -> Snapshot:
    """Read Postgres and Redis once for all rules."""
    now = now or timezone.now()
    conf = settings.AIRLOCK_ALERTS
    invalid, handled = error_rate_since(now - dt.timedelta(minutes=conf["ERROR_WINDOW_MINUTES"]))
    return Snapshot(
        now=now,
        db=database_reading(now=now),
        redis=redis_reading(now=now),
        invalid_rows=invalid,
        handled_rows=handled,
        recent_migration_failures=migration_failures_since(
            now - dt.timedelta(minutes=conf["MIGRATION_FAILURE_WINDOW_MINUTES"])
        ),
    )


@contextmanager
def _evaluation_lock() -> Iterator[bool]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [ALERT_LOCK_KEY])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [ALERT_LOCK_KEY])
            except Error:
                connection.close()  # the session is gone, and its lock with it


def alerts_evaluate(*, now: dt.datetime | None = None) -> list[str]:
    """Evaluate every rule, record the transitions, send the due messages; the transitions ('rule: STATE')."""
    with _evaluation_lock() as acquired:
        if not acquired:
            return []  # another process is evaluating right now: its turn counts for both
        snapshot = snapshot_take(now=now)
        transitions: list[str] = []
        for rule in rules():
            with transaction.atomic():
                state = _alert_apply(rule, rule.check(snapshot, settings.AIRLOCK_ALERTS), snapshot.now)
            if state:
                transitions.append(f"{rule.name}: {state}")
        alerts_deliver(now=snapshot.now)
    return transitions


def _alert_apply(rule: Rule, check: Check, now: dt.datetime) -> str | None:
    """Move the rule's open episode on by one evaluation; the new state when it changed to FIRING or RESOLVED."""
    alert = Alert.objects.select_for_update().filter(rule=rule.name, resolved_at__isnull=True).first()
    if check.holds is None:
        if alert is not None:
            Alert.objects.filter(pk=alert.pk).update(last_evaluated_at=now)
        return None
    if not check.holds:
        if alert is None:
            return None
        if alert.state == AlertState.PENDING:
            alert.delete()  # it never held long enough to fire: nothing to tell, nothing to keep
            return None
        alert.state, alert.resolved_at = AlertState.RESOLVED, now
        alert.last_evaluated_at, alert.value, alert.summary = now, check.value, check.summary[:500]
        alert.save()
        record(
            action="alert.resolved",
            obj=alert,
            summary=f"Alert resolved: {rule.title} ({check.summary})"[:500],
            details={"rule": rule.name, "value": check.value, "fired_at": alert.fired_at.isoformat()},
        )
        return AlertState.RESOLVED
    if alert is None:
        alert = Alert(rule=rule.name, first_seen_at=now)
    alert.value, alert.threshold, alert.summary, alert.last_evaluated_at = (
        check.value,
        check.threshold,
        check.summary[:500],
        now,
    )
    fires = alert.state == AlertState.PENDING and (now - alert.first_seen_at).total_seconds() >= rule.for_seconds
    if fires:
        alert.state, alert.fired_at = AlertState.FIRING, now
    alert.save()
    if not fires:
        return None
    record(
        action="alert.firing",
        obj=alert,
        severity=AuditEvent.Severity.WARNING,
        summary=f"Alert firing: {rule.title} ({check.summary})"[:500],
        details={"rule": rule.name, "value": check.value, "threshold": check.threshold},
    )
    return AlertState.FIRING


def alert_recipients() -> list[str]:
    """The email addresses of active staff who may approve formats (superusers included)."""
    return approver_emails()


def dashboard_link() -> str:
    return settings.AIRLOCK["SITE_URL"].rstrip("/") + OPS_DASHBOARD_PATH


def _message(alert: Alert, kind: str) -> tuple[str, str]:
    title = rule_titles().get(alert.rule, alert.rule)
    subject = f"[Airlock] {kind}: {title}"
    lines = [
        f"{kind}: {title}",
        "",
        f"Now: {alert.summary}",
        f"First seen: {alert.first_seen_at:%Y-%m-%d %H:%M} UTC",
    ]
    if alert.fired_at:
        lines.append(f"Firing since: {alert.fired_at:%Y-%m-%d %H:%M} UTC")
    if alert.resolved_at:
        lines.append(f"Resolved: {alert.resolved_at:%Y-%m-%d %H:%M} UTC")
    lines += ["", f"Ops dashboard: {dashboard_link()}"]
    return subject, "\n".join(lines) + "\n"


def alerts_deliver(*, now: dt.datetime | None = None) -> int:
    """Send the messages that are due (fired, reminder, resolved); a failure is retried next time. Sent count."""
    now = now or timezone.now()
    repeat = settings.AIRLOCK_ALERTS["REPEAT_MINUTES"]
    due: list[tuple[Alert, str]] = [
        (alert, "FIRING") for alert in Alert.objects.filter(state=AlertState.FIRING, fire_notified_at__isnull=True)
    ]
    if repeat:
        reminders = Alert.objects.filter(
            state=AlertState.FIRING,
            fire_notified_at__isnull=False,
            last_notified_at__lte=now - dt.timedelta(minutes=repeat),
        )
        due += [(alert, "STILL FIRING") for alert in reminders]
    resolved = Alert.objects.filter(
        state=AlertState.RESOLVED,
        fire_notified_at__isnull=False,  # nobody was told it fired: a "resolved" alone would puzzle
        resolve_notified_at__isnull=True,
        resolved_at__gte=now - RESOLVE_RETRY_FOR,
    )
    due += [(alert, "RESOLVED") for alert in resolved]
    if not due:
        return 0
    recipients = alert_recipients()
    sent = 0
    for alert, kind in sorted(due, key=lambda item: item[0].pk):
        if _send(alert, kind, recipients):
            sent += 1
            stamp = {"RESOLVED": "resolve_notified_at", "FIRING": "fire_notified_at"}.get(kind)
            fields = {"last_notified_at": now, **({stamp: now} if stamp else {})}
            Alert.objects.filter(pk=alert.pk).update(**fields)
        else:
            Alert.objects.filter(pk=alert.pk).update(notify_failures=alert.notify_failures + 1)
    return sent


def _send(alert: Alert, kind: str, recipients: list[str]) -> bool:
    """The webhook (when configured), then one email to all approvers; True when both went out (a failure of
    either is retried at the next evaluation, on both channels)."""
    subject, body = _message(alert, kind)
    if settings.AIRLOCK_ALERTS["WEBHOOK_URL"] and not _post_webhook(alert, kind, subject, body):
        return False
    if not recipients:
        log.warning("alert %s %s: no active staff with the approve permission has an email address", alert.rule, kind)
        return True
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except Exception as exc:  # noqa: BLE001 - any mail failure (SMTP, DNS, auth) must not stop the evaluation
        log.exception("alert %s: the %s message could not be sent; tried again next time", alert.rule, kind)
        record(
            action="alert.notification_failed",
            obj=alert,
            severity=AuditEvent.Severity.WARNING,
            summary=f"Alert email '{subject[:150]}' failed: {exc.__class__.__name__} (retried at the next evaluation)",
            details={"error": str(exc)[:500], "to": recipients},
        )
        return False
    return True


def _post_webhook(alert: Alert, kind: str, subject: str, body: str) -> bool:
    """POST the message as JSON: 'text' for Slack-compatible receivers, and the alert's fields for others."""
    payload = {
        "text": f"*{subject}*\n{body}",
        "alert": {
            "rule": alert.rule,
            "kind": kind,
            "state": alert.state,
            "summary": alert.summary,
            "value": alert.value,
            "threshold": alert.threshold,
            "fired_at": alert.fired_at.isoformat() if alert.fired_at else None,
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "dashboard": dashboard_link(),
        },
    }
    request = urllib.request.Request(
        settings.AIRLOCK_ALERTS["WEBHOOK_URL"],
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "airlock-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.AIRLOCK_ALERTS["WEBHOOK_TIMEOUT"]) as response:
            response.read(1024)
    except (OSError, ValueError) as exc:  # URLError/HTTPError are OSErrors; a malformed URL is a ValueError
        log.warning("alert %s: the %s webhook failed (%s); tried again next time", alert.rule, kind, exc)
        record(
            action="alert.notification_failed",
            obj=alert,
            severity=AuditEvent.Severity.WARNING,
            summary=f"Alert webhook for '{subject[:150]}' failed: {str(exc)[:200]} (retried at the next evaluation)",
            details={"error": str(exc)[:500], "channel": "webhook"},
        )
        return False
    return True
