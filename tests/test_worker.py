"""The RQ worker class (config/worker.py) against the real test Redis: it rides out a Redis outage while a
job runs, registers again after Redis lost its data, and dead registrations are told from live ones."""

from __future__ import annotations

import gc
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import django_rq
import pytest
import redis
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job

from config.worker import (
    BEAT_SKIP_SECONDS,
    HEARTBEAT_STALE_SECONDS,
    REGISTER_AGAIN_SECONDS,
    WORKER_TTL,
    AirlockWorker,
    live_workers,
    worker_alive,
)
from imports.jobs.warmup import GC_THRESHOLDS

DEAD_REDIS = redis.Redis(unix_socket_path="/nonexistent/airlock-test/redis.sock", socket_connect_timeout=1)


def noop() -> None:
    """A job function."""


def running_job(connection: Any) -> tuple[Job, Execution]:
    job = Job.create(noop, connection=connection)
    job.started_at = datetime.now(UTC)
    return job, Execution(id="e1", job_id=job.id, connection=connection)


@pytest.fixture
def queue(redis_clean: Any) -> Queue:
    return django_rq.get_queue("default")


@pytest.mark.parametrize("worker_class", [AirlockWorker, Worker], ids=["airlock", "plain-rq"])
def test_a_busy_worker_rides_out_a_redis_outage_at_its_heartbeat(queue: Queue, worker_class: type[Worker]) -> None:
    """RQ's own worker dies (exit 1) when a heartbeat meets a dead Redis; ours logs it and goes on."""
    worker = worker_class([queue], connection=queue.connection)
    job, execution = running_job(queue.connection)
    worker.connection = DEAD_REDIS
    if worker_class is Worker:
        with pytest.raises(redis.exceptions.ConnectionError):
            worker.maintain_heartbeats(job, execution)
    else:
        worker.maintain_heartbeats(job, execution)  # no exception: the work horse goes on


def test_a_worker_registers_again_at_its_next_heartbeat_after_redis_lost_its_data(queue: Queue) -> None:
    worker = AirlockWorker([queue], connection=queue.connection)
    worker.register_birth()
    assert [w.name for w in Worker.all(connection=queue.connection)] == [worker.name]
    queue.connection.flushdb()
    assert Worker.all(connection=queue.connection) == []

    worker.heartbeat()

    found = Worker.all(connection=queue.connection)
    assert [w.name for w in found] == [worker.name] and found[0].pid == os.getpid()
    assert Worker.all(queue=queue) != [], "registered per queue too"
    assert worker.worker_ttl == WORKER_TTL and 0 < queue.connection.ttl(worker.key) <= WORKER_TTL + 60


def test_a_busy_worker_writes_its_registration_again_at_most_once_per_interval(queue: Queue) -> None:
    """A small file's job beats several times in a few milliseconds: only the first beat of an interval rewrites
    the registration; a registration lost meanwhile is back at the first beat after the interval."""
    worker = AirlockWorker([queue], connection=queue.connection)
    worker.register_birth()
    worker.heartbeat()
    queue.connection.flushdb()

    worker.heartbeat()  # within the interval: the beat only
    assert Worker.all(connection=queue.connection) == []

    worker._registered_again_at -= REGISTER_AGAIN_SECONDS  # the interval has passed
    worker._beat_expires -= REGISTER_AGAIN_SECONDS
    worker.heartbeat()
    assert [w.name for w in Worker.all(connection=queue.connection)] == [worker.name]


def test_beats_within_a_second_of_each_other_are_sent_once_and_a_longer_expiry_always_goes_out(queue: Queue) -> None:
    worker = AirlockWorker([queue], connection=queue.connection)
    worker.register_birth()
    worker.heartbeat()
    first = queue.connection.hget(worker.key, "last_heartbeat")

    worker.heartbeat()  # the key's expiry would move by milliseconds: not sent
    assert queue.connection.hget(worker.key, "last_heartbeat") == first

    worker.heartbeat(timeout=3600)  # a longer expiry (a long job's) is always sent
    assert queue.connection.ttl(worker.key) > WORKER_TTL + 60

    worker._beat_expires -= 3600 + BEAT_SKIP_SECONDS  # time has passed
    worker.heartbeat()
    assert queue.connection.hget(worker.key, "last_heartbeat") != first
    assert 0 < queue.connection.ttl(worker.key) <= WORKER_TTL + 60


