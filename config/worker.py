"""The RQ worker class (forked work horses never share the parent's database connection; a worker rides
out a Redis outage and re-registers after Redis lost its data) and how to tell a live worker from the
registration a dead one left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from datetime import UTC, datetime
from typing import Any

import psutil
import redis.exceptions
from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from rq import worker_registration
from rq.worker import Worker, WorkerStatus

log = logging.getLogger(__name__)

# RQ's default (420 s) means an idle worker heartbeats every 405 s: a dead one would look alive, and a
# worker whose registration Redis lost would stay invisible, for minutes. Ours heartbeat every 45 s idle
# (worker_ttl - 15) and every 30 s while working (RQ's job monitoring interval).
WORKER_TTL = 60
# A worker whose last heartbeat is older than this is dead (or cut off from Redis), whatever its key says.
HEARTBEAT_STALE_SECONDS = WORKER_TTL + 30
# A registration lost with Redis's data comes back at the first heartbeat this long after the last one restored.
REGISTER_AGAIN_SECONDS = 2.0
# A heartbeat that would extend the worker's expiry by less than this over the last beat's is not sent.
BEAT_SKIP_SECONDS = 1.0
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

_stop_requested = False


def stop_requested() -> bool:
    """True in a work horse once SIGTERM asked it to stop: long jobs end after their current batch."""
    return _stop_requested


def _request_stop(signum: int, frame: Any) -> None:
    global _stop_requested
    _stop_requested = True


# The jobs that may run inside the worker process (see AirlockWorker.execute_job): a file's, and a group of files'.
INLINE_TASK = "imports.jobs.tasks.file_process_job"
INLINE_GROUP_TASK = "imports.jobs.tasks.files_process_job"


def _job_file_ids(job: Any) -> list[int]:
    """The files a file's or a group's job names, from its arguments ([] for any other job)."""
    if len(job.args) != 1:
        return []
    arg = job.args[0]
    if job.func_name == INLINE_TASK and isinstance(arg, int):
        return [arg]
    if job.func_name == INLINE_GROUP_TASK and isinstance(arg, list) and arg and all(isinstance(x, int) for x in arg):
        return arg
    return []


def _runs_inline(job: Any) -> bool:
    """Whether a job may run in the worker process: a file's or a group's job whose stored uploads are small
    enough together."""
    limit = settings.AIRLOCK.get("INLINE_JOB_BYTES", 0)
    file_ids = _job_file_ids(job) if limit else []
    if not file_ids:
        return False
    files = apps.get_model("imports", "ImportFile")  # by name: config/ does not import the apps' modules
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:  # (plain SQL: the ORM's query costs more than the answer)
        cursor.execute(f"SELECT sum(size) FROM {files._meta.db_table} WHERE id = ANY(%s::bigint[])", [file_ids])
        row = cursor.fetchone()
    return row is not None and row[0] is not None and row[0] <= limit


class AirlockWorker(Worker):
    """Closes Django's connections before each fork and after each forked job (no shared or leaked sockets);
    runs a small file's job in its own process instead of a fork."""

    # An idle worker that lost Redis retries with growing pauses; RQ lets them reach 60 s, so a worker could
    # sit out a minute after Redis is back. 10 s: back at work soon, and one log line per 10 s meanwhile.
    max_connection_wait_time = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `manage.py rqworker` always passes --worker-ttl (default 420); a smaller explicit value is kept.
        self.worker_ttl = min(self.worker_ttl, WORKER_TTL)
        self._beat_expires = 0.0  # (monotonic) until when the last beat keeps the worker's key alive
        self._registered_again_at = -REGISTER_AGAIN_SECONDS  # (monotonic) the last rewrite of the registration
        from imports.jobs.warmup import warm_up

        warm_up()  # horses inherit the imported modules and URLconf instead of loading them per job

    def execute_job(self, job: Any, queue: Any) -> None:
        """A small file's job runs here, as RQ's SimpleWorker runs every job: the fork of this process and the
        horse's new database connection cost ~60 ms, a third of a 1,000-row file's time. The job's timeout
        still holds (RQ's death penalty is a SIGALRM in the process that runs it); a SIGTERM asks it to stop
        after its batch, as it asks a horse; the connection stays open for the next job. Anything bigger, or
        that cannot be sized (the database unreachable), gets a work horse: its memory goes with the horse."""
        global _stop_requested
        try:
            # (Its query is also the test of the connection the last job left: one it left unusable -- a server
            # restart, an error -- fails here, is closed, and the job goes to a horse, which connects afresh.)
            inline = _runs_inline(job)
        except Exception as exc:  # noqa: BLE001 - any doubt: the horse, as before
            log.info("job %s: not sized for the worker process (%s); forking", job.id, exc)
            connections.close_all()
            inline = False
        if not inline:
            super().execute_job(job, queue)
            return
        execution = self.prepare_execution(job)
        _stop_requested = False
        self._inline_job = True
        try:
            self.perform_job(job, queue, execution)
        finally:
            self._inline_job = False
        self.set_state(WorkerStatus.IDLE)

    def fork_work_horse(self, job: Any, queue: Any) -> None:
        # A forked child would inherit the parent's open socket; two processes on one Postgres
        # connection corrupt each other's protocol state.
        connections.close_all()
        super().fork_work_horse(job, queue)

    def setup_work_horse_signals(self) -> None:
        # RQ's horse dies on SIGTERM (SIG_DFL), and a service manager signals the whole process group:
        # instead, finish the batch in progress (its transaction commits), then return; the parent's
        # warm shutdown waits for that. The reconciler resumes the rest of the file later.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _request_stop)

    def handle_warm_shutdown_request(self) -> None:
        # The horse runs in its own process group (RQ calls setpgrp), so a `kill <worker pid>` never
        # reaches it: pass the request on, so it stops after its current batch instead of the whole job.
        # A job running in this process is asked the same way.
        global _stop_requested
        super().handle_warm_shutdown_request()
        if getattr(self, "_inline_job", False):
            _stop_requested = True
        if getattr(self, "horse_pid", 0):
            try:
                os.kill(self.horse_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass  # the horse has just finished

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # A beat keeps the worker's key alive until `expires` (RQ's default: worker_ttl + 60 s from now).
        expires = time.monotonic() + (timeout or self.worker_ttl + 60)
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            self._register_again(pipeline)
            self._beat_expires = max(expires, self._beat_expires)
            return
        # RQ beats on its own four times around every job (dequeue, set state, job end, loop): a small file's job
        # takes ~50 ms, so most of those would only move the key's expiry by a few milliseconds. A beat that would
        # not keep the key alive at least BEAT_SKIP_SECONDS longer than the last one already does is left out.
        if expires - self._beat_expires < BEAT_SKIP_SECONDS:
            return
        # RQ sends a beat's commands one by one: one round trip for all of them.
        with self.connection.pipeline(transaction=False) as beat:
            super().heartbeat(timeout, beat)
            self._register_again(beat)
            beat.execute()
        self._beat_expires = expires

    def _register_again(self, pipeline: Any) -> None:
        # After Redis lost its data (FLUSHALL, a restart without persistence) the worker's registration is
        # gone and RQ's heartbeat only recreates a bare hash outside the workers set: nothing would list
        # this worker again. Registering is idempotent (SADD, the same fields), so do it with a beat -- at most
        # once per REGISTER_AGAIN_SECONDS: a small file's job beats five times in ~50 ms, and writing the whole
        # registration each time was a millisecond of every such job.
        if self.birth_date is None:
            return  # not registered yet (register_birth comes first and does all this)
        now = time.monotonic()
        if now - self._registered_again_at < REGISTER_AGAIN_SECONDS:
            return
        self._registered_again_at = now
        pipeline.hset(self.key, mapping=self.serialize())
        worker_registration.register(self, pipeline)

    def maintain_heartbeats(self, job: Any, execution: Any) -> None:
        # While a job runs, RQ lets a Redis error from a heartbeat end the worker (exit 1), orphaning its
        # work horse, which goes on writing to Postgres. Keep watching the horse instead and beat again at
        # the next interval: an outage of a minute costs nothing (Postgres holds the truth).
        try:
            super().maintain_heartbeats(job, execution)
        except REDIS_DOWN as exc:
            log.warning("worker %s: Redis unreachable during job %s (%s); the job goes on", self.name, job.id, exc)

    def perform_job(self, job: Any, queue: Any, execution: Any = None, **kwargs: Any) -> bool:
        try:
            return super().perform_job(job, queue, execution, **kwargs)
        finally:
            if not getattr(self, "_inline_job", False):
                connections.close_all()  # a horse's last act; the worker process keeps its connection


def worker_alive(worker: Worker) -> bool:
    """Is a registered worker still there? A killed one leaves its registration behind for minutes."""
    if worker.hostname == socket.gethostname() and worker.pid:
        # Same machine: the process table answers at once (a SIGKILLed worker has no process any more).
        if not psutil.pid_exists(worker.pid):
            return False
    heartbeat = worker.last_heartbeat
    if heartbeat is None:
        return False
    if heartbeat.tzinfo is None:
        heartbeat = heartbeat.replace(tzinfo=UTC)
    return (datetime.now(UTC) - heartbeat).total_seconds() < HEARTBEAT_STALE_SECONDS


def live_workers(connection: Any) -> list[Worker]:
    """The registered workers that are alive (see worker_alive)."""
    return [worker for worker in Worker.all(connection=connection) if worker_alive(worker)]


def cpus_per_busy_worker(connection: Any) -> int:
    """This machine's CPUs shared among its live workers that are running a job (the caller's own included; at
    least 1 each): how many database sessions a job here can keep busy without taking another worker's CPU."""
    host = socket.gethostname()
    busy = sum(1 for w in live_workers(connection) if w.hostname == host and w.get_state() == WorkerStatus.BUSY)
    return max(1, (os.cpu_count() or 1) // max(1, busy))
