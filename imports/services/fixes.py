"""Fixing invalid rows in place: the file's owner corrects the cells of invalid rows, and they
go through the same conversion, validation, de-duplication and import as any staged row (the file's
migration), ending imported or invalid again with the new message. No re-upload for a typo.

Every check comes first (ownership, the file's and format's state, the rows, the columns, cell sizes), so a
refusal changes nothing. The edit is one transaction under the file's lock (a worker busy with the file
makes it wait for nothing: it is refused as busy); each changed row is audited with its cells before and
after. Sending the same fix again finds the rows no longer invalid and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone

from audit.services import record
from config.errors import Conflict, InvalidRequest
from formats.models import FormatStatus
from imports.jobs import enqueue
from imports.models import FileStatus, ImportFile
from imports.pipeline.locks import file_lock
from imports.selectors import file_for
from imports.targets import writer_for
from staging.models import StagedRow, StagedStatus

MAX_ROWS_PER_FIX = 500
# Staff holding this (Django's own "change import file") may fix the rows of any user's file, e.g. on a support call.
FIX_ANY_FILE_PERMISSION = "imports.change_importfile"
# A file whose import ended with invalid rows; the rows of any other file are not fixed here.
FIXABLE_STATUSES = (FileStatus.PARTIAL, FileStatus.FAILED, FileStatus.IMPORTED)


@dataclass
class FixResult:
    """What a fix did: rows sent to import again, rows whose cells were the same, rows no longer invalid."""

    resubmitted: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    not_invalid: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[int]]:
        return {"resubmitted": self.resubmitted, "unchanged": self.unchanged, "not_invalid": self.not_invalid}


def _checked_edits(edits: Any, columns: list[str]) -> dict[int, dict[str, str]]:
    """{line: {column: new text}} from the request, or InvalidRequest saying what is wrong."""
    if not isinstance(edits, dict) or not edits:
        raise InvalidRequest("Send the rows to fix: {line: {column: new value}}.", code="invalid_fix")
    if len(edits) > MAX_ROWS_PER_FIX:
        raise InvalidRequest(f"At most {MAX_ROWS_PER_FIX} rows can be fixed at once.", code="invalid_fix")
    limit = settings.AIRLOCK["MAX_FIELD_CHARS"]
    checked: dict[int, dict[str, str]] = {}
    for line, cells in edits.items():
        try:
            number = int(line)
        except (TypeError, ValueError):
            raise InvalidRequest(f"'{str(line)[:40]}' is not a line number.", code="invalid_fix") from None
        if not isinstance(cells, dict) or not cells:
            raise InvalidRequest(f"Line {number}: send the cells to change as {{column: value}}.", code="invalid_fix")
        for column, value in cells.items():
            if column not in columns:
                raise InvalidRequest(
                    f"Line {number}: the file has no column '{str(column)[:60]}'.",
                    code="invalid_fix",
                    details={"columns": columns},
                )
            if not isinstance(value, str):
                raise InvalidRequest(f"Line {number}, '{column}': a cell is text.", code="invalid_fix")
            if len(value) > limit:
                raise InvalidRequest(
                    f"Line {number}, '{column}': at most {limit:,} characters per cell.", code="invalid_fix"
                )
        checked[number] = dict(cells)
    return checked


def fixable_file(*, actor: Any, file_id: int) -> ImportFile:
    """The file whose rows the actor may fix: their own, or any file for staff with the permission; else 404
    (another user's id is indistinguishable from a missing one)."""
    if actor.is_staff and actor.has_perm(FIX_ANY_FILE_PERMISSION):
        return get_object_or_404(ImportFile.objects.select_related("format", "owner"), pk=file_id)
    return file_for(actor, file_id)


def file_rows_fix(*, file_id: int, owner: Any, edits: Any) -> FixResult:
    """Correct the cells of invalid rows of a file and import them again (see the module). `owner` is the one
    fixing: the file's owner, or staff with FIX_ANY_FILE_PERMISSION (the audit names both)."""
    file = fixable_file(actor=owner, file_id=file_id)
    fmt = file.format
    if fmt is None or fmt.status != FormatStatus.APPROVED:
        raise Conflict("Only rows of a file whose format is approved can be fixed here.", code="fix_refused")
    columns = list(fmt.columns)
    checked = _checked_edits(edits, columns)
    result = FixResult()
    with file_lock(file_id) as acquired:
        if not acquired:
            raise Conflict(
                "This file is being imported right now; fix its rows when it has finished.", code="file_busy"
            )
        with transaction.atomic():
            file = ImportFile.objects.select_for_update(of=("self",)).select_related("owner").get(pk=file_id)
            if file.status not in FIXABLE_STATUSES:
                raise Conflict(
                    f"'{file.original_name}' is {file.get_status_display().lower()}: only the invalid rows of a "
                    "finished import can be fixed.",
                    code="fix_refused",
                )
            rows = {
                row.line: row
                for row in StagedRow.objects.select_for_update().filter(file_id=file_id, line__in=list(checked))
            }
            # A row that became a record is not staged any more (a migrated row is deleted, a row read
            # straight into the target never was): it is not invalid, and there is nothing to fix.
            written = set(
                writer_for(fmt.target)
                .model.objects.filter(source_file_id=file_id, source_line__in=set(checked) - set(rows))
                .values_list("source_line", flat=True)
            )
            result.not_invalid.extend(sorted(written))
            missing = sorted(set(checked) - set(rows) - written)
            if missing:
                raise InvalidRequest(
                    f"The file has no row at line(s) {', '.join(map(str, missing[:10]))}.", code="invalid_fix"
                )
            for line in sorted(rows):
                row = rows[line]
                if row.status != StagedStatus.INVALID:
                    result.not_invalid.append(line)
                    continue
                changes = _apply(row, checked[line], columns)
                if not changes:
                    result.unchanged.append(line)
                    continue
                row.status, row.errors = StagedStatus.APPROVED, None
                row.save(update_fields=["raw", "status", "errors"])
                result.resubmitted.append(line)
                shown = "; ".join(f"{c}: '{b[:40]}' → '{a[:40]}'" for c, (b, a) in changes.items())
                record(
                    action="row.fixed",
                    actor=owner,
                    obj=file,
                    summary=f"{owner.get_username()} fixed line {line} of '{file.original_name}': {shown}"[:500],
                    details={
                        "line": line,
                        "file_owner": file.owner.get_username(),
                        "changes": {c: {"before": b, "after": a} for c, (b, a) in changes.items()},
                    },
                )
            if result.resubmitted:
                count = len(result.resubmitted)
                file.rows_invalid -= count
                file.rows_staged += count
                file.status, file.finished_at, file.error = FileStatus.MIGRATING, None, ""
                file.updated_at = timezone.now()
                file.save()
                enqueue.enqueue_file_process(file_id, queue="high")
    result.not_invalid.sort()
    return result


def _apply(row: StagedRow, cells: dict[str, str], columns: list[str]) -> dict[str, tuple[str, str]]:
    """Write the new cells into the row's raw cells; {column: (before, after)} of those that changed."""
    raw = list(row.raw) + [""] * max(0, len(columns) - len(row.raw))
    changes: dict[str, tuple[str, str]] = {}
    for column, value in cells.items():
        index = columns.index(column)
        if raw[index] != value:
            changes[column] = (raw[index], value)
            raw[index] = value
    row.raw = raw
    return changes
