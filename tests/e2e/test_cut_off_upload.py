"""A multi-file upload cut off inside its second file, sent over a raw socket to the real web server (gunicorn,
as deployed): nothing is stored, and the whole request sent again with the same Idempotency-Key is accepted
and processed by the worker (issue 14, item 9)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
import requests

from imports.models import FileStatus, IdempotencyKey, ImportBatch, ImportFile
from tests.e2e.conftest import Stack
from tests.e2e.test_faults import trades_csv
from tests.e2e.test_upload_approve_flow import token_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BOUNDARY = "airlock-e2e-boundary"


def multipart(files: list[tuple[str, bytes]]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: text/csv\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data in files
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def send_cut_off(stack: Stack, token: str, body: bytes, cut: int, key: str) -> bytes:
    """Announce the whole body, send only its first `cut` bytes, then stop sending (the client went away)."""
    url = urlsplit(stack.base_url)
    head = (
        f"POST /api/uploads HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\nAuthorization: Bearer {token}\r\n"
        f"Idempotency-Key: {key}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head + body[:cut])
        sock.shutdown(socket.SHUT_WR)  # EOF inside the second file; the answer can still be read
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def stored_files(stack: Stack) -> list[str]:
    return [str(path) for path in stack.media_root.rglob("*") if path.is_file()]


def test_a_request_cut_off_inside_its_second_file_stores_nothing_and_its_retry_succeeds(stack: Stack) -> None:
    token = token_for("trader")
    files = [("first.csv", trades_csv(2_000)), ("second.csv", trades_csv(2_000, start=10_000))]
    body = multipart(files)
    cut = body.index(b'filename="second.csv"') + 20_000  # well inside the second file's rows
    assert cut < len(body) - 1_000

    answer = send_cut_off(stack, token, body, cut, key="upload-42")
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 400 " in status_line, answer[:1000]
    assert b"upload_incomplete" in answer and b"nothing was stored" in answer
    assert ImportFile.objects.count() == 0 and ImportBatch.objects.count() == 0, "the first file was imported"
    assert IdempotencyKey.objects.count() == 0 and stored_files(stack) == []

    retry = requests.post(
        f"{stack.base_url}/api/uploads",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "upload-42"},
        files=[("file", (name, data, "text/csv")) for name, data in files],
        timeout=60,
    )
    assert retry.status_code == 202, retry.text
    assert retry.headers["Idempotent-Replayed"] == "false"
    ids = [entry["id"] for entry in retry.json()["files"]]
    assert len(ids) == 2 and not any(entry["existing"] for entry in retry.json()["files"])
    stack.wait_for(
        lambda: all(
            ImportFile.objects.get(pk=pk).status == FileStatus.PENDING_APPROVAL
            and ImportFile.objects.get(pk=pk).rows_total == 2_000
            for pk in ids
        ),
        timeout=120,
        what="the worker to read both files of the retried request",
    )
    again = requests.post(
        f"{stack.base_url}/api/uploads",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "upload-42"},
        files=[("file", (name, data, "text/csv")) for name, data in files],
        timeout=60,
    )
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == retry.json() and ImportFile.objects.count() == 2
