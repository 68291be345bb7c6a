"""Review actions beyond approve/reject: restoring an earlier mapping of a format from its history."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.services import record
from config.errors import Conflict, NotFound
from formats.models import CsvFormat, FormatStatus
from imports.services.uploads import review_approve, review_save_mapping


def review_restore_mapping(*, format_id: int, history_id: int, actor: Any) -> CsvFormat:
    """Restore the mapping of an earlier version; an approved format then re-processes its invalid rows."""

    version = CsvFormat.history.filter(id=format_id, history_id=history_id).first()
    if version is None:
        raise NotFound(f"Format {format_id} has no version {history_id}.", details={"history_id": history_id})
    with transaction.atomic():
        fmt = CsvFormat.objects.select_for_update().get(pk=format_id)
        if fmt.status == FormatStatus.REJECTED:
            raise Conflict("This format was rejected; its mapping cannot be changed.", details={"format": fmt.pk})
        if fmt.status == FormatStatus.APPROVED:
            # An approved format's mapping decides what gets written: restoring one is a correction, with
            # the same permission check, validation, audit and re-processing of invalid rows as any other.
            fmt = review_approve(format_id=format_id, actor=actor, mapping=version.mapping)
        else:
            # A pending format: a version with the table elsewhere re-reads the waiting files, as a Save does.
            fmt = review_save_mapping(format_id=format_id, actor=actor, mapping=version.mapping)
        record(
            action="format.mapping_restored",
            actor=actor,
            obj=fmt,
            summary=(
                f"{actor.get_username()} restored the mapping of '{fmt.name}' from the version of "
                f"{version.history_date:%Y-%m-%d %H:%M}"
            ),
            details={"history_id": history_id, "mapping": fmt.mapping},
        )
    return fmt
