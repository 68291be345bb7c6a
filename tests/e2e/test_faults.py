"""Nothing lost, nothing doubled: real faults against real processes, Postgres and Redis.

Each test causes one fault (SIGKILL, SIGTERM, Redis emptied, a terminated Postgres backend, two
migrators at once) in the middle of real work and then checks exact numbers, not just "some orders".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import django_rq
import pytest
from django.db import connection
from rq.job import Job
from rq.registry import StartedJobRegistry

from audit.models import AuditEvent
from imports.jobs import enqueue
from imports.jobs.reconcile import reconcile
from imports.models import FileStatus, ImportFile, Order
from imports.services.uploads import review_approve, upload_batch_create
from staging.models import StagedRow
from tests.conftest import csv_upload
from tests.e2e.conftest import ROOT, Stack, database_url_for_tests

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HEADER = "Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref\n"
BATCH = 500
# Rows per committed batch: the set-based fast path (imports/pipeline/fastpath.py) uses AIRLOCK_FAST_BATCH_SIZE.
FAST_BATCH = 5_000
COMMIT_BATCH = max(BATCH, FAST_BATCH)
# Approved explicitly, so these tests do not depend on the suggestion's guesses.
MAPPING = {
    "version": 1,
    "reader": {"section": None, "header_line": None},
    "filters": [],
    "fields": {
        "executed_at": {
            "columns": ["Trade Date"],
            "converter": "datetime",
            "options": {"formats": ["%Y-%m-%d %H:%M:%S"], "tz": "UTC"},
        },
        "symbol": {"columns": ["Ticker"], "converter": "text", "options": {"upper": True}},
        "side": {"columns": ["Buy or Sell"], "converter": "side", "options": {}},
        "quantity": {"columns": ["Shares"], "converter": "decimal", "options": {}},
        "price": {"columns": ["Fill Price"], "converter": "decimal", "options": {}},
        "commission": {"columns": ["Fee"], "converter": "decimal", "options": {"abs": True}},
        "currency": {"columns": ["Ccy"], "converter": "currency", "options": {}},
        "broker_trade_id": {"columns": ["Ref"], "converter": "text", "options": {}},
    },
}
WORKER_APP = "airlock-fault-worker"


# Small batches (many commits to interrupt), quick retries, and no upload rate limit in the way.
FAULT_ENV = {
    "AIRLOCK_BATCH_SIZE": str(BATCH),
    "AIRLOCK_FAST_BATCH_SIZE": str(FAST_BATCH),
    "AIRLOCK_JOB_RETRY_INTERVALS": "1,2",
    "AIRLOCK_UPLOADS_PER_HOUR": "100000",
}


@pytest.fixture
def stack_env() -> dict[str, str]:
    return dict(FAULT_ENV)


@pytest.fixture(autouse=True)
def _quick_retries(settings: Any) -> None:
    """Jobs enqueued by this process (approvals, uploads) get the same quick retries as the workers."""
    settings.AIRLOCK = {**settings.AIRLOCK, "JOB_RETRY_INTERVALS": [1, 2]}


def trades_csv(count: int, *, start: int = 0, ids: bool = True, twins_every: int = 0) -> bytes:
    """`count` valid fills; `twins_every` N makes every Nth row an exact copy of the row before. Without
    trade ids (`ids=False`) that is a real second fill that only the occurrence counter tells apart."""
    base = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
    lines = [HEADER]
    previous = ""
    for i in range(start, start + count):
        if twins_every and i % twins_every == 0 and previous:
            lines.append(previous)
            continue
        when = (base + timedelta(seconds=7 * i)).strftime("%Y-%m-%d %H:%M:%S")
        side = "Buy" if i % 2 else "Sell"
        ref = f"T-{i}" if ids else ""
        previous = f"{when},SYM{i % 97},{side},{1 + i % 50},{100 + (i % 1000) / 100:.2f},1.00,USD,{ref}\n"
        lines.append(previous)
    return "".join(lines).encode()


def upload(owner: Any, data: bytes, name: str = "trades.csv", dedupe: bool = True) -> ImportFile:
    _, files = upload_batch_create(owner=owner, files=[csv_upload(name, data)], dedupe=dedupe)
    return files[0]


def status_of(file_id: int) -> str:
    return ImportFile.objects.values_list("status", flat=True).get(pk=file_id)


def wait_status(stack: Stack, file_id: int, status: str, timeout: float = 120) -> ImportFile:
    def describe() -> str:
        file = ImportFile.objects.get(pk=file_id)
        queues = {name: len(django_rq.get_queue(name)) for name in ("high", "default", "bulk")}
        return (
            f"file {file_id} to be {status} (it is {file.status}, {orders_of(file_id)} orders, "
            f"error {file.error!r}, queue lengths {queues})"
        )

    try:
        stack.wait_for(lambda: status_of(file_id) == status, timeout=timeout, what=f"file {file_id} to be {status}")
    except AssertionError as exc:
        raise AssertionError(f"{describe()}\n{exc}") from None
    return ImportFile.objects.get(pk=file_id)


def orders_of(file_id: int) -> int:
    return Order.objects.filter(source_file_id=file_id).count()


def staged_and_approved(stack: Stack, user: Any, reviewer: Any, data: bytes) -> ImportFile:
    """Upload a file of an unknown format, wait for it to be staged, approve its format (a job starts)."""
    file = upload(user, data)
    file = wait_status(stack, file.pk, FileStatus.PENDING_APPROVAL, timeout=180)
    review_approve(format_id=file.format_id, actor=reviewer, mapping=MAPPING)
    return file


def wait_mid_migration(stack: Stack, file_id: int, total: int) -> int:
    """Until a third but not all of the file's orders exist (batches behind and ahead); returns how many."""
    return stack.wait_for(
        lambda: (n := orders_of(file_id)) >= total // 3 and n < total and n,
        timeout=120,
        interval=0.02,
        what="the migration to be part-way",
    )


