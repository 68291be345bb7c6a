"""The reconciler re-enqueues lost work, and only lost work; failures end with a readable reason."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import django_rq
import pytest
from django.db import OperationalError
from django.utils import timezone

from imports.jobs import enqueue
from imports.jobs.failures import failure_reason, files_fail_for_job
from imports.jobs.reconcile import reconcile
from imports.models import FileStatus, ImportFile
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
        enqueue.enqueue_now("high", enqueue.file_process_job, lost_file.pk, job_id=enqueue.file_job_id(lost_file.pk))
    assert len(django_rq.get_queue("high")) == 1
    assert run_reconcile(django_capture_on_commit_callbacks, grace_seconds=60)["files"] == []
    assert len(django_rq.get_queue("default")) == 0


def test_a_job_that_failed_for_good_is_not_alive(
    lost_file: ImportFile, django_capture_on_commit_callbacks: Any
) -> None:
    age(lost_file, 600)
    queue = django_rq.get_queue("default", commit_mode="auto")
    job = queue.enqueue(enqueue.file_process_job, lost_file.pk, job_id=enqueue.file_job_id(lost_file.pk))
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


def abandon(file: ImportFile, capture: Any) -> Any:
    """The file's job as RQ leaves it when its worker dies mid-file: STARTED, with a started-registry entry
    whose lease has run out; then RQ's registry clean-up (which every worker runs) finds it abandoned."""
    from rq.job import Job, JobStatus
    from rq.registry import StartedJobRegistry

    with capture(execute=True):
        enqueue.enqueue_file_process(file.pk)
    queue = django_rq.get_queue("default")
    job = Job.fetch(enqueue.file_job_id(file.pk), connection=queue.connection)
    queue.remove(job.id)
    job.set_status(JobStatus.STARTED)
    registry = StartedJobRegistry(queue.name, connection=queue.connection)
    queue.connection.zadd(registry.key, {f"{job.id}:dead-worker-execution": 1})
    ImportFile.objects.filter(pk=file.pk).update(status=FileStatus.PROCESSING, attempts=1)
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
    assert "worker processing this file died 1 time (killed" in file.error
