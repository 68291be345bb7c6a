"""A file of an approved format read straight into its target in committed chunks, without staging every row."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from audit.services import record
from config.errors import MappingError, UnreadableFile
from formats.models import CsvFormat
from imports.lifecycle import file_fail, file_step
from imports.models import FileStatus, ImportFile
from imports.pipeline import fastpath
from imports.pipeline.convert import BatchOutcome, CompiledFormat
from imports.pipeline.migrate import (
    MappingWatch,
    file_finish,
    file_migrate,
    record_paused,
    resume_dedupe,
)
from imports.pipeline.sessions import OrderedSessions, sessions_for
from imports.pipeline.stage import no_rows_message, records_of
from imports.reading import FileLayout, Record, Skipped, iter_records
from imports.reading.blocks import Block, BlockRefused, block_reading, csv_blocks
from imports.sheets.dispatch import sheet_limits
from imports.targets import writer_for
from imports.targets.base import TargetWriter
from staging.services import staged_rows_delete_for_file

logger = logging.getLogger(__name__)

# What import_direct answers when the format's mapping changed while the file was read: the caller starts the
# file again (its chunks so far stay; the rows the fix re-opened are migrated with the new mapping).
RESTART = "restart"


# What the start of a direct import resets (the rest of the file's row is not its to write).
_RESET_FIELDS = (
    "format",
    "layout",
    "rows_total",
    "rows_staged",
    "rows_skipped",
    "rows_imported",
    "rows_invalid",
    "rows_duplicate",
    "skip_reasons",
    "progress",
)


def import_direct(file: ImportFile, fmt: CsvFormat, layout: FileLayout, path: Any, plan: fastpath.FastPlan) -> str:
    """A file of an approved format straight into orders, chunk by chunk, without staging every row.

    Each chunk commits its orders, the rows that did not become orders (staged with their errors), the
    file's counters and how far the file was read (`layout.direct.through_line`) in one transaction, so a
    job killed at any point resumes after the last committed chunk: nothing is lost or written twice.
    The stored file stays the source for re-processing until retention removes it.
    """
    try:
        compiled = CompiledFormat.for_format(fmt)
    except MappingError as exc:
        file_fail(file.pk, f"The format's mapping is invalid: {exc.message}")
        return FileStatus.FAILED
    done = (file.layout or {}).get("direct") or {}
    through = done.get("through_line", 0) if done.get("format") == fmt.pk else None
    # A file never read before (no layout: nothing of it staged, written or counted, as the upload left it) has
    # nothing to reset: its format and layout come with its first chunk, in that chunk's transaction (a small
    # file's job saves the reset's DELETE, UPDATE and COMMIT). A job killed before that commit leaves it unread.
    fresh = not file.layout
    if fresh:
        file.format = fmt
        through = 0
    elif through is None:
        with transaction.atomic():
            staged_rows_delete_for_file(file_id=file.pk)
            file.format = fmt
            file.layout = {**layout.as_dict(), "reader_skips": {}, "direct": {"format": fmt.pk, "through_line": 0}}
            file.rows_total = file.rows_staged = file.rows_skipped = 0
            file.rows_imported = file.rows_invalid = file.rows_duplicate = 0
            file.skip_reasons = {}
            file.progress = 0.0
            file.save(update_fields=[*_RESET_FIELDS, "updated_at"])
        through = 0
    watch = MappingWatch(fmt)
    offset = done.get("offset") if through else None
    blocks = True
    try:
        while True:
            try:
                read = _direct_read(file, fmt, layout, path, plan, compiled, through, offset, blocks, watch.stop)
                break
            except BlockRefused as refused:
                # Postgres read a block of lines otherwise than the reader would: what committed stays, the rest
                # of the file is read by the reader (imports/reading/blocks.py).
                logger.info("file %s: block refused (%s); the rest is read line by line", file.pk, refused)
                file.refresh_from_db()
                done = (file.layout or {}).get("direct") or {}
                through, offset, blocks = done.get("through_line", 0), done.get("offset"), False
        if not read:
            if watch.changed:
                watch.reopen(file.pk)
                return RESTART  # the rest of the file with the corrected mapping
            record_paused(file, "Import")
            return FileStatus.PROCESSING
    except UnreadableFile as exc:
        # A broken line further down: the file is refused whole, as when it is staged, so the orders of
        # the chunks before it are removed again (they were this file's own, written minutes ago).
        removed = direct_undo(file.pk, writer_for(fmt.target))
        if not removed:
            raise
        raise UnreadableFile(
            f"{exc.message} Nothing was imported from this file (the {removed:,} rows read "
            "before that line were removed again)."
        ) from exc
    if file.rows_total == 0:  # (as the last chunk's settle left it: read, then added to, under the row's lock)
        file.refresh_from_db(fields=["skip_reasons"])
        file_fail(file.pk, no_rows_message(file.skip_reasons))
        return FileStatus.FAILED
    status = file_finish(file, compiled.writer)
    if status in (FileStatus.MIGRATING, FileStatus.PENDING_APPROVAL):
        # Not settled: invalid rows were re-opened by a mapping fix while the file was being read.
        return file_migrate(file_id=file.pk)
    return status


def _direct_read(
    file: ImportFile,
    fmt: CsvFormat,
    layout: FileLayout,
    path: Any,
    plan: fastpath.FastPlan,
    compiled: CompiledFormat,
    through: int,
    offset: int | None,
    blocks: bool,
    stop: Callable[[], bool],
) -> bool:
    """Import the file after line `through` chunk by chunk; False when `stop` turned true between two.

    The chunks are prepared in up to AIRLOCK_FILE_SESSIONS database sessions and committed in file order
    (imports/pipeline/sessions.py), so `through_line` always marks a committed prefix of the file.
    `offset`: the byte offset after line `through` when a block ended there (the reading goes on from it);
    `blocks`: whether lines may go to Postgres as blocks (False once one was refused)."""
    dedupe = resume_dedupe(file, compiled.writer) if file.dedupe else None
    width = len(layout.columns)
    header_name = layout.header[0] if layout.header else ""

    def prepare(chunk: _DirectChunk) -> fastpath.Declined:
        if chunk.block is not None:
            return fastpath.block_prepare(
                chunk.block, plan=plan, width=width, delimiter=layout.delimiter, header_name=header_name
            )
        return fastpath.chunk_prepare(chunk.rows, plan=plan)

    def finish(chunk: _DirectChunk, declined: fastpath.Declined) -> BatchOutcome:
        outcome = BatchOutcome()
        cells_of = partial(fastpath.block_cells, width=width) if chunk.block is not None else chunk.cells_of
        fastpath.chunk_finish(file, compiled, dedupe, cells_of, declined, format_id=fmt.pk, outcome=outcome, plan=plan)
        return outcome

    def settle(chunk: _DirectChunk, outcome: BatchOutcome) -> None:
        file.rows_total = _direct_chunk_settle(file, fmt, layout, chunk, outcome)

    items = _direct_items(path, layout, through, offset, blocks)
    with OrderedSessions(sessions_for(), prepare, finish, settle=settle, stop=stop) as run:
        for chunk in _direct_chunks(items, layout, through=through, file_size=file.size):
            if not run.submit(chunk):
                break
    return not run.stopped


def _direct_items(path: Any, layout: FileLayout, through: int, offset: int | None, blocks: bool) -> Iterator[Any]:
    """The file's records after line `through` (earlier ones may come too: the caller skips them), or blocks of
    its plain lines where Postgres may parse them (imports/reading/blocks.py)."""
    if not settings.AIRLOCK.get("CSV_BLOCKS", True) or not block_reading(layout) or (through and offset is None):
        return records_of(path, layout)  # (an earlier run read up to `through` with the reader: go on with it)
    limits = sheet_limits(settings.AIRLOCK)
    start = (offset, through + 1) if through and offset is not None else None
    if not blocks:
        return iter_records(
            path, layout, max_field_chars=limits.max_field_chars, max_columns=limits.max_columns, start=start
        )
    return csv_blocks(
        path,
        layout,
        rows=fastpath.batch_size(),
        max_bytes=_CHUNK_CHARS,
        max_field_chars=limits.max_field_chars,
        max_columns=limits.max_columns,
        start=start,
    )


@dataclass
class _DirectChunk:
    rows: list[tuple[int, list[str]]]
    skipped: Counter  # lines the reader skipped in this chunk, by reason
    through_line: int  # the last line this chunk covers
    progress: float
    final: bool
    block: Block | None = None  # the chunk's lines as text, for Postgres to parse (then `rows` is empty)

    @property
    def count(self) -> int:
        return self.block.rows if self.block is not None else len(self.rows)

    def cells_of(self, lines: list[int]) -> dict[int, list[str]]:
        wanted = set(lines)
        return {line: cells for line, cells in self.rows if line in wanted}


# A chunk ends at this many rows (AIRLOCK_FAST_BATCH_SIZE) or characters, whichever comes first, so that
# wide rows do not make it large.
_CHUNK_CHARS = 16 * 2**20


def _direct_chunks(items: Iterator[Any], layout: FileLayout, *, through: int, file_size: int) -> Iterator[_DirectChunk]:
    """The records (and blocks) after line `through`, in chunks."""
    size = fastpath.batch_size()
    chunk: list[tuple[int, list[str]]] = []
    skipped: Counter = Counter()
    read_chars = chunk_chars = last_line = 0
    # Progress: by rows when the reader knows how many there are (a workbook's sheet, JSON records), else
    # by the characters read against the file's size (CSV text).
    rows = getattr(layout, "rows", None)
    append = chunk.append
    # A block is a chunk of its own, held until the next item shows whether it is the file's last chunk (a small
    # file is then one chunk: run inline, no second session).
    held: _DirectChunk | None = None
    # The loop runs once per row of every direct import: plain locals, one type test, no per-row call.
    for item in items:
        if type(item) is Block:
            if held is not None:
                yield held
            if chunk or skipped:  # (records before a block go first)
                yield _DirectChunk(chunk, skipped, last_line, min(99.0, 100.0 * read_chars / max(file_size, 1)), False)
                chunk, skipped, chunk_chars = [], Counter(), 0
                append = chunk.append
            read_chars = item.end
            last_line = item.last_line
            progress = min(99.0, 100.0 * item.end / max(file_size, 1))
            held = _DirectChunk([], Counter(), last_line, progress, False, block=item)
            continue
        if held is not None:
            yield held
            held = None
        line = item.line
        if type(item) is Record:
            cells = item.cells
            chars = sum(map(len, cells)) + len(cells)
            read_chars += chars
            if line <= through:
                continue  # committed by an earlier run of this job
            append((line, cells))
            chunk_chars += chars
        elif line <= through:
            continue
        elif isinstance(item, Skipped):
            skipped[item.reason if len(skipped) < 50 else "other skipped lines"] += 1
        last_line = line
        if len(chunk) < size and chunk_chars < _CHUNK_CHARS:
            continue
        done = last_line / rows if rows else read_chars / max(file_size, 1)
        yield _DirectChunk(chunk, skipped, last_line, min(99.0, 100.0 * done), False)
        chunk, skipped, chunk_chars = [], Counter(), 0
        append = chunk.append
    if held is not None and not chunk and not skipped:
        held.progress, held.final = 99.0, True
        yield held
        return
    if held is not None:
        yield held
    yield _DirectChunk(chunk, skipped, max(last_line, through), 99.0, True)


def direct_undo(file_id: int, writer: TargetWriter) -> int:
    """Remove what a direct import of this file wrote (records, staged rows, counters); returns the rows."""
    with transaction.atomic():
        file = ImportFile.objects.select_for_update().get(pk=file_id)
        writer.delete_for_file(file_id=file_id)
        staged_rows_delete_for_file(file_id=file_id)
        removed = file.rows_total
        file.rows_total = file.rows_imported = file.rows_invalid = file.rows_duplicate = file.rows_skipped = 0
        file.skip_reasons = {}
        file.layout = {key: value for key, value in (file.layout or {}).items() if key != "direct"}
        file.save()
    return removed


def _direct_chunk_settle(
    file: ImportFile, fmt: CsvFormat, read: FileLayout, chunk: _DirectChunk, outcome: BatchOutcome
) -> int:
    """Advance the file's counters and how far it was read by a written chunk (in the chunk's transaction); returns
    the file's rows so far. The first chunk of a file never read before also gives it its format and `read`, the
    layout it was read with (import_direct: such a file is not reset first).

    Plain SQL, a locked read of the few columns it merges and one UPDATE that adds to the counters: it runs once
    per chunk (once per small file), and the ORM's read and save of the whole row cost ~0.9 ms more."""
    table = ImportFile._meta.db_table
    skipped = chunk.skipped
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT status, layout, skip_reasons, rows_total FROM {table} WHERE id = %s FOR UPDATE", [file.pk]
        )
        status, layout, skip_reasons, rows_total = cursor.fetchone()
        layout = _json(layout) or {**read.as_dict(), "reader_skips": {}}
        layout["reader_skips"] = dict(Counter(layout.get("reader_skips") or {}) + skipped)
        # `complete`: the whole file is read (an admin retry then resumes the migration, not the reading).
        layout["direct"] = {"format": fmt.pk, "through_line": chunk.through_line, "complete": chunk.final}
        if chunk.block is not None:
            layout["direct"]["offset"] = chunk.block.end  # where the next block starts, for a resumed run
        reasons = Counter(_json(skip_reasons) or {}) + skipped + outcome.skip_reasons
        rows_total += chunk.count
        if chunk.final and rows_total:
            current = ImportFile(pk=file.pk, status=status)
            file_step(current, FileStatus.MIGRATING)
            status = current.status
            record(
                action="rows.imported",
                obj=current,
                summary=(
                    f"{rows_total} rows of '{file.original_name}' read for approved format '{fmt.name}' and "
                    "imported directly"
                ),
                details={"format": fmt.pk, "rows": rows_total, "layout": layout},
            )
        cursor.execute(
            f"""
            UPDATE {table} SET status = %s, format_id = %s, layout = %s, skip_reasons = %s,
                progress = greatest(progress, %s), rows_total = rows_total + %s, rows_imported = rows_imported + %s,
                rows_invalid = rows_invalid + %s, rows_duplicate = rows_duplicate + %s,
                rows_skipped = rows_skipped + %s, updated_at = %s
            WHERE id = %s
            """,
            [
                status,
                fmt.pk,
                Jsonb(layout),
                Jsonb(dict(reasons.most_common(50))),
                chunk.progress,
                chunk.count,
                outcome.imported,
                outcome.invalid,
                outcome.duplicate,
                outcome.skipped + sum(skipped.values()),
                timezone.now(),
                file.pk,
            ],
        )
    return rows_total


def _json(value: Any) -> Any:
    """A JSON column's value read with a plain cursor (Django has psycopg leave JSON as text)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value
