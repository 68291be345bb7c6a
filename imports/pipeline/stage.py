"""Staging: every row of a file read raw into StagedRow in one transaction, and the verdict on a new format's
first file (does it hold trades at all?)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.services import record
from config.errors import MappingError
from formats.models import CsvFormat, FormatStatus
from formats.suggest.verdict import missing_fields, rows_verdict, structural_verdict
from formats.targets import get_target
from imports.lifecycle import file_step, files_end
from imports.models import FileStatus, ImportFile
from imports.pipeline.preview import preview
from imports.reading import FileLayout, ReaderOptions, Record, Skipped
from imports.services.notifications import notify_file_outcome
from imports.sheets.dispatch import detect_layout, iter_records, sheet_limits
from staging.services import staged_rows_delete_for_file, staged_rows_write


def reader_options(mapping: dict[str, Any] | None) -> ReaderOptions:
    reader = (mapping or {}).get("reader") or {}
    return ReaderOptions(section=reader.get("section"), header_line=reader.get("header_line"))


def detect(path: Any, options: ReaderOptions | None = None) -> FileLayout:
    return detect_layout(path, options, limits=sheet_limits(settings.AIRLOCK))


def records_of(path: Any, layout: FileLayout) -> Any:
    return iter_records(path, layout, limits=sheet_limits(settings.AIRLOCK))


# The rows a new format's verdict looks at: enough for any real statement, bounded for a huge file.
VERDICT_SCAN_ROWS = 50_000


def no_trades(format_id: int, file_id: int) -> bool:
    """Settle a staged file of a pending format as NO_TRADES when its format holds no trades.

    A format is judged once, by the file that created it and while its mapping is still the suggestion (an
    admin's edit means a person is on it): from the mapping's shape (structural_verdict), else from what the
    complete mapping does to the staged rows (rows_verdict). Later files of a NO_TRADES format follow it. The
    rows stay staged, so an admin who disagrees turns the format into a pending one and they wait for review
    (imports.services.review.format_has_trades)."""
    fmt = CsvFormat.objects.get(pk=format_id)
    if not get_target(fmt.target).trades:
        return False  # master data holds no trades by nature: its formats always go to review
    reason = fmt.verdict if fmt.status == FormatStatus.NO_TRADES else None
    if fmt.status == FormatStatus.PENDING and fmt.first_seen_file_id == file_id and fmt.mapping == fmt.suggestion:
        reason = structural_verdict(fmt.mapping, fmt.columns, fmt.sample_rows or [])
        if reason is None and not missing_fields(fmt.mapping):
            try:
                reason = rows_verdict(preview(fmt=fmt, limit=0, scan_limit=VERDICT_SCAN_ROWS))
            except MappingError:
                reason = None  # a suggestion that does not compile is for a reviewer to fix
        if reason is None:
            return False
        with transaction.atomic():
            judged = CsvFormat.objects.filter(pk=format_id, status=FormatStatus.PENDING, mapping=fmt.suggestion)
            if not judged.update(status=FormatStatus.NO_TRADES, verdict=reason, updated_at=timezone.now()):
                return False  # reviewed or changed meanwhile: a person decides
            record(
                action="format.no_trades",
                obj=fmt,
                summary=f"Format '{fmt.name}' holds no trades: {reason}; kept out of the review queue",
                details={"reason": reason, "file": file_id},
            )
    if not reason:
        return False
    message = f"No trades found in this file: {reason}. Nothing was imported; an admin can review it if this is wrong."
    settled = ImportFile.objects.filter(format_id=format_id, status=FileStatus.PENDING_APPROVAL)
    file_ids = list(settled.values_list("pk", flat=True))
    files_end(settled.filter(pk__in=file_ids), status=FileStatus.NO_TRADES, message=message)
    for settled_id in file_ids:
        notify_file_outcome(file_id=settled_id)
    return file_id in file_ids


class FormatRejected(Exception):
    """The format was rejected while the file was being read: nothing is staged."""


class ReaderChanged(Exception):
    """The format's reader settings changed while the file was being read: it is read again."""


def no_rows_message(skip_reasons: dict[str, int]) -> str:
    if not skip_reasons:
        return "The file has a header but no data rows."
    return (
        "The file has no data rows (every row was skipped: "
        + ", ".join(f"{n}× {reason}" for reason, n in Counter(skip_reasons).most_common(3))
        + ")."
    )


def stage(file: ImportFile, fmt: CsvFormat, layout: FileLayout, path: Any) -> tuple[int, bool]:
    """Stream every record into StagedRow in one transaction (a crash rolls it all back); returns how many
    rows were staged and whether the format is approved (then the caller migrates them)."""
    skipped: Counter = Counter()

    def records() -> Any:
        for item in records_of(path, layout):
            if isinstance(item, Record):
                yield item.line, item.cells
            elif isinstance(item, Skipped):
                skipped[item.reason if len(skipped) < 50 else "other skipped lines"] += 1

    with transaction.atomic():
        # The format's status under a share lock, held until these rows commit: an approval or a rejection
        # (which lock the format for update) either committed before and is read here, or waits for these
        # rows and then approves or rejects them with the others. Staging jobs do not block each other.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT status, mapping -> 'reader' FROM {CsvFormat._meta.db_table} WHERE id = %s FOR SHARE", [fmt.pk]
            )
            status, reader = cursor.fetchone()
        reader = orjson.loads(reader) if isinstance(reader, str | bytes) else reader  # Django leaves JSON as text
        if status == FormatStatus.REJECTED:
            raise FormatRejected
        if reader != (fmt.mapping or {}).get("reader"):
            raise ReaderChanged  # the table moved since this file's layout was detected
        approved = status == FormatStatus.APPROVED
        staged_rows_delete_for_file(file_id=file.pk)
        count = staged_rows_write(file_id=file.pk, format_id=fmt.pk, rows=records())
        file.format = fmt
        # Lines the reader skipped (blank, totals...) are kept apart from rows the mapping's filters skip,
        # so a filter fix can re-open the latter and recount without losing the former.
        file.layout = {**layout.as_dict(), "reader_skips": dict(skipped)}
        file.rows_total = count
        file.rows_staged = count
        file.rows_skipped = sum(skipped.values())
        file.skip_reasons = dict(skipped)
        file.rows_imported = file.rows_invalid = file.rows_duplicate = 0
        file_step(file, FileStatus.MIGRATING if approved else FileStatus.PENDING_APPROVAL)
        file.progress = 0.0 if approved else 100.0
        file.save()
        if count:
            record(
                action="rows.staged",
                obj=file,
                summary=f"{count} rows of '{file.original_name}' staged for format '{fmt.name}'",
                details={"format": fmt.pk, "rows": count, "skipped": dict(skipped), "layout": layout.as_dict()},
            )
    return count, approved
