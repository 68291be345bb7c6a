"""The production web server (gunicorn with config/gunicorn.py and WhiteNoise, as `make run`, the image and
docker-compose run it), against real processes."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from django.conf import settings

from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Ways to climb out of /static/ that proxies and servers have been fooled by: encoded slashes and dots,
# backslashes, double encoding, overlong UTF-8, NUL.
TRAVERSALS = [
    "/static/..%2f..%2fmanage.py",
    "/static/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/%2e%2e/%2e%2e/manage.py",
    "/static/%2e%2e%2f%2e%2e%2fconfig%2fsettings.py",
    "/static/..%5c..%5cmanage.py",
    "/static/..%252f..%252fmanage.py",
    "/static/%c0%ae%c0%ae/%c0%ae%c0%ae/manage.py",
    "/static/airlock/..%2f..%2f..%2fconfig/settings.py",
    "/static/airlock/app.js%00.txt",
    "/static/../../manage.py",
]


def raw_get(base_url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """A GET sent exactly as written (no client-side normalisation of dots or escapes)."""
    address = urlparse(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.putheader("Host", "127.0.0.1")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_paths_that_climb_out_of_static_answer_404_and_never_a_file_or_a_server_error(stack: Stack) -> None:
    secrets_on_disk = [b"SECRET_KEY", b"root:x:0:0", b"DJANGO_SETTINGS_MODULE"]
    answers = {path: raw_get(stack.base_url, path) for path in TRAVERSALS}
    bad = {path: status for path, (status, _, body) in answers.items()
           if status not in (400, 404) or any(secret in body for secret in secrets_on_disk)}  # fmt: skip
    assert not bad, bad
    assert "Internal Server Error" not in (stack.logs[0].read_text(errors="replace"))


def test_static_files_are_served_compressed_under_hashed_names_with_a_long_cache(stack: Stack) -> None:
    manifest = json.loads((Path(settings.STATIC_ROOT) / "staticfiles.json").read_text())["paths"]
    hashed = manifest["airlock/app.js"]
    assert hashed != "airlock/app.js"
    response = requests.get(f"{stack.base_url}/static/{hashed}", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert response.status_code == 200 and b"function" in response.content
    assert response.headers["Content-Encoding"] == "gzip"
    assert "max-age=315360000" in response.headers["Cache-Control"] and "immutable" in response.headers["Cache-Control"]
    page = requests.get(f"{stack.base_url}/accounts/login/", timeout=10).text
    assert "/static/admin/css/" in page or "/static/airlock/" in page


def test_no_answer_names_the_server_software_version_or_python(stack: Stack) -> None:
    for path in ["/accounts/login/", "/livez", "/static/airlock/app.js", "/no-such-page", TRAVERSALS[0]]:
        _, headers, _ = raw_get(stack.base_url, path)
        server = headers.get("server", "")
        assert "python" not in server.lower() and not any(ch.isdigit() for ch in server), (path, server)
