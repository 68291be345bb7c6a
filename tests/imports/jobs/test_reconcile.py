"""The reconciler re-enqueues lost work, and only lost work; failures end with a readable reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import django_rq
import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.utils import timezone
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from audit.models import AuditEvent
from config.worker import HEARTBEAT_STALE_SECONDS, AirlockWorker
from imports.jobs import enqueue, tasks
from imports.jobs.failures import failure_reason, files_fail_for_job
from imports.jobs.reconcile import reconcile
from imports.models import FileStatus, ImportFile
from imports.pipeline.locks import FILE_LOCK_NAMESPACE
from imports.services.uploads import upload_batch_create
from tests.conftest import csv_upload
from tests.e2e.test_faults import trades_csv

pytestmark = pytest.mark.django_db


@pytest.fixture
def lost_file(user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any) -> ImportFile:
    """An uploaded file whose job never reached Redis (enqueue-on-commit callbacks dropped)."""
    with django_capture_on_commit_callbacks(execute=False):
        _, files = upload_batch_create(owner=user, files=[csv_upload("t.csv", trades_csv(3))])
    return files[0]


def age(file: ImportFile, seconds: int) -> None:
    ImportFile.objects.filter(pk=file.pk).update(updated_at=timezone.now() - timedelta(seconds=seconds))


def run_reconcile(capture: Any, **kwargs: Any) -> dict[str, list[int]]:
    # django_rq enqueues when the transaction commits; the test's transaction never does.
    with capture(execute=True):
        return reconcile(**kwargs)


def test_it_leaves_fresh_work_alone_and_re_enqueues_it_after_the_grace_period(
    lost_file: ImportFile, django_capture_on_commit_callbacks: Any
) -> None:
    assert run_reconcile(django_capture_on_commit_callbacks, grace_seconds=60) == {"files": [], "formats": []}
    age(lost_file, 61)
    assert run_reconcile(django_capture_on_commit_callbacks, grace_seconds=60) == {
        "files": [lost_file.pk],
        "formats": [],
    }
    assert django_rq.get_queue("default").job_ids == [enqueue.file_job_id(lost_file.pk)]


def test_it_does_not_re_enqueue_work_that_has_a_live_job(
    lost_file: ImportFile, django_capture_on_commit_callbacks: Any
) -> None:
    age(lost_file, 600)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue.enqueue_now("high", tasks.file_process_job, lost_file.pk, job_id=enqueue.file_job_id(lost_file.pk))
    assert len(django_rq.get_queue("high")) == 1
    assert run_reconcile(django_capture_on_commit_callbacks, grace_seconds=60)["files"] == []
    assert len(django_rq.get_queue("default")) == 0


def test_a_job_that_failed_for_good_is_not_alive(
    lost_file: ImportFile, django_capture_on_commit_callbacks: Any
) -> None:
    age(lost_file, 600)
    queue = django_rq.get_queue("default", commit_mode="auto")
    job = queue.enqueue(tasks.file_process_job, lost_file.pk, job_id=enqueue.file_job_id(lost_file.pk))
    job.set_status("failed")
    queue.remove(job.id)
    assert run_reconcile(django_capture_on_commit_callbacks, grace_seconds=60)["files"] == [lost_file.pk]


def test_the_grace_period_comes_from_the_settings(
    settings: Any, lost_file: ImportFile, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "RECONCILE_GRACE_SECONDS": 5}
    age(lost_file, 6)
    assert run_reconcile(django_capture_on_commit_callbacks)["files"] == [lost_file.pk]


def test_a_failed_job_fails_its_file_with_a_human_readable_reason(lost_file: ImportFile) -> None:
    reason = failure_reason(OperationalError("terminating connection due to administrator command"), 3)
    assert "temporary fault that persisted after 3 attempts" in reason and "OperationalError" in reason
    assert files_fail_for_job(job_id=enqueue.file_job_id(lost_file.pk), reason=reason) == [lost_file.pk]
    failed = ImportFile.objects.get(pk=lost_file.pk)
    assert failed.status == FileStatus.FAILED and failed.error == reason
    # A finished file is never failed by a late job's failure.
    assert files_fail_for_job(job_id=enqueue.file_job_id(lost_file.pk), reason="late") == []
    bug = failure_reason(KeyError("symbol"), 1)
    assert bug.startswith("The import stopped on an unexpected error (KeyError")


def abandon(
    file: ImportFile, capture: Any, *, status: str = FileStatus.PROCESSING, attempts: int = 1, retries_left: int = -1
) -> Any:
    """The file's job as RQ leaves it when its worker dies mid-file: STARTED, with a started-registry entry
    whose lease has run out; then RQ's registry clean-up (which every worker runs) finds it abandoned."""

    with capture(execute=True):
        enqueue.enqueue_file_process(file.pk)
    queue = django_rq.get_queue("default")
    job = Job.fetch(enqueue.file_job_id(file.pk), connection=queue.connection)
    queue.remove(job.id)
    if retries_left >= 0:
        job.retries_left = retries_left
        job.save()
    job.set_status(JobStatus.STARTED)
    registry = StartedJobRegistry(queue.name, connection=queue.connection)
    queue.connection.zadd(registry.key, {f"{job.id}:dead-worker-execution": 1})
    ImportFile.objects.filter(pk=file.pk).update(status=status, attempts=attempts)
    registry.cleanup()
    return job


