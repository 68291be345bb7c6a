"""A multi-file upload request is stored whole or not at all (issue 14, item 9): a body that ends before its
Content-Length (the client went away inside the second file) is refused with 400 and stores nothing, and the
whole request sent again with the same Idempotency-Key is then accepted, not answered 409.

Driven through the test client's WSGI handler (every middleware, the real views; CSRF not enforced) with a
wsgi.input that ends early, which is what gunicorn hands Django when the connection drops mid-body (its body
reader returns the bytes that arrived, then EOF)."""

from __future__ import annotations

import io
import resource
import signal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.test.client import ClientHandler

from imports.models import IdempotencyKey, ImportBatch, ImportFile
from tests.imports.pipeline.test_pipeline import TRADES

pytestmark = pytest.mark.django_db

BOUNDARY = "airlockboundary"


def multipart(*files: tuple[str, str]) -> bytes:
    parts = []
    for name, text in files:
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: text/csv\r\n\r\n{text}\r\n"
        )
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


def send(user: Any, body: bytes, *, announced: int, key: str | None = None) -> tuple[int, bytes]:
    """POST /api/uploads through the WSGI handler with `announced` as Content-Length and `body` as what came."""
    client = Client()
    client.force_login(user)
    environ = RequestFactory().post("/api/uploads", data=b"", content_type="text/plain").environ
    environ.update(
        {
            "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}",
            "CONTENT_LENGTH": str(announced),
            "wsgi.input": io.BytesIO(body),
            "HTTP_COOKIE": f"sessionid={client.cookies['sessionid'].value}",
            "HTTP_X_REQUESTED_WITH": "XMLHttpRequest",
        }
    )
    if key:
        environ["HTTP_IDEMPOTENCY_KEY"] = key
    response = ClientHandler(enforce_csrf_checks=False)(environ)  # the test client's WSGI handler
    return response.status_code, response.content


def test_a_request_cut_off_inside_its_second_file_stores_nothing_and_its_retry_is_accepted(
    user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any
) -> None:
    body = multipart(("first.csv", TRADES), ("second.csv", TRADES.replace("AAPL", "MSFT")))
    cut = body.index(b"second.csv") + 60  # inside the second file's content
    with django_capture_on_commit_callbacks(execute=True):
        status, content = send(user, body[:cut], announced=len(body), key="retry-me")
    assert status == 400, content
    assert b"upload_incomplete" in content and b"nothing was stored" in content
    assert ImportFile.objects.count() == 0 and ImportBatch.objects.count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        status, content = send(user, body, announced=len(body), key="retry-me")
    assert status == 202, content
    assert ImportFile.objects.count() == 2


def test_a_whole_request_is_accepted(user: Any, redis_clean: Any, django_capture_on_commit_callbacks: Any) -> None:
    body = multipart(("only.csv", TRADES))
    with django_capture_on_commit_callbacks(execute=True):
        status, content = send(user, body, announced=len(body))
    assert status == 202, content


@pytest.mark.parametrize("key", ["", "disk-full"], ids=["without-key", "with-idempotency-key"])
def test_a_request_whose_second_file_cannot_be_stored_leaves_no_import_of_the_first(
    user: Any, redis_clean: Any, settings: Any, django_capture_on_commit_callbacks: Any, key: str
) -> None:
    """A real write error at the second file: the process may write files of at most 64 KiB (RLIMIT_FSIZE,
    what a full or quota-limited disk does to a large write: the write fails with an OSError)."""
    small = multipart(("first.csv", TRADES))
    big_text = TRADES + "".join(f"2024-03-05 10:00:00,AAPL,Buy,{n},1.0,0,USD,B-{n}\n" for n in range(4000))
    body = multipart(("first.csv", TRADES), ("second.csv", big_text))
    assert len(small) < 64 * 1024 < len(body)
    media = Path(settings.MEDIA_ROOT)
    previous_signal = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with django_capture_on_commit_callbacks(execute=True) as enqueued:
            status, _ = send(user, body, announced=len(body), key=key)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_signal)
    assert status == 500
    assert ImportFile.objects.count() == 0 and ImportBatch.objects.count() == 0, "the first file was imported"
    assert IdempotencyKey.objects.count() == 0 and enqueued == []
    assert [p for p in media.rglob("*") if p.is_file()] == [], "the first file's stored bytes were left behind"

    with django_capture_on_commit_callbacks(execute=True):
        status, content = send(user, body, announced=len(body), key=key)
    assert status == 202, content
    assert ImportFile.objects.count() == 2
