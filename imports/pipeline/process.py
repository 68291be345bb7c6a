"""The import pipeline: read -> fingerprint -> stage -> (approved?) migrate, one way.

The same compiled mapping serves the admin's preview, the migration of staged rows, re-runs after
a mapping fix and files of approved formats, so what the admin sees is what gets written.
Postgres holds the truth: every step re-reads state, so a job that runs twice or late is harmless.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record
from config.errors import AppError, MappingError, RateLimited, UnreadableFile
from config.worker import stop_requested
from formats.converters import compile_mapping
from formats.filters import compile_filters
from formats.models import CsvFormat, FormatStatus
from formats.services import format_find, format_get_or_create_pending
from formats.suggest.verdict import missing_fields, rows_verdict, structural_verdict
from imports.guards.scanning import ScanFailed, VirusDetected, stored_check_content
from imports.lifecycle import file_end, files_end
from imports.models import FileStatus, ImportFile
from imports.monitoring.metrics import file_finished_observe
from imports.pipeline import fastpath
from imports.pipeline.locks import file_lock
from imports.pipeline.sessions import OrderedSessions, sessions_for
from imports.reading import FileLayout, ReaderOptions, Record, Skipped
from imports.services.notifications import notify_file_outcome
from imports.sheets.dispatch import detect_layout, fingerprint_section, iter_records, sample_records, sheet_limits
from imports.storage import local_path
from imports.targets.orders import (
    DedupeKeys,
    OrderRow,
    duplicate_errors,
    existing_orders_by_key,
    orders_insert,
    validate_order,
)
from staging.models import OPEN_STATUSES, StagedRow, StagedStatus
from staging.services import staged_rows_claim, staged_rows_delete_for_file, staged_rows_mark, staged_rows_write

log = logging.getLogger(__name__)
TARGET = "orders"
OPEN_ROW_STATUSES = OPEN_STATUSES  # staged rows still waiting for something (staging/models.py)


def _reader_options(mapping: dict[str, Any] | None) -> ReaderOptions:
    reader = (mapping or {}).get("reader") or {}
    return ReaderOptions(section=reader.get("section"), header_line=reader.get("header_line"))


def _detect(path: Any, options: ReaderOptions | None = None) -> FileLayout:
    return detect_layout(path, options, limits=sheet_limits(settings.AIRLOCK))


def _records(path: Any, layout: FileLayout) -> Any:
    return iter_records(path, layout, limits=sheet_limits(settings.AIRLOCK))


def _file_fail(file_id: int, message: str, *, status: str = FileStatus.FAILED) -> None:
    file_end(file_id, status=status, message=message)
    notify_file_outcome(file_id=file_id)


def file_process(*, file_id: int) -> str:
    """Read a stored file, match or create its format, stage its rows, migrate if approved."""
    # One process per file: a duplicate job (a reconciler kick, an RQ retry) that finds the file
    # being worked on leaves it to the holder instead of staging it a second time.
    with file_lock(file_id) as acquired:
        if not acquired:
            return ImportFile.objects.filter(pk=file_id).values_list("status", flat=True).first() or ""
        return _file_process_locked(file_id)


def _file_process_locked(file_id: int) -> str:
    with transaction.atomic():
        file = ImportFile.objects.select_for_update().get(pk=file_id)
        due = file.status in (FileStatus.UPLOADED, FileStatus.PROCESSING)
        if due:
            file.status = FileStatus.PROCESSING
            file.started_at = file.started_at or timezone.now()
            file.attempts += 1
            file.save(update_fields=["status", "started_at", "attempts", "updated_at"])
    if not due:
        # Already staged, migrated or ended: a duplicate or late job is a no-op, except that an
        # interrupted migration resumes -- outside the status check's transaction, so that every batch
        # commits on its own and a second interruption keeps the progress made.
        return file_migrate(file_id=file_id) if file.status == FileStatus.MIGRATING else file.status
    try:
        # A direct upload's object was never seen by the web process: read through a copy verified against the
        # size and sha256 it was declared with, sniffed and virus-scanned before anything else reads it.
        verify = {} if file.content_checked else {"size": file.size, "sha256": file.sha256}
        with local_path(file.stored_name, **verify) as path:
            if not file.content_checked:
                stored_check_content(file=file, path=path)
                file.content_checked = True  # also on this instance: later steps save it whole
                ImportFile.objects.filter(pk=file.pk).update(content_checked=True)
            fmt, layout = _match_format(file, path)
            if fmt.status == FormatStatus.REJECTED:
                return _file_rejected(file_id, fmt)
            plan = (
                fastpath.plan_for(fmt.mapping, fmt.columns, dedupe=file.dedupe)
                if (fmt.status == FormatStatus.APPROVED and settings.AIRLOCK.get("DIRECT_IMPORT", True))
                else None
            )
            if plan is not None:
                return _import_direct(file, fmt, layout, path, plan)
            if "direct" in (file.layout or {}):
                # Started straight from the file, but its format's mapping no longer allows it (or the
                # direct import was turned off): staging re-reads the whole file, so what the direct run
                # wrote goes first -- kept, its lines would be written again with new duplicate counters.
                removed = _direct_undo(file.pk)
                record(
                    action="rows.restaged",
                    obj=file,
                    summary=(
                        f"'{file.original_name}': the mapping of '{fmt.name}' now needs the rows staged; the "
                        f"{removed} rows imported straight from the file so far were removed, the whole file is staged"
                    ),
                    details={"format": fmt.pk, "rows_removed": removed},
                )
            staged, approved = _stage(file, fmt, layout, path)
    except _FormatRejected:
        return _file_rejected(file_id, CsvFormat.objects.get(pk=fmt.pk))
    except _ReaderChanged:
        return _file_process_locked(file_id)
    except UnreadableFile as exc:
        return _file_refused(file, exc, "could not be read")
    except (VirusDetected, ScanFailed) as exc:  # a direct upload's check (stored_check_content): fail closed
        return _file_refused(file, exc, "was refused by the virus scan")
    except RateLimited as exc:  # the owner's daily limit of new formats (formats.services)
        return _file_refused(file, exc, "has a new format past its owner's daily limit")
    if staged == 0:
        _file_fail(file_id, _no_rows_message(file.skip_reasons))
        return FileStatus.FAILED
    if approved:
        return file_migrate(file_id=file_id)
    if _no_trades(fmt.pk, file_id):
        return FileStatus.NO_TRADES
    return FileStatus.PENDING_APPROVAL


# The rows a new format's verdict looks at: enough for any real statement, bounded for a huge file.
VERDICT_SCAN_ROWS = 50_000


def _no_trades(format_id: int, file_id: int) -> bool:
    """Settle a staged file of a pending format as NO_TRADES when its format holds no trades.

    A format is judged once, by the file that created it and while its mapping is still the suggestion (an
    admin's edit means a person is on it): from the mapping's shape (structural_verdict), else from what the
    complete mapping does to the staged rows (rows_verdict). Later files of a NO_TRADES format follow it. The
    rows stay staged, so an admin who disagrees turns the format into a pending one and they wait for review
    (imports.services.review.format_has_trades)."""
    fmt = CsvFormat.objects.get(pk=format_id)
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


def _file_refused(file: ImportFile, exc: AppError, what: str) -> str:
    """FAIL a file the pipeline refuses (unreadable, over a limit) with the refusal's message, audited."""
    _file_fail(file.pk, exc.message)
    record(
        action="file.failed",
        obj=file,
        severity=AuditEvent.Severity.WARNING,
        summary=f"'{file.original_name}' {what}: {exc.message}",
        details=exc.details or None,
    )
    return FileStatus.FAILED


def _file_rejected(file_id: int, fmt: CsvFormat) -> str:
    _file_fail(file_id, f"The format '{fmt.name}' was rejected: {fmt.rejection_reason}", status=FileStatus.REJECTED)
    return FileStatus.REJECTED


class _FormatRejected(Exception):
    """The format was rejected while the file was being read: nothing is staged."""


class _ReaderChanged(Exception):
    """The format's reader settings changed while the file was being read: it is read again."""


def _no_rows_message(skip_reasons: dict[str, int]) -> str:
    if not skip_reasons:
        return "The file has a header but no data rows."
    return (
        "The file has no data rows (every row was skipped: "
        + ", ".join(f"{n}× {reason}" for reason, n in Counter(skip_reasons).most_common(3))
        + ")."
    )


def _match_format(file: ImportFile, path: Any) -> tuple[CsvFormat, FileLayout]:
    """Detect the layout and find the approved/pending format for its header (or create one)."""
    layout = _detect(path)
    section = fingerprint_section(layout)  # a CSV statement's section; not a sheet's name or a JSON path
    fmt = format_find(target=TARGET, header=layout.header, section=section)
    if fmt is None:
        limits = sheet_limits(settings.AIRLOCK)
        sample = [
            record.cells for record in sample_records(path, layout, settings.AIRLOCK["SUGGEST_ROWS"], limits=limits)
        ]
        fmt, _ = format_get_or_create_pending(
            target=TARGET,
            header=layout.header,
            columns=layout.columns,
            sample_rows=sample,
            context=layout.context,
            joined=bool(layout.ledger),
            section=section,
            created_by=file.owner,
            file_id=file.pk,
            file_name=file.original_name,
        )
    options = _reader_options(fmt.mapping)
    if options.header_line or (options.section and options.section != layout.section):
        # The admin pinned where the table is: read the file the way the format says.
        layout = _detect(path, options)
    return fmt, layout


class _MappingWatch:
    """Whether the format's mapping changed since a run compiled it (a reviewer's correction): the run
    stops taking batches, as for a worker's stop request, and starts again with the new mapping."""

    def __init__(self, fmt: CsvFormat) -> None:
        self.format_id = fmt.pk
        self.mapping = fmt.mapping
        self.changed = False

    def stop(self) -> bool:
        """The `stop` of a run: the worker is shutting down, or the mapping changed."""
        if not self.changed:
            current = CsvFormat.objects.filter(pk=self.format_id).values_list("mapping", flat=True).first()
            self.changed = current != self.mapping
        return self.changed or stop_requested()

    def reopen(self, file_id: int) -> None:
        """The correction re-opened the rows the old mapping had failed so far; this re-opens those the run
        failed after it (batches already converted when it committed)."""
        format_reprocess_failed(format_id=self.format_id, file_ids=[file_id])


def _stage(file: ImportFile, fmt: CsvFormat, layout: FileLayout, path: Any) -> tuple[int, bool]:
    """Stream every record into StagedRow in one transaction (a crash rolls it all back); returns how many
    rows were staged and whether the format is approved (then the caller migrates them)."""
    skipped: Counter = Counter()

    def records() -> Any:
        for item in _records(path, layout):
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
            raise _FormatRejected
        if reader != (fmt.mapping or {}).get("reader"):
            raise _ReaderChanged  # the table moved since this file's layout was detected
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
        file.rows_imported = file.rows_failed = file.rows_duplicate = 0
        file.status = FileStatus.MIGRATING if approved else FileStatus.PENDING_APPROVAL
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


def _import_direct(file: ImportFile, fmt: CsvFormat, layout: FileLayout, path: Any, plan: fastpath.FastPlan) -> str:
    """A file of an approved format straight into orders, chunk by chunk, without staging every row.

    Each chunk commits its orders, the rows that did not become orders (staged with their errors), the
    file's counters and how far the file was read (`layout.direct.through_line`) in one transaction, so a
    job killed at any point resumes after the last committed chunk: nothing is lost or written twice.
    The stored file stays the source for re-processing until retention removes it.
    """
    try:
        compiled = CompiledFormat.for_format(fmt)
    except MappingError as exc:
        _file_fail(file.pk, f"The format's mapping is invalid: {exc.message}")
        return FileStatus.FAILED
    done = (file.layout or {}).get("direct") or {}
    through = done.get("through_line", 0) if done.get("format") == fmt.pk else None
    if through is None:
        with transaction.atomic():
            staged_rows_delete_for_file(file_id=file.pk)
            file.format = fmt
            file.layout = {**layout.as_dict(), "reader_skips": {}, "direct": {"format": fmt.pk, "through_line": 0}}
            file.rows_total = file.rows_staged = file.rows_skipped = 0
            file.rows_imported = file.rows_failed = file.rows_duplicate = 0
            file.skip_reasons = {}
            file.progress = 0.0
            file.save()
        through = 0
    watch = _MappingWatch(fmt)
    try:
        if not _direct_read(file, fmt, layout, path, plan, compiled, through, watch.stop):
            if watch.changed:
                watch.reopen(file.pk)
                return _file_process_locked(file.pk)  # the rest of the file with the corrected mapping
            _record_paused(file, "Import")
            return FileStatus.PROCESSING
    except UnreadableFile as exc:
        # A broken line further down: the file is refused whole, as when it is staged, so the orders of
        # the chunks before it are removed again (they were this file's own, written minutes ago).
        removed = _direct_undo(file.pk)
        if not removed:
            raise
        raise UnreadableFile(
            f"{exc.message} Nothing was imported from this file (the {removed:,} rows read "
            "before that line were removed again)."
        ) from exc
    file.refresh_from_db()
    if file.rows_total == 0:
        _file_fail(file.pk, _no_rows_message(file.skip_reasons))
        return FileStatus.FAILED
    if StagedRow.objects.filter(file_id=file.pk, status__in=OPEN_ROW_STATUSES).exists():
        # Failed rows re-opened by a mapping fix while the file was being read.
        return file_migrate(file_id=file.pk)
    return file_settle(file_id=file.pk)


def _direct_read(
    file: ImportFile,
    fmt: CsvFormat,
    layout: FileLayout,
    path: Any,
    plan: fastpath.FastPlan,
    compiled: CompiledFormat,
    through: int,
    stop: Callable[[], bool],
) -> bool:
    """Import the file after line `through` chunk by chunk; False when `stop` turned true between two.

    The chunks are prepared in up to AIRLOCK_FILE_SESSIONS database sessions and committed in file order
    (imports/pipeline/sessions.py), so `through_line` always marks a committed prefix of the file."""
    dedupe = _resume_dedupe(file) if file.dedupe else None

    def finish(chunk: _DirectChunk, declined: fastpath.Declined) -> None:
        _direct_chunk_finish(file, fmt, compiled, dedupe, chunk, declined)

    def prepare(chunk: _DirectChunk) -> fastpath.Declined:
        return fastpath.chunk_prepare(chunk.rows, plan=plan)

    with OrderedSessions(sessions_for(), prepare, finish, stop=stop) as run:
        for chunk in _direct_chunks(path, layout, through=through, file_size=file.size):
            if not run.submit(chunk):
                break
    return not run.stopped


@dataclass
class _DirectChunk:
    rows: list[tuple[int, list[str]]]
    skipped: Counter  # lines the reader skipped in this chunk, by reason
    through_line: int  # the last line this chunk covers
    progress: float
    final: bool


# A chunk ends at this many rows (AIRLOCK_FAST_BATCH_SIZE) or characters, whichever comes first, so that
# wide rows do not make it large.
_CHUNK_CHARS = 16 * 2**20


def _direct_chunks(path: Any, layout: FileLayout, *, through: int, file_size: int) -> Iterator[_DirectChunk]:
    """The records after line `through`, in chunks."""
    size = fastpath.batch_size()
    chunk: list[tuple[int, list[str]]] = []
    skipped: Counter = Counter()
    read_chars = chunk_chars = last_line = 0
    # Progress: by rows when the reader knows how many there are (a workbook's sheet, JSON records), else
    # by the characters read against the file's size (CSV text).
    rows = getattr(layout, "rows", None)
    for item in _records(path, layout):
        if isinstance(item, Record):
            chars = sum(map(len, item.cells)) + len(item.cells)
            read_chars += chars
        if item.line <= through:
            continue  # committed by an earlier run of this job
        last_line = item.line
        if isinstance(item, Record):
            chunk.append((item.line, item.cells))
            chunk_chars += chars
        elif isinstance(item, Skipped):
            skipped[item.reason if len(skipped) < 50 else "other skipped lines"] += 1
        if len(chunk) >= size or chunk_chars >= _CHUNK_CHARS:
            done = last_line / rows if rows else read_chars / max(file_size, 1)
            yield _DirectChunk(chunk, skipped, last_line, min(99.0, 100.0 * done), False)
            chunk, skipped, chunk_chars = [], Counter(), 0
    yield _DirectChunk(chunk, skipped, max(last_line, through), 99.0, True)


def _direct_undo(file_id: int) -> int:
    """Remove what a direct import of this file wrote (orders, staged rows, counters); returns the rows."""
    with transaction.atomic(), connection.cursor() as cursor:
        file = ImportFile.objects.select_for_update().get(pk=file_id)
        cursor.execute("DELETE FROM imports_order WHERE source_file_id = %s", [file_id])
        staged_rows_delete_for_file(file_id=file_id)
        removed = file.rows_total
        file.rows_total = file.rows_imported = file.rows_failed = file.rows_duplicate = file.rows_skipped = 0
        file.skip_reasons = {}
        file.layout = {key: value for key, value in (file.layout or {}).items() if key != "direct"}
        file.save()
    return removed


def _direct_chunk_finish(
    file: ImportFile,
    fmt: CsvFormat,
    compiled: CompiledFormat,
    dedupe: DedupeKeys | None,
    chunk: _DirectChunk,
    declined: fastpath.Declined,
) -> None:
    """Write a prepared chunk of a direct import and advance the file's counters (the chunk's transaction)."""
    skipped = chunk.skipped
    outcome = BatchOutcome()
    fastpath.chunk_finish(file, compiled, dedupe, chunk.rows, declined, format_id=fmt.pk, outcome=outcome)
    current = ImportFile.objects.select_for_update().get(pk=file.pk)
    layout = current.layout or {}
    layout["reader_skips"] = dict(Counter(layout.get("reader_skips") or {}) + skipped)
    # `complete`: the whole file is read (an admin retry then resumes the migration, not the reading).
    layout["direct"] = {"format": fmt.pk, "through_line": chunk.through_line, "complete": chunk.final}
    current.layout = layout
    current.rows_total += len(chunk.rows)
    current.rows_imported += outcome.imported
    current.rows_failed += outcome.failed
    current.rows_duplicate += outcome.duplicate
    current.rows_skipped += outcome.skipped + sum(skipped.values())
    current.skip_reasons = dict((Counter(current.skip_reasons or {}) + skipped + outcome.skip_reasons).most_common(50))
    current.progress = max(current.progress, chunk.progress)
    update = [
        "layout",
        "rows_total",
        "rows_imported",
        "rows_failed",
        "rows_duplicate",
        "rows_skipped",
        "skip_reasons",
        "progress",
        "updated_at",
    ]
    if chunk.final and current.rows_total:
        current.status = FileStatus.MIGRATING
        update.append("status")
        record(
            action="rows.imported",
            obj=current,
            summary=(
                f"{current.rows_total} rows of '{current.original_name}' read for approved format "
                f"'{fmt.name}' and imported directly"
            ),
            details={"format": fmt.pk, "rows": current.rows_total, "layout": layout},
        )
    current.save(update_fields=update)


@dataclass
class BatchOutcome:
    imported: int = 0
    failed: int = 0
    skipped: int = 0
    duplicate: int = 0
    skip_reasons: Counter = field(default_factory=Counter)

    def route(
        self,
        row_id: int,
        verdict: str,
        errors: list[dict[str, Any]],
        marks: list[tuple[int, str, list[dict[str, Any]] | None]],
    ) -> bool:
        """Count and mark a skipped or invalid row; True when the row is valid and still to be written."""
        if verdict == "skip":
            self.skipped += 1
            self.skip_reasons[errors[0]["message"].removeprefix("skipped: ")[:200]] += 1
            marks.append((row_id, StagedStatus.SKIPPED, errors))
            return False
        if verdict == "invalid":
            self.failed += 1
            marks.append((row_id, StagedStatus.FAILED, errors))
            return False
        return True


@dataclass
class CompiledFormat:
    """A format's mapping compiled against its columns: the one conversion path."""

    mapping: Any
    row_filter: Any
    width: int

    @classmethod
    def for_format(cls, fmt: CsvFormat, mapping: dict[str, Any] | None = None) -> CompiledFormat:
        mapping = mapping or fmt.mapping
        return cls(
            mapping=compile_mapping(mapping.get("fields") or {}, fmt.columns),
            row_filter=compile_filters(mapping.get("filters") or [], fmt.columns),
            width=len(fmt.columns),
        )

    def convert(self, cells: list[str]) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        """('skip', {}, [reason]) | ('invalid', values, errors) | ('ok', values, [])."""
        reason = self.row_filter(cells)
        if reason:
            return "skip", {}, [{"field": None, "value": "", "message": f"skipped: {reason}"}]
        errors: list[dict[str, Any]] = []
        if len(cells) > self.width and any(cell.strip() for cell in cells[self.width :]):
            errors.append(
                {"field": None, "value": "", "message": f"row has {len(cells)} fields but the header has {self.width}"}
            )
        values, conversion_errors = self.mapping.apply(cells)
        errors.extend(conversion_errors)
        if not conversion_errors:
            errors.extend(validate_order(values))
        return ("invalid" if errors else "ok"), values, errors


def file_migrate(*, file_id: int) -> str:
    """Migrate a file's open staged rows in batches, one transaction per batch, then settle its status."""
    # One migrator per file (re-entrant for file_process, which already holds it): the occurrence
    # counters of DedupeKeys live in the migrating process, so two processes must never share a file.
    with file_lock(file_id) as acquired:
        if not acquired:
            return ImportFile.objects.filter(pk=file_id).values_list("status", flat=True).first() or ""
        return _file_migrate_locked(file_id)


def _file_migrate_locked(file_id: int) -> str:
    file = ImportFile.objects.select_related("format").get(pk=file_id)
    fmt = file.format
    if fmt is None or fmt.status != FormatStatus.APPROVED:
        return file.status
    if file.status not in (FileStatus.MIGRATING, FileStatus.PENDING_APPROVAL):
        # A late or duplicate job for a finished file (imported, failed, rolled back...) changes nothing:
        # it must not reopen it, settle it again or notify twice.
        return file.status
    try:
        compiled = CompiledFormat.for_format(fmt)
    except MappingError as exc:
        _file_fail(file_id, f"The format's mapping is invalid: {exc.message}")
        return FileStatus.FAILED
    ImportFile.objects.filter(pk=file_id, status=FileStatus.PENDING_APPROVAL).update(
        status=FileStatus.MIGRATING, started_at=timezone.now()
    )
    record(action="migration.started", obj=file, summary=f"Migration of '{file.original_name}' started")
    dedupe = _resume_dedupe(file) if file.dedupe else None
    plan = fastpath.plan_for(fmt.mapping, fmt.columns, dedupe=file.dedupe)
    try:
        # With a SQL plan, the same mapping compiled to SQL; every row it declines is converted by `compiled`.
        watch = _MappingWatch(fmt)
        finished = (
            _migrate_fast(file, compiled, dedupe, plan, watch.stop)
            if plan is not None
            else _migrate_rowwise(file, compiled, dedupe, watch.stop)
        )
        if not finished and watch.changed:
            watch.reopen(file_id)
            return _file_migrate_locked(file_id)  # the rest of the rows with the corrected mapping
        if not finished:
            # The worker is shutting down: the batches so far are committed; the reconciler resumes the rest.
            _record_paused(file, "Migration")
            return FileStatus.MIGRATING
    except AppError as exc:
        _file_fail(file_id, exc.message)
        record(
            action="migration.failed",
            obj=file,
            severity=AuditEvent.Severity.ERROR,
            summary=f"Migration of '{file.original_name}' failed: {exc.message}",
        )
        raise
    return file_settle(file_id=file_id)


def _record_paused(file: ImportFile, what: str) -> None:
    record(
        action="migration.paused",
        obj=file,
        summary=f"{what} of '{file.original_name}' paused: the worker is shutting down",
    )


def _migrate_rowwise(
    file: ImportFile, compiled: CompiledFormat, dedupe: DedupeKeys | None, stop: Callable[[], bool]
) -> bool:
    """The per-row Python migration, batch after batch; False when `stop` turned true between two."""
    while _migrate_batch(file, compiled, dedupe, settings.AIRLOCK["BATCH_SIZE"]):
        if stop():
            return False
    return True


def _migrate_fast(
    file: ImportFile,
    compiled: CompiledFormat,
    dedupe: DedupeKeys | None,
    plan: fastpath.FastPlan,
    stop: Callable[[], bool],
) -> bool:
    """The set-based migration of a file's open staged rows, batches prepared in parallel sessions and
    committed in line order (imports/pipeline/sessions.py); False when `stop` turned true between two."""

    def prepare(ids: list[int]) -> fastpath.Declined:
        return fastpath.batch_prepare(plan=plan, file_id=file.pk, ids=ids, statuses=OPEN_ROW_STATUSES)

    def finish(ids: list[int], declined: fastpath.Declined) -> None:
        outcome = BatchOutcome()
        fastpath.batch_finish(file, compiled, dedupe, declined, outcome)
        _advance_counters(file, outcome)

    size, after = fastpath.batch_size(), 0
    with OrderedSessions(sessions_for(), prepare, finish, stop=stop) as run:
        while True:
            ids, after = fastpath.open_rows(
                plan=plan, file_id=file.pk, statuses=OPEN_ROW_STATUSES, limit=size, after=after
            )
            if not ids or not run.submit(ids):
                break
    return not run.stopped


def _resume_dedupe(file: ImportFile) -> DedupeKeys:
    """Occurrence counters survive a crash: rebuild them from what this file already used."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT dedupe_key FROM imports_order WHERE source_file_id = %s AND dedupe_key LIKE '%%#%%'
            UNION ALL
            SELECT errors -> 0 ->> 'dedupe_key' FROM staging_stagedrow
             WHERE file_id = %s AND status = 'DUPLICATE' AND errors -> 0 ->> 'dedupe_key' LIKE '%%#%%'
            """,
            [file.pk, file.pk],
        )
        return DedupeKeys.resume([key for (key,) in cursor.fetchall()])


