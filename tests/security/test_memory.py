"""A 50 MB single-line file fails clearly in the worker, with bounded memory (peak RSS measured)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imports.models import ImportFile
from imports.services.uploads import upload_batch_create
from tests.conftest import csv_upload
from tests.e2e.conftest import database_url_for_tests as e2e_database_url

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024

# Run in a fresh process so ru_maxrss is the job's own peak, not the test runner's.
JOB = """
import json, resource, sys, django
django.setup()
import imports.pipeline.process, imports.jobs.tasks  # noqa: loaded before the baseline, as in a worker
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
status = imports.jobs.tasks.file_process_job(int(sys.argv[1])) if sys.argv[1] != "0" else None
print(json.dumps({"status": status, "baseline_kb": baseline,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def run_job(file_id: int, media: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "DATABASE_URL": e2e_database_url(),
        "MEDIA_ROOT": media,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", JOB, str(file_id)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_50_mb_single_line_file_fails_with_the_line_and_bounded_memory(
    settings: Any, user: Any, django_capture_on_commit_callbacks: Any, redis_clean: Any
) -> None:
    data = b"Trade Date,Ticker,Buy or Sell,Shares," + b"x" * (50 * MB)
    with django_capture_on_commit_callbacks(execute=False):  # the job runs in its own process below
        _, files = upload_batch_create(owner=user, files=[csv_upload("one-line.csv", data)])
    del data
    result = run_job(files[0].pk, str(settings.MEDIA_ROOT))
    file = ImportFile.objects.get(pk=files[0].pk)
    assert result["status"] == "FAILED" and file.status == "FAILED"
    assert file.error.startswith("Line 1 is longer than 16 MB without a line break"), file.error
    growth_mb = (result["peak_kb"] - result["baseline_kb"]) / 1024
    print(
        f"peak RSS of the job: {result['peak_kb'] / 1024:.0f} MB (baseline {result['baseline_kb'] / 1024:.0f} MB,"
        f" growth {growth_mb:.0f} MB) for a {50} MB single-line file"
    )
    assert growth_mb < 100, f"the job grew by {growth_mb:.0f} MB reading a 50 MB line"
