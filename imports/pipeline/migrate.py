"""Migration: a file's open staged rows converted and written into its target in batches, one transaction per
batch (or set-based through the SQL fast path), resumable after a crash; re-opening rows after a mapping fix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record
from config import worker
from config.errors import AppError, MappingError
from formats.models import CsvFormat, FormatStatus
from imports.lifecycle import file_fail, file_settle, file_step, files_start_migrating
from imports.models import FileStatus, ImportFile
from imports.pipeline import fastpath
from imports.pipeline.convert import BatchOutcome, CompiledFormat, Mark
from imports.pipeline.locks import file_lock
from imports.pipeline.sessions import OrderedSessions, sessions_for
from imports.targets import writer_for
from imports.targets.base import DedupeKeys, TargetRow, TargetWriter, duplicate_errors
from staging.models import OPEN_STATUSES, StagedRow, StagedStatus
from staging.services import staged_rows_claim, staged_rows_mark

OPEN_ROW_STATUSES = OPEN_STATUSES  # staged rows still waiting for something (staging/models.py)


def sql_plan(fmt: CsvFormat, *, dedupe: bool) -> fastpath.FastPlan | None:
    """The format's mapping compiled to SQL (imports/pipeline/fastpath.py), when its target's writer has a
    SQL path and the mapping allows it; None sends the rows through the Python converters."""
    if not writer_for(fmt.target).fast_path:
        return None
    return fastpath.plan_for(fmt.mapping, fmt.columns, dedupe=dedupe)


class MappingWatch:
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
        return self.changed or worker.stop_requested()

    def reopen(self, file_id: int) -> None:
        """The correction re-opened the rows the old mapping had found invalid so far; this re-opens those the run
        failed after it (batches already converted when it committed)."""
        format_reprocess_invalid(format_id=self.format_id, file_ids=[file_id])


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
        file_fail(file_id, f"The format's mapping is invalid: {exc.message}")
        return FileStatus.FAILED
    files_start_migrating(ImportFile.objects.filter(pk=file_id), started_at=timezone.now())
    record(action="migration.started", obj=file, summary=f"Migration of '{file.original_name}' started")
    dedupe = resume_dedupe(file, compiled.writer) if file.dedupe else None
    plan = sql_plan(fmt, dedupe=file.dedupe)
    try:
        # With a SQL plan, the same mapping compiled to SQL; every row it declines is converted by `compiled`.
        watch = MappingWatch(fmt)
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
            record_paused(file, "Migration")
            return FileStatus.MIGRATING
    except AppError as exc:
        file_fail(file_id, exc.message)
        record(
            action="migration.failed",
            obj=file,
            severity=AuditEvent.Severity.ERROR,
            summary=f"Migration of '{file.original_name}' failed: {exc.message}",
        )
        raise
    return file_finish(file, compiled.writer)


def file_finish(file: ImportFile, writer: TargetWriter) -> str:
    """The file's rows are written: what its target does after a file (orders: reconciliation against the owner's
    instruments), then the file's outcome. Both are idempotent, so a job killed between them runs them again."""
    if writer.after_file is not None:
        writer.after_file(owner_id=file.owner_id, file_id=file.pk)
    return file_settle(file_id=file.pk)


def record_paused(file: ImportFile, what: str) -> None:
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

    def finish(ids: list[int], declined: fastpath.Declined) -> BatchOutcome:
        outcome = BatchOutcome()
        fastpath.batch_finish(file, compiled, dedupe, declined, outcome, plan=plan)
        return outcome

    def settle(ids: list[int], outcome: BatchOutcome) -> None:
        _advance_counters(file, outcome)

    size, after = fastpath.batch_size(), 0
    with OrderedSessions(sessions_for(), prepare, finish, settle=settle, stop=stop) as run:
        while True:
            ids, after = fastpath.open_rows(
                plan=plan, file_id=file.pk, statuses=OPEN_ROW_STATUSES, limit=size, after=after
            )
            if not ids or not run.submit(ids):
                break
    return not run.stopped


def resume_dedupe(file: ImportFile, writer: TargetWriter) -> DedupeKeys:
    """Occurrence counters survive a crash: rebuild them from what this file already used (nothing, when it was
    never read: no layout, as the upload left it; imports/pipeline/direct.py)."""
    return writer.keys_resumed(file_id=file.pk, rebuild=bool(file.layout))


