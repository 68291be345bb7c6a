"""The staged path and the review actions (approve, reject, correct, move the table) meeting files being
staged or migrated, a worker kill, a failing job and the reconciler. Each test is a sequence that used to
leave a file stuck for good, with rows never imported, or with a wrong status."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from config import worker
from formats.fingerprint import fingerprint
from formats.models import CsvFormat, FormatStatus
from imports.bench.data import HEADER
from imports.jobs import enqueue, failures
from imports.jobs.reconcile import reconcile
from imports.models import FileStatus, ImportFile, Order
from imports.pipeline import process
from imports.pipeline.migrate import format_migrate
from imports.pipeline.process import file_process
from imports.services import retry
from imports.services.uploads import review_approve, review_reject, review_save_mapping, upload_batch_create
from staging.models import StagedRow, StagedStatus
from tests.conftest import csv_upload
from tests.imports.pipeline.test_direct_import_interplay import ROWS, drain, fixed_mapping, holds_csv, holds_upload
from tests.imports.pipeline.test_fastpath import approved_bench_format

pytestmark = pytest.mark.django_db


def pending_bench_format() -> CsvFormat:
    """The bench mapping on a PENDING format of the bench header (an unknown format waiting for review)."""
    fmt = approved_bench_format(fingerprint(HEADER))
    CsvFormat.objects.filter(pk=fmt.pk).update(status=FormatStatus.PENDING)
    fmt.refresh_from_db()
    return fmt


def waiting_holds_file(user: Any, settings: Any) -> tuple[CsvFormat, int]:
    """A pending format and a holds file of it staged and waiting for approval (batches of 7 rows)."""
    settings.AIRLOCK = {**settings.AIRLOCK, "BATCH_SIZE": 7, "FAST_BATCH_SIZE": 7}
    fmt = pending_bench_format()
    _, files = upload_batch_create(owner=user, files=[csv_upload("holds.csv", holds_csv())])
    assert file_process(file_id=files[0].pk) == FileStatus.PENDING_APPROVAL
    return fmt, files[0].pk


@contextmanager
def before_staging(monkeypatch: Any, action: Callable[[Any, Any], None]) -> Iterator[None]:
    """Inside: `action(file, fmt)` runs when a file's job has matched its format and is about to stage its
    rows -- an admin action committing at that moment, before the staging transaction starts."""
    real_stage = process.stage

    def stage(file: Any, fmt: Any, layout: Any, path: Any) -> Any:
        action(file, fmt)
        return real_stage(file, fmt, layout, path)

    monkeypatch.setattr("imports.pipeline.process.stage", stage)
    yield
    monkeypatch.setattr("imports.pipeline.process.stage", real_stage)


def cron_and_jobs(file_id: int, format_id: int) -> str:
    """What the cron and the workers do from here on: reconcile, run whatever it enqueued, a few times."""
    for _ in range(3):
        kicked = reconcile(grace_seconds=0)
        for fid in kicked["formats"]:
            format_migrate(format_id=fid)
        for fid in kicked["files"]:
            drain(fid)
    return ImportFile.objects.get(pk=file_id).status


# --- 1: a rejection committed while a file of the format is being staged -----------------------------------


def test_a_format_rejected_while_one_of_its_files_is_staged_does_not_leave_that_file_waiting_forever(
    user: Any, reviewer: Any, monkeypatch: Any, redis_clean: Any
) -> None:
    fmt = pending_bench_format()

    def rejected(file: Any, fmt_: Any) -> None:
        # The reviewer's rejection commits after this job matched the (pending) format: its "reject the
        # waiting files and their rows" does not see this file (still PROCESSING) nor its rows (not written).
        review_reject(format_id=fmt.pk, actor=reviewer, reason="not a broker export")

    _, files = upload_batch_create(owner=user, files=[csv_upload("new.csv", holds_csv())])
    file_id = files[0].pk
    with before_staging(monkeypatch, rejected):
        file_process(file_id=file_id)

    status = cron_and_jobs(file_id, fmt.pk)
    assert CsvFormat.objects.get(pk=fmt.pk).status == FormatStatus.REJECTED
    open_rows = StagedRow.objects.filter(file_id=file_id, status=StagedStatus.PENDING).count()
    assert status == FileStatus.REJECTED, (
        f"file left {status} with {open_rows} PENDING rows of a rejected format: nothing will ever move it"
    )


# --- 2: a mapping correction while a staged file of the format is being migrated ---------------------------


@contextmanager
def mapping_corrected_after_the_first_orders(monkeypatch: Any, fmt: Any, reviewer: Any, file_id: int) -> Iterator[None]:
    """Between two batches of the run inside, once the file has orders, the reviewer corrects the mapping."""
    real_stop, state = worker.stop_requested, {"fixed": False}

    def fix_between_batches() -> bool:
        if not state["fixed"] and Order.objects.filter(source_file_id=file_id).exists():
            state["fixed"] = True
            review_approve(format_id=fmt.pk, actor=reviewer, mapping=fixed_mapping(fmt))
        return real_stop()

    monkeypatch.setattr("config.worker.stop_requested", fix_between_batches)
    yield
    monkeypatch.setattr("config.worker.stop_requested", real_stop)
    assert state["fixed"], "the run ended before a second batch"


def test_a_mapping_fix_during_the_migration_of_a_staged_file_applies_to_all_its_rows(
    user: Any, reviewer: Any, settings: Any, monkeypatch: Any
) -> None:
    fmt, file_id = waiting_holds_file(user, settings)
    review_approve(format_id=fmt.pk, actor=reviewer)  # approved with the suggested mapping: 'hold' invalid

    with mapping_corrected_after_the_first_orders(monkeypatch, fmt, reviewer, file_id):
        format_migrate(format_id=fmt.pk)  # the approval's format job
    format_migrate(format_id=fmt.pk)  # the correction's format job
    drain(file_id)  # and the reconciler, for good measure

    file = ImportFile.objects.get(pk=file_id)
    failed = list(StagedRow.objects.filter(file_id=file_id, status=StagedStatus.INVALID).values_list("line", flat=True))
    assert (file.status, Order.objects.filter(source_file_id=file_id).count(), file.rows_invalid) == (
        FileStatus.IMPORTED,
        ROWS,
        0,
    ), f"lines {failed} still failed with the mapping that was corrected"


# --- 3: approved while staging, worker killed before the migration starts ----------------------------------


class WorkerKilled(BaseException):
    """SIGKILL / OOM: nothing after this point runs."""


def test_a_worker_killed_right_after_staging_a_file_whose_format_was_approved_meanwhile_is_recovered(
    user: Any, reviewer: Any, monkeypatch: Any, redis_clean: Any
) -> None:
    fmt = pending_bench_format()
    real_migrate = process.file_migrate

    def approved(file: Any, fmt_: Any) -> None:
        # The approval and its format job commit/run before these rows are written: both miss them.
        review_approve(format_id=fmt.pk, actor=reviewer, mapping=fixed_mapping(fmt))
        format_migrate(format_id=fmt.pk)

    def killed(**kwargs: Any) -> str:
        raise WorkerKilled

    monkeypatch.setattr("imports.pipeline.process.file_migrate", killed)
    _, files = upload_batch_create(owner=user, files=[csv_upload("new.csv", holds_csv())])
    file_id = files[0].pk
    with before_staging(monkeypatch, approved), pytest.raises(WorkerKilled):
        file_process(file_id=file_id)
    monkeypatch.setattr("imports.pipeline.process.file_migrate", real_migrate)
    # RQ's failure handling for the dead horse: the file is FAILED with the reason, an admin retries it.
    assert failures.files_fail_for_job(job_id=enqueue.file_job_id(file_id), reason="Work-horse terminated") == [file_id]
    retry.file_retry(file_id=file_id, actor=reviewer)

    status = cron_and_jobs(file_id, fmt.pk)
    file = ImportFile.objects.get(pk=file_id)
    assert (status, Order.objects.filter(source_file_id=file_id).count()) == (FileStatus.IMPORTED, ROWS), (
        f"{file.status}: approved format, {StagedRow.objects.filter(file_id=file_id, status='PENDING').count()} "
        "PENDING rows, and neither the reconciler nor any job will migrate them"
    )


# --- 4: reader settings saved from the admin's change form ---------------------------------------------------

TWO_TRADE_TABLES = """Preliminary trades,,,,,
Date,Ticker,Action,Quantity,Price,Note
2024-01-02,AAA,Buy,1,10.00,estimate
2024-01-02,AAB,Buy,1,10.00,estimate
2024-01-02,AAC,Buy,1,10.00,estimate
2024-01-02,AAD,Buy,1,10.00,estimate
,,,,,
Final trades,,,,,
Date,Ticker,Action,Quantity,Price
2024-01-03,VWRL,Buy,3,98.10
2024-01-04,VUSA,Buy,2,75.00
"""


def approvable(mapping: dict[str, Any]) -> dict[str, Any]:
    mapping = copy.deepcopy(mapping)
    mapping["fields"]["currency"] = {"columns": [], "converter": "constant", "options": {"value": "GBP"}}
    mapping["fields"]["executed_at"]["options"]["tz"] = "Europe/London"
    return mapping


def waiting_two_table_report(user: Any) -> tuple[int, Any, dict[str, Any]]:
    """A report with two trade tables staged from the first one (the format waits for review), its format,
    and an approvable mapping that pins the second table's header line."""
    _, files = upload_batch_create(owner=user, files=[csv_upload("report.csv", TWO_TRADE_TABLES)])
    assert file_process(file_id=files[0].pk) == FileStatus.PENDING_APPROVAL
    fmt = ImportFile.objects.get(pk=files[0].pk).format
    return files[0].pk, fmt, {**approvable(fmt.mapping), "reader": {"section": None, "header_line": 9}}