def _migrate_batch(file: ImportFile, compiled: CompiledFormat, dedupe: DedupeKeys | None, size: int) -> bool:
    """One batch in one transaction: orders written, staged rows marked, counters advanced together."""
    with transaction.atomic():
        rows = staged_rows_claim(file_id=file.pk, limit=size, statuses=OPEN_ROW_STATUSES)
        if not rows:
            return False
        outcome = BatchOutcome()
        marks: list[tuple[int, str, list[dict[str, Any]] | None]] = []
        valid: list[tuple[int, OrderRow]] = []
        for row_id, line, cells in rows:
            verdict, values, errors = compiled.convert(cells)
            if outcome.route(row_id, verdict, errors, marks):
                order = OrderRow(line=line, values=values, dedupe_key=dedupe.key_for(values) if dedupe else "")
                valid.append((row_id, order))
        # Insert in key order so two files with overlapping trades lock the unique index in the same
        # order (no deadlock between concurrent batches).
        ordered = sorted((order for _, order in valid), key=lambda o: (o.dedupe_key, o.line))
        inserted = orders_insert(owner_id=file.owner_id, file_id=file.pk, rows=ordered)
        missing = [order for _, order in valid if order.line not in inserted]
        earlier = existing_orders_by_key(owner_id=file.owner_id, keys=[o.dedupe_key for o in missing if o.dedupe_key])
        for row_id, order in valid:
            if order.line in inserted:
                outcome.imported += 1
                marks.append((row_id, StagedStatus.MIGRATED, None))
                continue
            source = earlier.get(order.dedupe_key)
            if source and source != (file.pk, order.line):
                # Another file's order, or another line of this file with the same trade id.
                outcome.duplicate += 1
                marks.append((row_id, StagedStatus.DUPLICATE, duplicate_errors(order.dedupe_key, source)))
            else:
                # Already written by an earlier run of this very batch (same file and line).
                outcome.imported += 1
                marks.append((row_id, StagedStatus.MIGRATED, None))
        staged_rows_mark(outcomes=marks)
        _advance_counters(file, outcome)
    return True


