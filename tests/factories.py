"""Test data made one way: an upload as the upload form sends it, its jobs run, the file read back."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from imports.models import ImportFile
from imports.services.uploads import upload_batch_create


def uploaded_file(
    owner: Any, name: str, data: str | bytes, *, run_jobs: Any, capture: Any, dedupe: bool = True
) -> ImportFile:
    """Upload one file for `owner` (text is sent as UTF-8), run the jobs its commit enqueued
    (`run_jobs`: the conftest fixture; `capture`: django_capture_on_commit_callbacks) and return the file
    as the database holds it then."""
    body = data.encode("utf-8") if isinstance(data, str) else data
    # As a browser labels them: CSV files text/csv, others left to Django's default (the type is read
    # from the content anyway).
    upload = SimpleUploadedFile(name, body, content_type="text/csv") if name.endswith(".csv") else None
    upload = upload or SimpleUploadedFile(name, body)
    with capture(execute=True):
        _, files = upload_batch_create(owner=owner, files=[upload], dedupe=dedupe)
    run_jobs()
    return ImportFile.objects.get(pk=files[0].pk)