def test_pinning_the_header_line_with_the_admin_save_button_re_stages_the_waiting_files(
    user: Any, reviewer: Any, client: Any
) -> None:
    import json

    file_id, fmt, mapping = waiting_two_table_report(user)
    assert sorted(StagedRow.objects.filter(file_id=file_id).values_list("line", flat=True)) == [3, 4, 5, 6]

    # README: "set reader.header_line in the mapping and save: the waiting files are re-read and re-staged".
    client.force_login(reviewer)
    response = client.post(
        f"/admin/formats/csvformat/{fmt.pk}/change/",
        {"name": fmt.name, "mapping": json.dumps(mapping), "_save": "Save"},
    )
    assert response.status_code == 302, response.content[:500]
    assert CsvFormat.objects.get(pk=fmt.pk).mapping["reader"]["header_line"] == 9
    # Then the reviewer approves the saved mapping (the Approve button submits the same mapping).
    review_approve(format_id=fmt.pk, actor=reviewer, mapping=mapping)
    format_migrate(format_id=fmt.pk)

    written = sorted(Order.objects.filter(source_file_id=file_id).values_list("source_line", "symbol"))
    assert written == [(10, "VWRL"), (11, "VUSA")], f"the pinned table was never read: {written}"


# --- 5: reader settings changed while another file of the format is being staged ----------------------------


