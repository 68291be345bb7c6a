"""Format services: find or create a format for a header, validate mappings, approve, reject."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.services import record
from config.errors import Conflict, InvalidRequest, MappingError, PermissionDenied, RateLimited
from formats.approval import (
    APPROVE_PERMISSION,
    OVERRIDE_PERMISSION,
    approvers_tell,
    chain_reset,
    chain_state,
    chain_step_add,
)
from formats.converters import compile_mapping
from formats.fingerprint import fingerprint, normalise_header
from formats.mapping import READER_KEYS, mapping_document_check
from formats.models import CsvFormat, FormatStatus, StepKind
from formats.naming import readable_format_name
from formats.suggest import learned_key, suggest_mapping
from formats.targets import get_target


def format_find(*, target: str, header: list[str], section: str | None = None) -> CsvFormat | None:
    """The format whose fingerprint matches this header, if any (approved or not)."""
    return CsvFormat.objects.filter(target=target, fingerprint=fingerprint(header, section=section)).first()


def learned_evidence(*, target: str) -> dict[str, dict[str, int]]:
    """{normalised header cell: {field: count}} over the mappings admins approved."""
    evidence: dict[str, Counter] = defaultdict(Counter)
    approved = CsvFormat.objects.filter(target=target, status=FormatStatus.APPROVED, builtin=False)
    for mapping in approved.values_list("mapping", flat=True):
        for field, spec in (mapping.get("fields") or {}).items():
            for column in spec.get("columns") or []:
                evidence[learned_key(column)][field] += 1
    return {key: dict(counter) for key, counter in evidence.items()}


# Advisory lock class of "one user's new formats" (with the user id as the second key): counting a user's
# formats of the last day and creating one are serialised per user, so parallel workers cannot overshoot.
NEW_FORMATS_LOCK = 0x50_46_4D_54  # "PFMT"


def _refuse_past_daily_format_limit(user: Any) -> None:
    """Raise RateLimited if `user`'s uploads created AIRLOCK_MAX_PENDING_FORMATS_PER_DAY formats in the last 24 h."""
    if user is None:
        return
    limit = settings.AIRLOCK["MAX_PENDING_FORMATS_PER_DAY"]
    since = timezone.now() - timedelta(days=1)
    made = CsvFormat.objects.filter(created_by=user, created_at__gte=since).count()
    if made >= limit:
        raise RateLimited(
            f"This file has a header Airlock has not seen before, and your uploads already created {made} new "
            f"formats in the last 24 hours (the limit is {limit} a day). Nothing was imported and no format was "
            "created. Ask an admin to review the formats waiting for approval; an admin can retry this file "
            "afterwards.",
            code="too_many_new_formats",
            details={"limit": limit, "created": made},
        )


