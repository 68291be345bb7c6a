"""RQ jobs: thin wrappers that take ids and call a service (enqueued by imports/jobs/enqueue.py); a group of small
files is spread over a few database sessions (files_process_job)."""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from typing import Any

from rq import get_current_job

from config.worker import REDIS_DOWN, cpus_per_busy_worker, stop_requested
from formats.approval import formats_escalate
from imports.jobs import enqueue
from imports.jobs.failures import connections_drop_broken
from imports.jobs.reconcile import reconcile
from imports.lifecycle import batches_refresh, file_batch_refresh
from imports.models import UNFINISHED_FILE_STATUSES, FileStatus, ImportFile
from imports.pipeline.migrate import format_migrate
from imports.pipeline.process import file_process
from imports.pipeline.sessions import session_threads, sessions_for
from imports.services.retention import cleanup_staging
from imports.services.uploads import review_auto_approve

log = logging.getLogger(__name__)


def file_process_job(file_id: int) -> str:
    """Read, fingerprint, stage and (if approved) migrate one file."""
    status = file_process(file_id=file_id)
    if status == FileStatus.PENDING_APPROVAL and review_auto_approve(file_id=file_id):
        status = FileStatus.MIGRATING  # approved by policy: the format's migration is queued
    file_batch_refresh(file_id=file_id)
    return status


def files_process_job(file_ids: list[int]) -> dict[int, str]:
    """Several small files of one upload (imports/jobs/enqueue.py), each exactly as its own job would process it,
    GROUP_SESSIONS of them at once (a thread and a database session each: while one session waits for Postgres,
    the other's Python runs; one after the other inside an outer transaction, which other sessions could not see).
    The sessions are the process's session threads (imports/pipeline/sessions.py), kept open from one group to the
    next.

    The group never fails a file itself: a file that raises is handed, with the files not started, to jobs of their
    own (the retries and failure handling of any file's job); when the worker is asked to stop, so are the files not
    started and a file that stopped unfinished (after its batch). A file already running in another session ends as
    it would have. Returns each processed file's status, in the group's order."""
    job = get_current_job()
    queue = job.origin if job is not None else "default"
    group = _Group(file_ids)
    sessions = min(sessions_for("GROUP_SESSIONS"), len(file_ids))
    if sessions > 1 and job is not None:
        # No more sessions than this machine's CPUs per busy worker: two workers running groups on two CPUs take
        # a session each (`make bench`, 300 files of 1,000 rows: 16.1 s with two sessions each, 13.1 s with one),
        # while a worker alone takes two (17.0 s instead of 22.8 s).
        sessions = min(sessions, _cpus_per_busy_worker(job.connection))
    if sessions <= 1:
        group.work()
    else:
        with session_threads(sessions) as threads:
            runs = [thread.run(group.work) for thread in threads]
            try:
                futures.wait(runs)
            except BaseException as exc:  # in this thread: a signal's exception (a job timeout, an interrupt)
                group.stop(None, f"the group was interrupted ({exc!r})")
                futures.wait(runs)  # (each session ends the file it is on; none starts another)
                if not isinstance(exc, Exception):
                    raise
        for run in runs:
            run.result()  # (work() hands a failing file over itself: this raises only what escaped it)
    rest, reasons = group.left()
    if rest:
        enqueue.files_hand_over(rest, queue=queue, reason="; ".join(reasons))
    return group.statuses()


class _Group:
    """The files of a group job, taken in order one at a time by each session, and what became of them."""

    def __init__(self, file_ids: list[int]) -> None:
        self.file_ids = list(file_ids)
        self._next = 0  # the first file no session has taken
        self._done: dict[int, str] = {}
        self._left: set[int] = set()  # taken, but going on in a job of its own
        self._reasons: list[str] = []
        self._stopped = False
        self._lock = threading.Lock()

    def work(self) -> None:
        """Process files until none is left or the group stops (in the caller's session)."""
        while (file_id := self._take()) is not None:
            try:
                status = file_process_job(file_id)
            except Exception as exc:  # noqa: BLE001 - handed over, not swallowed: the file's own job meets it again
                log.warning("file %s of a group job raised (%s: %s)", file_id, type(exc).__name__, exc, exc_info=True)
                connections_drop_broken()
                self.stop(file_id, f"file {file_id} raised {exc!r}")
                return
            with self._lock:
                self._done[file_id] = status
            if stop_requested():  # (SIGTERM) the file itself stopped after its batch, if it had more to do
                self.stop(file_id if status in UNFINISHED_FILE_STATUSES else None, "the worker is stopping")
                return

    def stop(self, file_id: int | None, reason: str) -> None:
        """No session takes another file; `file_id` (if any) goes on in a job of its own."""
        with self._lock:
            self._stopped = True
            if file_id is not None:
                self._left.add(file_id)
            if reason not in self._reasons:
                self._reasons.append(reason)

    def left(self) -> tuple[list[int], list[str]]:
        """The files to hand over, in the group's order, and why."""
        with self._lock:
            rest = [f for n, f in enumerate(self.file_ids) if n >= self._next or f in self._left]
            return rest, list(self._reasons)

    def statuses(self) -> dict[int, str]:
        with self._lock:
            return {f: self._done[f] for f in self.file_ids if f in self._done}

    def _take(self) -> int | None:
        with self._lock:
            if self._stopped or self._next >= len(self.file_ids):
                return None
            self._next += 1
            return self.file_ids[self._next - 1]


def _cpus_per_busy_worker(redis: Any) -> int:
    try:
        return cpus_per_busy_worker(redis)
    except REDIS_DOWN:  # (the group goes on without Redis: one session, as when in doubt)
        return 1


def format_migrate_job(format_id: int) -> dict:
    """Migrate all staged rows of an approved format."""
    results = format_migrate(format_id=format_id)
    batches_refresh(batch_ids=list(ImportFile.objects.filter(pk__in=results).values_list("batch_id", flat=True)))
    return results


def reconcile_job() -> dict:
    """Periodic: re-enqueue work Postgres says is due but no job is running for."""
    return reconcile()


def escalate_job() -> list[int]:
    """Periodic: escalate the pending formats that waited longer than the approval policy allows."""
    return formats_escalate()


def cleanup_job() -> dict:
    """Daily: retention cleanup of staged rows and expired uploads."""
    return cleanup_staging(dry_run=False)
