"""A refused review request changes nothing; a malformed mapping document or reject reason is refused clearly.

Issue 14, items 6 and 7: the segregation check ran after a reader change had already rewritten the format
and re-staged its files; unknown keys in a mapping were stored; a non-text reject reason was stored as a
Python repr.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from audit.models import AuditEvent
from formats.models import CsvFormat, FormatStatus
from formats.targets import get_target
from imports.models import ImportFile
from staging.models import StagedRow
from tests.imports.services.test_restage import staged_file
from tests.security.conftest import bearer

pytestmark = pytest.mark.django_db


def snapshot(fmt_id: int) -> dict[str, Any]:
    fmt = CsvFormat.objects.get(pk=fmt_id)
    return {
        "columns": fmt.columns,
        "mapping": fmt.mapping,
        "status": fmt.status,
        "history": fmt.history.count(),
        "staged": sorted(StagedRow.objects.filter(format_id=fmt_id).values_list("pk", "line", "status")),
        "audit": AuditEvent.objects.count(),
    }


def test_an_uploader_approving_their_own_format_with_a_new_header_line_is_refused_and_nothing_changes(
    client: Client, settings: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "ALLOW_SELF_APPROVAL": False}
    file = staged_file(reviewer, run_jobs, django_capture_on_commit_callbacks)  # the reviewer uploads it
    before = snapshot(file.format_id)
    # The reader took TWO_TABLES' trades table; the request moves the format to the cash table above it.
    assert "Details" not in before["columns"] and before["staged"]
    mapping = {**before["mapping"], "reader": {"section": None, "header_line": 2}}
    response = client.post(
        f"/api/admin/formats/{file.format_id}/approve",
        {"mapping": mapping},
        content_type="application/json",
        **bearer(reviewer),
    )
    assert response.status_code == 403, response.content
    assert "Segregation of duties" in response.json()["message"]
    assert snapshot(file.format_id) == before
    assert ImportFile.objects.get(pk=file.pk).status == file.status


def test_the_admin_approve_button_refuses_the_uploader_before_the_reader_change(
    client: Client, settings: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "ALLOW_SELF_APPROVAL": False}
    file = staged_file(reviewer, run_jobs, django_capture_on_commit_callbacks)
    before = snapshot(file.format_id)
    # A mapping valid for today's columns and for the moved table's ('Date' is in both): the form accepts it.
    fields = {
        field.name: {"columns": ["Date"], "converter": "text", "options": {}}
        for field in get_target(file.format.target).required_fields()
    }
    mapping = {**before["mapping"], "fields": fields, "reader": {"section": None, "header_line": 2}}
    client.force_login(reviewer)
    response = client.post(
        f"/admin/formats/csvformat/{file.format_id}/change/",
        {"name": "report", "mapping": json.dumps(mapping), "_approve": "1"},
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    assert any("Segregation of duties" in m for m in shown), shown
    assert snapshot(file.format_id) == before


def test_an_approval_whose_mapping_fails_validation_after_a_reader_change_changes_nothing(
    reviewer: Any, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from config.errors import MappingError
    from imports.services.uploads import review_approve

    file = staged_file(user, run_jobs, django_capture_on_commit_callbacks)
    before = snapshot(file.format_id)
    # The fields fit the moved table's columns, but the converter is unknown: refused after the re-read.
    mapping = {
        **before["mapping"],
        "reader": {"section": None, "header_line": 2},
        "fields": {"symbol": {"columns": ["Details"], "converter": "no-such-converter", "options": {}}},
    }
    with pytest.raises(MappingError):
        review_approve(format_id=file.format_id, actor=reviewer, mapping=mapping)
    assert snapshot(file.format_id) == before


# --------------------------------------------------------------------------------------------------
# Unknown keys in the mapping document: the API, the admin form and the import command share one check

UNKNOWN_KEYS = {
    "top level": (lambda m: {**m, "colour": "red"}, "'colour'", "version, reader, filters, fields"),
    "reader": (lambda m: {**m, "reader": {**m["reader"], "sheet": "x"}}, "'sheet'", "section, header_line"),
    "field spec": (
        lambda m: {**m, "fields": {**m["fields"], "symbol": {**m["fields"]["symbol"], "column": ["Ticker"]}}},
        "'column'",
        "columns, converter, options, confidence, reason",
    ),
    "filter rule": (
        lambda m: {**m, "filters": [{"column": m["fields"]["symbol"]["columns"][0], "op": "in", "valeus": ["A"]}]},
        "'valeus'",
        "column, op, values, value",
    ),
}


@pytest.fixture
def pending_format(user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any) -> CsvFormat:
    from tests.imports.pipeline.test_pipeline import upload

    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    fmt = CsvFormat.objects.get(pk=file.format_id)
    assert fmt.status == FormatStatus.PENDING
    return fmt


@pytest.mark.parametrize("where", list(UNKNOWN_KEYS))
def test_the_api_refuses_unknown_mapping_keys_naming_them(
    client: Client, reviewer: Any, pending_format: CsvFormat, where: str
) -> None:
    change, key, allowed = UNKNOWN_KEYS[where]
    before = snapshot(pending_format.pk)
    response = client.post(
        f"/api/admin/formats/{pending_format.pk}/approve",
        {"mapping": change(pending_format.mapping)},
        content_type="application/json",
        **bearer(reviewer),
    )
    assert response.status_code == 400, response.content
    message = response.json()["message"]
    assert key in message and allowed in message, message
    assert snapshot(pending_format.pk) == before


@pytest.mark.parametrize("where", list(UNKNOWN_KEYS))
def test_the_admin_form_refuses_unknown_mapping_keys_naming_them(
    client: Client, reviewer: Any, pending_format: CsvFormat, where: str
) -> None:
    change, key, allowed = UNKNOWN_KEYS[where]
    before = snapshot(pending_format.pk)
    client.force_login(reviewer)
    for button in ("_save", "_approve"):
        response = client.post(
            f"/admin/formats/csvformat/{pending_format.pk}/change/",
            {"name": pending_format.name, "mapping": json.dumps(change(pending_format.mapping)), button: "1"},
            follow=True,
        )
        page = response.content.decode()
        assert key.replace("'", "&#x27;") in page and allowed in page, button
        assert snapshot(pending_format.pk) == before


@pytest.mark.parametrize("where", list(UNKNOWN_KEYS))
def test_the_format_import_command_refuses_unknown_mapping_keys_naming_them(
    tmp_path: Any, reviewer: Any, pending_format: CsvFormat, where: str
) -> None:
    change, key, allowed = UNKNOWN_KEYS[where]
    exported = tmp_path / "formats.json"
    call_command("export_formats", "--output", str(exported), stdout=io.StringIO())
    rows = json.loads(exported.read_text())
    for row in rows:
        mapping = row["mapping"] if isinstance(row["mapping"], dict) else json.loads(row["mapping"])
        row["mapping"] = json.dumps(change(mapping)) if isinstance(row["mapping"], str) else change(mapping)
    exported.write_text(json.dumps(rows))
    before = snapshot(pending_format.pk)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("import_formats", str(exported), stdout=out, stderr=err)
    text = str(refused.value)
    assert key in text and allowed in text, text
    assert snapshot(pending_format.pk) == before


# --------------------------------------------------------------------------------------------------
# A reject reason that is not text


@pytest.mark.parametrize("reason", [{"why": "bad"}, ["bad"], 42, True])
def test_a_reject_reason_that_is_not_text_is_refused(
    client: Client, reviewer: Any, pending_format: CsvFormat, reason: Any
) -> None:
    before = snapshot(pending_format.pk)
    response = client.delete(
        f"/api/admin/formats/{pending_format.pk}/approve",
        json.dumps({"reason": reason}),
        content_type="application/json",
        **bearer(reviewer),
    )
    assert response.status_code == 400, response.content
    assert "reason must be text" in response.json()["message"]
    assert snapshot(pending_format.pk) == before
