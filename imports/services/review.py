"""Changing where a format's table is (header line, section) before approval: re-read and re-stage."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from audit.services import record
from config.errors import Conflict, MappingError, UnreadableFile
from formats.models import CsvFormat, FormatStatus
from formats.suggest import suggest_mapping
from imports.lifecycle import files_reopen
from imports.models import FileStatus, ImportFile
from imports.pipeline.stage import stage  # the one staging step, shared with file_process
from imports.reading import ReaderOptions
from imports.sheets.dispatch import detect_layout, sample_records, sheet_limits
from imports.storage import local_path


def format_reader_apply(*, format_id: int, mapping: dict[str, Any], actor: Any) -> dict[str, Any]:
    """Re-detect a pending format's columns with new reader settings and re-stage its waiting files.

    Callers check the request first (formats.services.format_review_check, which also checks the reader
    settings) and call this inside their transaction, so that a later refusal rolls the re-stage back.
    Returns the mapping to use next: the submitted one when its fields fit the new columns, else a fresh
    suggestion for the new table (the admin reviews it before approving).
    """
    reader = {k: (mapping.get("reader") or {}).get(k) for k in ("section", "header_line")}
    options = ReaderOptions(section=reader["section"], header_line=reader["header_line"])
    with transaction.atomic():
        fmt = CsvFormat.objects.select_for_update().get(pk=format_id)
        if fmt.status not in (FormatStatus.PENDING, FormatStatus.NO_TRADES):
            raise Conflict("The table's position can only change while the format is pending approval.")
        # A format judged "no trades" may only have been read at the wrong line: pinning the table re-reads
        # its files and sends it to review (the verdict is not made again once a person is on it).
        waiting = (FileStatus.PENDING_APPROVAL, FileStatus.NO_TRADES)
        files = list(ImportFile.objects.filter(format=fmt, status__in=waiting).order_by("created_at"))
        if not files:
            raise Conflict("No file of this format is waiting: nothing to re-read.")
        limits = settings.AIRLOCK
        layouts = []
        for file in files:
            with local_path(file.stored_name) as path:
                try:
                    layout = detect_layout(path, options, limits=sheet_limits(limits))
                except UnreadableFile as exc:
                    raise MappingError(
                        f"With these reader settings '{file.original_name}' cannot be read: {exc.message}"
                    ) from exc
                if not layouts:
                    sample = [
                        r.cells
                        for r in sample_records(path, layout, limits["SAMPLE_ROWS"], limits=sheet_limits(limits))
                    ]
                layouts.append(layout)
        if any(layout.columns != layouts[0].columns for layout in layouts):
            raise MappingError("With these reader settings the waiting files have different columns.")
        columns = layouts[0].columns
        fields = mapping.get("fields") or {}
        fits = all(set(spec.get("columns") or []) <= set(columns) for spec in fields.values())
        if not fits or not fields:
            mapping = suggest_mapping(target=fmt.target, columns=columns, sample_rows=sample, header=layouts[0].header)
        mapping = {**mapping, "reader": reader}
        fmt.columns = columns
        fmt.sample_rows = sample
        fmt.mapping = mapping
        fmt.status = FormatStatus.PENDING
        fmt._change_reason = f"reader settings changed to {reader}"
        fmt.save()
        for file, layout in zip(files, layouts, strict=True):
            with local_path(file.stored_name) as path:
                stage(file, fmt, layout, path)
        record(
            action="format.reader_changed",
            actor=actor,
            obj=fmt,
            summary=f"{actor.get_username()} moved the table of '{fmt.name}' to {reader}; "
            f"{len(files)} file(s) re-staged",
            details={"reader": reader, "columns": columns},
        )
    return mapping


def format_has_trades(*, format_id: int, actor: Any) -> int:
    """An admin overrules a 'no trades' verdict: the format becomes pending and its files, whose rows stayed
    staged, wait for its review like any other. Returns how many files wait."""
    with transaction.atomic():
        fmt = CsvFormat.objects.select_for_update().get(pk=format_id)
        if fmt.status != FormatStatus.NO_TRADES:
            raise Conflict("Only a format judged to hold no trades can be sent to review this way.")
        fmt.status = FormatStatus.PENDING
        fmt._change_reason = f"{actor}: holds trades after all"[:100]
        fmt.save(update_fields=["status", "updated_at"])
        waiting = files_reopen(ImportFile.objects.filter(format=fmt))
        record(
            action="format.has_trades",
            obj=fmt,
            actor=actor,
            summary=f"'{fmt.name}' holds trades after all: sent to review with {waiting} file(s) waiting",
            details={"verdict": fmt.verdict, "files": waiting},
        )
    return waiting
