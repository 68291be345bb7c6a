"""What the audit log says about format decisions: a repeated approval is not a mapping change."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditEvent
from formats.models import CsvFormat
from imports.services.uploads import review_approve
from tests.imports.pipeline.test_pipeline import upload

pytestmark = pytest.mark.django_db


def test_a_second_identical_approval_is_not_audited_as_a_mapping_change(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    run_jobs()
    fmt = CsvFormat.objects.get(pk=file.format_id)
    versions = fmt.history.count()
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=fmt.pk, actor=reviewer)  # a double click
        review_approve(format_id=fmt.pk, actor=reviewer, mapping=fmt.mapping)  # a retried request
    run_jobs()
    actions = list(
        AuditEvent.objects.filter(object_id=str(fmt.pk), action__startswith="format.").values_list("action", flat=True)
    )
    assert "format.mapping_changed" not in actions
    assert actions.count("format.approved") == 1 and actions.count("format.approved_again") == 2
    again = AuditEvent.objects.filter(action="format.approved_again").first()
    assert again.summary.endswith("again; its mapping is unchanged") and again.actor == reviewer
    assert CsvFormat.objects.get(pk=fmt.pk).history.count() == versions, "no new version of an unchanged format"
