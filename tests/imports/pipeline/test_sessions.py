"""Big files in parallel database sessions: chunks prepared at once, committed in file order.

These tests commit for real (transaction=True): sessions other than the test's own cannot see rows the
test has not committed, which is also why the pipeline uses one session inside an outer transaction.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from imports.models import FileStatus, ImportFile, Order
from imports.pipeline.sessions import OrderedSessions, session_threads, session_threads_close, sessions_for
from staging.models import StagedRow
from tests.imports.pipeline.test_fastpath import (
    HEADER,
    MAPPING,
    import_a_file_broken_at_line_402,
    import_file_with,
    migrate_with,
    row,
)

pytestmark = pytest.mark.django_db(transaction=True)


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_items_are_prepared_in_parallel_sessions_and_committed_in_order() -> None:
    prepared: list[int] = []
    finished: list[int] = []
    pids: set[int] = set()
    lock = threading.Lock()
    ready = [threading.Event() for _ in range(8)]

    def prepare(n: int) -> int:
        # Each even item waits until the odd one after it is prepared: so the odd items are ready first, and
        # both sessions are busy at once, by construction rather than by the timing of a sleep.
        if n % 2 == 0:
            assert ready[n + 1].wait(30), f"item {n + 1} was not prepared while item {n} was being prepared"
        with lock:
            prepared.append(n)
            pids.add(backend_pid())
        ready[n].set()
        return n * 10

    def finish(n: int, value: int) -> None:
        assert value == n * 10
        finished.append(n)
        Group.objects.create(name=f"item-{n}")

    with OrderedSessions(2, prepare, finish) as run:
        for n in range(8):
            run.submit(n)

    assert finished == list(range(8))
    assert prepared == [1, 0, 3, 2, 5, 4, 7, 6]  # each odd item was prepared before the even one before it...
    assert sorted(Group.objects.values_list("name", flat=True)) == [f"item-{n}" for n in range(8)]
    assert len(pids) == 2 and backend_pid() not in pids  # ...in two sessions other than the caller's


def test_a_failing_item_stops_the_ones_after_it_and_keeps_the_ones_before() -> None:
    def prepare(n: int) -> int:
        return n

    def finish(n: int, _: int) -> None:
        Group.objects.create(name=f"item-{n}")
        if n == 3:
            raise ValueError("item 3 is broken")

    with pytest.raises(ValueError, match="item 3 is broken"):
        with OrderedSessions(2, prepare, finish) as run:
            for n in range(12):
                run.submit(n)

    # Items 0-2 committed; item 3 rolled back its own row; nothing after it committed.
    assert sorted(Group.objects.values_list("name", flat=True)) == ["item-0", "item-1", "item-2"]


def committed_groups() -> set[str]:
    """The Group names committed so far, read from a fresh session (a thread's own connection)."""
    names: set[str] = set()

    def read() -> None:
        names.update(Group.objects.values_list("name", flat=True))
        connection.close()

    reader = threading.Thread(target=read)
    reader.start()
    reader.join()
    return names


def test_an_item_writes_while_the_one_before_commits_and_settles_after_that_commit() -> None:
    finished_while_uncommitted: list[int] = []
    settled_after: dict[int, set[str]] = {}
    second_written = threading.Event()

    def finish(n: int, _: int) -> int:
        Group.objects.create(name=f"item-{n}")
        if f"item-{n - 1}" not in committed_groups() and n:
            finished_while_uncommitted.append(n)
        if n == 1:
            second_written.set()
        return n

    def settle(n: int, _: int) -> None:
        if n == 0:
            # Item 0 holds its commit until item 1 has written: by construction, not by a sleep.
            assert second_written.wait(30), "item 1 did not write while item 0 was settling"
        settled_after[n] = committed_groups()

    with OrderedSessions(2, lambda n: n, finish, settle=settle) as run:
        for n in range(4):
            run.submit(n)

    assert 1 in finished_while_uncommitted  # item 1 wrote before item 0 committed...
    assert all(f"item-{n - 1}" in settled_after[n] for n in range(1, 4))  # ...and settled after it did
    assert sorted(Group.objects.values_list("name", flat=True)) == [f"item-{n}" for n in range(4)]


def test_an_item_failing_as_it_settles_rolls_back_the_next_one_already_written() -> None:
    second_written = threading.Event()

    def finish(n: int, _: int) -> None:
        Group.objects.create(name=f"item-{n}")
        if n == 2:
            second_written.set()

    def settle(n: int, _: None) -> None:
        if n == 1:
            assert second_written.wait(30), "item 2 did not write while item 1 was settling"
            raise ValueError("item 1 cannot settle")

    with pytest.raises(ValueError, match="item 1 cannot settle"):
        with OrderedSessions(2, lambda n: n, finish, settle=settle) as run:
            for n in range(6):
                run.submit(n)

    assert sorted(Group.objects.values_list("name", flat=True)) == ["item-0"]


def test_a_stop_request_commits_only_the_item_being_written() -> None:
    stopping = threading.Event()
    taken: list[int] = []

    def finish(n: int, _: int) -> None:
        Group.objects.create(name=f"item-{n}")
        if n == 2:
            stopping.set()  # the worker is asked to stop while item 2 writes

    with OrderedSessions(2, lambda n: n, finish, stop=stopping.is_set) as run:
        for n in range(10):
            if not run.submit(n):
                break
            taken.append(n)

    assert run.stopped
    assert sorted(Group.objects.values_list("name", flat=True)) == ["item-0", "item-1", "item-2"]
    assert taken[-1] < 9  # no new item was taken after the request


def test_the_first_item_commits_even_when_a_stop_was_already_requested() -> None:
    with OrderedSessions(2, lambda n: n, lambda n, _: Group.objects.create(name=f"item-{n}"), stop=lambda: True) as run:
        assert run.submit(0) and not run.submit(1)

    assert run.stopped and list(Group.objects.values_list("name", flat=True)) == ["item-0"]


def test_one_item_runs_in_the_callers_session_without_threads() -> None:
    pids: list[int] = []
    before = threading.active_count()

    def prepare(n: int) -> int:
        pids.append(backend_pid())
        return n

    with OrderedSessions(2, prepare, lambda n, _: None) as run:
        run.submit(1)
        assert threading.active_count() == before

    assert pids == [backend_pid()]


def test_inside_an_outer_transaction_a_file_uses_one_session(settings: Any) -> None:
    from django.db import transaction

    settings.AIRLOCK = {**settings.AIRLOCK, "FILE_SESSIONS": 3}
    assert sessions_for() == 3
    with transaction.atomic():
        assert sessions_for() == 1


def sessions_used(monkeypatch: Any, name: str) -> set[int]:
    """Record the database sessions that run fastpath.`name` (the prepare half of a chunk or batch; a chunk's
    is `chunk_prepare` from its rows' cells or `block_prepare` from plain lines: both are watched)."""
    from imports.pipeline import fastpath

    pids: set[int] = set()

    def spy(real: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            pids.add(backend_pid())
            return real(*args, **kwargs)

        return run

    for spied in ("chunk_prepare", "block_prepare") if name == "chunk_prepare" else (name,):
        monkeypatch.setattr(fastpath, spied, spy(getattr(fastpath, spied)))
    return pids


def in_one_then_two_sessions(
    settings: Any, monkeypatch: Any, spied: str, run: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any], set[int]]:
    """What `run` gives with one session per file and with two, and the sessions that ran `spied` in the latter."""
    settings.AIRLOCK = {**settings.AIRLOCK, "FILE_SESSIONS": 1}
    one = run()
    settings.AIRLOCK = {**settings.AIRLOCK, "FILE_SESSIONS": 2}
    pids = sessions_used(monkeypatch, spied)
    return one, run(), pids


@pytest.mark.parametrize("dedupe", [True, False])
def test_a_direct_import_in_two_sessions_writes_what_one_session_writes(
    django_user_model: Any, settings: Any, redis_clean: Any, monkeypatch: Any, dedupe: bool
) -> None:
    one, two, pids = in_one_then_two_sessions(
        settings,
        monkeypatch,
        "chunk_prepare",
        lambda: import_file_with(django_user_model, direct=True, settings=settings, dedupe=dedupe),
    )

    # The chunks (of 7 rows) really were spread over two sessions (two more after Postgres refused a block of the
    # tricky lines and the rest was read by the reader).
    assert len(pids) in (2, 4)

    assert two["counters"] == one["counters"] and two["counters"]["status"] == FileStatus.PARTIAL
    assert two["orders"] == one["orders"] and len(two["orders"]) >= 20
    assert two["not_imported"] == one["not_imported"]


def test_a_direct_import_in_two_sessions_stopped_between_chunks_resumes_without_loss_or_duplicates(
    django_user_model: Any, settings: Any, redis_clean: Any, monkeypatch: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "FILE_SESSIONS": 1}
    whole = import_file_with(django_user_model, direct=True, settings=settings)
    settings.AIRLOCK = {**settings.AIRLOCK, "FILE_SESSIONS": 2}
    resumed = import_file_with(
        django_user_model, direct=True, settings=settings, stop_after_chunks=2, monkeypatch=monkeypatch
    )

    assert resumed["runs"] > 2
    assert resumed["counters"] == whole["counters"]
    assert resumed["orders"] == whole["orders"]
    assert resumed["not_imported"] == whole["not_imported"]


@pytest.mark.parametrize("dedupe", [True, False])
def test_staged_rows_migrated_in_two_sessions_give_what_one_session_gives(
    django_user_model: Any, settings: Any, monkeypatch: Any, dedupe: bool
) -> None:
    one, two, pids = in_one_then_two_sessions(
        settings,
        monkeypatch,
        "batch_prepare",
        lambda: migrate_with(django_user_model, fast=True, settings=settings, dedupe=dedupe),
    )

    assert len(pids - {backend_pid()}) == 2  # the batches (of 7 rows) ran in two sessions besides the test's

    assert two["status"] == one["status"] == FileStatus.PARTIAL
    assert two["counters"] == one["counters"]
    assert two["orders"] == one["orders"]
    assert two["staged"] == one["staged"]


def test_a_broken_line_further_down_removes_the_chunks_other_sessions_committed(
    user: Any, settings: Any, redis_clean: Any, monkeypatch: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "FILE_SESSIONS": 2}
    pids = sessions_used(monkeypatch, "chunk_prepare")
    file = import_a_file_broken_at_line_402(user, settings)

    # Two sessions prepared the chunks before it (more when Postgres refused the block holding line 402 and the
    # rest was read again by the reader, in new sessions).
    assert len(pids) >= 2
    assert "Line 402 has 25 fields" in file.error and "the 400 rows read before that line were removed" in file.error
    assert not Order.objects.filter(source_file=file).exists()
    assert not StagedRow.objects.filter(file=file).exists()
    assert ImportFile.objects.get(pk=file.pk).rows_imported == 0


def hold_first_commit_until_a_session_waits_on_a_lock(monkeypatch: Any) -> list[bool]:
    """Batch 1 of a migration writes while batch 0 has not committed: batch 0's `settle` (its counters, just
    before its commit) waits until another session of this database waits on a lock (batch 1's INSERT on
    batch 0's uncommitted key). Returns [whether that was seen]."""
    from imports.pipeline import migrate

    seen: list[bool] = []
    real = migrate._advance_counters

    def held(file: ImportFile, outcome: Any) -> None:
        if not seen:
            deadline = time.monotonic() + 20
            waiting = False
            while not waiting and time.monotonic() < deadline:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    )
                    waiting = cursor.fetchone()[0] > 0
                time.sleep(0.02)
            seen.append(waiting)
        real(file, outcome)

    monkeypatch.setattr(migrate, "_advance_counters", held)
    return seen


