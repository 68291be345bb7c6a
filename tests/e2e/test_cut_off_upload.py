"""A multi-file upload cut off by the client is stored whole or not at all (issue 14, item 9), end to end:
a raw socket sends a two-file request to the real gunicorn server, announcing the whole body but closing its
side inside the second file; nothing is stored; the whole request sent again with the same Idempotency-Key
is accepted (it was 202 with the first file imported, then 409 idempotency_key_reused)."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from imports.models import ImportFile
from imports.services.tokens import api_token_create
from tests.e2e.conftest import Stack
from tests.e2e.test_faults import trades_csv

BOUNDARY = "airlock-e2e-boundary"


def multipart(*files: tuple[str, bytes]) -> bytes:
    body = b""
    for name, data in files:
        body += (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                "Content-Type: text/csv\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return body + f"--{BOUNDARY}--\r\n".encode()


def send_cut_off(base_url: str, headers: dict[str, str], body: bytes, cut: int) -> bytes:
    """Announce len(body) bytes, send `cut` of them, close the sending side, read whatever comes back."""
    url = urlsplit(base_url)
    head = f"POST /api/uploads HTTP/1.1\r\nHost: {url.hostname}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "Connection: close\r\n\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head.encode() + body[:cut])
        time.sleep(0.5)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    return answer


def test_a_request_cut_off_in_its_second_file_stores_nothing_and_the_whole_retry_is_accepted(
    stack: Stack, user: Any
) -> None:
    _, key = api_token_create(user=user)
    body = multipart(("first.csv", trades_csv(50)), ("second.csv", trades_csv(50, start=500)))
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Idempotency-Key": "cut-off-then-retried",
    }
    cut = body.index(b"second.csv") + 300  # inside the second file's rows
    answer = send_cut_off(stack.base_url, headers, body, cut)
    assert b" 202 " not in answer.split(b"\r\n", 1)[0], answer[:300]
    time.sleep(1)
    assert ImportFile.objects.count() == 0, "a cut-off request stored a file"

    retry = requests.post(f"{stack.base_url}/api/uploads", data=body, headers=headers, timeout=60)
    assert retry.status_code == 202, retry.text
    assert [f["name"] for f in retry.json()["files"]] == ["first.csv", "second.csv"]
    assert ImportFile.objects.count() == 2
