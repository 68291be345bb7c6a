"""Reads the views and the API need, always scoped to the caller."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from audit.models import AuditEvent
from formats.models import CsvFormat, FormatStatus
from imports.models import UNFINISHED_FILE_STATUSES, ApiToken, FileStatus, ImportBatch, ImportFile, Order
from imports.services.reconciliation import file_reconcile_counts
from staging.models import AWAITING_APPROVAL, StagedRow, StagedStatus


def files_for(user: Any) -> QuerySet[ImportFile]:
    return ImportFile.objects.filter(owner=user).select_related("format", "batch")


def file_for(user: Any, file_id: int) -> ImportFile:
    """The caller's file, or 404 (another user's id is indistinguishable from a missing one)."""
    return get_object_or_404(files_for(user), pk=file_id)


def batches_for(user: Any) -> QuerySet[ImportBatch]:
    return ImportBatch.objects.filter(owner=user)


_ROW_FIELDS = ("total", "imported", "invalid", "skipped", "duplicate", "staged")


def _with_legacy_failed(rows: dict[str, int]) -> dict[str, int]:
    """The API's row counts also carry `failed`, its older name of `invalid` (kept for existing clients)."""
    return {**rows, "failed": rows["invalid"]}


# The steps of an orders file, as its page shows them: (key, label).
PHASES = (
    ("upload", "Uploaded"),
    ("read", "Read"),
    ("approve", "Format approved"),
    ("import", "Imported"),
    ("reconcile", "Reconciled"),
)


def file_phases(file: ImportFile) -> list[dict[str, Any]]:
    """Each step of the file with its state (done, current, waiting, todo) and a note (the reconcile counts)."""
    if file.target != "orders" or file.status in (FileStatus.FAILED, FileStatus.REJECTED, FileStatus.NO_TRADES):
        return []
    read = file.status not in (FileStatus.UPLOADED, FileStatus.PROCESSING)
    approved = bool(file.format_id) and file.format.status == "APPROVED"
    imported = file.status in (FileStatus.IMPORTED, FileStatus.PARTIAL, FileStatus.ROLLED_BACK)
    states = {
        "upload": "done",
        "read": "done" if read else "current",
        "approve": "done" if approved else ("waiting" if read else "todo"),
        "import": "done" if imported else ("current" if file.status == FileStatus.MIGRATING else "todo"),
        "reconcile": "todo",
    }
    notes = {"approve": "" if approved or not read else "an admin reviews the new format"}
    if imported and file.status != FileStatus.ROLLED_BACK:
        counts = file_reconcile_counts(file)
        states["reconcile"] = "waiting" if counts.waiting else "done"
        notes["reconcile"] = f"{counts.linked:,} linked to an instrument, {counts.waiting:,} waiting for a decision" + (
            f", {counts.unlinked:,} left unlinked" if counts.unlinked else ""
        )
    return [{"key": key, "label": label, "state": states[key], "note": notes.get(key, "")} for key, label in PHASES]


def batch_figures(batch: ImportBatch) -> dict[str, Any]:
    """One upload's state, processing progress, files done / total and row counts, from aggregates."""
    files = batch.files.all()
    sums = files.aggregate(
        **{name: Sum(f"rows_{name}") for name in _ROW_FIELDS if name != "staged"},
        # staged rows count only while they wait for a review, as in the file summary
        staged=Sum("rows_staged", filter=Q(status="PENDING_APPROVAL")),
    )
    by_status = dict(files.values_list("status").annotate(n=Count("id")).order_by())
    count = sum(by_status.values())
    # A file still queued or running counts with its own progress; a finished (or waiting-for-review)
    # one is done as far as this upload is concerned.
    unfinished = files.filter(status__in=UNFINISHED_FILE_STATUSES).aggregate(n=Count("id"), progress=Sum("progress"))
    done = count - (unfinished["n"] or 0)
    progress = 100.0 * done + (unfinished["progress"] or 0.0)
    return {
        "id": batch.pk,
        "status": batch.status,
        "status_display": batch.get_status_display(),
        "progress": round(progress / count, 1) if count else 100.0,
        "files": {
            "count": count,
            "finished": done,
            "waiting": by_status.get("PENDING_APPROVAL", 0),
            "by_status": by_status,
        },
        "rows": _with_legacy_failed({name: sums[name] or 0 for name in _ROW_FIELDS}),
    }


def orders_for(user: Any) -> QuerySet[Order]:
    return Order.objects.filter(owner=user).select_related("source_file")


def staging_summary(user: Any) -> dict[str, int]:
    """How many of the caller's rows wait for a format approval, and in how many files."""
    pending = StagedRow.objects.filter(AWAITING_APPROVAL, file__owner=user)
    agg = pending.aggregate(rows=Count("id"), files=Count("file", distinct=True))
    return {"rows": agg["rows"] or 0, "files": agg["files"] or 0}


