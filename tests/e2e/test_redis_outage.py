"""A Redis outage against the real web server and worker, on a Redis of the test's own that it stops and
starts again: uploads are refused cleanly while it is down and work again, with the same worker, after."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from rq.worker import Worker

from config import localstack
from imports.models import FileStatus, ImportFile, Order
from tests.e2e.conftest import Stack
from tests.e2e.test_faults import MAPPING, trades_csv
from tests.e2e.test_upload_approve_flow import UNKNOWN_FORMAT, token_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class PrivateRedis:
    """A redis-server on a unix socket in a temp folder, stopped and started at will."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "redis.sock"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [localstack._redis_server(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--dir", str(self.folder), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if redis.Redis(unix_socket_path=str(self.socket)).ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
        raise AssertionError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stack_env(private_redis: PrivateRedis) -> dict[str, str]:
    return {"REDIS_URL": private_redis.url}


def upload(stack: Stack, token: str, name: str, text: str) -> requests.Response:
    return requests.post(
        f"{stack.base_url}/api/uploads",
        headers={"Authorization": f"Bearer {token}"},
        files={"file": (name, text.encode(), "text/csv")},
        timeout=30,
    )


def stored_files(stack: Stack) -> list[Path]:
    return [path for path in stack.media_root.rglob("*") if path.is_file()]


def test_an_upload_during_a_redis_outage_is_refused_with_503_and_works_again_after(
    stack: Stack, private_redis: PrivateRedis
) -> None:
    token = token_for("trader")
    worker = stack.processes[1]
    stack.wait_for(lambda: requests.get(f"{stack.base_url}/healthz", timeout=5).status_code == 200, what="a worker")

    private_redis.stop()
    refused = upload(stack, token, "during.csv", UNKNOWN_FORMAT)
    assert refused.status_code == 503, refused.text
    body: dict[str, Any] = refused.json()
    assert body["error"] == "service_unavailable" and "nothing was done" in body["message"]
    assert int(refused.headers["Retry-After"]) > 0
    assert not ImportFile.objects.exists() and stored_files(stack) == []
    ready = requests.get(f"{stack.base_url}/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["redis"].startswith("down")
    assert requests.get(f"{stack.base_url}/livez", timeout=5).status_code == 200
    time.sleep(5)  # the outage lasts: the idle worker retries its connection meanwhile

    private_redis.start()
    stack.wait_for(
        lambda: requests.get(f"{stack.base_url}/healthz", timeout=5).status_code == 200,
        timeout=90,
        what="the worker to be seen again after Redis came back",
    )
    assert worker.poll() is None, "the worker exited during the outage"
    accepted = upload(stack, token, "after.csv", UNKNOWN_FORMAT)
    assert accepted.status_code == 202, accepted.text
    file_id = accepted.json()["files"][0]["id"]
    stack.wait_for(
        lambda: ImportFile.objects.get(pk=file_id).status == "PENDING_APPROVAL", what="the worker to stage it"
    )


def health(stack: Stack) -> tuple[int, dict[str, Any]]:
    response = requests.get(f"{stack.base_url}/healthz", timeout=5)
    return response.status_code, response.json()


def test_after_flushall_the_busy_worker_registers_again_and_dead_registrations_never_count(
    stack: Stack, private_redis: PrivateRedis
) -> None:
    """Redis loses everything (a real FLUSHALL, on a Redis of the test's own) while the worker is in the middle
    of a file: /readyz stays 200, /healthz says 503 until the same worker registers again at its next heartbeat
    (every 30 s while busy, 45 s when idle: whichever comes first); the file completes with exactly its rows;
    a SIGKILLed worker's registration is not counted."""
    token, approver = token_for("trader"), token_for("checker", "--approver")
    worker = stack.processes[1]
    stack.wait_for(lambda: health(stack)[0] == 200, what="a worker")
    first = upload(stack, token, "first.csv", trades_csv(20).decode())
    first_id = first.json()["files"][0]["id"]
    stack.wait_for(lambda: ImportFile.objects.get(pk=first_id).status == FileStatus.PENDING_APPROVAL, what="staging")
    format_id = ImportFile.objects.get(pk=first_id).format_id
    approved = requests.post(
        f"{stack.base_url}/api/admin/formats/{format_id}/approve",
        headers={"Authorization": f"Bearer {approver}"},
        json={"mapping": MAPPING},
        timeout=30,
    )
    assert approved.status_code == 202, approved.text
    # The format is approved: the big file is read straight into orders, committed chunk by chunk.
    total = 200_000
    big = upload(stack, token, "big.csv", trades_csv(total, start=1000).decode())
    assert big.status_code == 202, big.text
    file_id = big.json()["files"][0]["id"]
    stack.wait_for(
        lambda: 0 < Order.objects.filter(source_file_id=file_id).count() < total // 2,
        timeout=120,
        interval=0.05,
        what="the import to be part-way",
    )

    redis.Redis.from_url(private_redis.url).flushall()
    flushed_at = time.monotonic()
    status, body = health(stack)
    assert (status, body["workers"], body["redis"]) == (503, 0, "ok"), body
    assert requests.get(f"{stack.base_url}/readyz", timeout=5).status_code == 200

    _, body = stack.wait_for(
        lambda: (answer := health(stack))[0] == 200 and answer,
        timeout=90,
        interval=0.5,
        what="the worker to register again after FLUSHALL",
    )
    back_after = time.monotonic() - flushed_at
    orders_then = Order.objects.filter(source_file_id=file_id).count()
    assert body["workers"] == 1 and worker.poll() is None
    stack.wait_for(
        lambda: ImportFile.objects.get(pk=file_id).status == FileStatus.IMPORTED,
        timeout=240,
        what="the file to be imported",
    )
    assert Order.objects.filter(source_file_id=file_id).count() == total

    second = stack.start_worker()
    stack.wait_for(lambda: health(stack)[1]["workers"] == 2, what="the second worker")
    os.killpg(second.pid, signal.SIGKILL)  # no chance to unregister: its registration stays behind
    second.wait(10)
    assert len(Worker.all(connection=redis.Redis.from_url(private_redis.url))) == 2
    status, body = health(stack)
    assert (status, body["workers"]) == (200, 1), body
    print(
        f"\nFLUSHALL mid-file: health back with 1 worker after {back_after:.1f} s ({orders_then} of {total} orders "
        f"by then); imported {total}"
    )
