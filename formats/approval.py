"""The approval chain of a format: how many distinct people approve it (the policy), which of their steps
still count, and the emergency override.

A step approves one version of the mapping (its sha256 digest). It stops counting when the mapping changes
after it (the chain starts again, and the earlier approvers see what changed in the audit log) or when it is
older than the policy's expiry. The format is approved when the steps that count come from as many distinct
people as the policy asks for; a risky format (many rows that would be invalid, or unlike any approved format)
needs more. Rejection by anyone in the chain rejects (formats.services.format_reject).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from audit.services import record
from formats.models import ApprovalPolicy, ApprovalStep, CsvFormat, FormatStatus, StepKind

log = logging.getLogger(__name__)

APPROVE_PERMISSION = "formats.approve_csvformat"
OVERRIDE_PERMISSION = "formats.override_approval"


def policy_current() -> ApprovalPolicy:
    """The one approval policy (created with its defaults on first use)."""
    policy = ApprovalPolicy.objects.order_by("pk").first()
    return policy if policy is not None else ApprovalPolicy.objects.create()


def mapping_digest(mapping: dict[str, Any]) -> str:
    """The sha256 of a mapping as canonical JSON: equal mappings, equal digests."""
    return hashlib.sha256(json.dumps(mapping, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class ChainState:
    """Where a format's approval chain stands: who approved the current mapping, how many are needed, why."""

    required: int
    approvers: list[str] = field(default_factory=list)
    risk: list[str] = field(default_factory=list)
    expired: int = 0

    @property
    def complete(self) -> bool:
        return len(self.approvers) >= self.required

    @property
    def missing(self) -> int:
        return max(0, self.required - len(self.approvers))

    def as_dict(self) -> dict[str, Any]:
        return {
            "required": self.required,
            "approvals": len(self.approvers),
            "approvers": self.approvers,
            "missing": self.missing,
            "risk": self.risk,
            "expired_steps": self.expired,
        }

    def describe(self) -> str:
        who = ", ".join(self.approvers) or "nobody yet"
        risk = f" (risky: {'; '.join(self.risk)})" if self.risk else ""
        return f"{len(self.approvers)} of {self.required} approvals{risk}: {who}"


def format_risks(fmt: CsvFormat, policy: ApprovalPolicy, invalid_rate: float | None) -> list[str]:
    """Why this format counts as risky under the policy ([] when it does not)."""
    risks = []
    if invalid_rate is not None and invalid_rate > policy.risky_invalid_rate:
        risks.append(f"{invalid_rate:.0%} of its staged rows would be invalid (limit {policy.risky_invalid_rate:.0%})")
    if policy.risky_when_unlike_approved:
        columns = sorted(c.casefold() for c in fmt.header or [])
        approved = CsvFormat.objects.filter(target=fmt.target, status=FormatStatus.APPROVED).exclude(pk=fmt.pk)
        if not any(
            sorted(c.casefold() for c in other or []) == columns for other in approved.values_list("header", flat=True)
        ):
            risks.append("no approved format has the same columns")
    return risks


def chain_state(
    fmt: CsvFormat, *, invalid_rate: float | None = None, policy: ApprovalPolicy | None = None
) -> ChainState:
    """The chain of the format's current mapping, as the policy counts it now."""
    policy = policy or policy_current()
    risk = format_risks(fmt, policy, invalid_rate)
    required = max(1, policy.risky_approvers_required if risk else policy.approvers_required)
    digest = mapping_digest(fmt.mapping or {})
    steps = ApprovalStep.objects.filter(format=fmt, reset_at__isnull=True, kind=StepKind.APPROVAL).select_related(
        "approver"
    )
    cutoff = timezone.now() - timedelta(hours=policy.step_expiry_hours) if policy.step_expiry_hours else None
    state = ChainState(required=required, risk=risk)
    for step in steps:
        if step.mapping_digest != digest or step.approver is None:
            continue
        if cutoff is not None and step.created_at < cutoff:
            state.expired += 1
            continue
        name = step.approver.get_username()
        if name not in state.approvers:
            state.approvers.append(name)
    return state