def with_review_counts(queryset: QuerySet[CsvFormat]) -> QuerySet[CsvFormat]:
    """Annotate staged rows waiting, files and the oldest waiting file (subqueries: no join fan-out)."""
    staged = (
        StagedRow.objects.filter(format=OuterRef("pk"), status=StagedStatus.PENDING)
        .values("format")
        .annotate(n=Count("id"))
        .values("n")
    )
    files = ImportFile.objects.filter(format=OuterRef("pk")).values("format").annotate(n=Count("id")).values("n")
    oldest = (
        ImportFile.objects.filter(format=OuterRef("pk"), status="PENDING_APPROVAL")
        .values("format")
        .annotate(t=Min("created_at"))
        .values("t")
    )
    return queryset.annotate(
        staged_count=Coalesce(Subquery(staged), 0),
        file_count=Coalesce(Subquery(files), 0),
        waiting_since=Subquery(oldest),
    )


def pending_formats() -> QuerySet[CsvFormat]:
    return with_review_counts(CsvFormat.objects.filter(status=FormatStatus.PENDING)).order_by("created_at")


def rollback_info(file: ImportFile) -> dict[str, Any] | None:
    """Who rolled the file back, when and why (from its latest rollback in the audit log), or None."""
    if file.status != "ROLLED_BACK":
        return None
    event = (
        AuditEvent.objects.filter(action="file.rolled_back", object_type="imports.importfile", object_id=str(file.pk))
        .order_by("-created_at", "-id")
        .first()
    )
    if event is None:
        return None
    details = event.details or {}
    return {
        "by": event.actor_label,
        "at": event.created_at,
        "reason": details.get("reason") or "",
        "deleted": details.get("deleted", 0),
        "kept": len(details.get("kept_changed") or []),
    }


def row_accounting(file: ImportFile) -> str:
    """Where every row of the file went, in words that add up to its total: '119 rows = 43 imported + 75
    skipped + 1 duplicate + 1 removed by the rollback'. Lines the reader skipped before any mapping (blank
    lines, totals, a ledger's legs joined into one trade) are no rows of the total: named after it
    ('21 rows = 21 imported; 209 other lines skipped while reading')."""
    staged = file.rows_staged if file.status == FileStatus.PENDING_APPROVAL else 0
    reader = sum(((file.layout or {}).get("reader_skips") or {}).values())
    parts = [
        (file.rows_imported, "imported"),
        (staged, "waiting for approval"),
        (max(file.rows_skipped - reader, 0), "skipped"),
        (file.rows_duplicate, "duplicate"),
        (file.rows_invalid, "invalid"),
    ]
    shown = [f"{n:,} {label}" for n, label in parts if n]
    rest = file.rows_total - sum(n for n, _ in parts)
    if rest > 0:
        if file.status == FileStatus.ROLLED_BACK:
            why = "removed by the rollback"
        elif file.status in UNFINISHED_FILE_STATUSES:
            why = "still being imported"
        elif file.status in (FileStatus.REJECTED, FileStatus.NO_TRADES, FileStatus.PURGED):
            why = "not imported (" + file.get_status_display().lower() + ")"
        else:
            why = "not imported"
        shown.append(f"{rest:,} {why}")
    total = f"{file.rows_total:,} row{'' if file.rows_total == 1 else 's'}"
    text = f"{total} = {' + '.join(shown)}" if shown else total
    if reader:
        text += f"; {reader:,} other line{'' if reader == 1 else 's'} skipped while reading"
    return text


def file_summary(file: ImportFile) -> dict[str, Any]:
    """The JSON shape of a file's status."""
    fmt = file.format
    return {
        "id": file.pk,
        "batch": file.batch_id,
        "name": file.original_name,
        "status": file.status,
        "status_display": file.get_status_display(),
        "size": file.size,
        "sha256": file.sha256,
        "format": {"id": fmt.pk, "name": fmt.name, "status": fmt.status} if fmt else None,
        "rows": {
            "total": file.rows_total,
            "staged": file.rows_staged if file.status == "PENDING_APPROVAL" else 0,
            "imported": file.rows_imported,
            "invalid": file.rows_invalid,
            "failed": file.rows_invalid,  # the API's older name of `invalid`
            "skipped": file.rows_skipped,
            "duplicate": file.rows_duplicate,
        },
        "accounting": row_accounting(file),
        "skip_reasons": file.skip_reasons,
        "progress": round(file.progress, 1),
        "error": file.error or None,
        "layout": {k: file.layout.get(k) for k in ("encoding", "delimiter", "header_line", "section")}
        if file.layout
        else None,
        "created_at": file.created_at.isoformat(),
        "finished_at": file.finished_at.isoformat() if file.finished_at else None,
        "updated_at": file.updated_at.isoformat(),
        "rolled_back": _jsonable(rollback_info(file)),
    }


def _jsonable(info: dict[str, Any] | None) -> dict[str, Any] | None:
    return {**info, "at": info["at"].isoformat()} if info else None


def api_token_user(key: str) -> Any | None:
    """The active user whose token `key` is, or None (looked up by the key's hash, never by the key)."""
    if not key:
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(key)).first()
    if token is None or not token.user.is_active:
        return None
    return token.user
