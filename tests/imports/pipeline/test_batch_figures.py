"""What users are shown of their files and batches against what Postgres holds: after a job's failure, a
rejection, a rollback, a retry and a correction, and when two workers finish a batch's last files at once."""

from __future__ import annotations

import threading
from typing import Any

import django_rq
import pytest
from django.db import connection
from django.db.models import Count
from django.test import Client

from formats.fingerprint import fingerprint
from imports.api.batches import batch_summary
from imports.bench.data import HEADER
from imports.models import FileStatus, ImportBatch, ImportFile, Order
from imports.selectors import file_summary
from imports.services.uploads import review_approve, review_reject, upload_batch_create
from tests.conftest import csv_upload
from tests.imports.pipeline.test_direct_import_interplay import holds_csv
from tests.imports.pipeline.test_fastpath import approved_bench_format
from tests.imports.pipeline.test_staged_review_interplay import pending_bench_format, waiting_holds_file

pytestmark = pytest.mark.django_db


def summary(batch_id: int) -> dict[str, Any]:
    return batch_summary(ImportBatch.objects.get(pk=batch_id))


def worker_burst() -> None:
    from rq import SimpleWorker

    queues = [django_rq.get_queue(name) for name in ("high", "default", "bulk")]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True)


def test_a_batch_whose_only_file_failed_in_its_job_shows_failed(
    user: Any, monkeypatch: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """RQ's failure callback fails the file, and refreshes its batch (no job of the file will)."""
    approved_bench_format(fingerprint(HEADER))
    with django_capture_on_commit_callbacks(execute=True):
        batch, files = upload_batch_create(owner=user, files=[csv_upload("holds.csv", holds_csv())])

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    for prepare in ("chunk_prepare", "block_prepare"):  # the rows' cells from Python, or the lines for Postgres
        monkeypatch.setattr(f"imports.pipeline.fastpath.{prepare}", boom)
    worker_burst()
    assert ImportFile.objects.get(pk=files[0].pk).status == FileStatus.FAILED
    shown = summary(batch.pk)
    assert shown["files"]["by_status"] == {"FAILED": 1}
    assert shown["status"] == "FAILED", f"batch shows {shown['status']} while its only file FAILED"


def test_a_batch_whose_waiting_file_was_rejected_shows_failed(
    user: Any, reviewer: Any, redis_clean: Any, client: Client
) -> None:
    fmt = pending_bench_format()
    batch, files = upload_batch_create(owner=user, files=[csv_upload("holds.csv", holds_csv())])
    from imports.jobs.tasks import file_process_job

    assert file_process_job(files[0].pk) == FileStatus.PENDING_APPROVAL
    # Nothing left to process: the upload waits for an admin, it is not "Processing" for good.
    assert summary(batch.pk)["status"] == "WAITING"
    assert summary(batch.pk)["status_display"] == "Waiting for approval"
    client.force_login(reviewer)  # the admin's list of uploads says so too
    assert "Waiting for approval" in client.get("/admin/imports/importbatch/").content.decode()
    review_reject(format_id=fmt.pk, actor=reviewer, reason="not a broker export")
    assert ImportFile.objects.get(pk=files[0].pk).status == FileStatus.REJECTED
    shown = summary(batch.pk)
    assert shown["status"] == "FAILED", f"batch shows {shown['status']} while its only file is REJECTED"


def test_a_rolled_back_file_shows_no_imported_rows_and_its_batch_is_no_longer_completed(
    user: Any, reviewer: Any, settings: Any, redis_clean: Any
) -> None:
    from imports.jobs.tasks import file_process_job
    from imports.services.rollback import file_rollback

    approved_bench_format(fingerprint(HEADER))
    text = holds_csv().replace("hold", "Buy")  # every row valid: IMPORTED
    batch, files = upload_batch_create(owner=user, files=[csv_upload("ok.csv", text)])
    assert file_process_job(files[0].pk) == FileStatus.IMPORTED
    assert summary(batch.pk)["status"] == "COMPLETED"
    file_rollback(file_id=files[0].pk, actor=reviewer)
    assert Order.objects.filter(source_file_id=files[0].pk).count() == 0
    file = ImportFile.objects.get(pk=files[0].pk)
    shown_file = file_summary(file)
    shown_batch = summary(batch.pk)
    problems = []
    if shown_file["rows"]["imported"] != 0:
        problems.append(f"file ROLLED_BACK shows rows.imported={shown_file['rows']['imported']} with 0 orders")
    if shown_batch["rows"]["imported"] != 0:
        problems.append(f"batch shows rows.imported={shown_batch['rows']['imported']}")
    if shown_batch["status"] == "COMPLETED":
        problems.append("batch still COMPLETED with its only file ROLLED_BACK")
    assert not problems, problems


def test_a_staged_migration_failed_midway_then_retried_and_mapping_fixed_keeps_counters_true(
    user: Any, reviewer: Any, settings: Any, monkeypatch: Any, redis_clean: Any
) -> None:
    """Counters after: staged file, migration dies at batch 2, admin retry, then a mapping fix re-opens holds."""
    from formats.models import CsvFormat
    from imports.jobs import enqueue, failures
    from imports.pipeline.migrate import format_migrate
    from imports.services.retry import file_retry
    from staging.models import StagedRow
    from tests.imports.pipeline.test_direct_import_interplay import drain, fixed_mapping

    fmt, fid = waiting_holds_file(user, settings)
    review_approve(format_id=fmt.pk, actor=reviewer, mapping=CsvFormat.objects.get(pk=fmt.pk).mapping)
    from imports.pipeline import fastpath

    real, calls = fastpath.batch_prepare, {"n": 0}

    def failing(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        return real(*a, **k)

    monkeypatch.setattr("imports.pipeline.fastpath.batch_prepare", failing)
    with pytest.raises(RuntimeError):
        format_migrate(format_id=fmt.pk)
    monkeypatch.setattr("imports.pipeline.fastpath.batch_prepare", real)
    assert failures.files_fail_for_job(job_id=enqueue.format_job_id(fmt.pk), reason="x") == [fid]
    file_retry(file_id=fid, actor=reviewer)
    drain(fid)
    format_migrate(format_id=fmt.pk)
    review_approve(format_id=fmt.pk, actor=reviewer, mapping=fixed_mapping(CsvFormat.objects.get(pk=fmt.pk)))
    format_migrate(format_id=fmt.pk)
    f = ImportFile.objects.get(pk=fid)
    orders = Order.objects.filter(source_file_id=fid).count()
    by = dict(StagedRow.objects.filter(file_id=fid).values_list("status").annotate(n=Count("id")))
    shown = file_summary(f)
    assert (f.status, shown["rows"]["imported"], shown["rows"]["invalid"], shown["progress"]) == (
        "IMPORTED",
        orders,
        0,
        100.0,
    ), (f.status, shown["rows"], shown["progress"], orders, by)
    assert shown["rows"]["total"] == 20 and orders == 20


@pytest.mark.django_db(transaction=True)
def test_two_workers_finishing_a_batch_at_once_leave_it_completed(user: Any, monkeypatch: Any) -> None:
    """Worker A has read the batch's file statuses (B's file still migrating) and is about to write; B's file
    commits IMPORTED and B refreshes the batch: B must wait for A and then read both files finished."""
    from imports import lifecycle

    batch = ImportBatch.objects.create(owner=user, status="PENDING")
    a, b = (
        ImportFile.objects.create(
            batch=batch, owner=user, original_name=name, stored_name=name, sha256=name * 8, size=1, status=status
        )
        for name, status in (("a", FileStatus.IMPORTED), ("b", FileStatus.MIGRATING))
    )
    real_now, about_to_write, go = lifecycle.timezone.now, threading.Event(), threading.Event()

    def paused_in_a() -> Any:
        if threading.current_thread().name == "worker-a":
            about_to_write.set()  # A computed PROCESSING from (IMPORTED, MIGRATING)
            go.wait(10)
        return real_now()

    monkeypatch.setattr(lifecycle.timezone, "now", paused_in_a)

    def refresh() -> None:
        try:
            lifecycle.batch_refresh_status(batch_id=batch.pk)
        finally:
            connection.close()

    worker_a = threading.Thread(target=refresh, name="worker-a")
    worker_a.start()
    assert about_to_write.wait(10)
    ImportFile.objects.filter(pk=b.pk).update(status=FileStatus.IMPORTED)  # B's file commits...
    worker_b = threading.Thread(target=refresh, name="worker-b")  # ...and B refreshes the batch
    worker_b.start()
    worker_b.join(1.0)
    waited = worker_b.is_alive()
    go.set()
    worker_a.join(10)
    worker_b.join(10)

    assert waited, "B did not wait for A's refresh to commit"
    assert ImportBatch.objects.get(pk=batch.pk).status == "COMPLETED"
    assert ImportFile.objects.filter(pk=a.pk, status=FileStatus.IMPORTED).exists()