@pytest.mark.parametrize("by", ["trade id", "fingerprint"])
def test_the_same_trade_in_the_next_batch_waits_for_the_commit_before_it_and_resolves_as_in_one_session(
    django_user_model: Any, settings: Any, monkeypatch: Any, by: str
) -> None:
    rows = []
    for n in range(14):  # two batches of 7
        cells = row()
        cells[HEADER.index("Trade ID")] = f"T{n}"
        cells[HEADER.index("Quantity")] = str(n + 1)
        rows.append(cells)
    rows[10] = list(rows[3])  # batch 1 holds the same trade (same id, same fill) as batch 0
    mapping = copy.deepcopy(MAPPING)
    if by == "fingerprint":
        del mapping["fields"]["broker_trade_id"]  # identical fills: keys '#1' and '#2'

    def run() -> dict[str, Any]:
        return migrate_with(django_user_model, fast=True, settings=settings, mapping=mapping, rows=rows)

    settings.AIRLOCK = {**settings.AIRLOCK, "FILE_SESSIONS": 1}
    one = run()
    settings.AIRLOCK = {**settings.AIRLOCK, "FILE_SESSIONS": 2}
    seen = hold_first_commit_until_a_session_waits_on_a_lock(monkeypatch)
    two = run()

    assert seen == [True]  # batch 1 really wrote, and waited, before batch 0 committed
    assert two["counters"] == one["counters"]
    assert two["orders"] == one["orders"]
    assert two["staged"] == one["staged"]
    if by == "trade id":
        assert one["counters"]["rows_duplicate"] == 1 and one["counters"]["rows_imported"] == 13
    else:
        assert one["counters"]["rows_imported"] == 14
        assert sorted(o[-1].rsplit("#", 1)[1] for o in one["orders"] if o[0] in (5, 12)) == ["1", "2"]


