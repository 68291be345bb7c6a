"""Parallel database sessions for one big file, with commits kept in file order.

One Postgres backend runs one statement at a time, so a file imported in one session uses one core.
`OrderedSessions` spreads a file's chunks over a few threads, each with its own Django connection (Django
connections are per thread): every chunk runs in its own transaction, in up to three steps:

- `prepare` runs at once, in parallel with the other sessions: the work that touches only the chunk's own
  rows and temp tables (the COPY of its cells, the SQL conversion, claiming its staged rows);
- `finish` waits until the chunk before it has written its rows (its `finish` returned), then writes orders;
- `settle` (optional) waits until the chunk before it has committed, then advances the file's counters; then
  the chunk commits.

So the chunks commit strictly one after the other, in order: what is committed is always a prefix of the
file (a killed job resumes after it, as with one session), the orders INSERTs never run concurrently within
a file, and the Python state of `finish` sees the rows in file order. A chunk's `finish` does run while the
chunk before it commits (its deferred foreign-key checks, the WAL flush: about 40% of an ordered step): a row
of it with the same trade identity as an uncommitted row of the one before waits for that commit in the
unique index and then resolves as in a sequential run. No chunk ever waits on a later one (a chunk's own
commit waits for nothing but its predecessor's), so there is no deadlock; what must read the committed
totals of the chunks before (the file's counters, taken FOR UPDATE) goes in `settle`.

A failure stops the chunks after the failing one (they roll back); the chunks before it still commit.
When `stop()` turns true (the worker is shutting down), only the chunk already writing commits: the
ones still waiting for their turn roll back, no new one is taken, and `stopped` says the file is not done
(the first chunk of a run always commits, so every run makes progress).
Only one chunk: it runs inline in the caller's session, no thread is started. Inside an outer transaction
(tests, nested calls) other sessions could not see its uncommitted rows, so `sessions_for` gives 1 there.

`session_threads` lends threads that keep their session from one call to the next (a group of small files runs
in them): a new session costs a backend's start and, in it, cold catalog and plan caches and the temp tables and
prepared statements of the fast path made again, ~40 ms a session, as much as a small file's import.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import connection, transaction

Item = TypeVar("Item")


def sessions_for(setting: str = "FILE_SESSIONS") -> int:
    """How many sessions one file (or, with GROUP_SESSIONS, one group of small files) may use: the setting, or 1
    inside an outer transaction."""
    if connection.in_atomic_block:
        return 1
    return max(1, int(settings.AIRLOCK.get(setting, 2)))


class _Aborted(Exception):
    """An earlier chunk failed, or the worker is stopping: this one rolls back without committing."""


class OrderedSessions(Generic[Item]):
    """Run `prepare(item)` in parallel, `finish(item, prepared)` in submission order and `settle(item, finished)`
    after the item before has committed, a transaction each."""

    def __init__(
        self,
        sessions: int,
        prepare: Callable[[Item], Any],
        finish: Callable[[Item, Any], Any],
        *,
        settle: Callable[[Item, Any], None] | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.sessions = max(1, sessions)
        self.prepare = prepare
        self.finish = finish
        self.settle = settle
        self.stop = stop
        self.stopped = False  # a stop request left items undone
        self._held: list[Item] = []  # the first item, kept until a second one shows threads are worth it
        self._queue: queue.Queue[tuple[int, Item] | None] = queue.Queue()
        self._slots = threading.Semaphore(self.sessions)  # items in flight: bounds memory and read-ahead
        self._turn = threading.Condition()
        self._next = 0  # the next item allowed to finish
        self._committed = 0  # the next item allowed to settle and commit
        self._submitted = 0
        self._failed_at: int | None = None
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> OrderedSessions[Item]:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(raise_error=exc is None)

    def submit(self, item: Item) -> bool:
        """Hand over the next item; blocks while every session is busy; raises an earlier item's error.

        False (the item is not taken) when a stop was requested: the caller stops reading."""
        self._raise_error()
        if self._submitted or self._held:
            if self.stopped or self.stop():
                self.stopped = True
                return False
        if self.sessions == 1:
            self._run_inline(item)
            return True
        if not self._threads and not self._held:
            self._held.append(item)
            return True
        if not self._threads:
            self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(self.sessions)]
            for thread in self._threads:
                thread.start()
            self._enqueue(self._held.pop())
        self._enqueue(item)
        return True

    def close(self, *, raise_error: bool = True) -> None:
        """Wait for every submitted item to commit (or fail), stop the threads, raise the first error."""
        if self._held:
            item = self._held.pop()
            if raise_error:
                self._run_inline(item)
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        if raise_error:
            self._raise_error()

    def _run_inline(self, item: Item) -> None:
        with transaction.atomic():
            finished = self.finish(item, self.prepare(item))
            if self.settle is not None:
                self.settle(item, finished)
        self._submitted += 1
        self._next += 1
        self._committed += 1

    def _enqueue(self, item: Item) -> None:
        while not self._slots.acquire(timeout=1.0):
            self._raise_error()
        self._raise_error()
        self._queue.put((self._submitted, item))
        self._submitted += 1

    def _raise_error(self) -> None:
        with self._turn:
            if self._error is not None:
                raise self._error

    def _work(self) -> None:
        try:
            while (job := self._queue.get()) is not None:
                number, item = job
                try:
                    with transaction.atomic():
                        prepared = self.prepare(item)
                        self._wait_turn(number)
                        finished = self.finish(item, prepared)
                        self._reach("_next", number + 1)  # the next item may write
                        self._wait_until("_committed", number)
                        if self.settle is not None:
                            self.settle(item, finished)
                except BaseException as exc:  # noqa: BLE001 -- handed to the submitting thread
                    self._fail(number, exc)
                else:
                    self._reach("_committed", number + 1)
                finally:
                    self._slots.release()
        finally:
            connection.close()

    def _wait_turn(self, number: int) -> None:
        self._wait_until("_next", number)
        if number and self.stop():
            self.stopped = True
            raise _Aborted

    def _wait_until(self, counter: str, number: int) -> None:
        """Wait until `counter` (`_next`: items written, `_committed`: items committed) reaches this item;
        raise _Aborted if an item before it failed."""
        with self._turn:
            while getattr(self, counter) != number:
                if self._failed_at is not None and self._failed_at < number:
                    raise _Aborted
                self._turn.wait()

    def _reach(self, counter: str, value: int) -> None:
        with self._turn:
            setattr(self, counter, value)
            self._turn.notify_all()

    def _fail(self, number: int, exc: BaseException) -> None:
        with self._turn:
            if self._failed_at is None or number < self._failed_at:
                self._failed_at = number
                if not isinstance(exc, _Aborted):
                    self._error = exc
            self._turn.notify_all()


class SessionThread:
    """A thread that runs the callables it is given, one at a time, in a database session of its own, which it
    keeps for the next one (tested before each: one a restart or an error left unusable is closed, and Django
    connects afresh)."""

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[[], Any], Future] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="airlock-session")
        self._thread.start()

    def run(self, work: Callable[[], Any]) -> Future:
        """Queue `work`; its future holds what it returned or raised."""
        future: Future = Future()
        self._tasks.put((work, future))
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Close the session and end the thread once the work queued before is done."""
        self._tasks.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            while (task := self._tasks.get()) is not None:
                work, future = task
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    if connection.connection is not None and not connection.is_usable():
                        connection.close()
                    future.set_result(work())
                except BaseException as exc:  # noqa: BLE001 -- handed to the caller through the future
                    future.set_exception(exc)
        finally:
            connection.close()


