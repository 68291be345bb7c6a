"""The admin review screen: list, change page, preview, approve/reject, bulk actions, history and restore."""

from __future__ import annotations

import copy
import json
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from formats.history import mapping_diff
from formats.models import CsvFormat, FormatStatus
from formats.services import format_update_mapping
from imports.models import FileStatus, ImportFile, Order
from imports.services.uploads import review_approve
from staging.models import StagedRow, StagedStatus
from tests.factories import uploaded_file

pytestmark = pytest.mark.django_db

TRADES = """Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref
2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,USD,T-1
2024-03-01 10:15:00,MSFT,Sell,5,410.10,1.00,USD,T-2
2024-03-04 15:59:59,AAPL,Sell,0,174.00,0.50,USD,T-3
"""

GOOD = {
    "version": 1,
    "reader": {"section": None, "header_line": None},
    "filters": [],
    "fields": {
        "executed_at": {
            "columns": ["Trade Date"],
            "converter": "datetime",
            "options": {"formats": ["%Y-%m-%d %H:%M:%S"]},
        },
        "symbol": {"columns": ["Ticker"], "converter": "text", "options": {"upper": True}},
        "side": {"columns": ["Buy or Sell"], "converter": "side", "options": {}},
        "quantity": {"columns": ["Shares"], "converter": "decimal", "options": {}},
        "price": {"columns": ["Fill Price"], "converter": "decimal", "options": {}},
        "commission": {"columns": ["Fee"], "converter": "decimal", "options": {}},
        "currency": {"columns": ["Ccy"], "converter": "currency", "options": {}},
        "broker_trade_id": {"columns": ["Ref"], "converter": "text", "options": {}},
    },
}


def with_field(mapping: dict[str, Any], field: str, **spec: Any) -> dict[str, Any]:
    changed = copy.deepcopy(mapping)
    changed["fields"][field].update(spec)
    return changed


def upload(owner: Any, run_jobs: Any, capture: Any, text: str = TRADES, name: str = "trades.csv") -> ImportFile:
    return uploaded_file(owner, name, text, run_jobs=run_jobs, capture=capture)


@pytest.fixture
def pending(user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any) -> ImportFile:
    """A file of an unknown format, staged and waiting; its format's mapping set to GOOD."""
    file = upload(user, run_jobs, django_capture_on_commit_callbacks)
    assert file.status == FileStatus.PENDING_APPROVAL
    format_update_mapping(format_id=file.format_id, actor=user, mapping=GOOD)
    return file


@pytest.fixture
def reviewer_client(reviewer: Any) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


@pytest.fixture
def editor(django_user_model: Any) -> Any:
    """Staff who may view and edit formats but not approve them."""
    editor = django_user_model.objects.create_user(username="editor", password="pw-editor-1", is_staff=True)
    editor.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="formats", codename__in=["view_csvformat", "change_csvformat"]
        )
    )
    return django_user_model.objects.get(pk=editor.pk)


@pytest.fixture
def editor_client(editor: Any) -> Client:
    client = Client()
    client.force_login(editor)
    return client


def change_url(fmt_id: int) -> str:
    return reverse("admin:formats_csvformat_change", args=[fmt_id])


def post_form(client: Client, fmt: CsvFormat, mapping: dict[str, Any], **extra: str) -> Any:
    return client.post(change_url(fmt.pk), {"name": fmt.name, "mapping": json.dumps(mapping), **extra})


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- the list ---------------------------------------------------------------------------------------------


def test_it_lists_pending_formats_first_with_uploader_files_staged_rows_and_confidence(
    reviewer_client: Client, pending: ImportFile
) -> None:
    approved = CsvFormat.objects.create(
        name="Old approved format",
        header=["a"],
        columns=["a"],
        fingerprint="f" * 64,
        status=FormatStatus.APPROVED,
        mapping={"fields": {}},
    )
    CsvFormat.objects.filter(pk=pending.format_id).update(confidence=0.87)
    response = reviewer_client.get(reverse("admin:formats_csvformat_changelist"))
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert [f.pk for f in rows][:2] == [pending.format_id, approved.pk]
    html = response.content.decode()
    for heading in ("Uploaded by", "Files", "Files waiting", "Staged rows waiting", "Waiting since", "Confidence"):
        assert heading in html
    assert "Age" in html and "Quality" in html
    first = rows[0]
    assert (first.files_n, first.files_waiting_n, first.staged, first.created_by.username) == (1, 1, 3, "uploader")
    assert rows[1].files_waiting_n is None  # the approved format has no file waiting: shown as 0
    assert first.oldest is not None
    assert "87%" in html


