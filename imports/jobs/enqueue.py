"""Enqueueing the RQ jobs (imports/jobs/tasks.py) on commit, by their dotted paths.

The tasks are named, not imported: the tasks call the services, and the services enqueue, so this module
imports neither (no import cycle).
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

import django_rq
import redis.exceptions
from django.conf import settings
from django.db import transaction
from rq import Callback, Retry

log = logging.getLogger(__name__)
TASKS = "imports.jobs.tasks"
# Jobs queued by an earlier version name their function here ('imports.jobs.enqueue.file_process_job');
# RQ resolves such a name with getattr on this module, which finds it in the tasks module.
_MOVED_TASKS = frozenset({"file_process_job", "format_migrate_job", "reconcile_job", "escalate_job", "cleanup_job"})


def __getattr__(name: str) -> Any:
    if name in _MOVED_TASKS:
        return getattr(importlib.import_module(TASKS), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# This process's queues, by name. django_rq.get_queue builds a new Redis client (its own connection pool) on every
# call: a connection made and a package version looked up for each job, ~3 ms of every file of a 300-file upload.
# Kept per process id (a forked child makes its own; redis-py's pools also reconnect after a fork or an outage).
_QUEUES: dict[tuple[int, str], Any] = {}


def _queue(name: str) -> Any:
    key = (os.getpid(), name)
    found = _QUEUES.get(key)
    if found is None:
        if any(pid != key[0] for pid, _ in _QUEUES):
            _QUEUES.clear()  # (the parent's, inherited by a fork)
        found = _QUEUES[key] = django_rq.get_queue(name)
    return found


def enqueue_now(queue: str, func: object, *args: object, job_id: str | None = None, retries: bool = True) -> None:
    """Enqueue with retries for transient faults (growing delays; not with `retries` False) and the failure callback
    that FAILS files. `func`: a task of imports/jobs/tasks.py, or its dotted path."""
    intervals = settings.AIRLOCK["JOB_RETRY_INTERVALS"] if retries else []
    _queue(queue).enqueue(
        func,
        *args,
        job_id=job_id,
        failure_ttl=7 * 24 * 3600,
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        on_failure=Callback("imports.jobs.failures.job_failed"),
    )


def _enqueue(queue: str, func: object, *args: object, job_id: str | None = None, retries: bool = True) -> None:
    transaction.on_commit(lambda: _enqueue_committed(queue, func, *args, job_id=job_id, retries=retries))


def _enqueue_committed(
    queue: str, func: object, *args: object, job_id: str | None = None, retries: bool = True
) -> None:
    """After the commit the work is saved in Postgres: a Redis outage now must not turn it into an error."""
    try:
        enqueue_now(queue, func, *args, job_id=job_id, retries=retries)
    except redis.exceptions.RedisError as exc:
        log.warning("could not enqueue %s (%s): saved, the reconciler enqueues it when Redis is back", job_id, exc)


def file_job_id(file_id: int) -> str:
    return f"file-{file_id}"


GROUP_JOB_PREFIX = "files-"


def files_job_id(file_ids: list[int]) -> str:
    """A job of several files names them all (the reconciler reads who is in which job from the id)."""
    return GROUP_JOB_PREFIX + "_".join(str(file_id) for file_id in file_ids)


def files_of_job_id(job_id: str) -> list[int]:
    """The files a group's job id names; [] for any other job."""
    if not job_id.startswith(GROUP_JOB_PREFIX):
        return []
    parts = job_id.removeprefix(GROUP_JOB_PREFIX).split("_")
    return [int(part) for part in parts] if all(part.isdigit() for part in parts) else []


def format_job_id(format_id: int) -> str:
    return f"format-{format_id}"


def enqueue_file_process(file_id: int, *, queue: str = "default") -> None:
    """Queue reading + staging of one file, after the upload's transaction commits."""
    _enqueue(queue, f"{TASKS}.file_process_job", file_id, job_id=file_job_id(file_id))


def enqueue_files_process(files: list[tuple[int, int, str]]) -> None:
    """Queue the new files of one upload, after its transaction commits: `files` is (id, size, queue) each.

    Small files of the same queue go together, up to FILE_JOB_GROUP of them and INLINE_JOB_BYTES in all, into one
    job (tasks.files_process_job) that processes them one after the other: a job's own cost in RQ (dequeue,
    registries, result, heartbeats, ~3.5 ms) is then paid once for the group instead of once for each ~50 ms file.
    The byte cap keeps a group short (a worker is never busy with it for long while others idle) and small enough
    to run in the worker's own process. Anything else gets its own job (all files do with INLINE_JOB_BYTES 0).
    """
    size_cap = settings.AIRLOCK.get("INLINE_JOB_BYTES", 0)
    count_cap = settings.AIRLOCK.get("FILE_JOB_GROUP", 1)
    groups: dict[str, list[int]] = {}
    group_bytes: dict[str, int] = {}
    for file_id, size, queue in files:
        if count_cap < 2 or not size_cap or size > size_cap:
            enqueue_file_process(file_id, queue=queue)
            continue
        group = groups.setdefault(queue, [])
        if len(group) >= count_cap or group_bytes.get(queue, 0) + size > size_cap:
            _enqueue_group(queue, group)
            group = groups[queue] = []
            group_bytes[queue] = 0
        group.append(file_id)
        group_bytes[queue] = group_bytes.get(queue, 0) + size
    for queue, group in groups.items():
        _enqueue_group(queue, group)


def _enqueue_group(queue: str, file_ids: list[int]) -> None:
    if len(file_ids) == 1:
        enqueue_file_process(file_ids[0], queue=queue)
    elif file_ids:
        # No retries: the job never fails a file itself; a file that raises gets a job of its own (with retries).
        ids = list(file_ids)
        _enqueue(queue, f"{TASKS}.files_process_job", ids, job_id=files_job_id(ids), retries=False)


def files_hand_over(file_ids: list[int], *, queue: str, reason: str) -> None:
    """Files of a group that go on in jobs of their own, now (Redis unreachable: they stay unfinished in Postgres
    and the reconciler enqueues them)."""
    if not file_ids:
        return
    log.warning("files %s go on in jobs of their own: %s", file_ids, reason)
    for file_id in file_ids:
        _enqueue_committed(queue, f"{TASKS}.file_process_job", file_id, job_id=file_job_id(file_id))


def enqueue_format_migrate(format_id: int) -> None:
    """Queue the migration of an approved format's staged rows."""
    _enqueue("high", f"{TASKS}.format_migrate_job", format_id, job_id=format_job_id(format_id))