def signal_worker(proc: subprocess.Popen, sig: int) -> None:
    """Signal the worker and its work horse: RQ puts the horse in a process group of its own, so a kill of
    the worker's group alone would leave the horse running (a service manager's cgroup kill reaches both)."""
    import psutil

    children = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, sig)
    for child in children:
        try:
            os.kill(child.pid, sig)
        except ProcessLookupError:
            pass


def own_worker(stack: Stack) -> subprocess.Popen:
    """Replace the fixture's worker with one whose Postgres sessions carry an application_name."""
    stack.stop(stack.processes[1])
    return stack.start_worker(env={"PGAPPNAME": WORKER_APP})


def reconcile_until_enqueued(stack: Stack, file_id: int) -> dict[str, list[int]]:
    """Run the reconciler (grace 0) until it re-enqueues the file (a dying backend may hold its lock)."""
    from imports.jobs.reconcile import _job_alive
    from imports.pipeline.locks import file_lock_held_elsewhere

    def why() -> str:
        file = ImportFile.objects.get(pk=file_id)
        format_alive = _job_alive(enqueue.format_job_id(file.format_id))
        return (
            f"the reconciler to re-enqueue file {file_id} (status {file.status}, file job alive "
            f"{_job_alive(enqueue.file_job_id(file_id))}, format job alive {format_alive}, "
            f"lock held elsewhere {file_lock_held_elsewhere(file_id)}; reconciler calls {calls[:5]})"
        )

    calls: list[dict[str, list[int]]] = []

    def once() -> dict[str, list[int]] | None:
        calls.append(reconcile(grace_seconds=0))
        return calls[-1] if file_id in calls[-1]["files"] else None

    try:
        return stack.wait_for(once, timeout=30, interval=0.5, what=f"the reconciler to re-enqueue file {file_id}")
    except AssertionError as exc:
        raise AssertionError(f"{why()}\n{exc}") from None


def kill_worker_mid_way(stack: Stack, file_id: int, total: int) -> int:
    """SIGKILL the worker (and its horse) once part of the file's orders exist; returns how many exist."""
    worker = stack.processes[1]
    before_kill = wait_mid_migration(stack, file_id, total)
    signal_worker(worker, signal.SIGKILL)
    worker.wait(10)
    after_kill = orders_of(file_id)
    assert 0 < before_kill <= after_kill < total, (before_kill, after_kill)
    return after_kill