def test_a_registration_whose_process_is_gone_or_whose_heartbeat_is_stale_is_not_alive(queue: Queue) -> None:
    worker = AirlockWorker([queue], connection=queue.connection)
    worker.register_birth()
    [registered] = Worker.all(connection=queue.connection)
    assert worker_alive(registered) and live_workers(queue.connection) == [registered]

    registered.pid = 2**22 + 12345  # above Linux's pid_max: no such process on this machine
    assert not worker_alive(registered)

    stale = datetime.now(UTC) - timedelta(seconds=HEARTBEAT_STALE_SECONDS + 5)
    queue.connection.hset(worker.key, "last_heartbeat", stale.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    assert live_workers(queue.connection) == []


@pytest.mark.django_db
def test_a_small_file_job_runs_in_the_worker_process_and_a_big_one_in_a_work_horse(
    queue: Queue, user: Any, settings: Any, monkeypatch: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The per-file saving of config/worker.py: no fork (and no new database connection) for a small file."""
    from django.db import connection

    import config.worker
    from imports.models import FileStatus, ImportFile
    from imports.services.uploads import upload_batch_create
    from tests.conftest import csv_upload

    settings.AIRLOCK = {**settings.AIRLOCK, "INLINE_JOB_BYTES": 200}
    header = "When,Ticker,Action,Qty,Px,Ccy\n"
    small = header + "2024-01-02 09:30:00,AAPL,Buy,10,185.2,USD\n"
    big = small + "2024-01-03 10:00:00,MSFT,Sell,5,410,USD\n" * 5
    assert len(small.encode()) <= 200 < len(big.encode())
    with django_capture_on_commit_callbacks(execute=True):
        _, files = upload_batch_create(owner=user, files=[csv_upload("small.csv", small), csv_upload("big.csv", big)])
    horses: list[int] = []
    stopped_inside: list[bool] = []

    closed: list[int] = []  # connections.close_all() calls, by the file whose job made them

    def forked(self: Worker, job: Job, queue: Queue) -> None:
        # Stands in for RQ's fork + monitor (a horse would not see this test's transaction): records and runs it.
        horses.append(job.args[0])
        self.perform_job(job, queue, self.prepare_execution(job))

    def file_process(*, file_id: int) -> str:
        if file_id == files[0].pk:
            worker.handle_warm_shutdown_request()  # a SIGTERM while the job runs in the worker process...
            stopped_inside.append(config.worker.stop_requested())  # ...reaches the job as a stop request
        return original(file_id=file_id)

    import imports.jobs.tasks as tasks

    original = tasks.file_process
    monkeypatch.setattr(Worker, "execute_job", forked)
    # The stop request below is a module flag of the worker: put back at teardown, or every later migration in
    # this process would stop after its first batch.
    monkeypatch.setattr(config.worker, "_stop_requested", False)
    # Closing would end this test's transaction; a horse closes its connections as its last act.
    monkeypatch.setattr(config.worker.connections, "close_all", lambda: closed.append(horses[-1] if horses else 0))
    monkeypatch.setattr(tasks, "file_process", file_process)
    queues = [django_rq.get_queue(name) for name in ("high", "default", "bulk")]
    worker = AirlockWorker(queues, connection=queue.connection)
    worker.work(burst=True)

    assert horses == [files[1].pk]  # only the big file got a work horse
    assert stopped_inside == [True]
    assert closed == [files[1].pk]  # the horse closed its connections; the worker process keeps its own
    assert connection.is_usable()
    assert set(ImportFile.objects.filter(pk__in=[f.pk for f in files]).values_list("status", flat=True)) <= {
        FileStatus.PENDING_APPROVAL,
        FileStatus.MIGRATING,
    }
    assert sum(len(q.failed_job_registry) for q in queues) == 0


def test_a_worker_freezes_what_it_loaded_and_collects_garbage_less_often(queue: Queue) -> None:
    thresholds = gc.get_threshold()
    try:
        AirlockWorker([queue], connection=queue.connection)
        # The modules the jobs need are loaded, and with them frozen: the collector no longer scans them.
        assert "imports.pipeline.fastpath" in sys.modules and gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_last_job_left_unusable_is_closed_and_the_next_job_gets_a_horse(
    queue: Queue, monkeypatch: Any
) -> None:
    """No SELECT 1 before each job: sizing the job is the connection's test. A connection that died between jobs
    (a server restart) fails it; it is closed, the job goes to a work horse, and the next query connects afresh."""
    from django.db import connection

    worker = AirlockWorker([queue], connection=queue.connection)
    job = Job.create("imports.jobs.tasks.file_process_job", args=(1,), connection=queue.connection)
    horses: list[str] = []
    monkeypatch.setattr(Worker, "execute_job", lambda self, job, queue: horses.append(job.id))
    connection.ensure_connection()
    connection.connection.close()  # behind Django's back, as a server restart would

    worker.execute_job(job, queue)

    assert horses == [job.id]
    assert connection.connection is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
