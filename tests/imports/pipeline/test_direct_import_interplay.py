"""A file imported straight from its stored file (the direct import) and the other events that can meet it
part-way: a mapping fix, an admin retry, a rollback, retention, a failing format job, an approval while a
file is staged. Each test is a sequence that used to end with rows never read, written twice, or a wrong
status."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from formats.fingerprint import fingerprint
from imports.bench.data import HEADER
from imports.jobs import enqueue, failures
from imports.models import FileStatus, ImportFile, Order
from imports.pipeline.migrate import format_migrate
from imports.pipeline.process import file_process
from imports.services import retry
from imports.services.uploads import review_approve, upload_batch_create
from staging.models import StagedRow, StagedStatus
from tests.conftest import csv_upload
from tests.imports.pipeline.test_fastpath import approved_bench_format, fail_the_job_at_chunk, row

pytestmark = pytest.mark.django_db

ROWS = 20


def holds_csv(n: int = ROWS, *, trade_ids: bool = True) -> str:
    """n rows, every third one with side 'hold' (invalid until the mapping maps it)."""
    lines = []
    for i in range(n):
        cells = row()
        cells[HEADER.index("Side")] = "hold" if i % 3 == 0 else "Sell"
        cells[HEADER.index("Trade ID")] = f"T{i}" if trade_ids else ""
        cells[HEADER.index("Quantity")] = str(10 + i)
        lines.append(",".join(cells))
    return ",".join(HEADER) + "\n" + "\n".join(lines) + "\n"


def fixed_mapping(fmt: Any) -> dict[str, Any]:
    mapping = copy.deepcopy(fmt.mapping)
    mapping["fields"]["side"]["options"] = {"map": {"hold": "BUY"}}
    return mapping


def drain(file_id: int) -> str:
    """What the reconciler / RQ would do: run the file's job while it is unfinished."""
    status = ImportFile.objects.get(pk=file_id).status
    for _ in range(50):
        if status not in (FileStatus.UPLOADED, FileStatus.PROCESSING, FileStatus.MIGRATING):
            break
        status = file_process(file_id=file_id)
    return status


def holds_upload(owner: Any, settings: Any, *, dedupe: bool = True) -> tuple[Any, int]:
    """The approved bench format and an uploaded holds file of it, processed in chunks of 7 rows."""
    settings.AIRLOCK = {**settings.AIRLOCK, "BATCH_SIZE": 7, "FAST_BATCH_SIZE": 7}
    fmt = approved_bench_format(fingerprint(HEADER))
    _, files = upload_batch_create(owner=owner, files=[csv_upload("holds.csv", holds_csv())], dedupe=dedupe)
    return fmt, files[0].pk


def direct_import_failing_at_chunk(owner: Any, settings: Any, monkeypatch: Any, *, chunk: int, dedupe: bool = True):
    """Upload the holds file (chunks of 7) and let its job die on an unexpected error in that chunk;
    RQ's failure callback fails the file."""
    fmt, file_id = holds_upload(owner, settings, dedupe=dedupe)
    fail_the_job_at_chunk(file_id, chunk, monkeypatch)
    assert 0 < Order.objects.filter(source_file_id=file_id).count() < ROWS
    return fmt, file_id


# --- A: a mapping fix while a direct import is FAILED part-way ------------------------------------------


def test_a_mapping_fix_while_a_direct_import_is_failed_part_way_does_not_settle_it_with_the_prefix(
    user: Any, reviewer: Any, django_user_model: Any, settings: Any, monkeypatch: Any
) -> None:
    fmt, file_id = direct_import_failing_at_chunk(user, settings, monkeypatch, chunk=2)
    assert StagedRow.objects.filter(file_id=file_id, status=StagedStatus.INVALID).exists()

    # The admin fixes the approved format's mapping (for this or any other file of the format).
    review_approve(format_id=fmt.pk, actor=reviewer, mapping=fixed_mapping(fmt))
    format_migrate(format_id=fmt.pk)
    status = drain(file_id)
    if status == FileStatus.FAILED:
        # Still failed: the admin retries it, as a failed import is meant to be.
        admin = django_user_model.objects.create_superuser(username="admin-a")
        retry.file_retry(file_id=file_id, actor=admin)
        status = drain(file_id)

    file = ImportFile.objects.get(pk=file_id)
    assert Order.objects.filter(source_file_id=file_id).count() == ROWS, (file.status, file.rows_total)
    assert (file.status, file.rows_total, file.rows_imported, file.rows_invalid) == (
        FileStatus.IMPORTED,
        ROWS,
        ROWS,
        0,
    )


# --- B: a mapping fix after a rollback -------------------------------------------------------------------


