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
    escalated_at = models.DateTimeField(
        null=True, blank=True, help_text="When its wait was escalated to the approvers."
    )
    quality = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Quality score 0-100 (see parts).")
    quality_parts = models.JSONField(default=list, blank=True, help_text="The quality score's parts, in words.")
    approved_by_policy = models.BooleanField(default=False, help_text="Approved without a person, by the policy.")
    history = HistoricalRecords(
        excluded_fields=["sample_rows", "updated_at", "escalated_at", "quality", "quality_parts"]
    )

    class Meta:
        verbose_name = "CSV format"
        constraints = [
            models.UniqueConstraint(fields=["target", "fingerprint"], name="format_unique_fingerprint"),
            models.CheckConstraint(
                condition=models.Q(status__in=["PENDING", "APPROVED", "REJECTED", "NO_TRADES"]),
                name="format_status_valid",
            ),
        ]
        permissions = [
            ("approve_csvformat", "Can approve or reject CSV formats"),
            ("override_approval", "Can approve a format at once in an emergency, bypassing the approval chain"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display()})"


class ApprovalPolicy(models.Model):
    """How many people approve a format, and for how long an approval counts (one row, edited in the admin).

    Defaults keep the one-approver rule of before; every change is kept in its history and the audit log.
    """

    approvers_required = models.PositiveSmallIntegerField(
        default=1, help_text="Distinct approvers a format needs (never the uploader, unless self-approval is on)."
    )
    risky_approvers_required = models.PositiveSmallIntegerField(
        default=1,
        help_text="Approvers a risky format needs (see the two risk settings below); the same number as above "
        "switches the risk rules off.",
    )
    risky_invalid_rate = models.FloatField(
        default=0.2,
        help_text="A format is risky when more than this share (0-1) of its staged rows would fail to import.",
    )
    risky_when_unlike_approved = models.BooleanField(
        default=False,
        help_text="A format is also risky when no approved format has the same columns (in any order).",
    )
    step_expiry_hours = models.PositiveIntegerField(
        default=72, help_text="An approval step older than this no longer counts and must be given again (0: never)."
    )
    escalate_after_hours = models.PositiveIntegerField(
        default=24,
        help_text="A pending format waiting this long is escalated once: the approvers are told and it is audited "
        "(0: never).",
    )
    auto_approve = models.BooleanField(
        default=False,
        help_text="Approve a new format without a person when its numbers pass the three thresholds below (users "
        "of a trusted tier get this whatever this setting says).",
    )
    auto_min_quality = models.PositiveSmallIntegerField(default=90, help_text="Lowest quality score (0-100).")
    auto_min_confidence = models.FloatField(
        default=0.9, help_text="Lowest suggested confidence (0-1) of every required field."
    )
    auto_max_invalid_rate = models.FloatField(
        default=0.0, help_text="Highest share (0-1) of staged rows that would fail to import."
    )
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "approval policy"
        verbose_name_plural = "approval policy"

    def __str__(self) -> str:
        return f"{self.approvers_required} approver(s), {self.risky_approvers_required} when risky"


class StepKind(models.TextChoices):
    APPROVAL = "APPROVAL", "Approval"
    OVERRIDE = "OVERRIDE", "Emergency override"
    POLICY = "POLICY", "Approved by policy"


class UserTier(models.Model):
    """A group of users and how their unknown formats are treated: staged for review (the default), or
    trusted: approved by policy when the auto-approval thresholds pass (else staged as usual)."""

    group = models.OneToOneField("auth.Group", on_delete=models.CASCADE, related_name="airlock_tier")
    staging_required = models.BooleanField(
        default=True,
        help_text="Off: this group's unknown formats are approved by policy when the auto-approval thresholds "
        "pass, even with auto-approval off for everyone else.",
    )
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"{self.group.name}: {'staging required' if self.staging_required else 'trusted'}"


class ApprovalStep(models.Model):
    """One person's approval of one version of a format's mapping: a link of the approval chain."""

    format = models.ForeignKey(CsvFormat, on_delete=models.CASCADE, related_name="approval_steps")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=10, choices=StepKind.choices, default=StepKind.APPROVAL)
    mapping_digest = models.CharField(max_length=64, help_text="sha256 of the mapping approved.")
    mapping = models.JSONField(default=dict)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the step stops counting: the mapping changed after it (the chain starts again).
    reset_at = models.DateTimeField(null=True, blank=True)
    reset_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["format", "reset_at"], name="step_format_open")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of format {self.format_id} by {self.approver_id}"
