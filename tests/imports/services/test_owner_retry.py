"""The owner's Retry of a failed file, from its page and from the API: resumed without uploading again, and
refused (changing nothing) for someone else's file, a file that did not fail, or an upload no longer kept."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from rq.exceptions import AbandonedJobError

from audit.models import AuditEvent
from imports.jobs.failures import failure_reason
from imports.models import FileStatus, ImportFile, Order
from imports.services.uploads import upload_batch_create
from tests.conftest import csv_upload
from tests.e2e.test_faults import trades_csv
from tests.imports.api.test_api import bearer
from tests.imports.services.test_idempotency import approved_import

pytestmark = pytest.mark.django_db


def failed_file(user: Any, reviewer: Any, run_jobs: Any, capture: Any) -> ImportFile:
    approved_import(user, reviewer, run_jobs, capture, trades_csv(5))  # the format, approved
    with capture(execute=False):
        _, [file] = upload_batch_create(owner=user, files=[csv_upload("export.csv", trades_csv(40, start=100))])
    ImportFile.objects.filter(pk=file.pk).update(status=FileStatus.FAILED, error=failure_reason(AbandonedJobError(), 5))
    return ImportFile.objects.get(pk=file.pk)


def test_the_owner_retries_a_failed_file_from_its_page_and_it_imports(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = failed_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    client.force_login(user)
    page = client.get(f"/imports/{file.pk}/").content.decode()
    assert 'id="retry-button"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/imports/{file.pk}/retry", follow=True)
    assert "Retrying the import from where it stopped." in response.content.decode()
    run_jobs()
    done = ImportFile.objects.get(pk=file.pk)
    assert (done.status, done.rows_imported, done.error) == (FileStatus.IMPORTED, 40, "")
    assert Order.objects.filter(source_file=done).count() == 40
    event = AuditEvent.objects.get(action="file.retried", object_id=str(file.pk))
    assert event.actor == user and "by its owner (Retry)" in event.summary
    assert 'id="retry-button"' not in client.get(f"/imports/{file.pk}/").content.decode()
    # Retrying what is no longer failed is refused with a message, changing nothing.
    again = client.post(f"/imports/{file.pk}/retry", follow=True).content.decode()
    assert "only a failed import can be retried" in again
    assert AuditEvent.objects.filter(action="file.retried").count() == 1


def test_the_api_retry_answers_202_and_refuses_others_files_and_a_gone_upload(
    client: Client, user: Any, other_user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = failed_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    theirs = client.post(f"/api/uploads/{file.pk}/retry", **bearer(other_user))
    assert theirs.status_code == 404 and theirs.json()["error"] == "not_found"
    assert client.post(f"/imports/{file.pk}/retry", follow=False).status_code == 302  # to the login page
    client.force_login(other_user)
    assert client.post(f"/imports/{file.pk}/retry").status_code == 404
    default_storage.delete(file.stored_name)  # retention removed the upload
    gone = client.post(f"/api/uploads/{file.pk}/retry", **bearer(user))
    assert gone.status_code == 409 and gone.json()["error"] == "upload_gone"
    assert ImportFile.objects.get(pk=file.pk).status == FileStatus.FAILED
    assert not AuditEvent.objects.filter(action="file.retried").exists()


def test_the_api_retry_queues_the_file_again(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = failed_file(user, reviewer, run_jobs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/uploads/{file.pk}/retry", **bearer(user))
    assert response.status_code == 202 and response.json()["status"] == FileStatus.UPLOADED
    run_jobs()
    assert ImportFile.objects.get(pk=file.pk).status == FileStatus.IMPORTED
