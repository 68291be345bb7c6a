"""Format definitions out and back in (django-import-export): same files match, bad rows write nothing."""

from __future__ import annotations

import copy
import csv
import io
import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from formats.models import CsvFormat, FormatStatus
from formats.resources import formats_export, formats_import
from imports.models import FileStatus, ImportFile, Order
from imports.services.uploads import review_approve
from staging.models import StagedRow
from tests.formats.test_admin_review import GOOD, TRADES, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def approved(user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any) -> CsvFormat:
    """A format created by an upload, approved with a corrected mapping, its file imported."""
    file = upload(user, run_jobs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer, mapping=GOOD)
    run_jobs()
    assert ImportFile.objects.get(pk=file.pk).rows_imported == 2
    return CsvFormat.objects.get(pk=file.format_id)


def wipe_everything() -> None:
    Order.objects.all().delete()
    StagedRow.objects.all().delete()
    ImportFile.objects.all().delete()
    CsvFormat.objects.all().delete()


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_an_exported_format_reimported_into_an_empty_database_imports_the_same_files_without_review(
    approved: CsvFormat, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    exported = formats_export(file_format="csv")
    (row,) = rows_of(exported)
    assert list(row) == ["name", "target", "header", "columns", "fingerprint", "status", "mapping"]
    assert json.loads(row["mapping"])["fields"]["price"]["columns"] == ["Fill Price"]
    assert row["status"] == "APPROVED" and row["fingerprint"] == approved.fingerprint

    wipe_everything()
    result = formats_import(text=exported, file_format="csv", actor=reviewer)
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["new"] == 1
    fmt = CsvFormat.objects.get()
    assert (fmt.status, fmt.fingerprint, fmt.mapping["fields"]) == (
        FormatStatus.APPROVED,
        approved.fingerprint,
        GOOD["fields"],
    )
    assert fmt.approved_by == reviewer
    assert AuditEvent.objects.filter(action="format.imported", actor=reviewer).count() == 1

    file = upload(user, run_jobs, django_capture_on_commit_callbacks)
    assert file.format_id == fmt.pk
    assert (file.status, file.rows_imported, file.rows_invalid) == (FileStatus.PARTIAL, 2, 1)
    assert Order.objects.filter(source_file=file).count() == 2


def test_the_csv_export_neutralises_formulas_and_the_import_restores_the_name(
    approved: CsvFormat, reviewer: Any
) -> None:
    CsvFormat.objects.filter(pk=approved.pk).update(name='=HYPERLINK("http://evil","x")')
    exported = formats_export(file_format="csv")
    assert rows_of(exported)[0]["name"] == '\'=HYPERLINK("http://evil","x")'
    wipe_everything()
    result = formats_import(text=exported, file_format="csv", actor=reviewer)
    assert not result.has_validation_errors()
    assert CsvFormat.objects.get().name == '=HYPERLINK("http://evil","x")'


def test_importing_updates_the_format_with_the_same_target_and_fingerprint(approved: CsvFormat, reviewer: Any) -> None:
    data = json.loads(formats_export(file_format="json"))
    data[0]["mapping"] = json.loads(data[0]["mapping"]) if isinstance(data[0]["mapping"], str) else data[0]["mapping"]
    data[0]["mapping"]["fields"]["quantity"]["options"] = {"abs": True}
    data[0]["mapping"] = json.dumps(data[0]["mapping"])
    result = formats_import(text=json.dumps(data), file_format="json", actor=reviewer)
    assert not result.has_validation_errors() and result.totals["update"] == 1
    fmt = CsvFormat.objects.get()
    assert fmt.pk == approved.pk
    assert fmt.mapping["fields"]["quantity"]["options"] == {"abs": True}
    assert fmt.history.order_by("-history_date").first().history_change_reason == "mapping updated by import"
    again = formats_import(text=json.dumps(data), file_format="json", actor=reviewer)
    assert again.totals["skip"] == 1, "an unchanged format is skipped"


def test_an_import_with_an_invalid_mapping_writes_nothing_and_says_why(approved: CsvFormat, reviewer: Any) -> None:
    rows = rows_of(formats_export(file_format="csv"))
    bad = copy.deepcopy(rows[0])
    mapping = json.loads(bad["mapping"])
    mapping["fields"]["price"]["columns"] = ["Nope"]
    bad["mapping"] = json.dumps(mapping)
    bad["fingerprint"] = "0" * 64
    wipe_everything()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows([rows[0], bad])
    result = formats_import(text=text.getvalue(), file_format="csv", actor=reviewer)
    assert result.has_validation_errors()
    (invalid,) = result.invalid_rows
    messages = " ".join(m for ms in invalid.error_dict.values() for m in ms)
    assert "Nope" in messages and "fingerprint does not match the header" in messages
    assert CsvFormat.objects.count() == 0, "one bad row: nothing of the file is written"


def test_an_import_cannot_change_the_status_of_an_existing_format(approved: CsvFormat, reviewer: Any) -> None:
    rows = rows_of(formats_export(file_format="csv"))
    rows[0]["status"] = "REJECTED"
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    result = formats_import(text=text.getvalue(), file_format="csv", actor=reviewer)
    assert result.has_validation_errors()
    assert "review screen" in str(result.invalid_rows[0].error_dict["status"])
    assert CsvFormat.objects.get().status == FormatStatus.APPROVED


def test_the_admin_import_needs_the_approve_permission(reviewer: Any, django_user_model: Any) -> None:
    editor = django_user_model.objects.create_user(username="editor", password="pw-editor-1", is_staff=True)
    editor.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="formats", codename__in=["view_csvformat", "change_csvformat"]
        )
    )
    url = reverse("admin:formats_csvformat_import")
    as_editor, as_reviewer = Client(), Client()
    as_editor.force_login(editor)
    as_reviewer.force_login(reviewer)
    assert as_editor.get(url).status_code == 403
    assert as_reviewer.get(url).status_code == 200
    assert as_editor.get(reverse("admin:formats_csvformat_export")).status_code == 200