def assert_exactly_imported(file_id: int, total: int) -> None:
    file = ImportFile.objects.get(pk=file_id)
    assert file.status == FileStatus.IMPORTED, (file.status, file.error)
    assert orders_of(file_id) == total
    assert Order.objects.filter(source_file_id=file_id).values("source_line").distinct().count() == total
    assert (file.rows_total, file.rows_imported, file.rows_invalid, file.rows_duplicate) == (
        total,
        total,
        0,
        0,
    )
    # A migrated staged row is deleted with the batch that wrote its order, and a file of an approved format
    # read straight into orders stages only the rows that did not become one: none is left here either way.
    assert not StagedRow.objects.filter(file_id=file_id).exists()
    assert file.rows_staged == 0 and file.progress == 100.0


def test_a_worker_killed_with_sigkill_mid_migration_is_resumed_with_exact_counts(
    stack: Stack, user: Any, reviewer: Any
) -> None:
    total = 50_000
    file = staged_and_approved(stack, user, reviewer, trades_csv(total, ids=False, twins_every=10))
    after_kill = kill_worker_mid_way(stack, file.pk, total)
    assert status_of(file.pk) == FileStatus.MIGRATING
    # RQ still believes the killed horse runs the job: the reconciler's dead-worker check sees through it.
    job = Job.fetch(enqueue.format_job_id(file.format_id), connection=django_rq.get_connection("default"))
    assert job.get_status() == "started"

    stack.start_worker()
    result = reconcile_until_enqueued(stack, file.pk)
    wait_status(stack, file.pk, FileStatus.IMPORTED, timeout=180)
    assert_exactly_imported(file.pk, total)
    print(
        f"\nSIGKILL: {after_kill} of {total} orders when killed; reconciler re-enqueued {result}; "
        f"final {orders_of(file.pk)} orders, rows_imported={ImportFile.objects.get(pk=file.pk).rows_imported}"
    )


def test_a_worker_killed_mid_direct_import_of_an_approved_format_resumes_after_the_last_chunk(
    stack: Stack, user: Any, reviewer: Any
) -> None:
    first = staged_and_approved(stack, user, reviewer, trades_csv(20))
    wait_status(stack, first.pk, FileStatus.IMPORTED)
    total = 50_000
    # No trade ids and a repeated fill every 10 rows: the occurrence counters must survive the kill too.
    file = upload(user, trades_csv(total, start=1000, ids=False, twins_every=10), name="direct.csv")
    after_kill = kill_worker_mid_way(stack, file.pk, total)
    assert status_of(file.pk) == FileStatus.PROCESSING
    through = ImportFile.objects.get(pk=file.pk).layout["direct"]["through_line"]
    assert through > 1 and orders_of(file.pk) == ImportFile.objects.get(pk=file.pk).rows_imported

    stack.start_worker()
    result = reconcile_until_enqueued(stack, file.pk)
    wait_status(stack, file.pk, FileStatus.IMPORTED, timeout=180)
    assert_exactly_imported(file.pk, total)
    print(
        f"\nSIGKILL (direct): {after_kill} of {total} orders when killed (read through line {through}); "
        f"reconciler re-enqueued {result}; final {orders_of(file.pk)} orders"
    )


