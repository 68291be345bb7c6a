"""Direct uploads: the browser sends files straight to the bucket (a real SeaweedFS), then confirms.

Each test drives the two API requests as a browser would, with the presigned POST sent to the real S3 server
(which enforces the key and exact size), and a real RQ worker (run_jobs) checking the object before reading it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from imports.models import DirectUploadSlot, FileStatus, ImportBatch, ImportFile
from imports.services.direct_uploads import CONFIRM_GRACE, direct_uploads_expire
from imports.services.retention import cleanup_staging
from tests.conftest import api_key_for
from tests.imports.pipeline.test_pipeline import TRADES

pytestmark = pytest.mark.django_db

DATA = TRADES.encode()
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def declared(name: str, data: bytes, **over: Any) -> dict[str, Any]:
    return {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **over}


def api(client: Client, user: Any, path: str, body: dict[str, Any]) -> Any:
    return client.post(
        path, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api_key_for(user)}"
    )


def sign(client: Client, user: Any, *files: dict[str, Any]) -> Any:
    return api(client, user, "/api/uploads/direct", {"files": list(files)})


def send(item: dict[str, Any], data: bytes) -> int:
    """What the browser does with one signed file: a multipart POST straight to the bucket."""
    post = item["upload"]
    answer = requests.post(post["url"], data=post["fields"], files={"file": (item["name"], data)}, timeout=30)
    return answer.status_code


def uploaded(client: Client, user: Any, name: str, data: bytes, capture: Any) -> int:
    """One file signed, sent to the bucket and confirmed, as the upload page does it: its import's id."""
    item = sign(client, user, declared(name, data)).json()["files"][0]
    assert send(item, data) in (200, 201, 204)
    return confirm(client, user, item["key"], capture=capture).json()["files"][0]["id"]


def confirm(client: Client, user: Any, *keys: str, capture: Any = None) -> Any:
    if capture is None:
        return api(client, user, "/api/uploads/direct/confirm", {"keys": list(keys)})
    with capture(execute=True):
        return api(client, user, "/api/uploads/direct/confirm", {"keys": list(keys)})


