"""The alert evaluation in the real scheduler process: stopping the only worker fires "no live worker",
starting one resolves it, one email each (the console email backend prints them into the scheduler's log)."""

from __future__ import annotations

from typing import Any

import pytest

from imports.models import Alert, AlertState
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {
        "AIRLOCK_ALERT_EVALUATE_SECONDS": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        "AIRLOCK_SITE_URL": "https://airlock.example.com",
    }


def test_stopping_the_only_worker_fires_once_and_a_new_worker_resolves_it(stack: Stack, reviewer: Any) -> None:
    reviewer.email = "ops@example.com"
    reviewer.save()
    worker = stack.processes[1]
    cron = stack.start_cron()
    log = stack.logs[-1]
    stack.wait_for(lambda: "Starting the cron scheduler" in log.read_text(), what="the scheduler")
    assert not Alert.objects.filter(rule="no_worker", state=AlertState.FIRING).exists()

    stack.stop(worker)
    fired = stack.wait_for(
        lambda: Alert.objects.filter(rule="no_worker", state=AlertState.FIRING, fire_notified_at__isnull=False).first(),
        timeout=120,
        what="the no_worker alert to fire",
    )
    stack.start_worker()
    stack.wait_for(
        lambda: Alert.objects.filter(pk=fired.pk, resolve_notified_at__isnull=False).exists(),
        timeout=120,
        what="the no_worker alert to resolve",
    )
    stack.stop(cron)
    text = log.read_text()
    assert text.count("Subject: [Airlock] FIRING: No live worker") == 1
    assert text.count("Subject: [Airlock] RESOLVED: No live worker") == 1
    assert "https://airlock.example.com/admin/ops/" in text
    assert Alert.objects.filter(rule="no_worker").count() == 1