def rolled_back_holds_file(user: Any, reviewer: Any) -> tuple[Any, int]:
    """The approved format and a file of it imported PARTIAL (its 'hold' rows failed), then rolled back."""
    from imports.services.rollback import file_rollback

    fmt = approved_bench_format(fingerprint(HEADER))
    _, files = upload_batch_create(owner=user, files=[csv_upload("holds.csv", holds_csv())])
    assert file_process(file_id=files[0].pk) == FileStatus.PARTIAL
    file_rollback(file_id=files[0].pk, actor=reviewer)
    assert not Order.objects.filter(source_file_id=files[0].pk).exists()
    return fmt, files[0].pk


def test_a_mapping_fix_after_a_rollback_does_not_bring_the_rolled_back_file_back(
    user: Any, reviewer: Any, settings: Any
) -> None:
    fmt, file_id = rolled_back_holds_file(user, reviewer)

    review_approve(format_id=fmt.pk, actor=reviewer, mapping=fixed_mapping(fmt))
    format_migrate(format_id=fmt.pk)
    drain(file_id)

    file = ImportFile.objects.get(pk=file_id)
    back = Order.objects.filter(source_file_id=file_id).count()
    assert (file.status, back) == (FileStatus.ROLLED_BACK, 0), f"{back} orders written again after the rollback"


def test_a_mapping_fix_after_a_rollback_and_a_re_upload_of_the_same_file_still_works(
    user: Any, reviewer: Any, settings: Any
) -> None:
    fmt, first = rolled_back_holds_file(user, reviewer)
    _, files = upload_batch_create(owner=user, files=[csv_upload("holds.csv", holds_csv())])
    second = files[0].pk
    assert second != first
    assert file_process(file_id=second) == FileStatus.PARTIAL

    # The admin fixes the mapping so that the 'hold' rows of the new upload import too.
    review_approve(format_id=fmt.pk, actor=reviewer, mapping=fixed_mapping(fmt))
    format_migrate(format_id=fmt.pk)

    assert ImportFile.objects.get(pk=second).status == FileStatus.IMPORTED
    assert Order.objects.filter(source_file_id=second).count() == ROWS
    assert ImportFile.objects.get(pk=first).status == FileStatus.ROLLED_BACK


# --- C: retention purges a failed direct import that wrote orders ---------------------------------------


def test_retention_does_not_purge_a_failed_direct_import_that_wrote_orders(
    user: Any, settings: Any, monkeypatch: Any
) -> None:
    from imports.services.retention import cleanup_staging

    _, file_id = direct_import_failing_at_chunk(user, settings, monkeypatch, chunk=2, dedupe=False)
    written = Order.objects.filter(source_file_id=file_id).count()

    cleanup_staging(days=0)  # the daily cron, once the retention period has passed

    status = ImportFile.objects.get(pk=file_id).status
    # The user sees the file purged (PURGED = "never produced orders") and uploads the same bytes again:
    # the same bytes from the same owner must stay one import.
    _, files = upload_batch_create(owner=user, files=[csv_upload("holds.csv", holds_csv())], dedupe=False)
    if not files[0].is_existing:
        drain(files[0].pk)
    lines = list(Order.objects.filter(owner=user).values_list("source_line", flat=True))
    assert len(lines) == len(set(lines)), (
        f"{len(lines) - len(set(lines))} rows written twice ({written} orders of the first file, now {status})"
    )


# --- E: a mapping fix outside the SQL subset while a direct import is part-way ---------------------------


def fills_csv(lines: list[list[str]]) -> str:
    return ",".join(HEADER) + "\n" + "\n".join(",".join(cells) for cells in lines) + "\n"


def same_fill() -> list[str]:
    """A fill without a trade id: its dedupe key is its fingerprint plus an occurrence counter (#n)."""
    cells = row()
    cells[HEADER.index("Trade ID")] = ""
    return cells


def other_fill(n: int) -> list[str]:
    cells = row()
    cells[HEADER.index("Trade ID")] = f"X{n}"
    return cells