def _advance_counters(file: ImportFile, outcome: BatchOutcome) -> None:
    done = outcome.imported + outcome.failed + outcome.skipped + outcome.duplicate
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE imports_importfile SET
              rows_imported = rows_imported + %s, rows_failed = rows_failed + %s,
              rows_skipped = rows_skipped + %s, rows_duplicate = rows_duplicate + %s,
              rows_staged = GREATEST(rows_staged - %s, 0),
              progress = LEAST(100.0, 100.0 * (rows_total - GREATEST(rows_staged - %s, 0)) / GREATEST(rows_total, 1)),
              skip_reasons = skip_reasons || %s::jsonb, updated_at = now()
            WHERE id = %s
            """,
            [
                outcome.imported,
                outcome.failed,
                outcome.skipped,
                outcome.duplicate,
                done,
                done,
                _merge_reasons(file.pk, outcome.skip_reasons),
                file.pk,
            ],
        )


def _merge_reasons(file_id: int, new: Counter) -> str:
    import orjson

    if not new:
        return "{}"
    current = ImportFile.objects.filter(pk=file_id).values_list("skip_reasons", flat=True).first() or {}
    merged = Counter(current)
    merged.update(new)
    return orjson.dumps(dict(merged.most_common(50))).decode()


def file_settle(*, file_id: int) -> str:
    """Set a file's final status from what Postgres says about its rows."""
    with transaction.atomic():
        file = ImportFile.objects.select_for_update().get(pk=file_id)
        open_rows = StagedRow.objects.filter(file_id=file_id, status__in=OPEN_ROW_STATUSES).exists()
        if open_rows or file.status not in (FileStatus.MIGRATING, FileStatus.PENDING_APPROVAL):
            return file.status
        if file.rows_imported == 0 and file.rows_failed > 0:
            file.status = FileStatus.FAILED
            file.error = f"None of the {file.rows_failed} rows could be imported; see the row errors."
        elif file.rows_failed:
            file.status = FileStatus.PARTIAL
        else:
            file.status = FileStatus.IMPORTED
        file.progress = 100.0
        file.finished_at = timezone.now()
        file.save()
        record(
            action="migration.finished",
            obj=file,
            summary=(
                f"'{file.original_name}': {file.rows_imported} imported, {file.rows_failed} invalid, "
                f"{file.rows_skipped} skipped, {file.rows_duplicate} duplicate"
            ),
            details={"status": file.status},
        )
        notify_file_outcome(file_id=file_id)
        # The histograms count committed outcomes only (a rolled-back settle must not be measured).
        transaction.on_commit(_observe_finished(file), robust=True)
    return file.status