@pytest.mark.django_db
def test_the_apps_database_sessions_compile_no_statement_just_in_time() -> None:
    # A batch's conversion, estimated from temp tables without statistics, passed jit_above_cost and spent more
    # on compiling than it saved (config/settings.py): every session of the app, web or worker, runs without.
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


def test_a_session_thread_keeps_its_session_and_replaces_one_that_was_terminated() -> None:
    with session_threads(2) as threads:
        first = [thread.run(backend_pid).result(timeout=20) for thread in threads]
        assert len(set(first)) == 2 and backend_pid() not in first
    with session_threads(2) as threads:  # lent again: the same threads, their sessions still open
        again = [thread.run(backend_pid).result(timeout=20) for thread in threads]
        assert sorted(again) == sorted(first)
        with connection.cursor() as cursor:  # a server restart, an administrator: one session dies while idle
            cursor.execute("SELECT pg_terminate_backend(%s)", [again[0]])
        # The next work in that thread runs in a new session instead of failing on the dead one.
        assert threads[0].run(backend_pid).result(timeout=20) not in first
    session_threads_close()
    with session_threads(1) as threads:  # closed: a new thread, a new session
        assert threads[0].run(backend_pid).result(timeout=20) not in first


def test_a_session_threads_error_reaches_its_caller_and_the_thread_goes_on() -> None:
    def fails() -> None:
        raise ValueError("a bug in the work")

    with session_threads(1) as [thread]:
        with pytest.raises(ValueError, match="a bug in the work"):
            thread.run(fails).result(timeout=20)
        assert thread.run(lambda: 42).result(timeout=20) == 42


def test_a_forked_child_starts_session_threads_of_its_own() -> None:
    # A worker forks a work horse for a big file after running groups in its session threads: the child
    # inherits their list but not the threads, and must not wait for ever on one.
    with session_threads(1) as [thread]:
        parent = thread.run(backend_pid).result(timeout=20)
    child_pid_out, child_pid_in = os.pipe()
    connection.close()  # (the child must not share the test's socket either)
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            with session_threads(1) as [thread]:
                os.write(child_pid_in, str(thread.run(backend_pid).result(timeout=20)).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(child_pid_in)
    _, status = os.waitpid(pid, 0)
    child = os.read(child_pid_out, 64).decode()
    os.close(child_pid_out)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child and int(child) != parent
    with session_threads(1) as [thread]:  # the parent's thread and session are still there
        assert thread.run(backend_pid).result(timeout=20) == parent