def chain_reset(fmt: CsvFormat, *, actor: Any, reason: str, old_mapping: dict[str, Any]) -> int:
    """The mapping changed: every step given so far stops counting (audited with what changed)."""
    now = timezone.now()
    reset = ApprovalStep.objects.filter(format=fmt, reset_at__isnull=True).update(
        reset_at=now, reset_reason=reason[:300]
    )
    if reset:
        record(
            action="format.approval_chain_reset",
            actor=actor,
            obj=fmt,
            summary=f"The approval chain of '{fmt.name}' starts again ({reset} step(s)): {reason[:200]}",
            details={"reason": reason, "before": old_mapping, "after": fmt.mapping, "steps": reset},
        )
    return reset


def chain_step_add(
    fmt: CsvFormat, *, actor: Any, comment: str = "", kind: str = StepKind.APPROVAL
) -> ApprovalStep | None:
    """Record the actor's approval of the current mapping (None when they already gave one that counts)."""
    digest = mapping_digest(fmt.mapping or {})
    policy = policy_current()
    cutoff = timezone.now() - timedelta(hours=policy.step_expiry_hours) if policy.step_expiry_hours else None
    mine = ApprovalStep.objects.filter(
        format=fmt, approver=actor, reset_at__isnull=True, mapping_digest=digest, kind=kind
    )
    if cutoff is not None:
        mine = mine.filter(created_at__gte=cutoff)
    if kind == StepKind.APPROVAL and mine.exists():
        return None
    return ApprovalStep.objects.create(
        format=fmt, approver=actor, kind=kind, mapping_digest=digest, mapping=fmt.mapping or {}, comment=comment[:2000]
    )


def approver_emails() -> list[str]:
    """The email addresses of active staff who may approve formats (superusers included)."""
    staff = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="").order_by("pk")
    return [user.email for user in staff if user.has_perm(APPROVE_PERMISSION)]


def approvers_tell(*, subject: str, body: str, obj: Any) -> None:
    """After commit, one email to all approvers; a failing mail server is logged and audited, never raised."""

    def send() -> None:
        recipients = approver_emails()
        if not recipients:
            return
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
        except Exception as exc:  # noqa: BLE001 - any mail failure must not undo the decision it reports
            log.exception("email to the approvers failed: %s", subject)
            record(
                action="notification.failed",
                obj=obj,
                summary=f"Email '{subject[:150]}' to the approvers failed: {exc.__class__.__name__}",
                details={"error": str(exc)[:500]},
            )

    transaction.on_commit(send, robust=True)


def formats_escalate(*, now: Any = None) -> list[int]:
    """Escalate, once each, the pending formats that have waited longer than the policy allows: the approvers
    are told which formats wait and who still has to decide, and the audit log says so. Run by the cron."""
    policy = policy_current()
    if not policy.escalate_after_hours:
        return []
    now = now or timezone.now()
    due = CsvFormat.objects.filter(
        status=FormatStatus.PENDING,
        escalated_at__isnull=True,
        created_at__lt=now - timedelta(hours=policy.escalate_after_hours),
    ).order_by("pk")
    escalated = []
    for fmt_id in due.values_list("pk", flat=True)[:100]:
        with transaction.atomic():
            fmt = (
                CsvFormat.objects.select_for_update(skip_locked=True)
                .filter(pk=fmt_id, escalated_at__isnull=True)
                .first()
            )
            if fmt is None or fmt.status != FormatStatus.PENDING:
                continue
            state = chain_state(fmt, policy=policy)
            fmt.escalated_at = now
            fmt.save(update_fields=["escalated_at"])
            hours = int((now - fmt.created_at).total_seconds() // 3600)
            summary = f"'{fmt.name}' has waited {hours} h for approval: {state.describe()}"
            record(action="format.escalated", obj=fmt, summary=summary, details=state.as_dict())
            link = settings.AIRLOCK["SITE_URL"].rstrip("/") + f"/admin/formats/csvformat/{fmt.pk}/change/"
            approvers_tell(
                subject=f"[Airlock] Waiting for approval for {hours} h: {fmt.name}"[:200],
                body=f"{summary}.\nStill needed: {state.missing} approval(s).\nReview it: {link}\n",
                obj=fmt,
            )
            escalated.append(fmt.pk)
    return escalated
