"""Writing audit events."""

from __future__ import annotations

from typing import Any

from django.db import models

from audit.models import AuditEvent


def record(
    *,
    action: str,
    summary: str,
    actor: Any = None,
    obj: models.Model | None = None,
    severity: str = AuditEvent.Severity.INFO,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event (actor None means the system, e.g. a worker)."""
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        actor=actor if is_user else None,
        actor_label=actor.get_username() if is_user else "system",
        action=action,
        severity=severity,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        summary=summary[:500],
        details=details or {},
    )
