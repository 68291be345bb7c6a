"""Rolling back an import: remove the orders one file created, in batches, safely re-runnable.

"Changed since import" (kept, reported, never silently deleted):
  * modified: the order's `updated_at` is later than its `created_at` (the import's INSERT writes both
    as the transaction's now(); any later save through the ORM or the admin bumps `updated_at`), or
  * referenced: another row points at the order (any reverse relation of Order).
By default a rollback that finds changed orders deletes nothing and raises Conflict listing them; with
`keep_changed=True` it deletes the others and leaves the changed ones attached to the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet

from audit.models import AuditEvent
from audit.services import record
from config.errors import Conflict, MappingError, PermissionDenied
from formats.models import CsvFormat, FormatStatus
from formats.services import APPROVE_PERMISSION, format_revoke_policy_approval
from imports.jobs import enqueue
from imports.lifecycle import batches_refresh, file_end
from imports.models import UNFINISHED_FILE_STATUSES, FileStatus, ImportFile, Instrument
from imports.pipeline.locks import file_lock, rollback_lock
from imports.targets import DEFAULT_TARGET, writer_for
from staging.models import StagedRow, StagedStatus

ROLLBACK_PERMISSION = "imports.rollback_importfile"
# A file being read or migrated is still writing orders: rolling it back would race the worker.
REFUSED_STATUSES = (*UNFINISHED_FILE_STATUSES, FileStatus.PENDING_APPROVAL)
_BATCH = 5000


@dataclass
class RollbackResult:
    file_id: int
    deleted: int = 0
    kept_changed: list[int] = field(default_factory=list)
    already_rolled_back: bool = False
    # Rows of other files that were skipped as duplicates of the removed orders: those trades are now
    # missing from production unless the other file is re-imported.
    duplicates_in_other_files: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _referenced_instruments(file_id: int) -> list[tuple[str, int]]:
    """[(instrument, orders linked to it)] of an instruments file's records that orders point at (most first)."""
    linked = Instrument.objects.filter(source_file_id=file_id).annotate(n=Count("orders")).filter(n__gt=0)
    return [(str(instrument), instrument.n) for instrument in linked.order_by("-n", "name")]


def _records(file_id: int) -> QuerySet:
    """What the file wrote into its format's target (its orders, for the orders target)."""
    target = ImportFile.objects.filter(pk=file_id).values_list("format__target", flat=True).first()
    return writer_for(target or DEFAULT_TARGET).model.objects.filter(source_file_id=file_id)


def changed_orders(file_id: int) -> QuerySet:
    """The file's records that were modified or are referenced since the import (see the module doc)."""
    records = _records(file_id)
    changed = Q(updated_at__gt=F("created_at"))
    for relation in records.model._meta.related_objects:
        changed |= Q(**{f"{relation.name}__isnull": False})
    return records.filter(changed).distinct()


@dataclass
class RollbackPreview:
    """What rolling back one file would do, for the confirmation page (nothing is changed to make it)."""

    file: ImportFile
    orders: int
    changed: int
    to_delete: int  # none when the file is refused, or when changed orders refuse the plain rollback
    refused: str = ""  # why this file cannot be rolled back now ("" when it can)
    # Other files whose rows were skipped as duplicates of this file's orders, with how many rows each.
    duplicates_in_other_files: list[tuple[ImportFile, int]] = field(default_factory=list)


def rollback_preview(*, file_id: int, keep_changed: bool) -> RollbackPreview:
    """Count what a rollback of the file would remove and which other files' duplicates point at it."""
    file = ImportFile.objects.select_related("owner").get(pk=file_id)
    refused = ""
    if file.status == FileStatus.ROLLED_BACK:
        refused = "already rolled back"
    elif file.status in REFUSED_STATUSES:
        refused = f"{file.get_status_display().lower()}: only a finished import can be rolled back"
    orders = _records(file_id).count()
    changed = changed_orders(file_id).count()
    if not refused and changed and not keep_changed:
        refused = f"{changed} of its orders were changed since the import: roll back keeping them instead"
    counts = _duplicates_pointing_at(file_id)
    others = ImportFile.objects.select_related("owner").filter(pk__in=counts).order_by("pk")
    return RollbackPreview(
        file=file,
        orders=orders,
        changed=changed,
        to_delete=0 if refused else orders - changed,
        refused=refused,
        duplicates_in_other_files=[(other, counts[other.pk]) for other in others],
    )