def _observe_finished(file: ImportFile) -> Callable[[], None]:
    rows = file.rows_imported + file.rows_failed + file.rows_skipped + file.rows_duplicate
    approved_at = file.format.approved_at if file.format_id and file.format else None
    return lambda: file_finished_observe(
        path="direct" if "direct" in (file.layout or {}) else "staged",
        started_at=file.started_at,
        approved_at=approved_at,
        finished_at=file.finished_at,
        rows=rows,
    )


def format_migrate(*, format_id: int) -> dict[int, str]:
    """Migrate every file of an approved format that still has open staged rows."""
    file_ids = list(
        StagedRow.objects.filter(format_id=format_id, status__in=OPEN_ROW_STATUSES)
        .values_list("file_id", flat=True)
        .distinct()
    )
    ImportFile.objects.filter(pk__in=file_ids, status=FileStatus.PENDING_APPROVAL).update(
        status=FileStatus.MIGRATING, progress=0.0
    )
    results: dict[int, str] = {}
    for file_id in file_ids:
        if stop_requested():
            break
        results[file_id] = file_migrate(file_id=file_id)
    return results


def _error_kind(error: dict[str, Any]) -> str:
    """'price: '…' is not a number': the quoted value left out, so one mistake counts as one error kind."""
    message, value = error["message"], str(error.get("value") or "").strip()
    if value:
        message = message.replace(f"'{value}'", "'…'")
    return f"{error.get('field') or 'row'}: {message}"


