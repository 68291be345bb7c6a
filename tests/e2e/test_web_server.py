"""The production web server (gunicorn with config/gunicorn.py and WhiteNoise, as `make run`, the image and
docker-compose run it) and its health endpoints, against real processes."""

from __future__ import annotations

import http.client
import json
import os
import signal
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest
import requests
from django.conf import settings
from django_rq import get_connection
from rq import Worker

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


def test_a_stopped_worker_makes_healthz_fail_but_leaves_the_web_live_and_ready(stack: Stack) -> None:
    stack.wait_for(lambda: requests.get(f"{stack.base_url}/healthz", timeout=5).status_code == 200, what="health")
    stack.stop(stack.processes[1])  # the worker, warm shutdown

    health = stack.wait_for(
        lambda: (r := requests.get(f"{stack.base_url}/healthz", timeout=5)).status_code == 503 and r.json(),
        what="/healthz to notice the worker is gone",
    )
    assert health["workers"] == 0 and health["problem"] == "no RQ worker is running"
    live = requests.get(f"{stack.base_url}/livez", timeout=5)
    ready = requests.get(f"{stack.base_url}/readyz", timeout=5)
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_does_not_count_the_registration_a_killed_worker_left_behind(stack: Stack) -> None:
    stack.wait_for(lambda: requests.get(f"{stack.base_url}/healthz", timeout=5).status_code == 200, what="health")
    worker = stack.processes[1]
    os.killpg(worker.pid, signal.SIGKILL)  # no chance to unregister: its key stays in Redis for minutes
    worker.wait(10)
    assert Worker.all(connection=get_connection("default")), "the dead worker's registration should still be there"
    health = requests.get(f"{stack.base_url}/healthz", timeout=5)
    assert health.status_code == 503 and health.json()["workers"] == 0, health.text


def test_a_worker_registers_again_after_redis_lost_its_data(stack: Stack) -> None:
    """FLUSHALL (here FLUSHDB of the test database) drops every registration; the next heartbeat restores it."""
    stack.stop(stack.processes[1])
    worker = stack.start_worker(args=("--worker-ttl", "20"))  # heartbeats every 5 s when idle
    stack.wait_for(lambda: requests.get(f"{stack.base_url}/healthz", timeout=5).status_code == 200, what="health")
    get_connection("default").flushdb()  # no registration left: /healthz is 200 again only if it comes back

    health = stack.wait_for(
        lambda: (r := requests.get(f"{stack.base_url}/healthz", timeout=5)).status_code == 200 and r.json(),
        timeout=60,
        what="the worker to register again",
    )
    assert health["workers"] == 1 and worker.poll() is None
    assert psutil.pid_exists(worker.pid)
