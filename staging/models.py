"""Staged rows: raw CSV rows kept as JSON until their format is approved and they are migrated."""

from __future__ import annotations

from django.db import models

from formats.models import FormatStatus


class StagedStatus(models.TextChoices):
    PENDING = "PENDING", "Pending approval"
    APPROVED = "APPROVED", "Approved, waiting to migrate"
    MIGRATING = "MIGRATING", "Migrating"
    MIGRATED = "MIGRATED", "Migrated"
    # Stored and sent by the API as "FAILED" (its contract since the first version); the vocabulary is "invalid".
    INVALID = "FAILED", "Invalid"
    SKIPPED = "SKIPPED", "Skipped"
    DUPLICATE = "DUPLICATE", "Duplicate"
    REJECTED = "REJECTED", "Rejected"


# Rows that still wait for something to happen to them.
OPEN_STATUSES = (StagedStatus.PENDING, StagedStatus.APPROVED, StagedStatus.MIGRATING)
# Rows waiting for an admin: PENDING rows of a format not approved yet. An approval leaves its rows PENDING (the
# migration claims them as they are, instead of a rewrite of every row in the approval's transaction), so a
# PENDING row of an approved format is one waiting to migrate, not for approval.
AWAITING_APPROVAL = models.Q(status=StagedStatus.PENDING) & ~models.Q(format__status=FormatStatus.APPROVED)


def shown_status(status: str, format_status: str) -> str:
    """A staged row's status as pages and the API show it: a PENDING row of an approved format is APPROVED
    (waiting to migrate), as it was when the approval rewrote every row."""
    if status == StagedStatus.PENDING and format_status == FormatStatus.APPROVED:
        return StagedStatus.APPROVED
    return status


def shown_status_filter(status: str) -> models.Q:
    """The rows whose shown status (shown_status) is this one."""
    if status == StagedStatus.PENDING:
        return AWAITING_APPROVAL
    if status == StagedStatus.APPROVED:
        return models.Q(status=status) | (models.Q(status=StagedStatus.PENDING) & ~AWAITING_APPROVAL)
    return models.Q(status=status)


def counts_by_shown_status(rows: models.QuerySet) -> dict[str, int]:
    """{shown status: rows} of these staged rows."""
    counts: dict[str, int] = {}
    pairs = rows.order_by().values_list("status", "format__status").annotate(n=models.Count("id"))
    for status, format_status, n in pairs:
        shown = shown_status(status, format_status)
        counts[shown] = counts.get(shown, 0) + n
    return counts


class StagedRow(models.Model):
    # The raw row is a JSON *array* of cells; the header is stored once on the file. This stages
    # much faster than one JSON object per row and makes the table ~40% smaller.
    # In Postgres the two are one foreign key, (file_id, format_id) -> the file's (id, format_id) (migration 0002):
    # a row is staged for its file's format, and each staged row is checked once at commit instead of twice (the
    # format exists: the file's own key holds it). No single-column indexes: the indexes below start with them.
    file = models.ForeignKey(
        "imports.ImportFile",
        on_delete=models.CASCADE,
        related_name="staged_rows",
        db_index=False,
        db_constraint=False,
    )
    format = models.ForeignKey(
        "formats.CsvFormat", on_delete=models.PROTECT, related_name="staged_rows", db_index=False, db_constraint=False
    )
    line = models.PositiveIntegerField(help_text="Physical line in the source file where the row starts.")
    raw = models.JSONField()
    status = models.CharField(max_length=10, choices=StagedStatus.choices, default=StagedStatus.PENDING)
    errors = models.JSONField(null=True, blank=True, help_text="[{field, value, message}] for invalid rows.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["file", "line"], name="staged_unique_file_line")]
        indexes = [
            models.Index(fields=["format", "status"], name="staged_format_status"),
            models.Index(fields=["file", "status", "line"], name="staged_file_status_line"),
        ]

    def __str__(self) -> str:
        return f"file {self.file_id} line {self.line} ({self.status})"
