"""The benchmark command runs end to end on a tiny data set and prints its table (no timing asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_bench_quick_runs_the_real_pipeline_and_prints_one_table() -> None:
    # Its own database next to this test run's (never the `make bench` one another person may be running).
    database = f"{os.environ.get('AIRLOCK_TEST_DB') or 'test_airlock'}_bench"
    env = {**os.environ}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "bench",
            "--quick",
            "--rows",
            "2000",
            "--die-rows",
            "100",
            "--files",
            "3",
            "--file-rows",
            "20",
            "--big-mb",
            "1",
            "--database",
            database,
            "--redis-db",
            os.environ.get("AIRLOCK_TEST_REDIS_DB", "15"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("scenario"))
    assert [cell.strip() for cell in header.split("|")] == [
        "scenario",
        "rows",
        "rows/s",
        "x COPY",
        "wall s",
        "worker RSS MB",
        "notes",
    ]
    scenarios = [line.split("|")[0].strip() for line in lines[lines.index(header) + 2 :] if "|" in line]
    assert scenarios[0].startswith("baseline: COPY")
    # The baseline is the fastest of three timed COPYs (--repeat, default 3), all three printed beside it.
    baseline = next(line for line in lines if line.startswith("baseline: COPY")).split("|")
    runs = [float(t) for t in baseline[-1].strip().removeprefix("fastest of 3: ").removesuffix(" s").split(", ")]
    assert len(runs) == 3 and float(baseline[4]) == pytest.approx(min(runs), abs=0.006)
    assert scenarios[1].startswith("reference: same COPY, table with pk+trade id+checks")
    assert any(s.startswith("migrate staged rows") for s in scenarios)
    assert [s for s in scenarios if s.startswith("3 files x 20 rows")] == [
        "3 files x 20 rows, 1 request, 1 worker",
        "3 files x 20 rows, 1 request, 2 workers",
        "3 files x 20 rows, sent straight to an S3 bucket (SeaweedFS), 2 workers",
    ]
    bucket_row = next(line for line in lines if line.startswith("3 files x 20 rows, sent straight"))
    assert "x the local-disk row's files/s" in bucket_row and "batch COMPLETED" in bucket_row
    assert "1 -> 2 workers:" in next(line for line in lines if line.startswith("3 files x 20 rows, 1 request, 2"))
    schwab = [line for line in lines if line.startswith("approved built-in Schwab format")]
    assert [line.split("|")[0].strip() for line in schwab] == [
        "approved built-in Schwab format, de-duplication off",
        "approved built-in Schwab format, de-duplication on",
    ]
    assert "; SQL path" in schwab[0] and "cash rows skipped" in schwab[0]
    assert "; SQL path (fingerprint keys)" in schwab[1]
    # The other built-in layouts, de-duplication on: both on the SQL path with fingerprint keys.
    others = [line for line in lines if line.startswith(("approved built-in E*TRADE", "approved built-in IBKR"))]
    assert [line.split("|")[0].strip() for line in others] == [
        "approved built-in E*TRADE format, de-duplication on",
        "approved built-in IBKR Flex format, de-duplication on",
    ]
    assert all("; SQL path (fingerprint keys)" in line for line in others)
    assert sum(s.startswith("django-import-export") for s in scenarios) == 2
    # Each scenario with a goal ran as many times as the baseline (other rows each time): its row is the fastest
    # run, every time printed (the same statistic over as many runs on both sides of its ratio).
    goals = ("stage 1 file", "migrate staged", "approved format: stored file", "approved built-in", "approved corpus")
    repeated = [line.split("|") for line in lines if line.startswith(goals)]
    assert len(repeated) == 8
    for cells in repeated:
        times = re.search(r"fastest of 3: ([0-9.]+), ([0-9.]+), ([0-9.]+) s", cells[-1])
        assert times and float(cells[4]) == pytest.approx(min(map(float, times.groups())), abs=0.006), cells
    other = [line for line in lines if line.startswith("approved format, the same rows as")]
    assert [line.split("|")[0].strip().split(" (")[0] for line in other] == [
        "approved format, the same rows as .xlsx",
        "approved format, the same rows as NDJSON",
    ]
    assert all("x the CSV path's rows/s" in line for line in other)
    # Each scenario starts after a checkpoint, or the summary says why it could not.
    assert "checkpoint before each scenario" in lines[-1]


@pytest.mark.django_db
def test_a_bench_user_who_may_not_checkpoint_gets_the_bench_without_and_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.db import connection

    from imports.bench import runner

    monkeypatch.setattr(runner, "_CHECKPOINT_REFUSED", [])
    runner.checkpoint()  # the local stack's user may
    assert runner._CHECKPOINT_REFUSED == []
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE airlock_bench_plain NOLOGIN")
        cursor.execute("SET ROLE airlock_bench_plain")
        try:
            runner.checkpoint()
            runner.checkpoint()  # asked once: the refusal is remembered
        finally:
            cursor.execute("RESET ROLE")
    assert len(runner._CHECKPOINT_REFUSED) == 1
    assert "CHECKPOINT" in runner._CHECKPOINT_REFUSED[0]  # Postgres says who may
    assert runner._CHECKPOINT_REFUSED[0] in runner.settings_summary()


@pytest.mark.django_db(transaction=True)
def test_between_scenarios_the_orders_table_is_emptied_and_what_earlier_ones_left_is_vacuumed() -> None:
    """Untimed: the next scenario is not charged for autovacuum cleaning up an earlier one's deleted rows."""
    from django.db import connection

    from imports.bench import runner

    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        (started,) = cursor.fetchone()
        runner.orders_as_at_the_baseline()
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT relname, last_vacuum FROM pg_stat_user_tables "
            "WHERE relname IN ('staging_stagedrow', 'imports_order')"
        )
        vacuumed = dict(cursor.fetchall())
        cursor.execute("SELECT count(*) FROM imports_order")
        assert cursor.fetchone() == (0,)
    assert set(vacuumed) == {"staging_stagedrow", "imports_order"}
    assert all(at is not None and at >= started for at in vacuumed.values()), vacuumed
