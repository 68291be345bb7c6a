"""CSV formats: a fingerprinted header and its mapping onto a target, approved by a second person."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords


class FormatStatus(models.TextChoices):
    PENDING = "PENDING", "Pending approval"
    APPROVED = "APPROVED", "Approved"
    REJECTED = "REJECTED", "Rejected"
    # Judged to hold no trades (positions, cash, unrelated data): kept out of the review queue, findable by
    # this status, and turned into a pending format by an admin who disagrees (formats.services).
    NO_TRADES = "NO_TRADES", "No trades"


class CsvFormat(models.Model):
    name = models.CharField(max_length=200)
    target = models.CharField(max_length=50, default="orders")
    header = models.JSONField(help_text="Normalised header cells, in file order.")
    columns = models.JSONField(default=list, help_text="Unique column names the mapping refers to.")
    fingerprint = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=FormatStatus.choices, default=FormatStatus.PENDING)
    mapping = models.JSONField(default=dict)
    suggestion = models.JSONField(default=dict, blank=True, help_text="The mapping first suggested.")
    confidence = models.FloatField(default=0.0, help_text="Mean confidence of the suggested mapping.")
    sample_rows = models.JSONField(default=list, blank=True)
    builtin = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The user whose upload created this format.",
    )
    # A plain id, not a foreign key: formats must not depend on imports (DESIGN.md's one-way rule).
    first_seen_file_id = models.BigIntegerField(null=True, blank=True)
    first_seen_file_name = models.CharField(max_length=255, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rejected_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    verdict = models.TextField(blank=True, help_text="Why the files of this format were judged to hold no trades.")
    history = HistoricalRecords(excluded_fields=["sample_rows", "updated_at"])

    class Meta:
        verbose_name = "CSV format"
        constraints = [
            models.UniqueConstraint(fields=["target", "fingerprint"], name="format_unique_fingerprint"),
            models.CheckConstraint(
                condition=models.Q(status__in=["PENDING", "APPROVED", "REJECTED", "NO_TRADES"]),
                name="format_status_valid",
            ),
        ]
        permissions = [("approve_csvformat", "Can approve or reject CSV formats")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display()})"