def test_the_list_filters_by_status_and_searches_by_file_name(reviewer_client: Client, pending: ImportFile) -> None:
    CsvFormat.objects.create(
        name="Other",
        header=["a"],
        columns=["a"],
        fingerprint="e" * 64,
        status=FormatStatus.APPROVED,
        mapping={"fields": {}},
    )
    url = reverse("admin:formats_csvformat_changelist")
    by_status = reviewer_client.get(url, {"status__exact": "APPROVED"}).context["cl"].result_list
    assert [f.name for f in by_status] == ["Other"]
    searched = reviewer_client.get(url, {"q": "trades.csv"}).context["cl"].result_list
    assert [f.pk for f in searched] == [pending.format_id]


# --- the change page --------------------------------------------------------------------------------------


def test_the_change_page_shows_sample_rows_the_mapping_editor_and_a_preview_over_all_staged_rows(
    reviewer_client: Client, pending: ImportFile
) -> None:
    response = reviewer_client.get(change_url(pending.format_id))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="sample-rows"' in html and "410.10" in html  # a raw sample cell
    assert '<textarea name="mapping"' in html
    assert 'id="mapping-table"' in html and 'id="mapping-editor-config"' in html
    config = json.loads(html.split('id="mapping-editor-config" type="application/json">')[1].split("</script>")[0])
    assert config["columns"] == [
        "Trade Date",
        "Ticker",
        "Buy or Sell",
        "Shares",
        "Fill Price",
        "Fee",
        "Ccy",
        "Ref",
    ]
    assert {"text", "decimal", "datetime", "side", "constant"} <= {c["name"] for c in config["converters"]}
    assert [f["name"] for f in config["fields"] if f["required"]] == [
        "symbol",
        "side",
        "quantity",
        "price",
        "currency",
        "executed_at",
    ]
    # The preview: 2 rows import, the zero-quantity one fails, with its error and an example.
    assert "2 would import" in html and "1 would be invalid" in html and "0 would be skipped" in html
    assert "quantity: quantity must be greater than 0" in html
    assert 'name="_approve"' in html and 'name="_reject"' in html


def test_the_page_says_so_when_its_preview_covers_only_the_first_staged_rows(
    reviewer_client: Client, pending: ImportFile, monkeypatch: Any
) -> None:
    monkeypatch.setattr("formats.admin.PAGE_SCAN_LIMIT", 2)
    html = reviewer_client.get(change_url(pending.format_id)).content.decode()
    assert "Over the first <b>2</b> of 3 staged rows" in html
    full = reviewer_client.post(
        reverse("admin:formats_csvformat_preview", args=[pending.format_id]), {"mapping": json.dumps(GOOD)}
    ).json()
    assert full["summary"]["total"] == 3 and "Over all <b>3</b>" in full["html"]


