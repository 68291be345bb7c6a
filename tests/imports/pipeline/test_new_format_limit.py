"""AIRLOCK_MAX_PENDING_FORMATS_PER_DAY: one user's uploads cannot flood the review queue with new formats."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from audit.models import AuditEvent
from formats.models import CsvFormat
from imports.models import FileStatus
from tests.imports.pipeline.test_pipeline import TRADES, upload

pytestmark = pytest.mark.django_db

LAST_COLUMNS = ["Ref", "Reference", "Trade Ref", "Order Ref", "Ticket"]


def with_last_column(name: str) -> str:
    """TRADES with another name for its last column: a header never seen before."""
    return TRADES.replace(",Ref\n", f",{name}\n", 1)


def test_past_the_daily_limit_a_new_header_fails_the_file_and_creates_no_format(
    user: Any, other_user: Any, settings: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "MAX_PENDING_FORMATS_PER_DAY": 3}

    def send(owner: Any, text: str, name: str) -> Any:
        return upload(owner, text=text, name=name, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)

    made = [send(user, with_last_column(column), f"{n}.csv") for n, column in enumerate(LAST_COLUMNS[:3])]
    assert {file.status for file in made} == {FileStatus.PENDING_APPROVAL}
    refused = send(user, with_last_column(LAST_COLUMNS[3]), "fourth.csv")
    assert refused.status == FileStatus.FAILED and refused.format_id is None
    assert refused.error.startswith("This file has a header Airlock has not seen before, and your uploads already ")
    assert "created 3 new formats in the last 24 hours (the limit is 3 a day). Nothing was imported" in refused.error
    assert CsvFormat.objects.filter(created_by=user).count() == 3
    assert AuditEvent.objects.filter(action="file.failed", object_id=str(refused.pk)).exists()
    # A file of a format already known is not a new format: it goes on as usual.
    again = send(user, with_last_column(LAST_COLUMNS[0]) + "2024-03-05 10:00:00,IBM,Buy,1,1,0,USD,X\n", "more.csv")
    assert again.status == FileStatus.PENDING_APPROVAL and again.format_id == made[0].format_id
    # The limit is per user.
    assert send(other_user, with_last_column(LAST_COLUMNS[4]), "theirs.csv").status == FileStatus.PENDING_APPROVAL
    # 24 hours later the user may create new formats again.
    CsvFormat.objects.filter(created_by=user).update(
        created_at=CsvFormat.objects.get(pk=made[0].format_id).created_at - timedelta(days=1, minutes=1)
    )
    later = send(user, with_last_column(LAST_COLUMNS[3]) + "2024-03-06 10:00:00,IBM,Buy,1,1,0,USD,Y\n", "later.csv")
    assert later.status == FileStatus.PENDING_APPROVAL and later.format.created_by == user
