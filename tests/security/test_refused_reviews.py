"""A refused review changes nothing: every check (permission, segregation, status, the mapping document)
runs before the first write, also when the submitted mapping moves the table (reader.header_line).
Complements tests/security/test_refusals.py: the service-level guards and the refusals after the re-read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from audit.models import AuditEvent
from config.errors import PermissionDenied
from formats.models import CsvFormat
from imports.models import ImportFile
from imports.services.uploads import review_approve, upload_batch_create
from staging.models import StagedRow
from tests.conftest import csv_upload
from tests.imports.services.test_restage import TWO_TABLES
from tests.security.conftest import bearer

pytestmark = pytest.mark.django_db

# The reader takes TWO_TABLES' trades table (line 7); a review moves the format to the cash table above it.
MOVED = {"section": None, "header_line": 2}  # TWO_TABLES' first table: Date,Details,Amount,Balance


def staged_by(owner: Any, run_jobs: Any, capture: Any) -> ImportFile:
    with capture(execute=True):
        _, files = upload_batch_create(owner=owner, files=[csv_upload("report.csv", TWO_TABLES)])
    run_jobs()
    file = ImportFile.objects.get(pk=files[0].pk)
    assert "Details" not in file.format.columns  # the reader took the trades table
    return file


def snapshot(file: ImportFile) -> dict[str, Any]:
    """Everything a review could write: the format, its history, the file, its staged rows, the audit log."""
    fmt = CsvFormat.objects.get(pk=file.format_id)
    file.refresh_from_db()
    return {
        "format": (fmt.status, fmt.columns, fmt.mapping, fmt.sample_rows, fmt.updated_at, fmt.approved_by_id),
        "history": fmt.history.count(),
        "file": (file.status, file.layout, file.rows_staged, file.rows_total),
        "staged": sorted(StagedRow.objects.filter(file=file).values_list("id", "line", "status")),
        "audit": AuditEvent.objects.count(),
    }


def moved(fmt: CsvFormat, **fields: Any) -> dict[str, Any]:
    return {**fmt.mapping, "reader": MOVED, **({"fields": fields} if fields else {})}


FITTING = {  # fields that fit the moved table's columns
    "executed_at": {"columns": ["Date"], "converter": "datetime", "options": {"formats": ["%Y-%m-%d"]}},
    "symbol": {"columns": ["Details"], "converter": "text", "options": {}},
    "side": {"columns": ["Amount"], "converter": "side_from_sign", "options": {}},
    "quantity": {"columns": ["Amount"], "converter": "decimal", "options": {}},
    "price": {"columns": ["Balance"], "converter": "decimal", "options": {}},
    "currency": {"columns": [], "converter": "constant", "options": {"value": "GBP"}},
}


def test_an_uploader_approving_in_the_admin_with_fields_of_the_moved_table_changes_nothing(
    reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The fields name columns only the moved table has: the form leaves them to the service, which refuses
    the uploader before re-reading anything (tests/security/test_refusals.py covers fields valid for both)."""
    reviewer.user_permissions.add(Permission.objects.get(codename="change_csvformat"))
    file = staged_by(reviewer, run_jobs, django_capture_on_commit_callbacks)
    before = snapshot(file)
    client = Client()
    client.force_login(reviewer)
    response = client.post(
        f"/admin/formats/csvformat/{file.format_id}/change/",
        {"name": file.format.name, "mapping": json.dumps(moved(file.format, **FITTING)), "_approve": "1"},
        follow=True,
    )
    assert "Segregation of duties" in response.content.decode()
    assert snapshot(file) == before


def test_a_reader_change_by_someone_without_the_review_permission_changes_nothing(
    user: Any, other_user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The service itself refuses before writing (the API's early permission check is not the only guard)."""
    file = staged_by(user, run_jobs, django_capture_on_commit_callbacks)
    before = snapshot(file)
    with pytest.raises(PermissionDenied, match="approve CSV formats"):
        review_approve(format_id=file.format_id, actor=other_user, mapping=moved(file.format, **FITTING))
    assert snapshot(file) == before


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"options": {"upper": "yes"}}, id="bad-option-type"),
        pytest.param({"colums": ["Details"]}, id="unknown-key"),
    ],
)
def test_an_approval_with_a_moved_table_and_a_bad_mapping_changes_nothing(
    client: Client,
    user: Any,
    reviewer: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
    change: dict[str, Any],
) -> None:
    file = staged_by(user, run_jobs, django_capture_on_commit_callbacks)
    before = snapshot(file)
    fields = {**FITTING, "symbol": {**FITTING["symbol"], **change}}
    response = client.post(
        f"/api/admin/formats/{file.format_id}/approve",
        {"mapping": moved(file.format, **fields)},
        content_type="application/json",
        **bearer(reviewer),
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_mapping"
    assert snapshot(file) == before


def test_an_approval_whose_mapping_fails_against_the_moved_table_changes_nothing(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The fields fit the new columns but a required field is missing: found after the re-read, rolled back."""
    file = staged_by(user, run_jobs, django_capture_on_commit_callbacks)
    before = snapshot(file)
    fields = {name: spec for name, spec in FITTING.items() if name != "price"}
    response = client.post(
        f"/api/admin/formats/{file.format_id}/approve",
        {"mapping": moved(file.format, **fields)},
        content_type="application/json",
        **bearer(reviewer),
    )
    assert response.status_code == 400, response.content
    assert "price" in response.json()["message"]
    assert snapshot(file) == before
