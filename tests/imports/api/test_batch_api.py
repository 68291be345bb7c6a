"""GET /api/batches/<id>: an upload session's status, overall progress and per-file status."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from imports.bench.data import HEADER, MAPPING, trade_rows
from tests.imports.api.test_api import bearer

pytestmark = pytest.mark.django_db


def trades_csv(rows: int, *, seed: int, invalid_every: int = 0) -> bytes:
    lines = [
        ",".join(HEADER),
        *(",".join(cells) for cells in trade_rows(rows, seed=seed, id_offset=seed * 1000, invalid_every=invalid_every)),
    ]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def approved_format(reviewer: Any) -> Any:
    import tempfile
    from pathlib import Path

    from formats.models import CsvFormat, FormatStatus
    from formats.services import format_get_or_create_pending
    from imports.reading import detect_layout

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.csv"
        path.write_bytes(trades_csv(3, seed=0))
        layout = detect_layout(path)
    fmt, _ = format_get_or_create_pending(
        target="orders",
        header=layout.header,
        columns=layout.columns,
        sample_rows=[],
        section=None,
        name="bench trades",
        created_by=None,
        file_id=None,
        file_name="t.csv",
    )
    CsvFormat.objects.filter(pk=fmt.pk).update(status=FormatStatus.APPROVED, mapping={**fmt.mapping, **MAPPING})
    return fmt


def upload(client: Client, user: Any, capture: Any, files: list[tuple[str, bytes]]) -> Any:
    with capture(execute=True):
        response = client.post(
            "/api/uploads", {"file": [SimpleUploadedFile(name, data) for name, data in files]}, **bearer(user)
        )
    assert response.status_code == 202, response.content
    return response.json()


def test_a_batch_reports_pending_then_completed_with_counts_and_progress(
    client: Client, user: Any, approved_format: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    files = [(f"t{n}.csv", trades_csv(20, seed=n + 1)) for n in range(3)]
    body = upload(client, user, django_capture_on_commit_callbacks, files)

    before = client.get(f"/api/batches/{body['batch']}", **bearer(user)).json()
    assert before["status"] == "PENDING"
    assert before["progress"] == 0.0
    assert before["files"]["count"] == 3 and before["files"]["by_status"] == {"UPLOADED": 3}

    run_jobs()
    after = client.get(f"/api/batches/{body['batch']}", **bearer(user)).json()
    assert after["status"] == "COMPLETED"
    assert after["progress"] == 100.0
    assert after["files"]["finished"] == 3
    assert after["rows"] == {
        "total": 60,
        "imported": 60,
        "invalid": 0,
        "failed": 0,
        "skipped": 0,
        "duplicate": 0,
        "staged": 0,
    }
    assert [item["status"] for item in after["files"]["items"]] == ["IMPORTED"] * 3


def test_a_batch_with_invalid_rows_is_partial_and_says_which_file(
    client: Client, user: Any, approved_format: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    files = [("good.csv", trades_csv(10, seed=7)), ("bad.csv", trades_csv(10, seed=8, invalid_every=5))]
    body = upload(client, user, django_capture_on_commit_callbacks, files)
    run_jobs()

    summary = client.get(f"/api/batches/{body['batch']}", **bearer(user)).json()
    assert summary["status"] == "PARTIAL"
    assert summary["rows"]["imported"] == 18 and summary["rows"]["invalid"] == summary["rows"]["failed"] == 2
    by_name = {item["name"]: item for item in summary["files"]["items"]}
    assert by_name["good.csv"]["status"] == "IMPORTED"
    assert by_name["bad.csv"]["status"] == "PARTIAL" and by_name["bad.csv"]["rows_invalid"] == 2


def test_another_users_batch_answers_404(
    client: Client,
    user: Any,
    other_user: Any,
    approved_format: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    body = upload(client, user, django_capture_on_commit_callbacks, [("t.csv", trades_csv(2, seed=3))])
    response = client.get(f"/api/batches/{body['batch']}", **bearer(other_user))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
