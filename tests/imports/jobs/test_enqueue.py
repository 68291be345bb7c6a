"""imports/jobs/enqueue.py against the real test Redis: the jobs of a many-file upload go through one connection
of the process, and a forked child does not use its parent's."""

from __future__ import annotations

import os
from typing import Any

import django_rq
import pytest

from imports.jobs import enqueue


def _connections_received(connection: Any) -> int:
    return int(connection.info("stats")["total_connections_received"])


def test_many_jobs_are_enqueued_through_one_connection_of_the_process(redis_clean: Any) -> None:
    enqueue.enqueue_now("bulk", f"{enqueue.TASKS}.file_process_job", 1, job_id=enqueue.file_job_id(1))
    before = _connections_received(redis_clean)
    for file_id in range(2, 52):
        enqueue.enqueue_now("bulk", f"{enqueue.TASKS}.file_process_job", file_id, job_id=enqueue.file_job_id(file_id))
    assert _connections_received(redis_clean) - before <= 1  # (the INFO of this very check may open one)
    assert django_rq.get_queue("bulk").count == 51


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_a_forked_child_makes_its_own_queue_connection(redis_clean: Any) -> None:
    parent = enqueue._queue("default")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a queue of its own, which works
        try:
            child = enqueue._queue("default")
            child.connection.ping()
            os.write(write, b"own" if child is not parent else b"shared")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 10) == b"own"
    assert enqueue._queue("default") is parent  # the parent keeps its own