_idle: list[SessionThread] = []  # this process's session threads not lent at the moment
_idle_pid = os.getpid()  # the process they run in (a forked child inherits the list, not the threads)
_idle_lock = threading.Lock()


@contextmanager
def session_threads(count: int) -> Iterator[list[SessionThread]]:
    """Lend `count` session threads of this process (started when fewer are idle) for the block, each to this
    caller alone; they go back to the idle ones afterwards, sessions open. A caller must have collected what it
    queued (its futures done) before the block ends."""
    global _idle_pid
    with _idle_lock:
        if _idle_pid != os.getpid():  # a forked child: the threads stayed in the parent (psycopg leaves their
            _idle.clear()  # sockets alone in a process that did not open them)
            _idle_pid = os.getpid()
        lent = [_idle.pop() for _ in range(min(count, len(_idle)))]
    lent += [SessionThread() for _ in range(count - len(lent))]
    try:
        yield lent
    finally:
        with _idle_lock:
            if _idle_pid == os.getpid():
                _idle.extend(lent)


def session_threads_close() -> None:
    """Close the idle session threads' sessions and end them (at exit, and after tests that used them)."""
    with _idle_lock:
        idle = list(_idle) if _idle_pid == os.getpid() else []
        _idle.clear()
    for thread in idle:
        thread.close()


atexit.register(session_threads_close)
