"""Nothing doubled: idempotent uploads, Idempotency-Key, overlapping exports and their duplicates."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rq.exceptions import AbandonedJobError

from audit.models import AuditEvent
from imports.jobs.failures import failure_reason
from imports.models import FileStatus, IdempotencyKey, ImportBatch, ImportFile, Order
from imports.services.retention import cleanup_staging
from imports.services.rollback import file_rollback
from imports.services.uploads import review_approve, upload_batch_create
from staging.models import StagedRow, StagedStatus
from tests.conftest import api_key_for, csv_upload
from tests.e2e.conftest import Stack, stack  # noqa: F401 - the fixture, for the concurrent test
from tests.e2e.test_faults import MAPPING, trades_csv
from tests.imports.api.test_api import bearer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_rate_limit(settings: Any) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "UPLOADS_PER_HOUR": 100_000}


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {"AIRLOCK_UPLOADS_PER_HOUR": "100000"}


def post(client: Client, user: Any, data: bytes, *, key: str | None = None, name: str = "t.csv", **fields: str) -> Any:
    headers = bearer(user)
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post("/api/uploads", {"file": SimpleUploadedFile(name, data), **fields}, **headers)


def test_it_returns_the_existing_import_for_the_same_bytes_from_the_same_user(
    client: Client, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = post(client, user, trades_csv(3)).json()
        second = post(client, user, trades_csv(3), name="renamed.csv").json()
    assert first["files"][0]["id"] == second["files"][0]["id"]
    assert second["files"][0]["existing"] is True
    assert ImportFile.objects.count() == 1
    assert len(callbacks) == 1, "only the new file is enqueued"


def test_the_same_idempotency_key_and_request_replays_the_first_response(client: Client, user: Any) -> None:
    first = post(client, user, trades_csv(3), key="k-1")
    second = post(client, user, trades_csv(3), key="k-1")
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert (first["Idempotent-Replayed"], second["Idempotent-Replayed"]) == ("false", "true")
    assert ImportBatch.objects.count() == 1, "a replay creates no second batch"
    stored = IdempotencyKey.objects.get(user=user, key="k-1")
    assert stored.response_status == 202 and stored.response_body == first.json()


def test_the_same_key_with_a_different_request_is_a_409_in_the_error_shape(client: Client, user: Any) -> None:
    post(client, user, trades_csv(3), key="k-2")
    other_file = post(client, user, trades_csv(4), key="k-2")
    other_field = post(client, user, trades_csv(3), key="k-2", dedupe="0")
    for response in (other_file, other_field):
        assert response.status_code == 409
        body = response.json()
        assert set(body) == {"error", "message", "details"}
        assert body["error"] == "idempotency_key_reused" and body["details"]["key"] == "k-2"
    assert ImportFile.objects.count() == 1


def test_a_key_is_per_user_and_a_failed_request_does_not_use_it_up(client: Client, user: Any, other_user: Any) -> None:
    refused = client.post("/api/uploads", {}, HTTP_IDEMPOTENCY_KEY="k-3", **bearer(user))
    assert refused.status_code == 400
    assert post(client, user, trades_csv(3), key="k-3").status_code == 202
    theirs = post(client, other_user, trades_csv(5), key="k-3")
    assert theirs.status_code == 202 and theirs["Idempotent-Replayed"] == "false"
    assert post(client, user, trades_csv(3), key="x" * 256).json()["error"] == "invalid_idempotency_key"


def approved_import(
    user: Any, reviewer: Any, run_jobs: Any, capture: Any, data: bytes, dedupe: bool = True
) -> ImportFile:
    """Upload; if the format is unknown, approve it with MAPPING; run the jobs; the file, refreshed."""
    with capture(execute=True):
        _, files = upload_batch_create(owner=user, files=[csv_upload("export.csv", data)], dedupe=dedupe)
    run_jobs()
    file = ImportFile.objects.get(pk=files[0].pk)
    if file.status == FileStatus.PENDING_APPROVAL:
        with capture(execute=True):
            review_approve(format_id=file.format_id, actor=reviewer, mapping=MAPPING)
        run_jobs()
        file.refresh_from_db()
    return file


@pytest.mark.parametrize("ids", [True, False], ids=["with-trade-ids", "without-trade-ids"])
def test_overlapping_exports_import_each_order_once_and_the_second_reports_its_duplicates(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any, ids: bool
) -> None:
    first = approved_import(
        user,
        reviewer,
        run_jobs,
        django_capture_on_commit_callbacks,
        trades_csv(100, ids=ids, twins_every=0 if ids else 9),
    )
    second = approved_import(
        user,
        reviewer,
        run_jobs,
        django_capture_on_commit_callbacks,
        trades_csv(100, start=60, ids=ids, twins_every=0 if ids else 9),
    )
    assert (first.status, first.rows_imported, first.rows_duplicate) == (FileStatus.IMPORTED, 100, 0)
    # Rows 60..99 are in both exports (for trades without ids: the same fills, twins included).
    assert (second.status, second.rows_imported, second.rows_duplicate) == (FileStatus.IMPORTED, 60, 40)
    assert Order.objects.filter(owner=user).count() == 160
    duplicates = StagedRow.objects.filter(file=second, status=StagedStatus.DUPLICATE)
    assert duplicates.count() == 40
    for row in duplicates:
        error = row.errors[0]
        assert error["duplicate_of_file"] == first.pk
        original = Order.objects.get(source_file=first, source_line=error["duplicate_of_line"])
        assert original.dedupe_key == error["dedupe_key"]
        assert f"import file {first.pk}" in error["message"]


def test_dedupe_off_imports_every_row_of_an_overlapping_export(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, trades_csv(100))
    raw = approved_import(
        user, reviewer, run_jobs, django_capture_on_commit_callbacks, trades_csv(100, start=60), dedupe=False
    )
    assert (raw.status, raw.rows_imported, raw.rows_duplicate) == (FileStatus.IMPORTED, 100, 0)
    assert Order.objects.filter(owner=user).count() == 200
    assert set(Order.objects.filter(source_file=raw).values_list("dedupe_key", flat=True)) == {""}


def test_the_same_bytes_twice_in_one_request_make_one_import(
    user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = trades_csv(3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batch, files = upload_batch_create(
            owner=user,
            files=[csv_upload("a.csv", data), csv_upload("a-copy.csv", data), csv_upload("b.csv", trades_csv(4))],
        )
    assert files[1].pk == files[0].pk and files[1].is_existing and not files[0].is_existing
    assert files[2].pk != files[0].pk and not files[2].is_existing
    assert batch.file_count == 2 and ImportFile.objects.filter(owner=user).count() == 2
    assert sorted(ImportFile.objects.filter(owner=user).values_list("original_name", flat=True)) == ["a.csv", "b.csv"]
    uploaded = AuditEvent.objects.filter(action="file.uploaded").order_by("id")
    assert [e.object_id for e in uploaded] == [str(files[0].pk), str(files[2].pk)]
    assert uploaded[0].actor == user and "uploaded 'a.csv'" in uploaded[0].summary
    assert len(callbacks) == 1, "the new files are enqueued together, once"


@pytest.mark.django_db(transaction=True)
def test_bytes_another_request_commits_while_this_one_inserts_are_answered_with_its_import(user: Any) -> None:
    """The check for live imports of the same bytes runs before the upload's one INSERT; another request that
    commits the same bytes in between makes that INSERT fail on the unique constraint: the files then go in
    one at a time, and the one refused is answered with the other request's import."""
    from django.db import connection as main_connection

    data = trades_csv(3)
    inserted, done = threading.Event(), threading.Event()
    other: list[ImportFile] = []

    def other_request() -> None:
        from django.db import connection, transaction

        try:
            with transaction.atomic():  # holds its row (and the unique index entry) until this one waits on it
                other.extend(upload_batch_create(owner=user, files=[csv_upload("other.csv", data)])[1])
                inserted.set()
                with connection.cursor() as cursor:
                    for _ in range(200):
                        cursor.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid = %s",
                            [waiting_pid[0]],
                        )
                        if cursor.fetchone()[0]:
                            break
                        time.sleep(0.05)
        finally:
            connection.close()
            done.set()

    with main_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        waiting_pid = [cursor.fetchone()[0]]
    thread = threading.Thread(target=other_request)
    thread.start()
    assert inserted.wait(30)
    batch, files = upload_batch_create(
        owner=user, files=[csv_upload("mine.csv", data), csv_upload("b.csv", trades_csv(4))]
    )
    thread.join(30)
    assert done.is_set() and other
    assert files[0].pk == other[0].pk and files[0].is_existing
    assert not files[1].is_existing and files[1].batch_id == batch.pk and batch.file_count == 1
    assert ImportFile.objects.filter(owner=user).count() == 2
    assert not ImportFile.objects.filter(original_name="mine.csv").exists()
    assert [e.object_id for e in AuditEvent.objects.filter(action="file.uploaded").order_by("id")] == [
        str(other[0].pk),
        str(files[1].pk),
    ]