def test_a_direct_import_resumed_through_staging_does_not_write_identical_fills_twice(
    user: Any, reviewer: Any, settings: Any, monkeypatch: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "BATCH_SIZE": 7, "FAST_BATCH_SIZE": 7}
    fmt = approved_bench_format(fingerprint(HEADER))
    # An earlier export already imported: the same fill twice.
    _, files = upload_batch_create(owner=user, files=[csv_upload("monday.csv", fills_csv([same_fill()] * 2))])
    assert file_process(file_id=files[0].pk) == FileStatus.IMPORTED
    # The next export overlaps it: the fill four times (two of them new), lines 2-4 and 12.
    lines = [same_fill()] * 3 + [other_fill(n) for n in range(7)] + [same_fill()]
    _, files = upload_batch_create(owner=user, files=[csv_upload("week.csv", fills_csv(lines))])
    file_id = files[0].pk
    monkeypatch.setattr("config.worker.stop_requested", lambda: True)  # the worker stops after one chunk
    assert file_process(file_id=file_id) == FileStatus.PROCESSING

    # The admin adds a row filter to the approved format (it skips nothing in these files); the side_word
    # filter is outside the SQL subset, so the rest of the file is no longer read directly.
    mapping = copy.deepcopy(fmt.mapping)
    mapping["filters"] = [{"column": "Side", "op": "side_word"}]
    review_approve(format_id=fmt.pk, actor=reviewer, mapping=mapping)
    format_migrate(format_id=fmt.pk)
    monkeypatch.setattr("config.worker.stop_requested", lambda: False)
    assert drain(file_id) == FileStatus.IMPORTED

    file = ImportFile.objects.get(pk=file_id)
    fills = Order.objects.filter(owner=user, broker_trade_id="").count()
    assert fills == 4, f"the fill is in production {fills} times (4 in the exports)"
    assert (file.rows_imported, file.rows_duplicate) == (Order.objects.filter(source_file=file).count(), 2)
    from audit.models import AuditEvent

    restaged = AuditEvent.objects.get(action="rows.restaged", object_id=str(file_id))
    assert restaged.details["rows_removed"] == 7, restaged.summary


def test_the_same_file_and_mapping_fix_without_the_pause_for_comparison(
    user: Any, reviewer: Any, settings: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "BATCH_SIZE": 7, "FAST_BATCH_SIZE": 7}
    fmt = approved_bench_format(fingerprint(HEADER))
    _, files = upload_batch_create(owner=user, files=[csv_upload("monday.csv", fills_csv([same_fill()] * 2))])
    assert file_process(file_id=files[0].pk) == FileStatus.IMPORTED
    mapping = copy.deepcopy(fmt.mapping)
    mapping["filters"] = [{"column": "Side", "op": "side_word"}]
    review_approve(format_id=fmt.pk, actor=reviewer, mapping=mapping)
    lines = [same_fill()] * 3 + [other_fill(n) for n in range(7)] + [same_fill()]
    _, files = upload_batch_create(owner=user, files=[csv_upload("week.csv", fills_csv(lines))])
    assert drain(files[0].pk) == FileStatus.IMPORTED
    assert Order.objects.filter(owner=user, broker_trade_id="").count() == 4


# --- D: a failed format job fails a file it did not work on ----------------------------------------------


def test_a_failed_format_job_does_not_fail_a_direct_import_that_is_still_being_read(
    user: Any, reviewer: Any, settings: Any, monkeypatch: Any
) -> None:
    fmt, file_id = holds_upload(user, settings)
    monkeypatch.setattr("config.worker.stop_requested", lambda: True)  # worker restart after one chunk
    assert file_process(file_id=file_id) == FileStatus.PROCESSING
    monkeypatch.setattr("config.worker.stop_requested", lambda: False)

    # A mapping fix re-opens the file's failed rows; the format's job then dies on some other file of the
    # format (any non-transient error): RQ's failure callback fails the files with open rows.
    review_approve(format_id=fmt.pk, actor=reviewer, mapping=fixed_mapping(fmt))
    failures.files_fail_for_job(job_id=enqueue.format_job_id(fmt.pk), reason="boom in another file")

    file = ImportFile.objects.get(pk=file_id)
    assert file.status == FileStatus.PROCESSING, f"{file.status}: {file.error}"


# --- F: an approval committed while a file of the format is being read ------------------------------------


def test_a_format_approved_while_one_of_its_files_is_read_still_migrates_that_file(
    user: Any, reviewer: Any, monkeypatch: Any
) -> None:
    from formats.models import FormatStatus
    from tests.imports.pipeline.test_staged_review_interplay import before_staging, pending_bench_format

    fmt = pending_bench_format()

    def approved(file: Any, fmt_: Any) -> None:
        # The file's job matched the format while it was pending; the reviewer's approval commits before
        # this job's staging transaction starts. (Once it has started, the format row's share lock makes an
        # approval wait for these rows, which it then approves with the others.)
        assert fmt_.status == FormatStatus.PENDING
        review_approve(format_id=fmt.pk, actor=reviewer, mapping=fixed_mapping(fmt))

    _, files = upload_batch_create(owner=user, files=[csv_upload("new.csv", holds_csv())])
    with before_staging(monkeypatch, approved):
        status = file_process(file_id=files[0].pk)

    assert status == FileStatus.IMPORTED
    assert Order.objects.filter(source_file_id=files[0].pk).count() == ROWS