def test_the_preview_view_recomputes_with_an_edited_mapping_without_saving_it(
    reviewer_client: Client, pending: ImportFile
) -> None:
    edited = copy.deepcopy(GOOD)
    edited["filters"] = [{"column": "Ticker", "op": "in", "values": ["aapl"]}]
    edited["fields"]["quantity"]["options"] = {"default": "1"}
    history_before = CsvFormat.history.filter(id=pending.format_id).count()
    response = reviewer_client.post(
        reverse("admin:formats_csvformat_preview", args=[pending.format_id]), {"mapping": json.dumps(edited)}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True
    assert body["summary"] == {"total": 3, "would_import": 1, "would_be_invalid": 1, "would_skip": 1}
    assert "would be skipped" in body["html"] and "MSFT" not in body["html"].split("First rows")[0]
    fmt = CsvFormat.objects.get(pk=pending.format_id)
    assert fmt.mapping == GOOD, "a preview must not save the mapping"
    assert CsvFormat.history.filter(id=pending.format_id).count() == history_before


def test_the_preview_view_explains_an_invalid_mapping(reviewer_client: Client, pending: ImportFile) -> None:
    url = reverse("admin:formats_csvformat_preview", args=[pending.format_id])
    broken = with_field(GOOD, "price", columns=["No Such Column"])
    response = reviewer_client.post(url, {"mapping": json.dumps(broken)})
    assert response.status_code == 400
    assert "No Such Column" in response.json()["error"]
    not_json = reviewer_client.post(url, {"mapping": "{fields:"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
    assert reviewer_client.get(url).status_code == 405


def test_a_staff_user_without_the_approve_permission_can_edit_but_not_approve(
    editor_client: Client, pending: ImportFile
) -> None:
    fmt = pending.format
    page = editor_client.get(change_url(fmt.pk)).content.decode()
    assert '<textarea name="mapping"' in page and 'name="_approve"' not in page
    response = post_form(editor_client, fmt, GOOD, _approve="1")
    assert response.status_code == 302
    fmt.refresh_from_db()
    assert fmt.status == FormatStatus.PENDING
    followed = editor_client.get(response["Location"])
    assert any("approve CSV formats" in m for m in messages_of(followed))
    # Saving an edited mapping is allowed, validated and audited.
    response = post_form(editor_client, fmt, with_field(GOOD, "quantity", options={"abs": True}), _save="Save")
    assert response.status_code == 302
    fmt.refresh_from_db()
    assert fmt.mapping["fields"]["quantity"]["options"] == {"abs": True}
    assert AuditEvent.objects.filter(action="format.mapping_changed", actor__username="editor").exists()


def test_a_staff_user_with_only_the_approve_permission_can_open_and_approve(
    pending: ImportFile, django_user_model: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """`api_token --approver` grants just the approve permission: the review screen must still open."""
    approver = django_user_model.objects.create_user(username="approver", password="pw-approver-1", is_staff=True)
    approver.user_permissions.add(Permission.objects.get(codename="approve_csvformat"))
    client = Client()
    client.force_login(approver)
    assert client.get(reverse("admin:formats_csvformat_changelist")).status_code == 200
    page = client.get(change_url(pending.format_id)).content.decode()
    assert '<textarea name="mapping"' in page and 'name="_approve"' in page
    with django_capture_on_commit_callbacks(execute=True):
        post_form(client, pending.format, GOOD, _approve="1")
    run_jobs()
    assert ImportFile.objects.get(pk=pending.pk).rows_imported == 2


def test_an_invalid_mapping_is_refused_with_the_reason_and_nothing_is_saved(
    reviewer_client: Client, pending: ImportFile
) -> None:
    fmt = pending.format
    response = post_form(reviewer_client, fmt, with_field(GOOD, "side", converter="guess"), _save="Save")
    assert response.status_code == 200
    assert "Unknown converter" in response.content.decode()
    fmt.refresh_from_db()
    assert fmt.mapping == GOOD


def test_approving_from_the_change_form_migrates_the_staged_rows(
    reviewer_client: Client, pending: ImportFile, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_form(reviewer_client, pending.format, GOOD, _approve="1")
    assert response.status_code == 302 and response["Location"] == reverse("admin:formats_csvformat_changelist")
    run_jobs()
    pending.refresh_from_db()
    assert pending.format.status == FormatStatus.APPROVED
    assert pending.format.approved_by.username == "reviewer"
    assert (pending.status, pending.rows_imported, pending.rows_invalid) == (FileStatus.PARTIAL, 2, 1)


def test_rejecting_needs_a_reason_and_then_rejects_the_waiting_rows(
    reviewer_client: Client, pending: ImportFile
) -> None:
    response = post_form(reviewer_client, pending.format, GOOD, _reject="1", reason="  ")
    assert any("reason is required" in m for m in messages_of(reviewer_client.get(response["Location"])))
    assert CsvFormat.objects.get(pk=pending.format_id).status == FormatStatus.PENDING
    post_form(reviewer_client, pending.format, GOOD, _reject="1", reason="Not a trade export")
    fmt = CsvFormat.objects.get(pk=pending.format_id)
    assert (fmt.status, fmt.rejection_reason) == (FormatStatus.REJECTED, "Not a trade export")
    assert set(StagedRow.objects.filter(format=fmt).values_list("status", flat=True)) == {StagedStatus.REJECTED}
    assert ImportFile.objects.get(pk=pending.pk).status == FileStatus.REJECTED


def test_the_bulk_actions_approve_and_reject_selected_pending_formats(
    reviewer_client: Client, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = upload(user, run_jobs, django_capture_on_commit_callbacks)
    second = upload(
        user,
        run_jobs,
        django_capture_on_commit_callbacks,
        text=TRADES.replace("Ref", "Reference"),
        name="other.csv",
    )
    url = reverse("admin:formats_csvformat_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        reviewer_client.post(url, {"action": "approve_selected", "_selected_action": [first.format_id]})
    run_jobs()
    assert CsvFormat.objects.get(pk=first.format_id).status == FormatStatus.APPROVED
    assert Order.objects.filter(source_file=first).count() == 2
    confirm = reviewer_client.post(url, {"action": "reject_selected", "_selected_action": [second.format_id]})
    assert confirm.status_code == 200 and b"Reason" in confirm.content
    assert CsvFormat.objects.get(pk=second.format_id).status == FormatStatus.PENDING
    reviewer_client.post(
        url,
        {
            "action": "reject_selected",
            "_selected_action": [second.format_id],
            "reason": "duplicate of another format",
        },
    )
    assert CsvFormat.objects.get(pk=second.format_id).status == FormatStatus.REJECTED


def test_the_bulk_actions_are_not_offered_without_the_approve_permission(
    editor_client: Client, pending: ImportFile
) -> None:
    response = editor_client.get(reverse("admin:formats_csvformat_changelist"))
    assert b"approve_selected" not in response.content
    editor_client.post(
        reverse("admin:formats_csvformat_changelist"),
        {"action": "approve_selected", "_selected_action": [pending.format_id]},
    )
    assert CsvFormat.objects.get(pk=pending.format_id).status == FormatStatus.PENDING


# --- corrections after approval ---------------------------------------------------------------------------


def test_correcting_an_approved_mapping_reprocesses_the_rows_that_failed(
    reviewer_client: Client, pending: ImportFile, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    mistake = with_field(GOOD, "price", columns=["Ref"])  # 'T-1' is not a price: every row fails
    with django_capture_on_commit_callbacks(execute=True):
        post_form(reviewer_client, pending.format, mistake, _approve="1")
    run_jobs()
    pending.refresh_from_db()
    assert (pending.status, pending.rows_imported, pending.rows_invalid) == (FileStatus.FAILED, 0, 3)
    assert StagedRow.objects.filter(file=pending, status=StagedStatus.INVALID).count() == 3

    page = reviewer_client.get(change_url(pending.format_id)).content.decode()
    assert "Save correction and re-process invalid rows" in page
    with django_capture_on_commit_callbacks(execute=True):
        post_form(reviewer_client, pending.format, GOOD, _approve="1")
    run_jobs()
    pending.refresh_from_db()
    assert (pending.status, pending.rows_imported, pending.rows_invalid, pending.rows_staged) == (
        FileStatus.PARTIAL,
        2,
        1,
        0,
    )
    assert Order.objects.filter(source_file=pending).count() == 2
    still_failed = StagedRow.objects.get(file=pending, status=StagedStatus.INVALID)
    assert still_failed.errors[0]["field"] == "quantity"
    assert AuditEvent.objects.filter(action="format.mapping_changed", actor__username="reviewer").exists()


def test_an_editor_cannot_change_the_mapping_of_an_approved_format(
    editor_client: Client, pending: ImportFile, reviewer: Any
) -> None:
    review_approve(format_id=pending.format_id, actor=reviewer, mapping=GOOD)
    page = editor_client.get(change_url(pending.format_id)).content.decode()
    assert '<textarea name="mapping"' not in page
    post_form(editor_client, pending.format, with_field(GOOD, "quantity", options={"abs": True}), _save="Save")
    assert CsvFormat.objects.get(pk=pending.format_id).mapping == GOOD
    # What the editor's browser really sends (no mapping field on the page) saves without touching it.
    plain = editor_client.post(change_url(pending.format_id), {"_save": "Save"})
    assert plain.status_code == 302
    assert CsvFormat.objects.get(pk=pending.format_id).mapping == GOOD
    rejected = CsvFormat.objects.create(
        name="Rejected one",
        header=["a"],
        columns=["a"],
        fingerprint="d" * 64,
        status=FormatStatus.REJECTED,
        mapping={"fields": {}},
    )
    assert editor_client.post(change_url(rejected.pk), {"_save": "Save"}).status_code == 302


# --- history ----------------------------------------------------------------------------------------------


def test_the_mapping_diff_reads_field_by_field() -> None:
    after = with_field(GOOD, "quantity", columns=["Fee"], options={"abs": True})
    del after["fields"]["commission"]
    after["fields"]["account"] = {"columns": [], "converter": "constant", "options": {"value": "X1"}}
    after["filters"] = [{"column": "Buy or Sell", "op": "in", "values": ["Buy", "Sell"]}]
    assert mapping_diff(GOOD, after) == [
        "quantity: columns Shares → Fee; options {} → {abs: true}",
        "commission: removed (was columns Fee, converter decimal)",
        "account: added (columns (none), converter constant, options {value: X1})",
        "filters: (none) → Buy or Sell in Buy, Sell",
    ]
    assert mapping_diff(GOOD, with_field(GOOD, "symbol", confidence=0.2, reason="x")) == []


def test_the_history_page_shows_who_changed_what_in_the_mapping(
    editor_client: Client, reviewer_client: Client, pending: ImportFile
) -> None:
    post_form(
        editor_client,
        pending.format,
        with_field(GOOD, "quantity", columns=["Fee"], options={"abs": True}),
        _save="Save",
    )
    response = reviewer_client.get(reverse("admin:formats_csvformat_history", args=[pending.format_id]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "quantity: columns Shares → Fee; options {} → {abs: true}" in html
    newest = response.context["versions"][0]
    assert newest["record"].history_user.username == "editor"
    assert newest["record"].history_change_reason == "mapping edited"
    assert "Restore this mapping" in html


def test_restoring_an_old_mapping_is_validated_audited_and_recorded(editor_client: Client, pending: ImportFile) -> None:
    good_version = CsvFormat.history.filter(id=pending.format_id).order_by("-history_date").first()
    assert good_version.mapping == GOOD
    post_form(editor_client, pending.format, with_field(GOOD, "quantity", columns=["Fee"]), _save="Save")
    url = reverse("admin:formats_csvformat_restore_mapping", args=[pending.format_id, good_version.history_id])
    # First a confirmation page saying what changes and what happens; nothing is restored by it.
    page = editor_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "quantity: columns Fee → Shares" in html and "the approval chain starts again" not in html
    assert editor_client.post(url).status_code == 200  # a POST without the confirmation shows the page too
    assert CsvFormat.objects.get(pk=pending.format_id).mapping != GOOD
    response = editor_client.post(url, {"confirm": "yes"})
    assert response.status_code == 302
    assert CsvFormat.objects.get(pk=pending.format_id).mapping == GOOD
    assert AuditEvent.objects.filter(action="format.mapping_restored", actor__username="editor").exists()
    newest = CsvFormat.history.filter(id=pending.format_id).order_by("-history_date").first()
    assert (newest.history_user.username, newest.mapping) == ("editor", GOOD)
    assert CsvFormat.history.filter(id=pending.format_id).count() == 4


def test_restoring_a_version_whose_mapping_no_longer_validates_is_refused(
    reviewer_client: Client, pending: ImportFile
) -> None:
    fmt = CsvFormat.objects.get(pk=pending.format_id)
    version = CsvFormat.history.filter(id=fmt.pk).order_by("-history_date").first()
    # Simulate a version saved before a stricter rule existed.
    CsvFormat.history.filter(history_id=version.history_id).update(mapping={"fields": {"symbol": {}}})
    response = reviewer_client.post(
        reverse("admin:formats_csvformat_restore_mapping", args=[fmt.pk, version.history_id]), {"confirm": "yes"}
    )
    follow = reviewer_client.get(response["Location"])
    assert any("Required field(s) not mapped" in m for m in messages_of(follow))
    assert CsvFormat.objects.get(pk=fmt.pk).mapping == GOOD


def test_restoring_an_approved_formats_mapping_reprocesses_its_failed_rows(
    reviewer_client: Client,
    editor_client: Client,
    pending: ImportFile,
    reviewer: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    good_version = CsvFormat.history.filter(id=pending.format_id).order_by("-history_date").first()
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=pending.format_id, actor=reviewer, mapping=with_field(GOOD, "price", columns=["Ref"]))
    run_jobs()
    pending.refresh_from_db()
    assert pending.rows_invalid == 3
    url = reverse("admin:formats_csvformat_restore_mapping", args=[pending.format_id, good_version.history_id])
    editor_client.post(url, {"confirm": "yes"})  # an editor may not correct an approved format
    assert CsvFormat.objects.get(pk=pending.format_id).mapping["fields"]["price"]["columns"] == ["Ref"]
    confirm = reviewer_client.get(url).content.decode()
    assert "3 invalid rows of 1 file are converted again" in confirm
    with django_capture_on_commit_callbacks(execute=True):
        response = reviewer_client.post(url, {"confirm": "yes"})
    assert response.status_code == 302
    run_jobs()
    pending.refresh_from_db()
    assert (pending.status, pending.rows_imported, pending.rows_invalid) == (FileStatus.PARTIAL, 2, 1)
    assert Order.objects.filter(source_file=pending).count() == 2


def test_a_built_in_format_without_samples_or_staged_rows_opens_with_its_history(
    reviewer_client: Client,
) -> None:
    from django.core.management import call_command

    call_command("load_builtin_formats", stdout=StringIO())
    fmt = CsvFormat.objects.filter(builtin=True).first()
    page = reviewer_client.get(change_url(fmt.pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert "No sample rows were kept." in html and "No staged rows for this format" in html
    history = reviewer_client.get(reverse("admin:formats_csvformat_history", args=[fmt.pk]))
    assert history.status_code == 200 and "created from the built-in definition" in history.content.decode()


def test_simple_historys_own_revert_form_cannot_bypass_the_restore_path(
    reviewer_client: Client, pending: ImportFile
) -> None:
    version = CsvFormat.history.filter(id=pending.format_id).order_by("history_date").first()
    url = reverse("admin:formats_csvformat_simple_history", args=[pending.format_id, version.history_id])
    response = reviewer_client.post(
        url, {"name": "x", "mapping": json.dumps(with_field(GOOD, "price", columns=["Fee"]))}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:formats_csvformat_history", args=[pending.format_id])
    assert CsvFormat.objects.get(pk=pending.format_id).mapping == GOOD


def test_the_preview_groups_one_mistake_into_one_error_kind_with_an_example(
    reviewer_client: Client, pending: ImportFile
) -> None:
    mistake = with_field(GOOD, "price", columns=["Ticker"])  # AAPL, MSFT, AAPL: different values, one mistake
    body = reviewer_client.post(
        reverse("admin:formats_csvformat_preview", args=[pending.format_id]), {"mapping": json.dumps(mistake)}
    ).json()
    assert body["summary"]["would_be_invalid"] == 3
    html = body["html"]
    assert 'price: &#x27;…&#x27; is not a number</td><td class="num">3</td>' in html
    assert f"file {pending.pk}, line 2: <code>AAPL</code>" in html