def preview(
    *, fmt: CsvFormat, mapping: dict[str, Any] | None = None, limit: int = 20, scan_limit: int | None = None
) -> dict[str, Any]:
    """What approval would write: the first rows converted, and a validation summary over staged rows."""
    compiled = CompiledFormat.for_format(fmt, mapping)
    rows = StagedRow.objects.filter(format=fmt).exclude(status=StagedStatus.REJECTED).order_by("file_id", "line")
    if scan_limit:
        rows = rows[:scan_limit]
    first: list[dict[str, Any]] = []
    counts: Counter = Counter()
    error_counts: Counter = Counter()
    skip_counts: Counter = Counter()
    examples: dict[str, dict[str, Any]] = {}
    for file_id, line, raw in rows.values_list("file_id", "line", "raw").iterator(chunk_size=2000):
        verdict, values, errors = compiled.convert(raw)
        counts[verdict] += 1
        if verdict == "skip":
            skip_counts[errors[0]["message"].removeprefix("skipped: ")] += 1
        for error in errors if verdict == "invalid" else []:
            key = _error_kind(error)
            error_counts[key] += 1
            examples.setdefault(key, {"file": file_id, "line": line, "value": error.get("value", "")})
        if len(first) < limit:
            first.append({"file": file_id, "line": line, "verdict": verdict, "values": values, "errors": errors})
    return {
        "rows": first,
        "total": sum(counts.values()),
        "would_import": counts["ok"],
        "would_fail": counts["invalid"],
        "would_skip": counts["skip"],
        "top_errors": [{"error": key, "count": n, "example": examples[key]} for key, n in error_counts.most_common(10)],
        "top_skips": [{"reason": key, "count": n} for key, n in skip_counts.most_common(10)],
    }


