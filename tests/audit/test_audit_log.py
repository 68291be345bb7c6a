"""The audit log is append-only at the database level."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, transaction

from audit.models import AuditEvent
from audit.services import record

pytestmark = pytest.mark.django_db


def test_it_records_the_actor_action_and_details(user: Any) -> None:
    event = record(action="file.uploaded", actor=user, summary="uploaded x.csv", details={"size": 3})
    event.refresh_from_db()
    assert (event.actor, event.actor_label, event.action, event.details) == (
        user,
        "uploader",
        "file.uploaded",
        {"size": 3},
    )


def test_it_labels_events_without_a_user_as_the_system() -> None:
    assert record(action="migration.started", summary="x").actor_label == "system"


def test_the_database_refuses_to_update_an_event() -> None:
    event = record(action="a", summary="original")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(summary="rewritten")
    assert AuditEvent.objects.get(pk=event.pk).summary == "original"


def test_the_database_refuses_to_delete_an_event() -> None:
    event = record(action="a", summary="keep me")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_deleting_a_user_keeps_their_events(django_user_model: Any) -> None:
    gone = django_user_model.objects.create_user(username="leaver")
    event = record(action="a", actor=gone, summary="by leaver")
    gone.delete()
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.actor_label == "leaver"