def other_report() -> str:
    return (
        TWO_TRADE_TABLES.replace(",AA", ",BB").replace("VWRL,Buy,3", "VWRL,Buy,4").replace("VUSA,Buy,2", "VUSA,Buy,5")
    )


def test_a_reader_change_while_a_file_of_the_format_is_being_staged_re_reads_that_file_too(
    user: Any, reviewer: Any, monkeypatch: Any
) -> None:
    first, fmt, mapping = waiting_two_table_report(user)

    def reader_changed(file: Any, fmt_: Any) -> None:
        # The second file's job matched the format with the old reader settings; the reviewer's reader
        # change commits before its rows are written: it re-stages the waiting files, this one is not one yet.
        if file.pk != first:
            review_save_mapping(format_id=fmt.pk, actor=reviewer, mapping=mapping)

    _, files = upload_batch_create(owner=user, files=[csv_upload("report2.csv", other_report())])
    second = files[0].pk
    with before_staging(monkeypatch, reader_changed):
        file_process(file_id=second)

    review_approve(format_id=fmt.pk, actor=reviewer, mapping=CsvFormat.objects.get(pk=fmt.pk).mapping)
    format_migrate(format_id=fmt.pk)
    drain(second)

    assert sorted(Order.objects.filter(source_file_id=first).values_list("source_line", flat=True)) == [10, 11]
    written = sorted(Order.objects.filter(source_file_id=second).values_list("source_line", "symbol"))
    lines = sorted(StagedRow.objects.filter(file_id=second).values_list("line", flat=True))
    assert written == [(10, "VWRL"), (11, "VUSA")], (
        f"second file: {ImportFile.objects.get(pk=second).status}, staged lines {lines}, orders {written}"
    )


def test_same_root_cause_a_mapping_fix_between_two_chunks_of_a_running_direct_import(
    user: Any, reviewer: Any, settings: Any, monkeypatch: Any
) -> None:
    fmt, file_id = holds_upload(user, settings)
    with mapping_corrected_after_the_first_orders(monkeypatch, fmt, reviewer, file_id):
        file_process(file_id=file_id)
    format_migrate(format_id=fmt.pk)
    drain(file_id)
    file = ImportFile.objects.get(pk=file_id)
    assert (file.status, Order.objects.filter(source_file_id=file_id).count()) == (FileStatus.IMPORTED, ROWS)


# --- 6: a failing format job fails a file another job is migrating (and finishes) ---------------------------


def test_a_failing_format_job_does_not_fail_a_file_that_another_job_migrates_to_the_end(
    user: Any, reviewer: Any, settings: Any, monkeypatch: Any
) -> None:
    fmt, file_id = waiting_holds_file(user, settings)
    review_approve(format_id=fmt.pk, actor=reviewer, mapping=fixed_mapping(fmt))

    real_stop, state = worker.stop_requested, {"failed": []}

    def format_job_dies_elsewhere() -> bool:
        # This file is migrated by its own job (an admin retry, a reconciler kick, or the file job that
        # found the format approved after staging); meanwhile the format's job dies on another file with a
        # non-transient error, and RQ's failure callback runs.
        if not state["failed"] and Order.objects.filter(source_file_id=file_id).exists():
            state["failed"] = failures.files_fail_for_job(job_id=enqueue.format_job_id(fmt.pk), reason="boom elsewhere")
        return real_stop()

    monkeypatch.setattr("config.worker.stop_requested", format_job_dies_elsewhere)
    ImportFile.objects.filter(pk=file_id).update(status=FileStatus.MIGRATING)
    process.file_migrate(file_id=file_id)  # the file's own job, holding the file's lock throughout
    monkeypatch.setattr("config.worker.stop_requested", real_stop)

    file = ImportFile.objects.get(pk=file_id)
    assert Order.objects.filter(source_file_id=file_id).count() == ROWS and file.rows_imported == ROWS
    assert file.status == FileStatus.IMPORTED, f"{file.status} ({file.error}) with every row imported"
