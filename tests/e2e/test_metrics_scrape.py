"""/metrics from the real gunicorn server while a real RQ worker imports: the workers' histograms arrive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from imports.models import FileStatus, ImportFile
from imports.services.uploads import review_approve, upload_batch_create
from tests.conftest import csv_upload
from tests.e2e.conftest import Stack
from tests.imports.monitoring.test_metrics import TOKEN, Samples, parse, value
from tests.imports.pipeline.test_pipeline import TRADES

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    return folder


@pytest.fixture
def stack_env(metrics_dir: Path) -> dict[str, str]:
    # As `make run` does: one folder for the multiprocess files of web, worker and work horses.
    return {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "AIRLOCK_METRICS_TOKEN": TOKEN}


def scrape(stack: Stack) -> Samples:
    response = requests.get(f"{stack.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text[:500]
    return parse(response.text)


def test_a_scrape_of_the_real_server_shows_what_the_worker_measured(
    stack: Stack, user: Any, reviewer: Any, metrics_dir: Path
) -> None:
    assert requests.get(f"{stack.base_url}/metrics", timeout=30).status_code == 401
    before = stack.wait_for(
        lambda: (s := scrape(stack)) and value(s, "airlock_workers_alive") >= 1 and s, what="a live worker"
    )
    assert ("airlock_file_processing_seconds_count", frozenset({("path", "staged")})) not in before
    assert value(before, "airlock_rows", outcome="imported") == 0

    _, files = upload_batch_create(owner=user, files=[csv_upload("trades.csv", TRADES)])
    file_id = files[0].pk
    stack.wait_for(lambda: ImportFile.objects.get(pk=file_id).status == FileStatus.PENDING_APPROVAL, what="staging")
    staged = scrape(stack)
    assert value(staged, "airlock_staging_backlog_rows") == 3
    assert value(staged, "airlock_formats_pending") == 1

    review_approve(format_id=ImportFile.objects.get(pk=file_id).format_id, actor=reviewer)
    stack.wait_for(lambda: ImportFile.objects.get(pk=file_id).status == FileStatus.PARTIAL, what="the migration")
    after = scrape(stack)
    # Observed in the worker's work horse, merged from the shared folder by the web process.
    assert value(after, "airlock_file_processing_seconds_count", path="staged") == 1
    assert value(after, "airlock_file_processing_seconds_bucket", path="staged", le="+Inf") == 1
    assert value(after, "airlock_file_rows_per_second_count", path="staged") == 1
    assert value(after, "airlock_rows", outcome="imported") == 2
    assert value(after, "airlock_staging_backlog_rows") == 0
    assert value(after, "airlock_format_approvals_total") == 1
    assert any(path.name.startswith("histogram_") for path in metrics_dir.iterdir())
