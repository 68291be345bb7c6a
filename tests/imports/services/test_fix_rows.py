"""Fixing invalid rows in place: the owner corrects cells on the file page (or the API), the rows are
converted, validated and imported like any staged row, each change audited; refusals change nothing."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.http import Http404
from django.test import Client

from audit.models import AuditEvent
from config.errors import Conflict, InvalidRequest
from imports.models import FileStatus, ImportFile, Order
from imports.pipeline.locks import file_lock
from imports.services.fixes import file_rows_fix
from staging.models import StagedRow, StagedStatus
from tests.imports.api.test_api import bearer
from tests.imports.services.test_idempotency import approved_import

pytestmark = pytest.mark.django_db

# Line 3 has a typo in the quantity, line 4 a date that does not exist.
TRADES = b"""Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref
2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,USD,T-1
2024-03-01 10:15:00,MSFT,Sell,5o,410.10,1.00,USD,T-2
2024-13-04 15:59:59,NVDA,Buy,3,874.00,0.50,USD,T-3
"""


def partial_file(user: Any, reviewer: Any, run_jobs: Any, capture: Any) -> ImportFile:
    file = approved_import(user, reviewer, run_jobs, capture, TRADES)
    assert (file.status, file.rows_imported, file.rows_invalid) == (FileStatus.PARTIAL, 1, 2), file.error
    return file


def column(file: ImportFile, name: str) -> str:
    return next(c for c in file.format.columns if c == name)


def test_the_owner_fixes_a_typo_on_the_page_and_the_row_is_imported_with_the_change_audited(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = partial_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    client.force_login(user)
    page = client.get(f"/imports/{file.pk}/").content.decode()
    assert 'id="fix-form"' in page and 'value="5o"' in page
    index = file.format.columns.index("Shares")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/imports/{file.pk}/fix", {f"cell-3-{index}": "5"}, follow=True)
    assert "1 corrected row sent to import again." in response.content.decode()
    run_jobs()
    done = ImportFile.objects.get(pk=file.pk)
    assert (done.status, done.rows_imported, done.rows_invalid) == (FileStatus.PARTIAL, 2, 1)
    assert Order.objects.filter(source_file=done, broker_trade_id="T-2").get().quantity == 5
    event = AuditEvent.objects.get(action="row.fixed")
    assert event.actor == user and event.details == {
        "line": 3,
        "file_owner": user.get_username(),
        "changes": {"Shares": {"before": "5o", "after": "5"}},
    }


def test_a_fix_that_is_still_wrong_stays_invalid_with_the_new_message(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = partial_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        result = file_rows_fix(file_id=file.pk, owner=user, edits={4: {"Trade Date": "2024-02-30 15:59:59"}})
    assert result.resubmitted == [4]
    run_jobs()
    row = StagedRow.objects.get(file=file, line=4)
    assert row.status == StagedStatus.INVALID and "2024-02-30" in str(row.errors)
    done = ImportFile.objects.get(pk=file.pk)
    assert (done.rows_imported, done.rows_invalid) == (1, 2)
    # The same fix sent again: the row is still invalid, its cells the same: nothing changes.
    again = file_rows_fix(file_id=file.pk, owner=user, edits={4: {"Trade Date": "2024-02-30 15:59:59"}})
    assert (again.resubmitted, again.unchanged) == ([], [4])


def test_sending_the_same_fix_twice_imports_the_row_once(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = partial_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        file_rows_fix(file_id=file.pk, owner=user, edits={3: {"Shares": "5"}})
    run_jobs()
    second = file_rows_fix(file_id=file.pk, owner=user, edits={3: {"Shares": "5"}})
    assert second.not_invalid == [3] and second.resubmitted == []
    assert Order.objects.filter(source_file=file, broker_trade_id="T-2").count() == 1


def test_refusals_change_nothing(
    user: Any, other_user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = partial_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    with pytest.raises(Http404):
        file_rows_fix(file_id=file.pk, owner=other_user, edits={3: {"Shares": "5"}})
    for bad, message in [
        ({3: {"Nope": "5"}}, "no column 'Nope'"),
        ({99: {"Shares": "5"}}, "no row at line"),
        ({3: {"Shares": 5}}, "a cell is text"),
        ({"x": {"Shares": "5"}}, "not a line number"),
        ({}, "Send the rows to fix"),
        ({3: {"Shares": "9" * 20_000}}, "characters per cell"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            file_rows_fix(file_id=file.pk, owner=user, edits=bad)
    ImportFile.objects.filter(pk=file.pk).update(status=FileStatus.ROLLED_BACK)
    with pytest.raises(Conflict, match="only the invalid rows of a finished import"):
        file_rows_fix(file_id=file.pk, owner=user, edits={3: {"Shares": "5"}})
    assert StagedRow.objects.get(file=file, line=3).raw[3] == "5o"
    assert not AuditEvent.objects.filter(action="row.fixed").exists()


def test_the_api_fixes_rows_by_line(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = partial_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/uploads/{file.pk}/rows",
            {"rows": {"3": {"Shares": "5"}, "4": {"Trade Date": "2024-03-04 15:59:59"}}},
            content_type="application/json",
            **bearer(user),
        )
    assert response.status_code == 202, response.content
    assert response.json()["resubmitted"] == [3, 4]
    run_jobs()
    done = ImportFile.objects.get(pk=file.pk)
    assert (done.status, done.rows_imported, done.rows_invalid) == (FileStatus.IMPORTED, 3, 0)
    bad = client.post(f"/api/uploads/{file.pk}/rows", {"rows": []}, content_type="application/json", **bearer(user))
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_fix"


def test_staff_with_the_change_permission_fix_any_users_rows_and_the_audit_names_both(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any, django_user_model: Any
) -> None:
    file = partial_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    # The reviewer is staff without the change permission: another user's file is not theirs to fix.
    with pytest.raises(Http404):
        file_rows_fix(file_id=file.pk, owner=reviewer, edits={3: {"Shares": "5"}})
    reviewer.user_permissions.add(
        Permission.objects.get(content_type__app_label="imports", codename="change_importfile")
    )
    support = django_user_model.objects.get(pk=reviewer.pk)  # fresh permission cache
    with django_capture_on_commit_callbacks(execute=True):
        result = file_rows_fix(file_id=file.pk, owner=support, edits={3: {"Shares": "5"}})
    assert result.resubmitted == [3]
    run_jobs()
    assert Order.objects.filter(source_file=file, broker_trade_id="T-2").count() == 1
    event = AuditEvent.objects.get(action="row.fixed")
    assert event.actor_id == support.pk and event.details["file_owner"] == user.get_username()


def test_a_fix_while_a_worker_holds_the_files_lock_is_refused_and_changes_nothing(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = partial_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    held, release = threading.Event(), threading.Event()

    def worker() -> None:  # another session (a worker re-importing or rolling back the file) holds its lock
        try:
            with file_lock(file.pk) as acquired:
                assert acquired
                held.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(Conflict, match="being imported right now"):
            file_rows_fix(file_id=file.pk, owner=user, edits={3: {"Shares": "5"}})
    finally:
        release.set()
        thread.join()
    assert StagedRow.objects.get(file=file, line=3).raw[3] == "5o"
    assert ImportFile.objects.get(pk=file.pk).rows_invalid == 2
    assert not AuditEvent.objects.filter(action="row.fixed").exists()


def test_a_fix_that_turns_a_row_into_an_existing_trade_is_a_duplicate_as_in_the_pipeline(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = partial_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    same_as_line_2 = {"Trade Date": "2024-03-01 09:30:00", "Ticker": "AAPL", "Buy or Sell": "Buy", "Shares": "10"}
    same_as_line_2 |= {"Fill Price": "171.25", "Fee": "1.00", "Ref": "T-1"}
    with django_capture_on_commit_callbacks(execute=True):
        assert file_rows_fix(file_id=file.pk, owner=user, edits={3: same_as_line_2}).resubmitted == [3]
    run_jobs()
    done = ImportFile.objects.get(pk=file.pk)
    assert (done.rows_imported, done.rows_duplicate, done.rows_invalid) == (1, 1, 1)
    assert Order.objects.filter(broker_trade_id="T-1").count() == 1
    assert StagedRow.objects.get(file=file, line=3).status == StagedStatus.DUPLICATE