def test_a_file_whose_worker_was_killed_resumes_when_rq_reports_the_job_abandoned(
    stack: Stack, user: Any, reviewer: Any
) -> None:
    """No reconciler here: RQ's own registry clean-up (run by the replacement worker as it starts, once the dead
    worker's lease ran out) reports the job abandoned; that must resume the file, not fail it (issue 14, 8)."""
    first = staged_and_approved(stack, user, reviewer, trades_csv(20))
    wait_status(stack, first.pk, FileStatus.IMPORTED)
    total = 100_000
    file = upload(user, trades_csv(total, start=1000, ids=False, twins_every=10), name="hundred-k.csv")
    after_kill = kill_worker_mid_way(stack, file.pk, total)
    assert status_of(file.pk) == FileStatus.PROCESSING

    connection_ = django_rq.get_connection("default")
    job = Job.fetch(enqueue.file_job_id(file.pk), connection=connection_)
    registry = StartedJobRegistry(job.origin, connection=connection_)
    [(_, lease_ends)] = connection_.zrange(registry.key, 0, -1, withscores=True)
    # The dead worker's lease (RQ: last heartbeat + job monitoring interval + 60 s) runs out: from then on any
    # worker's registry clean-up reports the job abandoned. Start the replacement only after that.
    stack.wait_for(lambda: time.time() > lease_ends + 1, timeout=150, interval=1, what="the dead worker's lease")
    assert status_of(file.pk) == FileStatus.PROCESSING, "nothing happens to the file while no worker runs"
    stack.start_worker()
    wait_status(stack, file.pk, FileStatus.IMPORTED, timeout=240)
    assert_exactly_imported(file.pk, total)
    assert ImportFile.objects.get(pk=file.pk).attempts == 2
    assert f"abandoned by a dead worker; files [{file.pk}] resume" in stack.logs[-1].read_text()
    print(f"\nabandoned job: {after_kill} of {total} orders when killed; resumed to {orders_of(file.pk)}")


@pytest.mark.parametrize("target", ["worker-pid", "worker-and-horse"])
def test_sigterm_finishes_the_current_batch_and_stops_cleanly(
    stack: Stack, user: Any, reviewer: Any, target: str
) -> None:
    total = 50_000
    file = staged_and_approved(stack, user, reviewer, trades_csv(total))
    worker = stack.processes[1]
    at_signal = wait_mid_migration(stack, file.pk, total)
    if target == "worker-pid":
        os.kill(worker.pid, signal.SIGTERM)  # `kill <pid>`: the worker passes it on to its horse
    else:
        signal_worker(worker, signal.SIGTERM)  # worker and horse, as a service manager's stop does
    try:
        code = worker.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker did not stop within 60 s of SIGTERM")
    stopped_at = orders_of(file.pk)
    paused = ImportFile.objects.get(pk=file.pk)
    assert code == 0, f"warm shutdown should exit 0, got {code}"
    assert 0 < stopped_at < total
    assert stopped_at % COMMIT_BATCH == 0, f"{stopped_at} orders: a batch was cut in half"
    assert stopped_at - at_signal <= COMMIT_BATCH, "only the batch in flight is finished, then it stops"
    assert paused.rows_imported == stopped_at, "counters and orders commit together"
    assert paused.status == FileStatus.MIGRATING
    assert AuditEvent.objects.filter(action="migration.paused", object_id=str(file.pk)).exists()
    log = stack.logs[-1].read_text()
    assert "Warm shut down requested" in log or "warm shut down" in log.lower(), log[-2000:]

    stack.start_worker()
    reconcile_until_enqueued(stack, file.pk)
    wait_status(stack, file.pk, FileStatus.IMPORTED, timeout=180)
    assert_exactly_imported(file.pk, total)
    print(
        f"\nSIGTERM ({target}): {at_signal} orders at the signal, worker exited {code} at {stopped_at}; "
        f"final {orders_of(file.pk)}"
    )


def test_everything_completes_after_redis_loses_all_its_data(stack: Stack, user: Any, reviewer: Any) -> None:
    first = staged_and_approved(stack, user, reviewer, trades_csv(20))
    wait_status(stack, first.pk, FileStatus.IMPORTED)
    # The format is approved now: these import straight away, one running, the others queued behind it.
    big_total = 50_000
    big = upload(user, trades_csv(big_total, start=1000), name="big.csv")
    small = [upload(user, trades_csv(300, start=100_000 * (k + 1)), name=f"small-{k}.csv") for k in range(3)]
    wait_mid_migration(stack, big.pk, big_total)
    queued = [f.pk for f in small if status_of(f.pk) == FileStatus.UPLOADED]
    assert queued, "the small files should still be waiting in the queue"
    # FLUSHDB of the test's own Redis database: FLUSHALL would also wipe the other databases of a Redis
    # shared with other test sessions. For this product it is the same fault (one database holds it all).
    django_rq.get_connection("default").flushdb()
    assert len(django_rq.get_queue("default")) == 0

    cron = stack.start_cron(env={"AIRLOCK_RECONCILE_SECONDS": "2", "AIRLOCK_RECONCILE_GRACE_SECONDS": "3"})
    for f in [big, *small]:
        wait_status(stack, f.pk, FileStatus.IMPORTED, timeout=240)
    assert cron.poll() is None, "the cron scheduler should still run"
    assert_exactly_imported(big.pk, big_total)
    for f in small:
        assert_exactly_imported(f.pk, 300)
    print(
        f"\nFLUSHDB: {len(queued)} queued files lost from Redis and a running migration; all completed, "
        f"big={orders_of(big.pk)}, small={[orders_of(f.pk) for f in small]}"
    )