def format_get_or_create_pending(
    *,
    target: str,
    header: list[str],
    columns: list[str],
    sample_rows: list[list[str]],
    section: str | None,
    created_by: Any,
    file_id: int | None,
    file_name: str,
    context: list[list[str]] | None = None,
    name: str | None = None,
    joined: bool = False,
) -> tuple[CsvFormat, bool]:
    """Return the format for this header, creating a pending one with a suggested mapping if new.

    A user's uploads create at most AIRLOCK_MAX_PENDING_FORMATS_PER_DAY formats in 24 hours: past it,
    RateLimited and nothing is created (the file fails with that message). Two workers seeing the same
    new header at once both try to insert; the unique fingerprint
    constraint lets exactly one win and the other reads the winner's row.

    `joined`: the columns are not the header's but a ledger's joined ones (imports/reading/ledger.py): the
    header identifies the format, the columns name themselves for the suggestion.
    """
    print_ = fingerprint(header, section=section)
    existing = CsvFormat.objects.filter(target=target, fingerprint=print_).first()
    if existing:
        return existing, False
    _refuse_past_daily_format_limit(created_by)  # before the suggestion's work, and again under the lock
    suggestion = suggest_mapping(
        target=target,
        columns=columns,
        sample_rows=sample_rows,
        learned=learned_evidence(target=target),
        header=header,
        context=context,
        joined=joined,
    )
    if section:
        suggestion.setdefault("reader", {})["section"] = section
    name = name or readable_format_name(
        target=target, header=header, mapping=suggestion, section=section, context=context
    )
    confidences = [spec.get("confidence", 0.0) for spec in suggestion.get("fields", {}).values()]
    try:
        with transaction.atomic():
            if created_by is not None:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [NEW_FORMATS_LOCK, created_by.pk])
                _refuse_past_daily_format_limit(created_by)
            fmt = CsvFormat.objects.create(
                name=name[:200],
                target=target,
                header=normalise_header(header),
                columns=columns,
                fingerprint=print_,
                status=FormatStatus.PENDING,
                mapping=suggestion,
                suggestion=suggestion,
                confidence=round(sum(confidences) / len(confidences), 3) if confidences else 0.0,
                sample_rows=sample_rows[: settings.AIRLOCK["SAMPLE_ROWS"]],
                created_by=created_by,
                first_seen_file_id=file_id,
                first_seen_file_name=file_name[:255],
            )
    except IntegrityError:
        return CsvFormat.objects.get(target=target, fingerprint=print_), False
    record(
        action="format.created",
        obj=fmt,
        summary=f"New format '{fmt.name}' seen in '{file_name}', waiting for approval",
        details={"fingerprint": print_, "columns": columns, "suggested_mapping": suggestion},
    )
    return fmt, True


