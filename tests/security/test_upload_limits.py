"""Size and count limits answer before the data is processed, in the API's error shape, leaving no temp file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from imports.models import ImportBatch, ImportFile
from tests.imports.pipeline.test_pipeline import TRADES
from tests.security.conftest import bearer

pytestmark = pytest.mark.django_db
MB = 1024 * 1024


@pytest.fixture
def temp_dir(settings: Any, tmp_path: Path) -> Path:
    """Django streams uploads over FILE_UPLOAD_MAX_MEMORY_SIZE (2 MB) to temp files here."""
    path = tmp_path / "upload-tmp"
    path.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(path)
    return path


def big_csv(name: str, size: int) -> SimpleUploadedFile:
    row = b"2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,USD,T-1\n"
    head = TRADES.splitlines()[0].encode() + b"\n"
    return SimpleUploadedFile(name, head + row * ((size - len(head)) // len(row) + 1))


def stored_files(settings: Any) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def limit(settings: Any, **values: int) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, **values}


def test_a_file_over_the_size_limit_is_refused_with_413_and_leaves_no_temp_file(
    client: Client, settings: Any, user: Any, temp_dir: Path
) -> None:
    limit(settings, MAX_FILE_BYTES=3 * MB)
    response = client.post("/api/uploads", {"file": big_csv("huge.csv", 5 * MB)}, **bearer(user))
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "payload_too_large"
    assert body["message"].startswith(
        "'huge.csv' is larger than the limit of 3 MB per file. Nothing was stored; split the export"
    )
    assert body["details"] == {"file": "huge.csv", "limit": 3 * MB}
    assert list(temp_dir.iterdir()) == []
    assert not ImportBatch.objects.exists() and stored_files(settings) == []


def test_one_oversized_file_in_a_bulk_request_refuses_the_request_and_removes_the_others_temp_files(
    client: Client, settings: Any, user: Any, temp_dir: Path
) -> None:
    limit(settings, MAX_FILE_BYTES=3 * MB)
    files = [big_csv("ok-1.csv", int(2.5 * MB)), big_csv("ok-2.csv", int(2.6 * MB)), big_csv("big.csv", 4 * MB)]
    response = client.post("/api/uploads", {"file": files}, **bearer(user))
    assert response.status_code == 413 and "'big.csv'" in response.json()["message"]
    assert list(temp_dir.iterdir()) == []
    assert not ImportFile.objects.exists() and stored_files(settings) == []


def test_a_file_under_the_limit_is_stored_and_its_temp_file_is_gone(
    client: Client, settings: Any, user: Any, temp_dir: Path
) -> None:
    limit(settings, MAX_FILE_BYTES=4 * MB)
    response = client.post("/api/uploads", {"file": big_csv("fine.csv", 3 * MB)}, **bearer(user))
    assert response.status_code == 202
    assert list(temp_dir.iterdir()) == []
    assert len(stored_files(settings)) == 1 and ImportFile.objects.get().size > 3 * MB


def test_the_upload_page_shows_the_size_limit(client: Client, settings: Any, user: Any, temp_dir: Path) -> None:
    limit(settings, MAX_FILE_BYTES=3 * MB)
    client.force_login(user)
    response = client.post("/", {"file": big_csv("huge.csv", 4 * MB), "dedupe": "on"})
    assert response.status_code == 413
    assert b"&#x27;huge.csv&#x27; is larger than the limit of 3 MB per file." in response.content
    assert list(temp_dir.iterdir()) == [] and not ImportBatch.objects.exists()


def test_too_many_files_in_one_request_answer_400_in_the_error_shape(
    client: Client, settings: Any, user: Any, temp_dir: Path
) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    limit(settings, MAX_FILES_PER_REQUEST=3)
    files = [SimpleUploadedFile(f"f{n}.csv", TRADES.encode() + str(n).encode()) for n in range(4)]
    response = client.post("/api/uploads", {"file": files}, **bearer(user))
    assert response.status_code == 400
    assert response.json() == {
        "error": "too_many_files",
        "message": "Too many files in one request: the limit is 3. Nothing was stored; send the files in several "
        "requests.",
        "details": {"limit": 3},
    }
    assert not ImportBatch.objects.exists() and stored_files(settings) == []
    client.force_login(user)
    page = client.post("/", {"file": files, "dedupe": "on"})
    assert page.status_code == 400 and b"Too many files in one request: the limit is 3." in page.content


def test_a_request_over_the_total_size_is_refused_from_its_content_length(
    client: Client, settings: Any, user: Any, temp_dir: Path
) -> None:
    limit(settings, MAX_REQUEST_BYTES=1 * MB)
    response = client.post("/api/uploads", {"file": big_csv("two-mb.csv", 2 * MB)}, **bearer(user))
    assert response.status_code == 413
    assert response.json()["message"].startswith("The upload is 2 MB; at most 1 MB can be sent in one request.")
    assert list(temp_dir.iterdir()) == [] and not ImportBatch.objects.exists()


def test_an_anonymous_upload_is_refused_and_leaves_no_temp_file(client: Client, temp_dir: Path) -> None:
    response = client.post("/api/uploads", {"file": big_csv("x.csv", 3 * MB)})
    assert response.status_code == 401 and list(temp_dir.iterdir()) == []
    page = client.post("/", {"file": big_csv("x.csv", 3 * MB)})
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/")
    assert list(temp_dir.iterdir()) == []


def test_a_malformed_multipart_body_answers_400_in_the_error_shape(client: Client, user: Any) -> None:
    no_boundary = client.generic("POST", "/api/uploads", b"garbage", content_type="multipart/form-data", **bearer(user))
    assert no_boundary.status_code == 400
    assert no_boundary.json()["error"] == "invalid_upload"
    assert no_boundary.json()["message"].startswith("The upload could not be read as multipart form data")
    garbage = client.generic(
        "POST", "/api/uploads", b"--x\r\nnot a part\r\n", content_type="multipart/form-data; boundary=x", **bearer(user)
    )
    assert garbage.status_code == 400 and garbage.json()["error"] in ("no_file", "invalid_upload")
    not_multipart = client.post("/api/uploads", {"x": 1}, content_type="application/json", **bearer(user))
    assert not_multipart.status_code == 400 and not_multipart.json()["error"] == "no_file"
    assert not ImportBatch.objects.exists()