def file_rollback(*, file_id: int, actor: Any, keep_changed: bool = False, reason: str = "") -> RollbackResult:
    """Remove the orders a file created (refused while it is still being processed); mark it ROLLED_BACK."""
    if not actor.has_perm(ROLLBACK_PERMISSION):
        # Checked here, not only in the admin: every interface that rolls back goes through this.
        raise PermissionDenied("You need the 'roll back an imported file' permission.")
    with rollback_lock(file_id) as mine:
        if not mine:
            raise Conflict(
                "Another rollback of this file is running right now; it finishes on its own. Look at the file's "
                "status in a moment instead of starting it again.",
                code="rollback_running",
                details={"file": file_id},
            )
        return _file_rollback_locked(file_id=file_id, actor=actor, keep_changed=keep_changed, reason=reason)


def _file_rollback_locked(*, file_id: int, actor: Any, keep_changed: bool, reason: str) -> RollbackResult:
    with file_lock(file_id) as acquired:
        if not acquired:
            raise Conflict(
                "A worker is processing this file right now; try the rollback when it has finished.",
                code="file_busy",
                details={"file": file_id},
            )
        file = ImportFile.objects.get(pk=file_id)
        result = RollbackResult(file_id=file_id)
        if file.status == FileStatus.ROLLED_BACK:
            result.already_rolled_back = True
            return result
        if file.status in REFUSED_STATUSES:
            raise Conflict(
                f"'{file.original_name}' is {file.get_status_display().lower()}: only a finished import "
                "can be rolled back.",
                code="rollback_refused",
                details={"file": file_id, "status": file.status},
            )
        changed = list(changed_orders(file_id).order_by("pk").values_list("pk", flat=True))
        referenced = _referenced_instruments(file_id)
        if referenced and not keep_changed:
            shown = "; ".join(f"{name} ({n} orders)" for name, n in referenced[:10])
            more = f" and {len(referenced) - 10} more" if len(referenced) > 10 else ""
            raise Conflict(
                f"{len(referenced)} instruments of '{file.original_name}' are what imported orders are linked to: "
                f"{shown}{more}. Nothing was deleted. Roll back keeping them, or re-link those orders first.",
                code="rollback_instruments_referenced",
                details={
                    "file": file_id,
                    "instruments": [{"instrument": name, "orders": n} for name, n in referenced[:100]],
                    "changed_count": len(changed),
                },
            )
        if changed and not keep_changed:
            raise Conflict(
                f"{len(changed)} orders of '{file.original_name}' were changed since the import (edited, or "
                "referenced by other data); nothing was deleted. Review them, or roll back keeping them.",
                code="rollback_changed_orders",
                details={"file": file_id, "changed_orders": changed[:100], "changed_count": len(changed)},
            )
        result.kept_changed = changed
        records = _records(file_id)
        result.duplicates_in_other_files = _duplicates_pointing_at(file_id)
        # Batches of their own transactions: a rollback of a million orders holds no lock for minutes, and
        # an interrupted one is finished by running it again (the file stays in its status until the end).
        while True:
            with transaction.atomic():
                ids = list(records.exclude(pk__in=changed).order_by("pk").values_list("pk", flat=True)[:_BATCH])
                if not ids:
                    break
                result.deleted += records.model.objects.filter(pk__in=ids).delete()[0]
        with transaction.atomic():
            file_end(
                file_id,
                status=FileStatus.ROLLED_BACK,
                message=f"Rolled back; {len(changed)} changed orders were kept." if changed else "Rolled back.",
                # What the file shows as imported is what is left of it in production: the kept orders.
                rows_imported=records.count(),
            )
            record(
                action="file.rolled_back",
                actor=actor,
                obj=file,
                severity=AuditEvent.Severity.WARNING,
                summary=(
                    f"'{file.original_name}' rolled back: {result.deleted} orders deleted"
                    + (f", {len(changed)} changed orders kept" if changed else "")
                ),
                # The reason is what the owner's file page shows, with who and when (selectors.rollback_info).
                details={**result.as_dict(), "previous_status": file.status, "reason": reason.strip()[:2000]},
            )
        batches_refresh(batch_ids=[file.batch_id])
    return result


