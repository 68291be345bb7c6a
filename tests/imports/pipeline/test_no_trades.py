"""Files that hold no trades end with a verdict the user sees, not in the admins' review queue; an admin who
disagrees turns the format into a pending one and the file waits for review with its rows staged."""

from __future__ import annotations

from typing import Any

from audit.models import AuditEvent
from formats.models import CsvFormat, FormatStatus
from imports.models import FileStatus, ImportFile
from imports.selectors import pending_formats
from imports.services.review import format_has_trades
from staging.models import StagedRow
from tests.imports.pipeline.test_pipeline import upload

MOVIES = "title,year,rating,votes\nAlien,1979,8.5,900000\nHeat,1995,8.3,700000\nUp,2009,8.3,1100000\n"
CASH = (
    "Date,Description,Amount,Balance\n"
    "2024-01-02,Deposit,1000.00,1000.00\n"
    "2024-01-31,Interest,1.25,1001.25\n"
    "2024-02-15,Withdrawal,-200.00,801.25\n"
)
TRADES_ONLY_CASH_ROWS = (
    "Date,Action,Symbol,Quantity,Price,Amount,Currency\n2024-01-02,Buy,AAPL,10,185.20,-1852.00,USD\n"
)


def test_an_unrelated_table_is_declared_no_trades_and_never_queued(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, MOVIES, "movies.csv", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert file.status == FileStatus.NO_TRADES
    assert "No trades found" in file.error and "unrelated data" in file.error
    assert file.format.status == FormatStatus.NO_TRADES
    assert "title" in file.format.verdict
    assert file.format not in list(pending_formats())
    assert StagedRow.objects.filter(file=file).count() == 3  # kept, for an admin who disagrees
    assert AuditEvent.objects.filter(action="format.no_trades", object_id=str(file.format.pk)).exists()


def test_a_cash_statement_is_declared_no_trades_with_the_reason(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, CASH, "cash.csv", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert file.status == FileStatus.NO_TRADES, file.error
    assert "cash" in file.error


def test_twenty_junk_files_in_one_upload_add_nothing_to_the_review_queue(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from imports.services.uploads import upload_batch_create
    from tests.imports.pipeline.test_pipeline import csv_upload

    junk = [csv_upload(f"junk{n}.csv", f"col{n}a,col{n}b,note\n{n},x{n},hello\n{n + 1},y,world\n") for n in range(20)]
    with django_capture_on_commit_callbacks(execute=True):
        upload_batch_create(owner=user, files=junk)
    run_jobs()
    assert ImportFile.objects.filter(status=FileStatus.NO_TRADES).count() == 20
    assert CsvFormat.objects.filter(status=FormatStatus.PENDING).count() == 0
    assert list(pending_formats()) == []


def test_a_trade_file_still_waits_for_review(user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any) -> None:
    file = upload(user, TRADES_ONLY_CASH_ROWS, "t.csv", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert file.status == FileStatus.PENDING_APPROVAL
    assert file.format.status == FormatStatus.PENDING


def test_a_later_file_of_a_no_trades_format_follows_the_verdict(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = upload(user, MOVIES, "a.csv", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    later = MOVIES + "Jaws,1975,8.1,600000\n"
    second = upload(user, later, "b.csv", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert second.format_id == first.format_id
    assert second.status == FileStatus.NO_TRADES


def test_an_admin_overrules_the_verdict_and_the_files_wait_for_review(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, MOVIES, "movies.csv", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    assert format_has_trades(format_id=file.format_id, actor=reviewer) == 1
    file.refresh_from_db()
    assert file.status == FileStatus.PENDING_APPROVAL and file.error == ""
    assert CsvFormat.objects.get(pk=file.format_id).status == FormatStatus.PENDING
    assert list(pending_formats()) == [file.format]
    assert AuditEvent.objects.filter(action="format.has_trades", actor=reviewer).exists()
