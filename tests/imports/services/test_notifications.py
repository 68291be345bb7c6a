"""Emails to uploaders: sent after commit at the right points, and a mail failure never breaks an import."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend

from audit.models import AuditEvent
from imports.models import FileStatus, ImportFile
from imports.services.uploads import review_approve, review_reject, upload_batch_create
from tests.conftest import csv_upload
from tests.imports.pipeline.test_pipeline import TRADES, upload

pytestmark = pytest.mark.django_db


class BrokenMailServer(BaseEmailBackend):
    """Stands in for an SMTP server that is down (no SMTP server runs in the tests)."""

    def send_messages(self, email_messages: list) -> int:
        raise ConnectionRefusedError("SMTP server unreachable")


def process(user: Any, run_jobs: Any, capture: Any, **kwargs: Any) -> ImportFile:
    # The worker's on-commit callbacks (the emails) run as the jobs' transactions commit.
    with capture(execute=True):
        return upload(user, run_jobs=run_jobs, capture=capture, **kwargs)


def test_nothing_is_sent_while_a_file_waits_for_approval(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    process(user, run_jobs, django_capture_on_commit_callbacks)
    assert mail.outbox == []


def test_approval_emails_the_uploader_then_the_finished_import_does_too(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = process(user, run_jobs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    subjects = [m.subject for m in mail.outbox]
    assert subjects == [
        "[Airlock] Format approved: 1 file(s) are being imported",
        "[Airlock] trades.csv: imported with invalid rows",
    ]
    assert all(m.to == ["u@example.com"] for m in mail.outbox)
    body = mail.outbox[1].body
    assert "2 imported, 1 invalid" in body and f"/imports/{file.pk}/errors.csv" in body


def test_a_file_of_an_approved_format_emails_when_it_is_imported(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first = process(user, run_jobs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=first.format_id, actor=reviewer)
    run_jobs()
    mail.outbox.clear()
    process(
        user,
        run_jobs,
        django_capture_on_commit_callbacks,
        name="again.csv",
        text=TRADES.replace("T-3", "T-9").replace(",0,174", ",3,174"),
    )
    assert [m.subject for m in mail.outbox] == ["[Airlock] again.csv: imported"]


def test_rejection_emails_the_uploader_with_the_reason(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = process(user, run_jobs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_reject(format_id=file.format_id, actor=reviewer, reason="not a trade export")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "[Airlock] Format rejected: 1 file(s) will not be imported"
    assert "Reason: not a trade export" in mail.outbox[0].body and "trades.csv" in mail.outbox[0].body


def test_an_unreadable_file_emails_that_it_failed(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = process(user, run_jobs, django_capture_on_commit_callbacks, text="Only,A,Header\n", name="empty.csv")
    assert file.status == FileStatus.FAILED
    assert [m.subject for m in mail.outbox] == ["[Airlock] empty.csv: failed"]
    assert "Reason:" in mail.outbox[0].body


def test_a_mail_failure_is_audited_and_the_import_still_finishes(
    settings: Any, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EMAIL_BACKEND = "tests.imports.services.test_notifications.BrokenMailServer"
    file = process(user, run_jobs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    file.refresh_from_db()
    assert file.status == FileStatus.PARTIAL and file.rows_imported == 2
    warnings = AuditEvent.objects.filter(action="notification.failed")
    assert warnings.count() == 2
    assert {e.severity for e in warnings} == {AuditEvent.Severity.WARNING}
    assert "ConnectionRefusedError" in warnings.first().summary


def test_an_upload_of_several_files_sends_one_summary_when_they_have_all_settled(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "SITE_URL": "https://airlock.example.com/"}
    first = process(user, run_jobs, django_capture_on_commit_callbacks)  # one file: its own email later
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=first.format_id, actor=reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    mail.outbox.clear()

    # Eleven files of that (approved) format with new trades, each with its invalid row, one that only repeats
    # trades already imported, and one of a new format.
    good = [csv_upload(f"day-{i:02}.csv", TRADES.replace("T-", f"D{i}-")) for i in range(11)]
    bad = csv_upload("broken.csv", TRADES.replace("AAPL", "ZZZZ"))
    new = csv_upload("new-broker.csv", "When,Sym,Dir,Qty,Px\n2024-01-02,IBM,B,1,100\n")
    with django_capture_on_commit_callbacks(execute=True):
        batch, files = upload_batch_create(owner=user, files=[*good, bad, new])
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    statuses = set(ImportFile.objects.filter(batch=batch).values_list("status", flat=True))
    assert statuses == {FileStatus.PENDING_APPROVAL, FileStatus.PARTIAL, FileStatus.FAILED}

    assert len(mail.outbox) == 1, [m.subject for m in mail.outbox]
    summary = mail.outbox[0]
    assert summary.subject.startswith(f"[Airlock] Upload #{batch.pk}: 13 files processed")
    assert "1 waiting for approval" in summary.subject
    body = summary.body
    assert "1 file(s) use a new format and wait for an admin" in body
    assert f"https://airlock.example.com/imports/uploads/{batch.pk}/" in body
    assert "Files that need your attention:" in body and "day-03.csv" in body
    assert "127.0.0.1" not in body


def test_a_finished_file_of_a_many_file_upload_sends_nothing_of_its_own_after_one_light_query(
    user: Any, django_capture_on_commit_callbacks: Any, django_assert_num_queries: Any
) -> None:
    from imports.services.notifications import file_outcome_send

    with django_capture_on_commit_callbacks(execute=False):
        _, files = upload_batch_create(owner=user, files=[csv_upload(f"{n}.csv", f"{TRADES}\n# {n}\n") for n in (1, 2)])
    ImportFile.objects.filter(pk=files[0].pk).update(status=FileStatus.IMPORTED)
    with django_assert_num_queries(1):  # the batch's summary tells it: nothing else is read
        assert file_outcome_send(file_id=files[0].pk) is False
    assert mail.outbox == []