def _terminate_worker_backends(match: str = "") -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s "
            "AND datname = current_database() AND xact_start IS NOT NULL AND query ILIKE %s",
            [WORKER_APP, f"%{match}%"],
        )
        return cursor.fetchone()[0]


def test_a_terminated_database_connection_mid_batch_is_retried_with_exact_counts(
    stack: Stack, user: Any, reviewer: Any
) -> None:
    own_worker(stack)
    total = 30_000
    file = staged_and_approved(stack, user, reviewer, trades_csv(total, ids=False, twins_every=7))
    wait_mid_migration(stack, file.pk, total)
    killed = stack.wait_for(
        _terminate_worker_backends, timeout=30, interval=0.01, what="a worker backend inside a transaction"
    )
    job = Job.fetch(enqueue.format_job_id(file.format_id), connection=django_rq.get_connection("default"))
    stack.wait_for(
        lambda: job.get_status(refresh=True) in ("scheduled", "queued") or status_of(file.pk) == FileStatus.IMPORTED,
        timeout=30,
        what="RQ to schedule a retry",
    )
    wait_status(stack, file.pk, FileStatus.IMPORTED, timeout=180)
    assert_exactly_imported(file.pk, total)
    job.refresh()
    assert job.retries_left == 1, f"one of two retries should have been used, {job.retries_left} left"
    print(
        f"\npg_terminate_backend: {killed} backend(s) killed mid-batch; retried (retries_left="
        f"{job.retries_left}); final {orders_of(file.pk)} of {total}"
    )


@pytest.fixture
def backend_killer() -> Iterator[threading.Event]:
    """Keeps terminating the worker's migration transactions until the event is set."""
    stop = threading.Event()
    kills: list[int] = []

    def loop() -> None:
        from django.db import connections

        try:
            while not stop.is_set():
                # Only the batch transactions (claim, insert), never the failure callback's own writes.
                kills.append(_terminate_worker_backends("SKIP LOCKED"))
                kills.append(_terminate_worker_backends("INSERT INTO imports_order"))
                time.sleep(0.01)
        finally:
            connections.close_all()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    stop.kills = kills  # type: ignore[attr-defined]
    yield stop
    stop.set()
    thread.join(10)


def test_after_the_last_retry_the_file_fails_with_a_reason_and_an_admin_retry_finishes_it(
    stack: Stack, user: Any, reviewer: Any, backend_killer: threading.Event, client: Any
) -> None:
    own_worker(stack)
    total = 20_000
    file = upload(user, trades_csv(total))
    file = wait_status(stack, file.pk, FileStatus.PENDING_APPROVAL, timeout=120)
    review_approve(format_id=file.format_id, actor=reviewer, mapping=MAPPING)
    failed = wait_status(stack, file.pk, FileStatus.FAILED, timeout=90)
    backend_killer.set()
    assert "temporary fault" in failed.error and "3 attempts" in failed.error, failed.error
    queue = django_rq.get_queue("high")
    # RQ runs the failure callback (which fails the file and refreshes its batch) before it records the job
    # in its failed registry: give it that moment.
    stack.wait_for(
        lambda: enqueue.format_job_id(file.format_id) in queue.failed_job_registry.get_job_ids(),
        timeout=10,
        what="RQ to record the job in its failed registry",
    )
    assert enqueue.format_job_id(file.format_id) in queue.failed_job_registry.get_job_ids()
    partial = orders_of(file.pk)
    assert partial == ImportFile.objects.get(pk=file.pk).rows_imported < total

    # The admin's "Retry" action (Django admin, real request) resets the file and enqueues it.
    from django.contrib.auth.models import Permission

    reviewer.user_permissions.add(Permission.objects.get(codename="rollback_importfile"))
    client.force_login(reviewer)
    response = client.post("/admin/imports/importfile/", {"action": "retry_selected", "_selected_action": [file.pk]})
    assert response.status_code == 302, response.content[:500]
    wait_status(stack, file.pk, FileStatus.IMPORTED, timeout=120)
    assert_exactly_imported(file.pk, total)
    assert AuditEvent.objects.filter(action="file.retried", object_id=str(file.pk)).exists()
    print(
        f"\nretries exhausted: FAILED with {partial} of {total} orders ({failed.error[:90]}...); "
        f"after admin retry {orders_of(file.pk)}"
    )


