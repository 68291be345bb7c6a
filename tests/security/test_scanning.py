"""Virus scanning against a real clamd (local EICAR signature): detections, clean files, fail-closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from audit.models import AuditEvent
from imports.models import ImportBatch, ImportFile
from tests.imports.pipeline.test_pipeline import TRADES
from tests.security.conftest import EICAR, Clamd, bearer
from tests.storage.test_direct_uploads import confirm, declared, send, sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def scanning(settings: Any, clamd: Clamd) -> Clamd:
    settings.CLAMAV_URL = clamd.socket
    return clamd


def stored(settings: Any) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_an_upload_carrying_eicar_is_refused_and_audited(
    client: Client, settings: Any, user: Any, scanning: Clamd
) -> None:
    infected = TRADES.encode() + b"2024-03-05 10:00:00," + EICAR + b",Buy,1,1,0,USD,X\n"
    response = client.post("/api/uploads", {"file": SimpleUploadedFile("trades.csv", infected)}, **bearer(user))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "virus_detected"
    assert body["message"] == "'trades.csv' was refused: the virus scanner found Airlock.Test.EICAR.UNOFFICIAL."
    assert not ImportBatch.objects.exists() and stored(settings) == []
    event = AuditEvent.objects.get(action="file.virus_detected")
    assert event.actor_id == user.pk and event.severity == "error"
    assert event.details["signature"] == "Airlock.Test.EICAR.UNOFFICIAL" and event.details["file"] == "trades.csv"


def test_a_clean_upload_is_scanned_then_processed(
    client: Client, user: Any, scanning: Clamd, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/uploads", {"file": SimpleUploadedFile("trades.csv", TRADES.encode())}, **bearer(user)
        )
    assert response.status_code == 202
    run_jobs()
    assert ImportFile.objects.get().status == "PENDING_APPROVAL"
    assert not AuditEvent.objects.filter(action__in=["file.virus_detected", "file.scan_failed"]).exists()


def test_a_file_over_clamds_stream_limit_is_refused_not_passed(
    client: Client, settings: Any, user: Any, scanning: Clamd
) -> None:
    big = TRADES.encode() + b"2024-03-05 10:00:00,IBM,Buy,1,1,0,USD,X\n" * 80_000  # ~3 MB > StreamMaxLength 2M
    response = client.post("/api/uploads", {"file": SimpleUploadedFile("big.csv", big)}, **bearer(user))
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "scan_failed"
    assert "INSTREAM size limit exceeded" in body["message"] and "refused" in body["message"]
    assert not ImportBatch.objects.exists() and stored(settings) == []
    assert AuditEvent.objects.filter(action="file.scan_failed").exists()


def test_when_clamd_is_down_uploads_are_refused(client: Client, settings: Any, user: Any, tmp_path: Path) -> None:
    settings.CLAMAV_URL = str(tmp_path / "no-clamd-here.sock")
    response = client.post("/api/uploads", {"file": SimpleUploadedFile("t.csv", TRADES.encode())}, **bearer(user))
    assert response.status_code == 503
    assert response.json()["message"].startswith("The virus scanner is unreachable")
    settings.CLAMAV_URL = "127.0.0.1:1"  # tcp form, nothing listening
    response = client.post("/api/uploads", {"file": SimpleUploadedFile("t.csv", TRADES.encode())}, **bearer(user))
    assert response.status_code == 503 and response.json()["error"] == "scan_failed"
    assert not ImportBatch.objects.exists() and stored(settings) == []


def test_the_upload_page_shows_the_detection(client: Client, user: Any, scanning: Clamd) -> None:
    client.force_login(user)
    infected = TRADES.encode() + EICAR + b"\n"
    response = client.post("/", {"file": SimpleUploadedFile("t.csv", infected), "dedupe": "on"})
    assert b"the virus scanner found Airlock.Test.EICAR.UNOFFICIAL" in response.content
    assert not ImportBatch.objects.exists()


def test_a_direct_upload_carrying_eicar_is_refused_by_its_worker_before_anything_reads_it(
    client: Client, user: Any, s3: Any, scanning: Clamd, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    infected = TRADES.encode() + b"2024-03-05 10:00:00," + EICAR + b",Buy,1,1,0,USD,X\n"
    item = sign(client, user, declared("trades.csv", infected)).json()["files"][0]
    send(item, infected)
    assert confirm(client, user, item["key"], capture=django_capture_on_commit_callbacks).status_code == 202
    run_jobs()
    file = ImportFile.objects.get()
    assert file.status == "FAILED" and file.format_id is None and file.rows_total == 0
    assert file.error == "'trades.csv' was refused: the virus scanner found Airlock.Test.EICAR.UNOFFICIAL."
    assert s3.keys() == []  # the infected object is deleted, never kept
    event = AuditEvent.objects.get(action="file.virus_detected")
    assert event.actor_id == user.pk and event.details["signature"] == "Airlock.Test.EICAR.UNOFFICIAL"


def test_a_direct_upload_is_not_read_while_the_scanner_is_down(
    client: Client,
    user: Any,
    s3: Any,
    settings: Any,
    tmp_path: Path,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.CLAMAV_URL = str(tmp_path / "no-clamd.sock")
    item = sign(client, user, declared("trades.csv", TRADES.encode())).json()["files"][0]
    send(item, TRADES.encode())
    confirm(client, user, item["key"], capture=django_capture_on_commit_callbacks)
    run_jobs()
    file = ImportFile.objects.get()
    assert file.status == "FAILED" and file.format_id is None and file.rows_total == 0
    assert "virus scanner is unreachable" in file.error and "retry it once the scanner is back" in file.error
    assert s3.keys() == [s3.key(file.stored_name)]  # kept: a retry scans it again