def _migrate_batch(file: ImportFile, compiled: CompiledFormat, dedupe: DedupeKeys | None, size: int) -> bool:
    """One batch in one transaction: orders written, staged rows marked, counters advanced together."""
    with transaction.atomic():
        rows = staged_rows_claim(file_id=file.pk, limit=size, statuses=OPEN_ROW_STATUSES)
        if not rows:
            return False
        outcome = BatchOutcome()
        marks: list[Mark] = []
        valid: list[tuple[int, TargetRow]] = []
        for row_id, line, cells in rows:
            verdict, values, errors = compiled.convert(cells)
            if outcome.route(row_id, verdict, errors, marks):
                valid.append((row_id, TargetRow(line=line, values=values)))
        if dedupe is not None:
            dedupe.assign([row for _, row in valid])
        # Insert in key order so two files with overlapping trades lock the unique index in the same
        # order (no deadlock between concurrent batches).
        writer = compiled.writer
        ordered = sorted((row for _, row in valid), key=lambda r: (r.dedupe_key, r.line))
        inserted = writer.insert(owner_id=file.owner_id, file_id=file.pk, rows=ordered)
        missing = [row for _, row in valid if row.line not in inserted]
        earlier = writer.existing_by_key(owner_id=file.owner_id, keys=[r.dedupe_key for r in missing])
        for row_id, row in valid:
            if row.line in inserted:
                outcome.imported += 1
                marks.append((row_id, StagedStatus.MIGRATED, None))
                continue
            source = earlier.get(row.dedupe_key)
            if source and source != (file.pk, row.line):
                # Another file's record, or another line of this file with the same id.
                outcome.duplicate += 1
                marks.append((row_id, StagedStatus.DUPLICATE, duplicate_errors(row.dedupe_key, source)))
            else:
                # Already written by an earlier run of this very batch (same file and line).
                outcome.imported += 1
                marks.append((row_id, StagedStatus.MIGRATED, None))
        staged_rows_mark(outcomes=marks)
        _advance_counters(file, outcome)
    return True


def _advance_counters(file: ImportFile, outcome: BatchOutcome) -> None:
    done = outcome.imported + outcome.invalid + outcome.skipped + outcome.duplicate
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE imports_importfile SET
              rows_imported = rows_imported + %s, rows_invalid = rows_invalid + %s,
              rows_skipped = rows_skipped + %s, rows_duplicate = rows_duplicate + %s,
              rows_staged = GREATEST(rows_staged - %s, 0),
              progress = LEAST(100.0, 100.0 * (rows_total - GREATEST(rows_staged - %s, 0)) / GREATEST(rows_total, 1)),
              skip_reasons = skip_reasons || %s::jsonb, updated_at = now()
            WHERE id = %s
            """,
            [
                outcome.imported,
                outcome.invalid,
                outcome.skipped,
                outcome.duplicate,
                done,
                done,
                _merge_reasons(file.pk, outcome.skip_reasons),
                file.pk,
            ],
        )


def _merge_reasons(file_id: int, new: Counter) -> str:
    if not new:
        return "{}"
    current = ImportFile.objects.filter(pk=file_id).values_list("skip_reasons", flat=True).first() or {}
    merged = Counter(current)
    merged.update(new)
    return orjson.dumps(dict(merged.most_common(50))).decode()


def format_migrate(*, format_id: int) -> dict[int, str]:
    """Migrate every file of an approved format that still has open staged rows."""
    file_ids = list(
        StagedRow.objects.filter(format_id=format_id, status__in=OPEN_ROW_STATUSES)
        .values_list("file_id", flat=True)
        .distinct()
    )
    files_start_migrating(ImportFile.objects.filter(pk__in=file_ids), progress=0.0)
    results: dict[int, str] = {}
    for file_id in file_ids:
        if worker.stop_requested():
            break
        results[file_id] = file_migrate(file_id=file_id)
    return results


# A mapping fix leaves these files alone: their import was undone (rolled back, purged) or refused.
_CLOSED_FOR_REPROCESSING = (FileStatus.ROLLED_BACK, FileStatus.PURGED, FileStatus.REJECTED)


def _still_reading(file: ImportFile) -> bool:
    """The file is not read to its end yet: being read, waiting to be, or a direct import stopped part-way."""
    return file.status in (FileStatus.UPLOADED, FileStatus.PROCESSING) or file.direct_read_part_way


def format_reprocess_invalid(*, format_id: int, file_ids: list[int] | None = None) -> int:
    """After a mapping fix on an approved format, re-open its invalid and filter-skipped rows (of these files
    only, when given) to migrate again."""
    reopen = (StagedStatus.INVALID, StagedStatus.SKIPPED)
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
            invalid, skipped = per_status[StagedStatus.INVALID], per_status[StagedStatus.SKIPPED]
            reader_skips = (file.layout or {}).get("reader_skips") or {}
            file.rows_invalid -= invalid
            file.rows_staged += invalid + skipped
            file.rows_skipped = sum(reader_skips.values()) if skipped else file.rows_skipped
            if skipped:
                file.skip_reasons = dict(reader_skips)
            if not _still_reading(file):
                file_step(file, FileStatus.MIGRATING)
                file.finished_at = None
                file.error = ""
            # Else it keeps its status (a failed one too, until an admin retries it): the job that reads the
            # rest of the file migrates the re-opened rows once the whole file is read. As MIGRATING, the
            # next job would only migrate them and settle the file with the rest never read.
            file.save()
    return reopened
