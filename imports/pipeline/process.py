"""The import pipeline's entry: lock a file, read its layout, match (or create) its format, choose the path.

read -> fingerprint -> approved? straight into the target (direct.py) | stage (stage.py) -> approval -> migrate
(migrate.py), one way. The same compiled mapping (convert.py) serves the admin's preview (preview.py), the migration
of staged rows, re-runs after a mapping fix and files of approved formats, so what the admin sees is what gets
written. Postgres holds the truth: every step re-reads state, so a job that runs twice or late is harmless.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from audit.models import AuditEvent
from audit.services import record
from config.errors import AppError, RateLimited, UnreadableFile
from formats.models import CsvFormat, FormatStatus
from formats.services import format_find, format_get_or_create_pending
from imports.guards.scanning import ScanFailed, VirusDetected, stored_check_content
from imports.lifecycle import file_fail, file_start_reading
from imports.models import FileStatus, ImportFile
from imports.pipeline.direct import RESTART, direct_undo, import_direct
from imports.pipeline.locks import file_lock
from imports.pipeline.migrate import file_migrate, sql_plan
from imports.pipeline.stage import (
    FormatRejected,
    ReaderChanged,
    detect,
    no_rows_message,
    no_trades,
    reader_options,
    stage,
)
from imports.reading import FileLayout
from imports.sheets.dispatch import fingerprint_section, sample_records, sheet_limits
from imports.storage import local_path
from imports.targets import writer_for


def file_process(*, file_id: int) -> str:
    """Read a stored file, match or create its format, stage its rows, migrate if approved."""
    # One process per file: a duplicate job (a reconciler kick, an RQ retry) that finds the file
    # being worked on leaves it to the holder instead of staging it a second time.
    with file_lock(file_id) as acquired:
        if not acquired:
            return ImportFile.objects.filter(pk=file_id).values_list("status", flat=True).first() or ""
        return _file_process_locked(file_id)


def _file_process_locked(file_id: int) -> str:
    file, due = file_start_reading(file_id)
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
                sql_plan(fmt, dedupe=file.dedupe)
                if (fmt.status == FormatStatus.APPROVED and settings.AIRLOCK.get("DIRECT_IMPORT", True))
                else None
            )
            if plan is not None:
                done = import_direct(file, fmt, layout, path, plan)
                return _file_process_locked(file_id) if done == RESTART else done
            if "direct" in (file.layout or {}):
                # Started straight from the file, but its format's mapping no longer allows it (or the
                # direct import was turned off): staging re-reads the whole file, so what the direct run
                # wrote goes first -- kept, its lines would be written again with new duplicate counters.
                removed = direct_undo(file.pk, writer_for(fmt.target))
                record(
                    action="rows.restaged",
                    obj=file,
                    summary=(
                        f"'{file.original_name}': the mapping of '{fmt.name}' now needs the rows staged; the "
                        f"{removed} rows imported straight from the file so far were removed, the whole file is staged"
                    ),
                    details={"format": fmt.pk, "rows_removed": removed},
                )
            staged, approved = stage(file, fmt, layout, path)
    except FormatRejected:
        return _file_rejected(file_id, CsvFormat.objects.get(pk=fmt.pk))
    except ReaderChanged:
        return _file_process_locked(file_id)
    except UnreadableFile as exc:
        return _file_refused(file, exc, "could not be read")
    except (VirusDetected, ScanFailed) as exc:  # a direct upload's check (stored_check_content): fail closed
        return _file_refused(file, exc, "was refused by the virus scan")
    except RateLimited as exc:  # the owner's daily limit of new formats (formats.services)
        return _file_refused(file, exc, "has a new format past its owner's daily limit")
    if staged == 0:
        file_fail(file_id, no_rows_message(file.skip_reasons))
        return FileStatus.FAILED
    if approved:
        return file_migrate(file_id=file_id)
    if no_trades(fmt.pk, file_id):
        return FileStatus.NO_TRADES
    return FileStatus.PENDING_APPROVAL


def _file_refused(file: ImportFile, exc: AppError, what: str) -> str:
    """FAIL a file the pipeline refuses (unreadable, over a limit) with the refusal's message, audited."""
    file_fail(file.pk, exc.message)
    record(
        action="file.failed",
        obj=file,
        severity=AuditEvent.Severity.WARNING,
        summary=f"'{file.original_name}' {what}: {exc.message}",
        details=exc.details or None,
    )
    return FileStatus.FAILED


def _file_rejected(file_id: int, fmt: CsvFormat) -> str:
    file_fail(file_id, f"The format '{fmt.name}' was rejected: {fmt.rejection_reason}", status=FileStatus.REJECTED)
    return FileStatus.REJECTED


def _match_format(file: ImportFile, path: Any) -> tuple[CsvFormat, FileLayout]:
    """Detect the layout and find the approved/pending format for its header (or create one)."""
    layout = detect(path)
    section = fingerprint_section(layout)  # a CSV statement's section; not a sheet's name or a JSON path
    fmt = format_find(target=file.target, header=layout.header, section=section)
    if fmt is None:
        limits = sheet_limits(settings.AIRLOCK)
        sample = [
            record.cells for record in sample_records(path, layout, settings.AIRLOCK["SUGGEST_ROWS"], limits=limits)
        ]
        fmt, _ = format_get_or_create_pending(
            target=file.target,
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
    options = reader_options(fmt.mapping)
    if options.header_line or (options.section and options.section != layout.section):
        # The admin pinned where the table is: read the file the way the format says.
        layout = detect(path, options)
    return fmt, layout