def test_the_api_dedupe_field_reaches_the_import(client: Client, user: Any) -> None:
    response = post(client, user, trades_csv(3), dedupe="0")
    assert ImportFile.objects.get(pk=response.json()["files"][0]["id"]).dedupe is False


def test_a_rolled_back_or_purged_file_can_be_uploaded_again_as_a_new_import(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    data = trades_csv(10)
    first = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, data)
    file_rollback(file_id=first.pk, actor=reviewer)
    again = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, data)
    assert again.pk != first.pk and again.status == FileStatus.IMPORTED and again.rows_imported == 10

    empty = trades_csv(0)
    failed = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, empty)
    assert failed.status == FileStatus.FAILED
    cleanup_staging(days=0)
    assert ImportFile.objects.get(pk=failed.pk).status == FileStatus.PURGED
    with django_capture_on_commit_callbacks(execute=False):
        _, files = upload_batch_create(owner=user, files=[csv_upload("empty.csv", empty)])
    assert files[0].pk != failed.pk and files[0].status == FileStatus.UPLOADED


def test_the_same_bytes_of_a_failed_import_uploaded_again_retry_it_from_where_it_stopped(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, trades_csv(5))  # the format
    data = trades_csv(40, start=100)
    with django_capture_on_commit_callbacks(execute=False):
        _, [file] = upload_batch_create(owner=user, files=[csv_upload("export.csv", data)])
    # Its worker kept dying: FAILED, and the user cannot upload it as a new import (same bytes, same owner).
    reason = failure_reason(AbandonedJobError(), 5)
    ImportFile.objects.filter(pk=file.pk).update(status=FileStatus.FAILED, error=reason, attempts=5)
    ImportBatch.objects.filter(pk=file.batch_id).update(status="FAILED")

    with django_capture_on_commit_callbacks(execute=True):
        again = post(client, user, data, name="export-again.csv")
    assert again.status_code == 202, again.content
    [entry] = again.json()["files"]
    assert (entry["id"], entry["existing"], entry["retried"], entry["status"]) == (file.pk, True, True, "UPLOADED")
    retried = AuditEvent.objects.get(action="file.retried", object_id=str(file.pk))
    assert retried.actor == user and "by its owner uploading the same file again" in retried.summary
    assert ImportBatch.objects.get(pk=file.batch_id).status != "FAILED"
    run_jobs()
    done = ImportFile.objects.get(pk=file.pk)
    assert (done.status, done.rows_imported, done.error) == (FileStatus.IMPORTED, 40, "")
    assert Order.objects.filter(source_file=done).count() == 40

    # An import that did not fail is only answered with, never restarted.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        once_more = post(client, user, data).json()["files"][0]
    assert (once_more["retried"], once_more["status"], callbacks) == (False, FileStatus.IMPORTED, [])


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("with_key", [False, True], ids=["same-bytes", "same-idempotency-key"])
def test_ten_concurrent_identical_uploads_make_one_import(stack: Stack, user: Any, with_key: bool) -> None:  # noqa: F811
    token = api_key_for(user)
    data = trades_csv(50)
    gate = threading.Barrier(10)
    responses: list[requests.Response] = []
    lock = threading.Lock()

    def send() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        if with_key:
            headers["Idempotency-Key"] = "upload-42"
        gate.wait(10)
        response = requests.post(
            f"{stack.base_url}/api/uploads",
            headers=headers,
            files={"file": ("t.csv", data, "text/csv")},
            timeout=60,
        )
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert len(responses) == 10, "every request should have been answered within 90 s"
    assert [r.status_code for r in responses] == [202] * 10, [r.text for r in responses if r.status_code != 202]
    assert len({r.json()["files"][0]["id"] for r in responses}) == 1
    assert ImportFile.objects.filter(owner=user).count() == 1
    if with_key:
        assert len({r.text for r in responses}) == 1, "every request gets the first response"
        assert ImportBatch.objects.filter(owner=user).count() == 1
        assert sorted(r.headers["Idempotent-Replayed"] for r in responses) == ["false"] + ["true"] * 9
    print(
        f"\n10 concurrent uploads ({'with' if with_key else 'without'} key): "
        f"{ImportFile.objects.filter(owner=user).count()} import, "
        f"{ImportBatch.objects.filter(owner=user).count()} batches"
    )
