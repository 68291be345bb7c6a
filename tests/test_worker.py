"""The RQ worker class (config/worker.py) against the real test Redis: it rides out a Redis outage while a
job runs, registers again after Redis lost its data, and dead registrations are told from live ones."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import django_rq
import pytest
import redis
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job

from config.worker import HEARTBEAT_STALE_SECONDS, WORKER_TTL, AirlockWorker, live_workers, worker_alive

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
