"""The small files of one upload share an RQ job (imports/jobs/enqueue.py, tasks.files_process_job), against the
real test Postgres and Redis: how groups are formed, a group run by a real AirlockWorker in its own process, a file
that raises or a stop request handing the rest to jobs of their own, a dead worker's group, and the reconciler."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import django_rq
import pytest
from django.db import connection
from django.utils import timezone
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.worker import Worker, WorkerStatus

import config.worker
import imports.jobs.tasks as tasks
from config.worker import AirlockWorker
from imports.jobs import enqueue
from imports.jobs.reconcile import reconcile
from imports.models import FileStatus, ImportFile
from imports.pipeline.sessions import session_threads_close
from imports.services.uploads import upload_batch_create
from tests.conftest import csv_upload
from tests.e2e.test_faults import trades_csv

pytestmark = pytest.mark.django_db

QUEUES = ("high", "default", "bulk")
FINAL_OR_STAGED = {FileStatus.IMPORTED, FileStatus.PENDING_APPROVAL, FileStatus.MIGRATING}


def upload(user: Any, capture: Any, count: int, *, rows: int = 2, first: int = 0) -> list[ImportFile]:
    """`count` different small files in one upload; their jobs enqueued as the upload's commit would."""
    files = [csv_upload(f"t{n}.csv", trades_csv(rows, start=first + 100 * n)) for n in range(first, first + count)]
    with capture(execute=True):
        _, made = upload_batch_create(owner=user, files=files)
    return made


def queued(name: str = "high") -> list[Job]:
    queue = django_rq.get_queue(name)
    return [Job.fetch(job_id, connection=queue.connection) for job_id in queue.job_ids]


def drain(monkeypatch: Any) -> list[str]:
    """A real AirlockWorker drains the queues in this process (burst). A forked horse would not see this test's
    transaction: the jobs that would get one are not run but returned."""
    horses: list[str] = []
    monkeypatch.setattr(config.worker.Worker, "execute_job", lambda self, job, queue: horses.append(job.id))
    monkeypatch.setattr(config.worker, "_stop_requested", False)
    monkeypatch.setattr(config.worker.connections, "close_all", lambda: None)  # would end the test's transaction
    queues = [django_rq.get_queue(name) for name in QUEUES]
    AirlockWorker(queues, connection=queues[0].connection).work(burst=True)
    return horses


def statuses(files: list[ImportFile]) -> list[str]:
    by_id = dict(ImportFile.objects.filter(pk__in=[f.pk for f in files]).values_list("pk", "status"))
    return [by_id[f.pk] for f in files]


