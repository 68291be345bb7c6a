"""The pipeline on real Postgres and Redis: stage, approve, migrate, idempotent re-runs."""

from __future__ import annotations

from typing import Any

import pytest

from formats.models import CsvFormat, FormatStatus
from imports.models import FileStatus, ImportFile, Order
from imports.pipeline.migrate import file_migrate
from imports.pipeline.process import file_process
from imports.services.uploads import review_approve, review_reject, upload_batch_create
from staging.models import StagedRow, StagedStatus
from tests.conftest import csv_upload
from tests.factories import uploaded_file

pytestmark = pytest.mark.django_db

TRADES = """Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref
2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,USD,T-1
2024-03-01 10:15:00,MSFT,Sell,5,410.10,1.00,USD,T-2
2024-03-04 15:59:59,AAPL,Sell,0,174.00,0.50,USD,T-3
"""


def upload(
    owner: Any, text: str = TRADES, name: str = "trades.csv", run_jobs: Any = None, capture: Any = None
) -> ImportFile:
    return uploaded_file(owner, name, text, run_jobs=run_jobs, capture=capture)


def test_an_unknown_header_creates_a_pending_format_and_stages_every_row(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert file.status == FileStatus.PENDING_APPROVAL
    assert file.format.status == FormatStatus.PENDING
    assert file.format.created_by == user
    rows = list(StagedRow.objects.filter(file=file).order_by("line").values_list("line", "raw", "status"))
    assert [line for line, _, _ in rows] == [2, 3, 4]
    assert rows[0][1][:3] == ["2024-03-01 09:30:00", "AAPL", "Buy"]
    assert {status for _, _, status in rows} == {StagedStatus.PENDING}
    assert Order.objects.count() == 0


def test_approval_migrates_valid_rows_and_reports_invalid_ones_with_line_field_and_value(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    run_jobs()
    file.refresh_from_db()
    assert file.status == FileStatus.PARTIAL
    assert (file.rows_imported, file.rows_invalid) == (2, 1)
    failed = StagedRow.objects.get(file=file, status=StagedStatus.INVALID)
    assert failed.line == 4
    assert failed.errors == [{"field": "quantity", "value": "0", "message": "quantity must be greater than 0"}]
    assert Order.objects.filter(owner=user).count() == 2
    assert file.format.__class__.objects.get(pk=file.format_id).approved_by == reviewer


def test_an_approval_leaves_its_rows_to_the_migration_which_keeps_only_the_invalid_ones(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from imports.reports import staging_status
    from imports.selectors import staging_summary

    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert staging_summary(user) == {"rows": 3, "files": 1}
    row_ids = dict(StagedRow.objects.filter(file=file).values_list("line", "id"))
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    # The approval rewrote no staged row (the migration claims PENDING rows of an approved format as they
    # are), and they no longer count as waiting for an approval, on the page or in the API's figures.
    assert set(StagedRow.objects.filter(file=file).values_list("status", flat=True)) == {StagedStatus.PENDING}
    assert staging_summary(user) == {"rows": 0, "files": 0}
    assert staging_status(user)["waiting"] == {"rows": 0, "files": 0}
    assert staging_status(user)["rows"]["APPROVED"] == 3  # shown as before: approved, waiting to migrate
    run_jobs()
    # Imported rows live on as their orders only; the invalid row stays staged with its errors, under its id
    # (a page polling it by id finds it).
    assert list(StagedRow.objects.filter(file=file).values_list("line", "status", "id")) == [
        (4, StagedStatus.INVALID, row_ids[4])
    ]
    assert Order.objects.filter(source_file=file).count() == 2


def test_running_the_migration_again_never_duplicates_orders(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    staged = list(StagedRow.objects.filter(file=file).order_by("line"))
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    run_jobs()
    # Migrated rows are deleted with their batch; the job ran twice (a lost acknowledgement) and the rows were
    # put back by hand (a restored copy of the staging table): still 2 orders.
    assert not StagedRow.objects.filter(file=file).exclude(status=StagedStatus.INVALID).exists()
    StagedRow.objects.filter(file=file).delete()
    for row in staged:
        row.pk, row.status = None, StagedStatus.APPROVED
    StagedRow.objects.bulk_create(staged)
    file_migrate(file_id=file.pk)
    file_process(file_id=file.pk)
    assert Order.objects.filter(source_file=file).count() == 2


def test_a_second_file_of_an_approved_format_imports_without_review(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=first.format_id, actor=reviewer)
    run_jobs()
    second_text = TRADES.replace("T-1", "T-9").replace(",0,174", ",4,174").replace("T-2", "T-8").replace("T-3", "T-7")
    second = upload(
        user, text=second_text, name="march.csv", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks
    )
    assert second.format_id == first.format_id
    assert second.status == FileStatus.IMPORTED
    assert second.rows_imported == 3


def test_rejecting_a_format_rejects_its_staged_rows_and_files(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    review_reject(format_id=file.format_id, actor=reviewer, reason="Not a trade export")
    file.refresh_from_db()
    assert file.status == FileStatus.REJECTED
    assert "Not a trade export" in file.error
    assert set(StagedRow.objects.filter(file=file).values_list("status", flat=True)) == {StagedStatus.REJECTED}
    fmt = CsvFormat.objects.get(pk=file.format_id)
    assert fmt.rejected_by == reviewer and fmt.rejection_reason == "Not a trade export"


def test_the_uploader_cannot_approve_the_format_their_upload_created(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django.contrib.auth.models import Permission

    from config.errors import PermissionDenied

    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    user.user_permissions.add(Permission.objects.get(codename="approve_csvformat"))
    user = type(user).objects.get(pk=user.pk)
    with pytest.raises(PermissionDenied, match="Segregation of duties"):
        review_approve(format_id=file.format_id, actor=user)


def test_the_same_bytes_uploaded_again_return_the_existing_import(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        _, files = upload_batch_create(owner=user, files=[csv_upload("copy.csv", TRADES)])
    assert files[0].pk == first.pk
    assert StagedRow.objects.filter(file=first).count() == 3
    assert ImportFile.objects.count() == 1


def test_correcting_a_wrong_filter_after_approval_re_opens_the_skipped_rows(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    text = TRADES.replace(",0,174", ",4,174") + "\n"  # a trailing blank line the reader skips
    file = upload(user, text=text, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    fmt = CsvFormat.objects.get(pk=file.format_id)
    wrong = {**fmt.mapping, "filters": [{"column": "Buy or Sell", "op": "in", "values": ["Buy"]}]}
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=fmt.pk, actor=reviewer, mapping=wrong)
    run_jobs()
    file.refresh_from_db()
    assert (file.rows_imported, file.rows_skipped) == (1, 3)  # 2 filtered rows + the blank line
    right = {**wrong, "filters": []}
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=fmt.pk, actor=reviewer, mapping=right)
    run_jobs()
    file.refresh_from_db()
    assert (file.status, file.rows_imported, file.rows_skipped, file.rows_invalid) == (FileStatus.IMPORTED, 3, 1, 0)
    assert file.skip_reasons == {"blank line": 1}
    assert Order.objects.filter(source_file=file).count() == 3


def test_uploading_only_files_that_exist_already_leaves_no_empty_batch(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from imports.models import ImportBatch

    first = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        batch, files = upload_batch_create(owner=user, files=[csv_upload("again.csv", TRADES)])
    assert batch.pk == first.batch_id and files[0].pk == first.pk
    assert ImportBatch.objects.count() == 1
