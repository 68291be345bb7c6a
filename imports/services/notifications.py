"""Emails to uploaders: a file finished or failed, an upload of several files settled, their new format was
approved or rejected.

An upload of one file gets that file's email; an upload of several files gets one summary when all its
files have settled (imported, failed, rejected, or waiting for an admin), never one email per file.

Sent after the surrounding transaction commits (so a rolled-back import never emails) and never
allowed to break an import: a failing mail server is logged and written to the audit log as a warning.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, models, transaction
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import record
from imports.models import UNFINISHED_FILE_STATUSES, FileStatus, ImportBatch, ImportFile

log = logging.getLogger(__name__)

FINISHED = {
    FileStatus.IMPORTED: "imported",
    FileStatus.PARTIAL: "imported with invalid rows",
    FileStatus.FAILED: "failed",
    FileStatus.REJECTED: "was not imported: its format was rejected",
    FileStatus.NO_TRADES: "was not imported: it holds no trades",
}


def _link(path: str) -> str:
    # AIRLOCK_SITE_URL, the public address also used by the alert emails (`make run` sets its own).
    return settings.AIRLOCK["SITE_URL"].rstrip("/") + path


def _deliver(*, user: Any, subject: str, body: str, obj: Any) -> bool:
    """Send one email; a failure is logged and audited, never raised."""
    if not getattr(user, "email", ""):
        log.info("no email address for %s: notification '%s' not sent", user, subject)
        return False
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=False)
    except Exception as exc:  # noqa: BLE001 - any mail failure (SMTP, DNS, auth) must not break the import
        log.exception("notification to %s failed: %s", user.email, subject)
        try:
            record(
                action="notification.failed",
                obj=obj,
                severity=AuditEvent.Severity.WARNING,
                summary=f"Email '{subject[:150]}' to {user.get_username()} failed: {exc.__class__.__name__}",
                details={"error": str(exc)[:500], "to": user.email},
            )
        except Exception:  # noqa: BLE001 - the audit write happens after commit; never let it escape either
            log.exception("could not audit the failed notification")
        return False
    return True


def file_outcome_send(*, file_id: int) -> bool:
    """Email the uploader how a finished file ended (imported, partly imported, failed, rejected)."""
    # One of several files: the upload's summary tells it (batch_summary_send). An upload's files are counted
    # when it is made (file_count) and never deleted one by one, so only an upload counted as one is counted again.
    # (Asked first, in one plain query -- most files come in uploads of many, and the ORM's query would cost three
    # times its answer: ~0.65 against ~0.2 ms a file.)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT f.status, b.file_count, f.batch_id FROM imports_importfile f "
            "JOIN imports_importbatch b ON b.id = f.batch_id WHERE f.id = %s",
            [file_id],
        )
        found = cursor.fetchone()
    if found is None or found[0] not in FINISHED or found[1] > 1:
        return False
    if ImportFile.objects.filter(batch_id=found[2]).count() > 1:
        return False
    file = ImportFile.objects.select_related("owner", "batch").filter(pk=file_id).first()
    if file is None or file.status not in FINISHED:
        return False
    outcome = FINISHED[FileStatus(file.status)]
    lines = [
        f"Your file '{file.original_name}' {outcome}.",
        "",
        f"Rows: {file.rows_total} total, {file.rows_imported} imported, {file.rows_invalid} invalid, "
        f"{file.rows_skipped} skipped, {file.rows_duplicate} duplicate.",
    ]
    if file.error:
        lines += ["", f"Reason: {file.error}"]
    if file.rows_invalid:
        lines += [
            "",
            "Download the invalid rows, fix them and upload them again:",
            _link(reverse("imports:errors-csv", args=[file.pk])),
        ]
    lines += ["", f"Details: {_link(reverse('imports:detail', args=[file.pk]))}"]
    return _deliver(
        user=file.owner, subject=f"[Airlock] {file.original_name}: {outcome}", body="\n".join(lines), obj=file
    )


# Files whose owner has something to do: fix invalid rows, upload again, or wait for an admin.
ATTENTION = (FileStatus.PARTIAL, FileStatus.FAILED, FileStatus.REJECTED, FileStatus.NO_TRADES)
ATTENTION_LISTED = 50


def batch_summary_send(*, batch_id: int) -> bool:
    """Email the uploader one summary of a settled upload: files per state, rows, the files needing action."""
    batch = ImportBatch.objects.select_related("owner").filter(pk=batch_id).first()
    if batch is None:
        return False
    files = ImportFile.objects.filter(batch_id=batch_id)
    total = files.count()
    if total < 2 or files.filter(status__in=UNFINISHED_FILE_STATUSES).exists():
        return False
    by_status = {status: n for status, n in files.order_by().values_list("status").annotate(n=models.Count("id"))}
    labels = dict(FileStatus.choices)
    states = ", ".join(f"{n} {labels[status].lower()}" for status, n in sorted(by_status.items(), key=lambda i: -i[1]))
    rows = files.aggregate(
        imported=models.Sum("rows_imported"),
        invalid=models.Sum("rows_invalid"),
        skipped=models.Sum("rows_skipped"),
        duplicate=models.Sum("rows_duplicate"),
    )
    attention = list(files.filter(status__in=ATTENTION).order_by("pk")[: ATTENTION_LISTED + 1])
    waiting = by_status.get(FileStatus.PENDING_APPROVAL, 0)
    lines = [
        f"Your upload #{batch.pk} of {total} files has been processed: {states}.",
        "",
        f"Rows: {rows['imported'] or 0} imported, {rows['invalid'] or 0} invalid, {rows['skipped'] or 0} skipped, "
        f"{rows['duplicate'] or 0} duplicate.",
    ]
    if waiting:
        lines += [
            "",
            f"{waiting} file(s) use a new format and wait for an admin to approve it; you will get an email "
            "when that happens.",
        ]
    if attention:
        lines += ["", "Files that need your attention:"]
        for file in attention[:ATTENTION_LISTED]:
            what = FINISHED[FileStatus(file.status)]
            link = reverse("imports:errors-csv" if file.rows_invalid else "imports:detail", args=[file.pk])
            lines.append(
                f"  - {file.original_name}: {what}"
                + (f" ({file.rows_invalid} invalid rows)" if file.rows_invalid else "")
                + f": {_link(link)}"
            )
        if len(attention) > ATTENTION_LISTED:
            lines.append("  - and more: see the upload's page below.")
    lines += ["", f"The upload: {_link(reverse('imports:batch', args=[batch.pk]))}"]
    needs = files.filter(status__in=ATTENTION).count()
    subject = (
        f"[Airlock] Upload #{batch.pk}: {total} files processed"
        + (f", {needs} need attention" if needs else "")
        + (f", {waiting} waiting for approval" if waiting else "")
    )
    return _deliver(user=batch.owner, subject=subject, body="\n".join(lines), obj=batch)


def format_decision_send(*, file_ids: list[int], approved: bool, reason: str = "") -> int:
    """Email each uploader whose waiting files were decided on: one email per person."""
    by_owner: dict[Any, list[ImportFile]] = defaultdict(list)
    for file in ImportFile.objects.select_related("owner", "format").filter(pk__in=file_ids).order_by("pk"):
        by_owner[file.owner].append(file)
    sent = 0
    for owner, files in by_owner.items():
        names = "\n".join(
            f"  - {f.original_name} ({f.rows_total} rows): {_link(reverse('imports:detail', args=[f.pk]))}"
            for f in files
        )
        fmt = files[0].format.name if files[0].format else "the format"
        if approved:
            subject = f"[Airlock] Format approved: {len(files)} file(s) are being imported"
            body = f"An admin approved the format '{fmt}'. These files are now being imported:\n{names}\n"
        else:
            subject = f"[Airlock] Format rejected: {len(files)} file(s) will not be imported"
            body = (
                f"An admin rejected the format '{fmt}'.\nReason: {reason or '(none given)'}\n\n"
                f"These files will not be imported:\n{names}\n"
            )
        sent += _deliver(user=owner, subject=subject, body=body, obj=files[0])
    return sent


def notify_file_outcome(*, file_id: int) -> None:
    """After commit, email the uploader how the file ended."""
    transaction.on_commit(lambda: file_outcome_send(file_id=file_id), robust=True)


def notify_batch_settled(*, batch_id: int) -> None:
    """After commit, email the uploader the summary of an upload of several files that has just settled."""
    transaction.on_commit(lambda: batch_summary_send(batch_id=batch_id), robust=True)


def notify_format_decision(*, file_ids: list[int], approved: bool, reason: str = "") -> None:
    """After commit, email the uploaders whose files waited for this format."""
    if file_ids:
        transaction.on_commit(
            lambda: format_decision_send(file_ids=file_ids, approved=approved, reason=reason), robust=True
        )
