"""Workers on machines that share no disk: uploads live in the bucket (a real SeaweedFS), and a worker killed
mid-file is replaced by one with another MEDIA_ROOT, which resumes from the object with exact counts.

The helpers and the layout are test_faults.py's; only the storage differs.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from imports.models import FileStatus, ImportFile
from tests.e2e.conftest import Stack
from tests.e2e.test_faults import (
    FAULT_ENV,
    assert_exactly_imported,
    orders_of,
    reconcile_until_enqueued,
    signal_worker,
    staged_and_approved,
    status_of,
    trades_csv,
    upload,
    wait_mid_migration,
    wait_status,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def stack_env(s3: Any) -> dict[str, str]:
    return {**FAULT_ENV, **s3.environ()}


@pytest.fixture(autouse=True)
def _quick_retries(settings: Any) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "JOB_RETRY_INTERVALS": [1, 2]}


def test_a_worker_killed_mid_file_is_resumed_from_the_object_by_a_worker_on_another_disk(
    stack: Stack, user: Any, reviewer: Any, s3: Any, tmp_path: Path
) -> None:
    first = staged_and_approved(stack, user, reviewer, trades_csv(20))
    wait_status(stack, first.pk, FileStatus.IMPORTED)
    total = 30_000
    file = upload(user, trades_csv(total, start=1000, ids=False, twins_every=10), name="bucket.csv")
    assert s3.key(file.stored_name) in s3.keys() and not any(p.is_file() for p in stack.media_root.rglob("*"))
    worker = stack.processes[1]
    before_kill = wait_mid_migration(stack, file.pk, total)
    signal_worker(worker, signal.SIGKILL)
    worker.wait(10)
    assert status_of(file.pk) == FileStatus.PROCESSING and 0 < before_kill <= orders_of(file.pk) < total

    elsewhere = tmp_path / "another-machine"
    elsewhere.mkdir()
    stack.start_worker(env={"MEDIA_ROOT": str(elsewhere)})
    reconcile_until_enqueued(stack, file.pk)
    wait_status(stack, file.pk, FileStatus.IMPORTED, timeout=180)
    assert_exactly_imported(file.pk, total)
    assert not any(p.is_file() for p in elsewhere.rglob("*"))  # read from the bucket, through a temporary copy
    assert ImportFile.objects.get(pk=file.pk).attempts >= 2
