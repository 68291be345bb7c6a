"""Emails to uploaders: sent after commit at the right points, and a mail failure never breaks an import."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend

from audit.models import AuditEvent
from imports.models import FileStatus, ImportFile
from imports.services.uploads import review_approve, review_reject
from tests.imports.test_pipeline import TRADES, upload

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
    settings.EMAIL_BACKEND = "tests.imports.test_notifications.BrokenMailServer"
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