def test_a_job_abandoned_by_a_dead_worker_leaves_its_file_to_be_resumed(
    lost_file: ImportFile, django_capture_on_commit_callbacks: Any
) -> None:
    job = abandon(lost_file, django_capture_on_commit_callbacks)
    file = ImportFile.objects.get(pk=lost_file.pk)
    assert file.status == FileStatus.PROCESSING and file.error == ""  # not FAILED: a worker death is transient
    job.refresh()
    # RQ itself retries it (the job keeps its retries), and if that kick is lost too the reconciler re-enqueues.
    assert job.get_status() in ("scheduled", "queued")
    age(file, 120)
    job.delete()
    assert run_reconcile(django_capture_on_commit_callbacks, grace_seconds=60)["files"] == [file.pk]


def test_a_file_whose_worker_dies_at_every_start_ends_failed_saying_so(
    lost_file: ImportFile, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "MAX_FILE_ATTEMPTS": 1}
    abandon(lost_file, django_capture_on_commit_callbacks)
    file = ImportFile.objects.get(pk=lost_file.pk)
    assert file.status == FileStatus.FAILED
    assert "worker processing this file died (killed" in file.error and "started 1 time " in file.error


@pytest.fixture
def other_session() -> Iterator[Any]:
    """A second Postgres session, as a live worker elsewhere has (to hold a file's advisory lock)."""
    s = connection.settings_dict
    other = psycopg.connect(
        dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"], host=s["HOST"], port=s["PORT"] or 5432
    )
    other.autocommit = True
    yield other
    other.close()


def test_an_abandoned_job_out_of_retries_is_still_queued_again_with_its_whole_retry_budget(
    lost_file: ImportFile, django_capture_on_commit_callbacks: Any
) -> None:
    # The job had used its transient retries before its worker died: RQ would move it to its failed
    # registry and leave the file to the reconciler's next round; a death is no transient fault of the file.
    job = abandon(lost_file, django_capture_on_commit_callbacks, retries_left=0)
    assert ImportFile.objects.get(pk=lost_file.pk).status == FileStatus.PROCESSING
    job.refresh()
    assert job.get_status() in ("scheduled", "queued")
    assert job.retries_left == len(settings.AIRLOCK["JOB_RETRY_INTERVALS"])
    assert job.id not in django_rq.get_queue("default").failed_job_registry.get_job_ids()


def test_a_migration_whose_worker_keeps_dying_is_counted_and_ends_failed(
    lost_file: ImportFile, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    # Resuming a migration does not pass through file_process's count of starts: each death counts itself.
    settings.AIRLOCK = {**settings.AIRLOCK, "MAX_FILE_ATTEMPTS": 3}
    abandon(lost_file, django_capture_on_commit_callbacks, status=FileStatus.MIGRATING, attempts=1)
    file = ImportFile.objects.get(pk=lost_file.pk)
    assert (file.status, file.attempts) == (FileStatus.MIGRATING, 2)
    abandon(lost_file, django_capture_on_commit_callbacks, status=FileStatus.MIGRATING, attempts=2)
    file = ImportFile.objects.get(pk=lost_file.pk)
    assert file.status == FileStatus.FAILED and "started 3 times" in file.error
    assert AuditEvent.objects.filter(action="file.failed", object_id=str(file.pk)).count() == 1


def test_a_late_failure_of_an_old_job_never_fails_the_file_a_live_job_works_on(
    lost_file: ImportFile, django_capture_on_commit_callbacks: Any, settings: Any, other_session: Any
) -> None:
    # The reconciler re-enqueued the file and a live worker holds its lock when the old job's failure (or
    # RQ's abandoned-job report of the dead one) arrives: the row and its lock decide, not the callback.
    settings.AIRLOCK = {**settings.AIRLOCK, "MAX_FILE_ATTEMPTS": 1}
    other_session.execute("SELECT pg_advisory_lock(%s, %s)", [FILE_LOCK_NAMESPACE, lost_file.pk])
    abandon(lost_file, django_capture_on_commit_callbacks)
    assert files_fail_for_job(job_id=enqueue.file_job_id(lost_file.pk), reason="late") == []
    assert ImportFile.objects.get(pk=lost_file.pk).status == FileStatus.PROCESSING
    other_session.execute("SELECT pg_advisory_unlock_all()")
    assert files_fail_for_job(job_id=enqueue.file_job_id(lost_file.pk), reason="late") == [lost_file.pk]


def test_a_job_started_by_a_worker_whose_heartbeat_is_stale_is_not_alive(
    lost_file: ImportFile, django_capture_on_commit_callbacks: Any
) -> None:
    # The reconciler asks config.worker.worker_alive, like /healthz: a registration whose process exists (here
    # this test's own pid) but whose heartbeat stopped (a hung or cut-off worker) does not keep its job alive.
    queue = django_rq.get_queue("default")
    worker = AirlockWorker([queue], connection=queue.connection)
    worker.register_birth()
    with django_capture_on_commit_callbacks(execute=True):
        enqueue.enqueue_file_process(lost_file.pk)
    job = queue.fetch_job(enqueue.file_job_id(lost_file.pk))
    queue.remove(job.id)
    job.worker_name = worker.name
    job.save()
    job.set_status(JobStatus.STARTED)
    age(lost_file, 600)
    try:
        assert run_reconcile(django_capture_on_commit_callbacks, grace_seconds=60)["files"] == []  # alive
        stale = datetime.now(UTC) - timedelta(seconds=HEARTBEAT_STALE_SECONDS + 5)
        queue.connection.hset(worker.key, "last_heartbeat", stale.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        assert run_reconcile(django_capture_on_commit_callbacks, grace_seconds=60)["files"] == [lost_file.pk]
    finally:
        worker.register_death()  # no registration of this test's process left for later tests