def test_small_files_share_jobs_by_count_and_bytes_and_a_big_one_has_its_own(
    user: Any, redis_clean: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    one = len(trades_csv(2))
    settings.AIRLOCK = {**settings.AIRLOCK, "FILE_JOB_GROUP": 3, "INLINE_JOB_BYTES": 3 * one + 50}
    files = upload(user, django_capture_on_commit_callbacks, 7)
    big = csv_upload("big.csv", trades_csv(40, start=5000))
    with django_capture_on_commit_callbacks(execute=True):
        _, [big_file] = upload_batch_create(owner=user, files=[big])
    ids = [f.pk for f in files]
    jobs = {job.id: job for job in queued()}
    assert set(jobs) == {
        enqueue.files_job_id(ids[0:3]),
        enqueue.files_job_id(ids[3:6]),
        enqueue.file_job_id(ids[6]),  # the last one alone: a job of its own, as before groups
        enqueue.file_job_id(big_file.pk),
    }
    group = jobs[enqueue.files_job_id(ids[0:3])]
    assert (group.func_name, group.args) == (f"{enqueue.TASKS}.files_process_job", (ids[0:3],))
    assert group.retries_left is None  # a group is never retried as a whole: its files are, in their own jobs
    assert enqueue.files_of_job_id(group.id) == ids[0:3]

    # The byte cap closes a group before the count does.
    redis_clean.flushdb()
    settings.AIRLOCK = {**settings.AIRLOCK, "FILE_JOB_GROUP": 8, "INLINE_JOB_BYTES": 2 * one + 50}
    files = upload(user, django_capture_on_commit_callbacks, 4, first=1000)
    assert sorted(job.id for job in queued()) == sorted(
        [enqueue.files_job_id([files[0].pk, files[1].pk]), enqueue.files_job_id([files[2].pk, files[3].pk])]
    )


def test_a_group_size_of_one_or_no_inline_jobs_means_a_job_per_file(
    user: Any, redis_clean: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    for knobs in ({"FILE_JOB_GROUP": 1}, {"INLINE_JOB_BYTES": 0}):
        redis_clean.flushdb()
        settings.AIRLOCK = {**settings.AIRLOCK, "FILE_JOB_GROUP": 8, "INLINE_JOB_BYTES": 10**6, **knobs}
        files = upload(
            user, django_capture_on_commit_callbacks, 3, rows=3 + len(knobs) + knobs.get("FILE_JOB_GROUP", 5)
        )
        assert sorted(job.id for job in queued()) == sorted(enqueue.file_job_id(f.pk) for f in files)


def test_a_worker_runs_a_group_in_its_own_process_file_after_file(
    user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    files = upload(user, django_capture_on_commit_callbacks, 5)
    assert [job.id for job in queued()] == [enqueue.files_job_id([f.pk for f in files])]
    seen: list[int] = []
    original = tasks.file_process
    monkeypatch.setattr(tasks, "file_process", lambda *, file_id: seen.append(file_id) or original(file_id=file_id))

    assert drain(monkeypatch) == []

    assert seen == [f.pk for f in files]
    assert set(statuses(files)) <= FINAL_OR_STAGED
    for name in QUEUES:
        assert len(django_rq.get_queue(name)) == 0 and len(django_rq.get_queue(name).failed_job_registry) == 0


def test_a_group_too_big_for_the_worker_process_goes_to_a_work_horse(
    user: Any, redis_clean: Any, settings: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    files = upload(user, django_capture_on_commit_callbacks, 3)
    settings.AIRLOCK = {**settings.AIRLOCK, "INLINE_JOB_BYTES": sum(f.size for f in files) - 1}  # shrunk since
    assert drain(monkeypatch) == [enqueue.files_job_id([f.pk for f in files])]


def test_a_file_that_raises_hands_itself_and_the_rest_to_jobs_of_their_own(
    user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    files = upload(user, django_capture_on_commit_callbacks, 4)
    original = tasks.file_process

    def file_process(*, file_id: int) -> str:
        if file_id == files[1].pk:
            raise KeyError("a bug met by the second file")
        return original(file_id=file_id)

    monkeypatch.setattr(tasks, "file_process", file_process)
    django_rq.get_queue("high").empty()  # the group's job: run here instead

    with django_capture_on_commit_callbacks(execute=True):  # (django-rq enqueues on the test's "commit")
        done = tasks.files_process_job([f.pk for f in files])

    assert list(done) == [files[0].pk]
    assert statuses(files)[0] in FINAL_OR_STAGED
    assert statuses(files)[1:] == [FileStatus.UPLOADED] * 3
    # Outside a worker the group's queue is 'default'; each handed-over file has the retries of a file's job.
    handed = queued("default")
    assert [job.id for job in handed] == [enqueue.file_job_id(f.pk) for f in files[1:]]
    assert all(job.retries_left == len(enqueue.settings.AIRLOCK["JOB_RETRY_INTERVALS"]) for job in handed)

    monkeypatch.setattr(tasks, "file_process", original)
    assert drain(monkeypatch) == []
    assert set(statuses(files)) <= FINAL_OR_STAGED


def test_a_stop_request_hands_the_files_not_started_to_jobs_of_their_own(
    user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    files = upload(user, django_capture_on_commit_callbacks, 4)
    original = tasks.file_process
    monkeypatch.setattr(config.worker, "_stop_requested", False)

    def file_process(*, file_id: int) -> str:
        if file_id == files[1].pk:
            config.worker._request_stop(15, None)  # SIGTERM while the second file runs
        return original(file_id=file_id)

    monkeypatch.setattr(tasks, "file_process", file_process)
    django_rq.get_queue("high").empty()

    with django_capture_on_commit_callbacks(execute=True):
        done = tasks.files_process_job([f.pk for f in files])

    assert list(done) == [files[0].pk, files[1].pk]  # the second file ended (one batch), then the group stopped
    assert [job.id for job in queued("default")] == [enqueue.file_job_id(f.pk) for f in files[2:]]
    assert statuses(files)[2:] == [FileStatus.UPLOADED] * 2


def test_the_reconciler_leaves_the_files_of_a_live_group_alone_and_resumes_a_lost_groups(
    user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any
) -> None:
    files = upload(user, django_capture_on_commit_callbacks, 3)
    ImportFile.objects.filter(pk__in=[f.pk for f in files]).update(updated_at=timezone.now() - timedelta(seconds=600))
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile(grace_seconds=60)["files"] == []  # queued in their group
    group = queued()[0]

    # Started by a worker that is alive: still its work.
    queue = django_rq.get_queue("high")
    queue.remove(group.id)
    group.set_status(JobStatus.STARTED)
    group.worker_name = "w"
    group.save()
    registry = StartedJobRegistry(queue.name, connection=queue.connection)
    queue.connection.zadd(registry.key, {f"{group.id}:e1": 4_000_000_000})
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("imports.jobs.reconcile._worker_alive", lambda name, connection: True)
            assert reconcile(grace_seconds=60)["files"] == []
        # Its worker is gone (no such registration): each file goes on in a job of its own.
        assert sorted(reconcile(grace_seconds=60)["files"]) == [f.pk for f in files]
    assert sorted(job.id for job in queued("default")) == sorted(enqueue.file_job_id(f.pk) for f in files)


def test_a_group_whose_worker_died_counts_the_death_and_hands_its_files_over(
    user: Any, redis_clean: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "MAX_FILE_ATTEMPTS": 2}
    files = upload(user, django_capture_on_commit_callbacks, 4)
    ImportFile.objects.filter(pk=files[0].pk).update(status=FileStatus.IMPORTED)  # done before the death
    ImportFile.objects.filter(pk=files[1].pk).update(status=FileStatus.PROCESSING, attempts=2)  # killed it twice
    ImportFile.objects.filter(pk=files[2].pk).update(status=FileStatus.PROCESSING, attempts=1)  # started once
    queue = django_rq.get_queue("high")
    group = queued()[0]
    queue.remove(group.id)
    group.set_status(JobStatus.STARTED)
    registry = StartedJobRegistry(queue.name, connection=queue.connection)
    queue.connection.zadd(registry.key, {f"{group.id}:dead-worker-execution": 1})

    with django_capture_on_commit_callbacks(execute=True):
        registry.cleanup()  # as every worker runs it: finds the group abandoned

    file = ImportFile.objects.get(pk=files[1].pk)
    assert file.status == FileStatus.FAILED and "worker processing this file died" in file.error
    assert statuses(files)[2:] == [FileStatus.PROCESSING, FileStatus.UPLOADED]
    assert [job.id for job in queued()] == [enqueue.file_job_id(f.pk) for f in files[2:]]
    group.refresh()
    assert group.get_status() == JobStatus.FAILED  # not retried as a whole


# --- a group in two sessions (transaction=True: each session is a thread with its own connection, which sees only
# what is committed) ---------------------------------------------------------------------------------------------


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_group_runs_two_files_at_once_each_in_its_own_session_kept_for_the_next_group(
    user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    files = upload(user, django_capture_on_commit_callbacks, 5)
    original = tasks.file_process
    second_started = threading.Event()
    sessions: dict[int, int] = {}

    def file_process(*, file_id: int) -> str:
        sessions[file_id] = _backend_pid()
        if file_id == files[1].pk:
            second_started.set()
        if file_id == files[0].pk and not second_started.wait(timeout=20):
            raise AssertionError("the second file did not start while the first one was running")
        return original(file_id=file_id)

    monkeypatch.setattr(tasks, "file_process", file_process)
    django_rq.get_queue("high").empty()

    done = tasks.files_process_job([f.pk for f in files])

    assert list(done) == [f.pk for f in files]  # every file, reported in the group's order
    assert set(statuses(files)) <= FINAL_OR_STAGED
    first_group = set(sessions.values())
    assert len(first_group) == 2 and _backend_pid() not in first_group
    assert queued("default") == []
    # The next group runs in the same two sessions (no new backend, no cold caches): they stayed open.
    sessions.clear()
    second_started.clear()
    files = upload(user, django_capture_on_commit_callbacks, 4, first=10)
    django_rq.get_queue("high").empty()
    assert list(tasks.files_process_job([f.pk for f in files])) == [f.pk for f in files]
    assert set(sessions.values()) == first_group
    # Closed, their backends end (a backend takes a moment to exit after it).
    session_threads_close()
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(first_group)])
            if cursor.fetchone()[0] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(first_group)])
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_a_file_that_raises_in_a_two_session_group_hands_itself_and_the_files_not_started_over(
    user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    files = upload(user, django_capture_on_commit_callbacks, 4)
    original = tasks.file_process
    second_running, group_stopped = threading.Event(), threading.Event()
    stop = tasks._Group.stop

    def stop_and_tell(group: Any, file_id: int | None, reason: str) -> None:
        stop(group, file_id, reason)
        group_stopped.set()

    def file_process(*, file_id: int) -> str:
        if file_id == files[0].pk:
            assert second_running.wait(timeout=20)
            raise KeyError("a bug met by the first file")
        if file_id == files[1].pk:
            second_running.set()
            assert group_stopped.wait(timeout=20)  # the first one raised meanwhile: this one still ends
        return original(file_id=file_id)

    monkeypatch.setattr(tasks._Group, "stop", stop_and_tell)
    monkeypatch.setattr(tasks, "file_process", file_process)
    django_rq.get_queue("high").empty()

    done = tasks.files_process_job([f.pk for f in files])

    assert list(done) == [files[1].pk]
    assert statuses(files)[1] in FINAL_OR_STAGED
    assert [statuses(files)[n] for n in (0, 2, 3)] == [FileStatus.UPLOADED] * 3
    assert [job.id for job in queued("default")] == [enqueue.file_job_id(files[n].pk) for n in (0, 2, 3)]


@pytest.mark.django_db(transaction=True)
def test_a_stop_request_in_a_two_session_group_lets_both_running_files_end_and_hands_the_rest_over(
    user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    files = upload(user, django_capture_on_commit_callbacks, 4)
    original = tasks.file_process
    monkeypatch.setattr(config.worker, "_stop_requested", False)
    second_running, stop_sent = threading.Event(), threading.Event()

    def file_process(*, file_id: int) -> str:
        if file_id == files[0].pk:
            assert second_running.wait(timeout=20)
            config.worker._request_stop(15, None)  # SIGTERM while both run
            stop_sent.set()
        if file_id == files[1].pk:
            second_running.set()
            assert stop_sent.wait(timeout=20)
        return original(file_id=file_id)

    monkeypatch.setattr(tasks, "file_process", file_process)
    django_rq.get_queue("high").empty()

    done = tasks.files_process_job([f.pk for f in files])

    assert list(done) == [files[0].pk, files[1].pk]  # each ended (one batch), then the group stopped
    assert set(statuses(files)[:2]) <= FINAL_OR_STAGED
    assert statuses(files)[2:] == [FileStatus.UPLOADED] * 2
    assert [job.id for job in queued("default")] == [enqueue.file_job_id(f.pk) for f in files[2:]]


def test_inside_an_outer_transaction_a_group_runs_in_that_one_session(
    user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    files = upload(user, django_capture_on_commit_callbacks, 3)
    sessions: set[int] = set()
    original = tasks.file_process
    monkeypatch.setattr(
        tasks, "file_process", lambda *, file_id: sessions.add(_backend_pid()) or original(file_id=file_id)
    )
    django_rq.get_queue("high").empty()

    assert list(tasks.files_process_job([f.pk for f in files])) == [f.pk for f in files]
    assert sessions == {_backend_pid()}  # (other sessions could not see this test's uncommitted upload)


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_a_group_in_two_sessions_unless_another_worker_here_is_busy_too(
    user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(config.worker.os, "cpu_count", lambda: 2)
    sessions: set[int] = set()
    original = tasks.file_process
    monkeypatch.setattr(
        tasks, "file_process", lambda *, file_id: sessions.add(_backend_pid()) or original(file_id=file_id)
    )

    files = upload(user, django_capture_on_commit_callbacks, 4)
    assert drain(monkeypatch) == []
    assert set(statuses(files)) <= FINAL_OR_STAGED
    assert len(sessions) == 2  # the only busy worker on two CPUs: two sessions

    other = Worker(["default"], connection=redis_clean, name="another-worker-here")  # alive: this process's pid
    other.register_birth()
    other.set_state(WorkerStatus.BUSY)
    assert config.worker.cpus_per_busy_worker(redis_clean) == 2  # (this one is idle between jobs)
    sessions.clear()
    files = upload(user, django_capture_on_commit_callbacks, 4, first=10)
    assert drain(monkeypatch) == []
    assert set(statuses(files)) <= FINAL_OR_STAGED
    assert sessions == {_backend_pid()}  # two busy workers on two CPUs: one session each
    other.register_death()