# A mapping fix leaves these files alone: their import was undone (rolled back, purged) or refused.
_CLOSED_FOR_REPROCESSING = (FileStatus.ROLLED_BACK, FileStatus.PURGED, FileStatus.REJECTED)


def _still_reading(file: ImportFile) -> bool:
    """The file is not read to its end yet: being read, waiting to be, or a direct import stopped part-way."""
    return file.status in (FileStatus.UPLOADED, FileStatus.PROCESSING) or file.direct_read_part_way


def format_reprocess_failed(*, format_id: int, file_ids: list[int] | None = None) -> int:
    """After a mapping fix on an approved format, re-open its invalid and filter-skipped rows (of these files
    only, when given) to migrate again."""
    reopen = (StagedStatus.FAILED, StagedStatus.SKIPPED)
    with transaction.atomic():
        candidates = StagedRow.objects.filter(format_id=format_id, status__in=reopen)
        if file_ids is not None:
            candidates = candidates.filter(file_id__in=file_ids)
        candidates = candidates.values("file_id")
        files = {
            file.pk: file
            for file in ImportFile.objects.select_for_update()
            .filter(pk__in=candidates)
            .exclude(status__in=_CLOSED_FOR_REPROCESSING)
        }
        rows = StagedRow.objects.filter(format_id=format_id, status__in=reopen, file_id__in=list(files))
        counts: dict[int, Counter] = {}
        for row in rows.values("file_id", "status").annotate(n=Count("id")):
            counts.setdefault(row["file_id"], Counter())[row["status"]] = row["n"]
        reopened = rows.update(status=StagedStatus.APPROVED, errors=None)
        for file_id, per_status in counts.items():
            file = files[file_id]
            failed, skipped = per_status[StagedStatus.FAILED], per_status[StagedStatus.SKIPPED]
            reader_skips = (file.layout or {}).get("reader_skips") or {}
            file.rows_failed -= failed
            file.rows_staged += failed + skipped
            file.rows_skipped = sum(reader_skips.values()) if skipped else file.rows_skipped
            if skipped:
                file.skip_reasons = dict(reader_skips)
            if not _still_reading(file):
                file.status = FileStatus.MIGRATING
                file.finished_at = None
                file.error = ""
            # Else it keeps its status (a failed one too, until an admin retries it): the job that reads the
            # rest of the file migrates the re-opened rows once the whole file is read. As MIGRATING, the
            # next job would only migrate them and settle the file with the rest never read.
            file.save()
    return reopened