def mapping_validate(*, target: str, mapping: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """Check a mapping document strictly, then against the target and the format's columns; returns it
    normalised. The one validation of a mapping: the admin's form, the API and the import command use it.

    Raises MappingError with a message naming the key, field or column at fault.
    """
    mapping_document_check(mapping)
    fields = mapping["fields"]
    target_def = get_target(target)
    known = {field.name for field in target_def.fields}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise MappingError(
            f"Unknown target field(s): {', '.join(unknown)}. Fields of {target}: {', '.join(sorted(known))}.",
            details={"fields": unknown},
        )
    missing = [field.name for field in target_def.required_fields() if field.name not in fields]
    if missing:
        raise MappingError(f"Required field(s) not mapped: {', '.join(missing)}.", details={"fields": missing})
    filters = mapping.get("filters") or []
    for rule in filters:
        if rule["column"] not in columns:
            column = rule["column"]
            raise MappingError(f"Filter column {column!r} is not in the file's columns.", details={"column": column})
    compile_mapping(fields, columns)  # raises MappingError for columns the file does not have
    normalised = dict(mapping)
    normalised.setdefault("version", 1)
    normalised["reader"] = {key: (mapping.get("reader") or {}).get(key) for key in READER_KEYS}
    normalised["filters"] = filters
    return normalised


def reader_changed(fmt: CsvFormat, mapping: dict[str, Any] | None) -> bool:
    """True when a submitted mapping pins the table somewhere else than the format reads it now."""
    if not isinstance(mapping, dict) or "reader" not in mapping:
        return False
    new = {k: (mapping.get("reader") or {}).get(k) for k in READER_KEYS}
    old = {k: ((fmt.mapping or {}).get("reader") or {}).get(k) for k in READER_KEYS}
    return new != old


def _check_can_review(*, fmt: CsvFormat, actor: Any) -> None:
    if not actor.has_perm(APPROVE_PERMISSION):
        raise PermissionDenied("You need the 'approve CSV formats' permission to approve or reject formats.")
    if not settings.AIRLOCK["ALLOW_SELF_APPROVAL"] and fmt.created_by_id is not None and fmt.created_by_id == actor.pk:
        raise PermissionDenied(
            "Segregation of duties: the person whose upload created a format cannot approve or reject it. "
            "Ask another reviewer (or set AIRLOCK_ALLOW_SELF_APPROVAL=1 for a one-person team)."
        )


def format_review_check(*, fmt: CsvFormat, actor: Any, mapping: dict[str, Any] | None, approve: bool) -> None:
    """Every check of an approval (approve=True) or a mapping save, made before anything is written.

    The admin, the API and a restore from history all go through the review services, which call this
    first, under the format's row lock: a refused request (permission, segregation of duties, status, a bad
    mapping document) changes nothing, even when the mapping moves the table and would re-stage files.
    A mapping that moves the table is checked as a document here and against the new columns after the
    re-read, in the same transaction.
    """
    if approve:
        _check_can_review(fmt=fmt, actor=actor)
        if fmt.status == FormatStatus.REJECTED:
            raise Conflict("This format was rejected; it cannot be approved.", details={"format": fmt.pk})
    elif fmt.status == FormatStatus.REJECTED:
        raise Conflict("This format was rejected; its mapping cannot be changed.", details={"format": fmt.pk})
    elif fmt.status == FormatStatus.APPROVED and not actor.has_perm(APPROVE_PERMISSION):
        raise PermissionDenied(
            "Only a reviewer with the 'approve CSV formats' permission can change an approved mapping."
        )
    if mapping is None:
        return
    mapping_document_check(mapping)
    if reader_changed(fmt, mapping):
        if fmt.status not in (FormatStatus.PENDING, FormatStatus.NO_TRADES):
            raise Conflict("The table's position can only change while the format is pending approval.")
    else:
        mapping_validate(target=fmt.target, mapping=mapping, columns=fmt.columns)


def format_approve(
    *,
    format_id: int,
    actor: Any,
    mapping: dict[str, Any] | None = None,
    comment: str = "",
    invalid_rate: float | None = None,
) -> CsvFormat:
    """Record the actor's approval of a pending format (optionally with a corrected mapping, which starts
    the chain again); the format is approved when the policy's number of distinct approvers is reached.

    On an approved format this is a correction: one reviewer changes the mapping (audited). The returned
    format carries `approval_chain` (formats.approval.ChainState) for the caller to report.
    `invalid_rate`: the share of staged rows that would be invalid, for the policy's risk rule (None: unknown).
    """
    with transaction.atomic():
        fmt = CsvFormat.objects.select_for_update().get(pk=format_id)
        format_review_check(fmt=fmt, actor=actor, mapping=None, approve=True)
        new_mapping = mapping_validate(target=fmt.target, mapping=mapping or fmt.mapping, columns=fmt.columns)
        if fmt.status == FormatStatus.APPROVED:
            return _format_correct(fmt, actor=actor, mapping=new_mapping)
        if new_mapping != fmt.mapping:
            old = fmt.mapping
            fmt.mapping = new_mapping
            fmt._change_reason = "mapping edited"
            fmt.save()
            chain_reset(fmt, actor=actor, reason=f"{actor.get_username()} changed the mapping", old_mapping=old)
        step = chain_step_add(fmt, actor=actor, comment=comment)
        state = chain_state(fmt, invalid_rate=invalid_rate)
        fmt.approval_chain = state
        if not state.complete:
            if step is None:  # a double click or a retried request: their approval already counts
                record(
                    action="format.approved_again",
                    actor=actor,
                    obj=fmt,
                    summary=f"{actor.get_username()} approved '{fmt.name}' again; their approval already counts",
                    details=state.as_dict(),
                )
                return fmt
            record(
                action="format.approval_step",
                actor=actor,
                obj=fmt,
                summary=(
                    f"{actor.get_username()} approved '{fmt.name}': {state.describe()}, {state.missing} more needed"
                ),
                details={**state.as_dict(), "comment": comment[:2000], "mapping": fmt.mapping},
            )
            return fmt
        fmt.status = FormatStatus.APPROVED
        fmt.approved_by = actor
        fmt.approved_at = timezone.now()
        fmt._change_reason = "approved"
        fmt.save()
        record(
            action="format.approved",
            actor=actor,
            obj=fmt,
            summary=f"{actor.get_username()} approved format '{fmt.name}' ({state.describe()})",
            details={"mapping": new_mapping, "chain": state.as_dict(), "comment": comment[:2000]},
        )
    return fmt


def _format_correct(fmt: CsvFormat, *, actor: Any, mapping: dict[str, Any]) -> CsvFormat:
    """A reviewer changes the mapping of an approved format (inside format_approve's transaction)."""
    if mapping == fmt.mapping:
        # Approved again as it is (a double click, a retried request): nothing changes, and the audit
        # log says so instead of reporting a mapping change.
        record(
            action="format.approved_again",
            actor=actor,
            obj=fmt,
            summary=f"{actor.get_username()} approved format '{fmt.name}' again; its mapping is unchanged",
        )
        return fmt
    fmt.mapping = mapping
    fmt._change_reason = "mapping corrected after approval"
    fmt.save()
    record(
        action="format.mapping_changed",
        actor=actor,
        obj=fmt,
        summary=f"{actor.get_username()} corrected format '{fmt.name}'",
        details={"mapping": mapping},
    )
    return fmt


def format_approve_by_policy(*, format_id: int, numbers: dict[str, Any]) -> CsvFormat | None:
    """Approve a pending format without a person: the policy's thresholds passed (imports.services.uploads
    checks them). Recorded as a POLICY step with the numbers, audited, told to the approvers; as reversible
    as any approval. None when the format is no longer pending."""
    with transaction.atomic():
        fmt = CsvFormat.objects.select_for_update().get(pk=format_id)
        if fmt.status != FormatStatus.PENDING:
            return None
        fmt.mapping = mapping_validate(target=fmt.target, mapping=fmt.mapping, columns=fmt.columns)
        shown = ", ".join(f"{k} {v}" for k, v in numbers.items() if k != "parts")
        chain_step_add(fmt, actor=None, comment=f"approved by policy: {shown}", kind=StepKind.POLICY)
        fmt.status = FormatStatus.APPROVED
        fmt.approved_by, fmt.approved_by_policy = None, True
        fmt.approved_at = timezone.now()
        fmt._change_reason = "approved by policy"
        fmt.save()
        summary = f"Format '{fmt.name}' approved by policy ({shown})"
        record(
            action="format.approved_by_policy", obj=fmt, summary=summary, details={**numbers, "mapping": fmt.mapping}
        )
        approvers_tell(
            subject=f"[Airlock] Approved by policy: {fmt.name}"[:200],
            body=f"{summary}.\nReview it, and reject it or roll back its files if this is wrong.\n",
            obj=fmt,
        )
    return fmt


def format_revoke_policy_approval(*, format_id: int, actor: Any, reason: str) -> CsvFormat:
    """Take back an approval by policy: the format becomes REJECTED (its files were rolled back first, by
    imports.services.rollback.format_policy_revoke), so later files of its header are refused."""
    with transaction.atomic():
        fmt = CsvFormat.objects.select_for_update().get(pk=format_id)
        _check_can_review(fmt=fmt, actor=actor)
        if fmt.status != FormatStatus.APPROVED or not fmt.approved_by_policy:
            raise Conflict("Only a format approved by policy can have its approval revoked.")
        fmt.status = FormatStatus.REJECTED
        fmt.rejected_by = actor
        fmt.rejected_at = timezone.now()
        fmt.rejection_reason = f"Approval by policy revoked: {reason}"[:2000]
        fmt._change_reason = "approval by policy revoked"
        fmt.save()
        record(
            action="format.policy_approval_revoked",
            actor=actor,
            obj=fmt,
            summary=f"{actor.get_username()} revoked the approval by policy of '{fmt.name}': {reason[:200]}",
            details={"reason": reason, "mapping": fmt.mapping},
        )
    return fmt


def format_override(*, format_id: int, actor: Any, reason: Any) -> CsvFormat:
    """Emergency override: a person with the override permission approves a pending format at once, with a
    mandatory reason, bypassing the approval chain and the segregation rule; audited as an override and told
    to every approver."""
    if not actor.has_perm(OVERRIDE_PERMISSION):
        raise PermissionDenied("You need the 'approve a format at once in an emergency' permission to override.")
    if not isinstance(reason, str) or not reason.strip():
        raise MappingError("A reason is required for an emergency override.", code="reason_required")
    reason = reason.strip()[:2000]
    with transaction.atomic():
        fmt = CsvFormat.objects.select_for_update().get(pk=format_id)
        if fmt.status not in (FormatStatus.PENDING, FormatStatus.NO_TRADES):
            raise Conflict(
                f"Only a pending format can be approved by override; this one is {fmt.get_status_display()}."
            )
        fmt.mapping = mapping_validate(target=fmt.target, mapping=fmt.mapping, columns=fmt.columns)
        state = chain_state(fmt)
        chain_step_add(fmt, actor=actor, comment=reason, kind=StepKind.OVERRIDE)
        fmt.status = FormatStatus.APPROVED
        fmt.approved_by = actor
        fmt.approved_at = timezone.now()
        fmt._change_reason = "approved by emergency override"
        fmt.save()
        fmt.approval_chain = state
        summary = (
            f"{actor.get_username()} approved '{fmt.name}' by EMERGENCY OVERRIDE, bypassing the approval chain "
            f"({state.describe()}): {reason[:200]}"
        )
        record(
            action="format.approval_override",
            actor=actor,
            obj=fmt,
            summary=summary,
            details={"reason": reason, "chain": state.as_dict(), "mapping": fmt.mapping},
        )
        approvers_tell(subject=f"[Airlock] Emergency override: {fmt.name}"[:200], body=summary + "\n", obj=fmt)
    return fmt


def format_reject(*, format_id: int, actor: Any, reason: str | None) -> CsvFormat:
    """Reject a pending format with a reason."""
    if reason is not None and not isinstance(reason, str):
        raise InvalidRequest(
            f"The reason must be text, not {type(reason).__name__}: write why the format is rejected.",
            code="invalid_reason",
        )
    reason = (reason or "").strip()
    if not reason:
        raise MappingError("A reason is required to reject a format.", code="reason_required")
    with transaction.atomic():
        fmt = CsvFormat.objects.select_for_update().get(pk=format_id)
        _check_can_review(fmt=fmt, actor=actor)
        if fmt.status == FormatStatus.APPROVED:
            raise Conflict("This format is already approved; roll back its imports instead of rejecting it.")
        fmt.status = FormatStatus.REJECTED
        fmt.rejected_by = actor
        fmt.rejected_at = timezone.now()
        fmt.rejection_reason = reason[:2000]
        fmt._change_reason = "rejected"
        fmt.save()
        record(
            action="format.rejected",
            actor=actor,
            obj=fmt,
            summary=f"{actor.get_username()} rejected format '{fmt.name}': {reason[:200]}",
            details={"reason": reason, "mapping": fmt.mapping},
        )
    return fmt


def format_update_mapping(*, format_id: int, actor: Any, mapping: dict[str, Any]) -> CsvFormat:
    """Save a corrected mapping on a pending format without approving it."""
    with transaction.atomic():
        fmt = CsvFormat.objects.select_for_update().get(pk=format_id)
        format_review_check(fmt=fmt, actor=actor, mapping=mapping, approve=False)
        old = fmt.mapping
        fmt.mapping = mapping_validate(target=fmt.target, mapping=mapping, columns=fmt.columns)
        fmt._change_reason = "mapping edited"
        fmt.save()
        if fmt.mapping != old and fmt.status != FormatStatus.APPROVED:
            chain_reset(fmt, actor=actor, reason=f"{actor.get_username()} changed the mapping", old_mapping=old)
        record(
            action="format.mapping_changed",
            actor=actor,
            obj=fmt,
            summary=f"{actor.get_username()} edited the mapping of '{fmt.name}'",
            details={"mapping": fmt.mapping},
        )
    return fmt
