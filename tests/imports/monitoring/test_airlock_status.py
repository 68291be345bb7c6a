"""manage.py airlock_status on real Postgres and Redis: the terminal's picture of health, queues, backlog,
alerts and failures, and an exit code scripts can use."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from imports.models import Alert, AlertState, FileStatus, ImportFile
from tests.imports.monitoring.test_alerts import live_worker  # noqa: F401 - the fixture
from tests.imports.pipeline.test_pipeline import upload

pytestmark = pytest.mark.django_db


def status() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("airlock_status", stdout=out)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_it_prints_backlog_alerts_and_failures_and_exits_0_with_a_live_worker(
    user: Any,
    live_worker: Any,  # noqa: F811 - the fixture imported above
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)  # 3 rows staged
    ImportFile.objects.filter(pk=file.pk).update(status=FileStatus.FAILED, error="The file is broken at line 7")
    now = timezone.now()
    Alert.objects.create(
        rule="staging_backlog",
        state=AlertState.FIRING,
        summary="3 staged rows in 1 files",
        value=3,
        threshold=2,
        first_seen_at=now,
        fired_at=now,
        last_evaluated_at=now,
    )
    code, out = status()
    assert code == 0, out
    assert "health: ok" in out and "workers alive: 1" in out
    assert "staging backlog: 3 rows in 1 files" in out
    assert "pending formats: 1" in out
    assert "firing staging_backlog: 3 staged rows in 1 files" in out
    assert f"#{file.pk} trades.csv" in out and "broken at line 7" in out
    assert "high" in out and "jobs, oldest waiting" in out


def test_without_a_worker_it_says_so_and_exits_1(redis_clean: Any) -> None:
    code, out = status()
    assert code == 1
    assert "health: DOWN" in out and "no RQ worker is running" in out
