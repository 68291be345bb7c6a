"""Direct uploads in a real browser: 50 files go from Chromium straight to the bucket (a real SeaweedFS), never
through the web server, and two workers that share no disk (each its own MEDIA_ROOT) import them together.

The stack runs with AIRLOCK_S3_* pointing at the test bucket; the page signs the files, sends each to the bucket
with its own progress line, confirms, then follows the upload to COMPLETED.
"""

from __future__ import annotations

import hashlib
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from audit.models import AuditEvent
from imports.models import FileStatus, ImportFile, Order
from tests.e2e.conftest import Stack
from tests.e2e.test_browser import KNOWN, approved_format_for, login, shot

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FILES = 50


@pytest.fixture
def stack_env(s3: Any) -> dict[str, str]:
    return {**s3.environ(), "AIRLOCK_DIRECT_UPLOADS": "1"}


def export(i: int) -> bytes:
    """One broker export of the approved layout, two trades with their own ids."""
    header, *rows = KNOWN.splitlines()
    body = [row.replace("K-", f"F{i}-") for row in rows]
    return ("\n".join([header, *body]) + "\n").encode()


def test_fifty_files_go_straight_to_the_bucket_and_two_workers_without_a_shared_disk_import_them(
    stack: Stack, chromium: Any, tmp_path: Path, s3: Any
) -> None:
    User = get_user_model()
    User.objects.create_user(username="trader", password="trader-pass-1", email="trader@example.com")
    call_command("api_token", "checker", "--create", "--approver", stdout=StringIO())
    checker = User.objects.get(username="checker")
    approved_format_for(KNOWN, tmp_path, checker)
    other_disk = tmp_path / "second-worker-media"
    other_disk.mkdir()
    stack.start_worker(env={"MEDIA_ROOT": str(other_disk)})  # a second machine: no disk in common

    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    blocked: list[str] = []  # a Content-Security-Policy that forgot the bucket shows up here
    page.on("requestfailed", lambda r: blocked.append(f"{r.method} {r.url} {r.failure}"))
    login(page, stack.base_url, "trader", "trader-pass-1")
    page.goto(f"{stack.base_url}/")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    assert page.get_attribute("#upload-form", "data-direct") == "/api/uploads/direct"
    files = [{"name": f"broker-{i:02d}.csv", "mimeType": "text/csv", "buffer": export(i)} for i in range(FILES)]
    page.set_input_files("#upload-form input[type=file]", files=files)
    assert page.inner_text("#upload-button") == f"Upload {FILES} files"
    page.click("#upload-button")
    page.locator(".direct-files li").first.wait_for(timeout=30_000)  # one progress line per file
    assert page.locator(".direct-files li").count() == FILES
    page.wait_for_selector(".request[data-batch-status=COMPLETED]", timeout=180_000)
    shot(page, "40-direct-upload-fifty-files")
    assert not errors and not blocked, (errors, blocked)

    # Every byte went to the bucket: the web server saw two small JSON requests, never a file.
    to_web = [u for u in posts if u.startswith(stack.base_url)]
    assert to_web == [f"{stack.base_url}/api/uploads/direct", f"{stack.base_url}/api/uploads/direct/confirm"]
    assert sum(1 for u in posts if u.startswith(s3.bucket.server.endpoint_url)) == FILES
    assert not any(p.is_file() for p in stack.media_root.rglob("*"))
    assert not any(p.is_file() for p in other_disk.rglob("*"))

    imported = ImportFile.objects.filter(status=FileStatus.IMPORTED)
    assert imported.count() == FILES and Order.objects.count() == 2 * FILES
    for file in imported:
        assert file.sha256 == hashlib.sha256(export(int(file.original_name[7:9]))).hexdigest()
        assert file.content_checked
    assert len(s3.keys()) == FILES
    assert AuditEvent.objects.filter(action="file.uploaded", details__direct=True).count() == FILES
    # Both workers took files (a file's job, or a group of small files': "file-<id>", "files-<id>_<id>..."): each
    # read its objects from the bucket, not from a disk the other wrote.
    done = [
        len(re.findall(r"Job OK \(files?-", log.read_text(errors="replace")))
        for log in stack.logs
        if log.name.startswith("worker-")
    ]
    assert len(done) == 2 and all(n > 0 for n in done), done
    context.close()