def _migrate_in_subprocess(format_id: int, stack: Stack) -> subprocess.Popen:
    code = (
        "import django; django.setup(); from imports.pipeline.migrate import format_migrate; "
        f"print(format_migrate(format_id={format_id}))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**stack.env, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )


def test_two_concurrent_migrations_of_one_format_never_count_a_row_twice(
    stack: Stack, user: Any, reviewer: Any
) -> None:
    total_a, total_b = 12_000, 8_000
    a = wait_status(stack, upload(user, trades_csv(total_a, ids=False, twins_every=5)).pk, FileStatus.PENDING_APPROVAL)
    b = wait_status(stack, upload(user, trades_csv(total_b, start=50_000)).pk, FileStatus.PENDING_APPROVAL)
    assert a.format_id == b.format_id
    stack.stop(stack.processes[1])  # staging done; the two migrators below are the only ones
    review_approve(format_id=a.format_id, actor=reviewer, mapping=MAPPING)
    assert stack.env["DATABASE_URL"] == database_url_for_tests()
    first, second = _migrate_in_subprocess(a.format_id, stack), _migrate_in_subprocess(a.format_id, stack)
    outputs = [p.communicate(timeout=180)[0].decode() for p in (first, second)]
    assert all(p.returncode == 0 for p in (first, second)), outputs
    for f, total in ((a, total_a), (b, total_b)):
        assert_exactly_imported(f.pk, total)
        # Settled once: the migrator that found the file finished did not reopen or announce it again.
        assert AuditEvent.objects.filter(action="migration.finished", object_id=str(f.pk)).count() == 1
    results = [out.strip().splitlines()[-1] for out in outputs]
    print(
        f"\ntwo concurrent format_migrate: results {results}; "
        f"orders a={orders_of(a.pk)} b={orders_of(b.pk)}, "
        f"rows_imported a={ImportFile.objects.get(pk=a.pk).rows_imported} "
        f"b={ImportFile.objects.get(pk=b.pk).rows_imported}"
    )


def test_a_worker_does_not_leak_database_connections_over_many_jobs(stack: Stack, user: Any, reviewer: Any) -> None:
    own_worker(stack)
    first = staged_and_approved(stack, user, reviewer, trades_csv(5))
    wait_status(stack, first.pk, FileStatus.IMPORTED)

    def worker_backends() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
                [WORKER_APP],
            )
            return cursor.fetchone()[0]

    samples: list[int] = []
    for round_ in range(3):
        files = [
            upload(user, trades_csv(20, start=10_000 * (round_ * 10 + k + 1)), name=f"r{round_}-{k}.csv")
            for k in range(10)
        ]
        for f in files:
            wait_status(stack, f.pk, FileStatus.IMPORTED)
        time.sleep(0.5)
        samples.append(worker_backends())
    # Small files run in the worker process, which keeps its one connection from job to job (config/worker.py);
    # a horse's connections end with it. Not one more per job: the same count after 10, 20 and 30 jobs.
    assert samples == [1, 1, 1], f"worker backends after each 10 jobs: {samples}"
    print(f"\nconnections: worker backends after 10/20/30 jobs: {samples}")