def test_files_sent_to_the_bucket_are_confirmed_into_one_upload_and_read_by_the_worker(
    client: Client, user: Any, s3: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    other = TRADES.replace("T-3", "T-4").encode()
    signed = sign(client, user, declared("a.csv", DATA), declared("b.csv", other))
    assert signed.status_code == 200, signed.content
    body = signed.json()
    assert body["expires_in"] == 3600
    items = body["files"]
    assert [i["name"] for i in items] == ["a.csv", "b.csv"] and all(i["existing"] is None for i in items)
    assert not ImportFile.objects.exists() and s3.keys() == []  # signing stores nothing

    assert send(items[0], DATA) in (200, 201, 204) and send(items[1], other) in (200, 201, 204)
    confirmed = confirm(client, user, items[0]["key"], items[1]["key"], capture=django_capture_on_commit_callbacks)
    assert confirmed.status_code == 202, confirmed.content
    answer = confirmed.json()
    files = ImportFile.objects.order_by("pk")
    assert [f.pk for f in files] == [f["id"] for f in answer["files"]]
    assert {f.batch_id for f in files} == {answer["batch"]} and ImportBatch.objects.get().file_count == 2
    assert [f.stored_name for f in files] == [items[0]["key"], items[1]["key"]]
    assert [f.content_checked for f in files] == [False, False]
    assert AuditEvent.objects.filter(action="file.uploaded", details__direct=True).count() == 2

    run_jobs()
    files = list(ImportFile.objects.order_by("pk"))
    assert [f.status for f in files] == [FileStatus.PENDING_APPROVAL, FileStatus.PENDING_APPROVAL]
    assert [f.content_checked for f in files] == [True, True] and files[0].rows_total == 3


def test_a_second_confirm_answers_with_the_same_upload_and_creates_nothing(
    client: Client, user: Any, s3: Any, django_capture_on_commit_callbacks: Any
) -> None:
    item = sign(client, user, declared("a.csv", DATA)).json()["files"][0]
    send(item, DATA)
    first = confirm(client, user, item["key"], capture=django_capture_on_commit_callbacks).json()
    again = confirm(client, user, item["key"], capture=django_capture_on_commit_callbacks)
    assert again.status_code == 202
    assert again.json()["batch"] == first["batch"] and again.json()["files"][0]["id"] == first["files"][0]["id"]
    assert again.json()["files"][0]["existing"] is True
    assert ImportFile.objects.count() == 1 and ImportBatch.objects.count() == 1


def test_bytes_already_uploaded_get_their_import_back_instead_of_an_upload_url(
    client: Client, user: Any, s3: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file_id = uploaded(client, user, "a.csv", DATA, django_capture_on_commit_callbacks)
    again = sign(client, user, declared("renamed.csv", DATA)).json()["files"][0]
    assert again["upload"] is None and again["key"] is None
    assert again["existing"]["id"] == file_id and again["existing"]["existing"] is True
    assert DirectUploadSlot.objects.count() == 1


def test_a_confirm_before_every_object_arrived_names_the_missing_ones_and_creates_nothing(
    client: Client, user: Any, s3: Any, django_capture_on_commit_callbacks: Any
) -> None:
    other = DATA + b"2024-03-05 10:00:00,IBM,Buy,1,1,0,USD,T-9\n"
    items = sign(client, user, declared("a.csv", DATA), declared("late.csv", other)).json()["files"]
    send(items[0], DATA)
    refused = confirm(client, user, items[0]["key"], items[1]["key"])
    assert refused.status_code == 409
    body = refused.json()
    assert body["error"] == "upload_incomplete" and body["details"]["missing"] == ["late.csv"]
    assert "1 of 2 files cannot be confirmed (not in the bucket yet: late.csv)" in body["message"]
    assert not ImportFile.objects.exists() and not ImportBatch.objects.exists()

    send(items[1], other)
    assert (
        confirm(client, user, items[0]["key"], items[1]["key"], capture=django_capture_on_commit_callbacks).status_code
        == 202
    )
    assert ImportFile.objects.count() == 2


def test_the_bucket_takes_only_the_declared_size_and_key(client: Client, user: Any, s3: Any) -> None:
    item = sign(client, user, declared("a.csv", DATA)).json()["files"][0]
    assert send(item, DATA + b"more") == 400  # the policy's exact content-length-range
    assert s3.keys() == []
    assert confirm(client, user, item["key"]).status_code == 409


@pytest.mark.parametrize(
    ("files", "status", "code", "message"),
    [
        ([], 400, "no_file", "No file was named"),
        ([declared("e.csv", b"")], 400, "empty_file", "'e.csv' is empty"),
        ([declared("a.csv", DATA, sha256="abc")], 400, "invalid_file", "must be the SHA-256 of its bytes"),
        ([declared("a.csv", DATA, size="12")], 400, "invalid_file", "must be its size in bytes"),
        ([declared("a.csv", DATA, size=10**12)], 413, "payload_too_large", "the limit is"),
        (["a.csv"], 400, "invalid_file", "files[1] must be an object"),
    ],
)
def test_a_sign_request_outside_the_limits_is_refused_and_signs_nothing(
    client: Client, user: Any, s3: Any, files: list[Any], status: int, code: str, message: str
) -> None:
    answer = api(client, user, "/api/uploads/direct", {"files": [declared("ok.csv", DATA), *files]} if files else {})
    assert answer.status_code == status, answer.content
    assert answer.json()["error"] == code and message in answer.json()["message"]
    assert not DirectUploadSlot.objects.exists()


def test_more_files_than_one_request_may_carry_are_refused(client: Client, user: Any, s3: Any, settings: Any) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "MAX_FILES_PER_REQUEST": 2}
    answer = sign(client, user, *(declared(f"{i}.csv", DATA + bytes([65 + i])) for i in range(3)))
    assert answer.status_code == 400 and answer.json()["error"] == "too_many_files"
    assert not DirectUploadSlot.objects.exists()


def test_another_users_upload_cannot_be_confirmed(client: Client, user: Any, other_user: Any, s3: Any) -> None:
    item = sign(client, user, declared("a.csv", DATA)).json()["files"][0]
    send(item, DATA)
    answer = confirm(client, other_user, item["key"])
    assert answer.status_code == 404 and answer.json()["error"] == "unknown_upload"
    assert not ImportFile.objects.exists()


def test_a_declared_sha256_that_is_not_the_objects_fails_the_file_before_anything_is_read(
    client: Client, user: Any, s3: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    lie = hashlib.sha256(b"something else").hexdigest()
    item = sign(client, user, declared("a.csv", DATA, sha256=lie)).json()["files"][0]
    send(item, DATA)
    confirm(client, user, item["key"], capture=django_capture_on_commit_callbacks)
    run_jobs()
    file = ImportFile.objects.get()
    assert file.status == FileStatus.FAILED and file.format_id is None and file.rows_total == 0
    assert "no longer matches what was received" in file.error and not file.content_checked


def test_an_object_that_is_not_a_table_fails_its_file_by_content(
    client: Client, user: Any, s3: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    item = sign(client, user, declared("trades.csv", PNG)).json()["files"][0]
    send(item, PNG)
    confirm(client, user, item["key"], capture=django_capture_on_commit_callbacks)
    run_jobs()
    file = ImportFile.objects.get()
    assert file.status == FileStatus.FAILED and file.format_id is None
    assert file.error.startswith("'trades.csv': ") and "image" in file.error.lower()


def test_unconfirmed_uploads_expire_with_their_objects(client: Client, user: Any, s3: Any) -> None:
    items = sign(client, user, declared("a.csv", DATA), declared("b.csv", DATA + b"\n")).json()["files"]
    send(items[0], DATA)  # sent, never confirmed; the second never even sent
    assert direct_uploads_expire() == 0  # still valid
    DirectUploadSlot.objects.update(expires_at=timezone.now() - CONFIRM_GRACE - timedelta(seconds=1))
    assert confirm(client, user, items[0]["key"]).json()["error"] == "upload_expired"
    result = cleanup_staging(days=30)
    assert result["direct_uploads"] == 2
    assert not DirectUploadSlot.objects.exists() and s3.keys() == [] and not ImportFile.objects.exists()


def test_direct_uploads_are_off_without_a_bucket(client: Client, user: Any) -> None:
    answer = sign(client, user, declared("a.csv", DATA))
    assert answer.status_code == 404 and answer.json()["error"] == "direct_uploads_off"
    assert "POST /api/uploads" in answer.json()["message"]
    assert default_storage.__class__.__name__ != "S3UploadStorage"


def test_the_upload_page_offers_direct_uploads_and_lets_the_browser_reach_the_bucket(
    client: Client, user: Any, s3: Any, settings: Any
) -> None:
    client.force_login(user)
    page = client.get("/")
    assert 'data-direct="/api/uploads/direct"' in page.content.decode()
    origin = s3.bucket.server.endpoint_url  # http://127.0.0.1:PORT: scheme, host and port only
    assert f"connect-src 'self' {origin};" in page["Content-Security-Policy"]
    settings.AIRLOCK_S3 = {**settings.AIRLOCK_S3, "PUBLIC_ENDPOINT_URL": "https://files.example.com/prefix"}
    assert "connect-src 'self' https://files.example.com;" in client.get("/")["Content-Security-Policy"]


def test_without_a_bucket_the_page_uploads_through_the_server_and_the_policy_stays_closed(
    client: Client, user: Any
) -> None:
    client.force_login(user)
    page = client.get("/")
    assert "data-direct=" not in page.content.decode()
    assert "connect-src 'self';" in page["Content-Security-Policy"]


def test_the_same_bytes_sent_twice_before_a_confirm_make_one_import_and_the_spare_object_goes(
    client: Client, user: Any, s3: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # Two sign requests before either confirm: each gets its own slot and object for the same bytes.
    first = sign(client, user, declared("a.csv", DATA)).json()["files"][0]
    second = sign(client, user, declared("copy of a.csv", DATA)).json()["files"][0]
    assert first["key"] != second["key"]
    assert send(first, DATA) in (200, 201, 204) and send(second, DATA) in (200, 201, 204)
    answer = confirm(client, user, first["key"], second["key"], capture=django_capture_on_commit_callbacks)
    assert answer.status_code == 202, answer.content
    files = answer.json()["files"]
    assert files[0]["id"] == files[1]["id"] and [f["existing"] for f in files] == [False, True]
    file = ImportFile.objects.get()
    assert file.stored_name == first["key"] and ImportBatch.objects.get().file_count == 1
    assert set(DirectUploadSlot.objects.values_list("file_id", flat=True)) == {file.pk}
    assert AuditEvent.objects.filter(action="file.uploaded").count() == 1
    assert not default_storage.exists(second["key"]) and default_storage.exists(first["key"])


def test_a_confirm_takes_the_same_statements_for_three_files_as_for_twelve(
    client: Client, user: Any, s3: Any, django_capture_on_commit_callbacks: Any
) -> None:
    def statements(count: int, tag: str) -> int:
        bodies = [TRADES.replace("T-3", f"T-{tag}{n}").encode() for n in range(count)]
        items = sign(client, user, *[declared(f"{tag}{n}.csv", b) for n, b in enumerate(bodies)]).json()["files"]
        for item, body in zip(items, bodies, strict=True):
            assert send(item, body) in (200, 201, 204)
        with CaptureQueriesContext(connection) as queries:
            answer = confirm(client, user, *[item["key"] for item in items], capture=django_capture_on_commit_callbacks)
        assert answer.status_code == 202, answer.content
        assert len({f["id"] for f in answer.json()["files"]}) == count
        # (Not counted: the files table's ANALYZE, run once or not at all by files_stats_refresh depending on the
        # table's statistics, which earlier tests leave behind.)
        return sum(1 for query in queries if not query["sql"].startswith("ANALYZE"))

    assert statements(3, "a") == statements(12, "b")
    assert ImportFile.objects.count() == 15
    assert AuditEvent.objects.filter(action="file.uploaded").count() == 15
    assert DirectUploadSlot.objects.filter(file__isnull=True).count() == 0


def test_a_sign_request_takes_the_same_statements_for_three_files_as_for_twelve_and_keeps_their_order(
    client: Client, user: Any, s3: Any, django_capture_on_commit_callbacks: Any
) -> None:
    done = uploaded(client, user, "done.csv", DATA, django_capture_on_commit_callbacks)

    def statements(count: int, tag: str) -> int:
        # The file already uploaded sits among new ones: it gets its import back, in its place.
        files = [declared(f"{tag}{n}.csv", TRADES.replace("T-3", f"T-{tag}{n}").encode()) for n in range(count)]
        files.insert(1, declared(f"{tag}-again.csv", DATA))
        with CaptureQueriesContext(connection) as queries:
            answer = sign(client, user, *files)
        assert answer.status_code == 200, answer.content
        items = answer.json()["files"]
        assert [i["name"] for i in items] == [f["name"] for f in files]
        assert items[1]["existing"]["id"] == done and items[1]["upload"] is None
        assert all(i["existing"] is None and i["upload"]["url"] and i["key"] for i in items[:1] + items[2:])
        return len(queries)

    assert statements(3, "a") == statements(12, "b")
    assert DirectUploadSlot.objects.filter(file__isnull=True).count() == 15