def test_the_admin_export_is_a_safe_csv(approved: CsvFormat, reviewer: Any) -> None:
    CsvFormat.objects.filter(pk=approved.pk).update(name="@SUM(A1)")
    client = Client()
    client.force_login(reviewer)
    response = client.post(
        reverse("admin:formats_csvformat_export"),
        {
            "format": "0",
            "resource": "0",
            **{
                f"csvformatresource_{f}": "on"
                for f in ("name", "target", "header", "columns", "fingerprint", "status", "mapping")
            },
        },
    )
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/csv")
    body = response.content.decode("utf-8-sig")
    assert rows_of(body)[0]["name"] == "'@SUM(A1)"
    assert TRADES.splitlines()[0].split(",")[0].casefold() in body  # the header travelled


def test_the_admin_import_previews_then_creates_the_formats(approved: CsvFormat, reviewer: Any) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    exported = formats_export(file_format="csv")
    wipe_everything()
    client = Client()
    client.force_login(reviewer)
    upload = SimpleUploadedFile("formats.csv", exported.encode(), content_type="text/csv")
    preview = client.post(
        reverse("admin:formats_csvformat_import"), {"resource": "0", "format": "0", "import_file": upload}
    )
    assert preview.status_code == 200
    assert CsvFormat.objects.count() == 0, "the first step is a dry run"
    confirm = preview.context["confirm_form"]
    assert confirm is not None, preview.content.decode()[:2000]
    done = client.post(reverse("admin:formats_csvformat_process_import"), confirm.initial)
    assert done.status_code == 302
    fmt = CsvFormat.objects.get()
    assert (fmt.status, fmt.approved_by) == (FormatStatus.APPROVED, reviewer)
    assert AuditEvent.objects.filter(action="format.imported", actor=reviewer).exists()


def test_the_export_and_import_commands_round_trip_through_a_file(
    approved: CsvFormat, reviewer: Any, tmp_path: Any
) -> None:
    from django.core.management import CommandError, call_command

    out = tmp_path / "formats.csv"
    call_command("export_formats", "--file-format", "csv", "--status", "APPROVED", "-o", str(out), stderr=io.StringIO())
    assert [row["fingerprint"] for row in rows_of(out.read_text())] == [approved.fingerprint]
    wipe_everything()
    stdout = io.StringIO()
    call_command("import_formats", str(out), "--dry-run", stdout=stdout)
    assert "Would import: 1 new" in stdout.getvalue() and CsvFormat.objects.count() == 0
    call_command("import_formats", str(out), "--as", "reviewer", stdout=stdout)
    assert CsvFormat.objects.get().approved_by == reviewer
    broken = tmp_path / "broken.json"
    broken.write_text(
        '[{"name": "x", "target": "orders", "header": "[]", "columns": "[]", '
        '"fingerprint": "1", "status": "APPROVED", "mapping": "{}"}]'
    )
    with pytest.raises(CommandError, match="Nothing was imported") as caught:
        call_command("import_formats", str(broken), stdout=io.StringIO())
    assert "fingerprint does not match" in str(caught.value)
    with pytest.raises(CommandError, match="lacks the 'approve CSV formats' permission"):
        call_command("import_formats", str(out), "--as", "uploader", stdout=io.StringIO())