def duplicates_reimport(*, rolled_back_file_id: int, actor: Any) -> dict[int, int]:
    """After a rollback, import the rows of other files that had been skipped as duplicates of the deleted
    orders: they are re-opened (DUPLICATE -> APPROVED) and the files migrate them like any staged row (a row
    whose trade is still in production from elsewhere is a duplicate again). {file id: rows re-opened}.
    A file being worked on, or closed (rolled back, purged, rejected), is left alone."""
    if not actor.has_perm(ROLLBACK_PERMISSION):
        raise PermissionDenied("You need the 'roll back an imported file' permission.")
    reopened: dict[int, int] = {}
    for other_id in sorted(_duplicates_pointing_at(rolled_back_file_id)):
        with file_lock(other_id) as acquired, transaction.atomic():
            if not acquired:
                continue
            other = ImportFile.objects.select_for_update().get(pk=other_id)
            if other.status in (*_NOTHING_IMPORTED, *REFUSED_STATUSES):
                continue
            count = StagedRow.objects.filter(
                file_id=other_id, status=StagedStatus.DUPLICATE, errors__0__duplicate_of_file=rolled_back_file_id
            ).update(status=StagedStatus.APPROVED, errors=None)
            if not count:
                continue
            other.rows_duplicate -= count
            other.rows_staged += count
            other.status, other.finished_at, other.error = FileStatus.MIGRATING, None, ""
            other.save()
            record(
                action="rows.duplicates_reimported",
                actor=actor,
                obj=other,
                summary=(
                    f"{count} rows of '{other.original_name}' skipped as duplicates of the rolled-back file "
                    f"#{rolled_back_file_id} are imported again"
                ),
                details={"rolled_back_file": rolled_back_file_id, "rows": count},
            )
            enqueue.enqueue_file_process(other_id, queue="high")
            reopened[other_id] = count
    return reopened


# Files whose import is over or never happened: nothing of theirs to roll back.
_NOTHING_IMPORTED = (FileStatus.ROLLED_BACK, FileStatus.PURGED, FileStatus.REJECTED, FileStatus.FAILED)


def format_policy_revoke(*, format_id: int, actor: Any, reason: Any) -> dict[str, int]:
    """Reverse an approval by policy: roll back every file it imported, then reject the format.

    Every check comes first (permissions, a reason, the format approved by policy, no file still being
    imported, no file with changed orders), so a refusal changes nothing; the rollbacks are then the same
    as one by one (audited, re-runnable), and the format is rejected last.
    """
    if not (actor.has_perm(APPROVE_PERMISSION) and actor.has_perm(ROLLBACK_PERMISSION)):
        raise PermissionDenied("Revoking an approval needs the approve and the roll back permissions.")
    if not isinstance(reason, str) or not reason.strip():
        raise MappingError("A reason is required to revoke an approval.", code="reason_required")
    fmt = CsvFormat.objects.get(pk=format_id)
    if fmt.status != FormatStatus.APPROVED or not fmt.approved_by_policy:
        raise Conflict("Only a format approved by policy can have its approval revoked.")
    files = list(ImportFile.objects.filter(format=fmt).exclude(status__in=_NOTHING_IMPORTED).order_by("pk"))
    busy = [f.original_name for f in files if f.status in REFUSED_STATUSES]
    if busy:
        raise Conflict(
            f"{len(busy)} file(s) of this format are still being imported ({', '.join(busy[:5])}); revoke when "
            "they have finished.",
            code="files_busy",
        )
    changed = [f.original_name for f in files if changed_orders(f.pk).exists()]
    if changed:
        raise Conflict(
            f"Orders of {len(changed)} file(s) were changed since the import ({', '.join(changed[:5])}); nothing "
            "was rolled back. Roll those files back one by one (keeping or reviewing the changed orders) first.",
            code="rollback_changed_orders",
        )
    deleted = 0
    for file in files:
        deleted += file_rollback(file_id=file.pk, actor=actor, reason=f"approval by policy revoked: {reason}").deleted
    format_revoke_policy_approval(format_id=format_id, actor=actor, reason=reason.strip())
    return {"files": len(files), "deleted": deleted}


def _duplicates_pointing_at(file_id: int) -> dict[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT file_id, count(*) FROM staging_stagedrow WHERE status = 'DUPLICATE' AND file_id <> %s "
            "AND (errors -> 0 ->> 'duplicate_of_file')::bigint = %s GROUP BY file_id",
            [file_id, file_id],
        )
        return {other: count for other, count in cursor.fetchall()}
