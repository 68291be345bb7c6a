"""Real processes for end-to-end tests: a gunicorn web server and an RQ worker on the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_tests() -> str:
    """DATABASE_URL of the test database pytest-django created (so child processes see test data)."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    if str(s["HOST"]).startswith("/"):
        return f"postgresql://{auth}@/{s['NAME']}?host={s['HOST']}&port={s['PORT'] or 5432}"
    return f"postgresql://{auth}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"


@dataclass
class Stack:
    """The running web server and workers, with helpers to drive them."""

    base_url: str
    env: dict[str, str]
    media_root: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start_worker(
        self, *queues: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> subprocess.Popen:
        """An RQ worker (its own process group); `env` adds variables, e.g. PGAPPNAME to find its backends;
        `args` adds options of `manage.py rqworker`."""
        log = self.media_root.parent / f"worker-{len(self.processes)}.log"
        queues = queues or ("high", "default", "bulk")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", *queues, "--with-scheduler", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(proc)
        self.logs.append(log)
        return proc

    def start_cron(self, env: dict[str, str] | None = None) -> subprocess.Popen:
        """The periodic scheduler and alert evaluator (`manage.py airlock_cron config/cron.py`), as `make run`
        starts it."""
        log = self.media_root.parent / f"cron-{len(self.processes)}.log"
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "airlock_cron", "config/cron.py"],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(proc)
        self.logs.append(log)
        return proc

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def wait_for(self, check: Any, timeout: float = 60, interval: float = 0.25, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(interval)
        tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tails}")


@pytest.fixture
def stack_env() -> dict[str, str]:
    """Extra environment for the stack's processes; a test module overrides this fixture to change it."""
    return {}


@pytest.fixture
def stack(
    transactional_db: Any, settings: Any, tmp_path: Path, redis_clean: Any, stack_env: dict[str, str]
) -> Iterator[Stack]:
    """gunicorn + one RQ worker on the test database and test Redis; stopped after the test."""
    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = media
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "MEDIA_ROOT": str(media),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "AIRLOCK_SECURE": "0",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "PYTHONUNBUFFERED": "1",
        **stack_env,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    web_log = tmp_path / "web.log"
    # The production web command (Dockerfile, docker-compose, make run): config/gunicorn.py, WhiteNoise.
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=web_log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    running = Stack(base_url=f"http://127.0.0.1:{port}", env=env, media_root=media, processes=[web], logs=[web_log])
    running.start_worker()

    def web_up() -> bool:
        try:
            return requests.get(f"{running.base_url}/accounts/login/", timeout=5).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # a busy machine: the first request can be slow
            return False

    try:
        running.wait_for(web_up, timeout=60, what="the web server")
    except BaseException:
        # Never leave a server and a worker behind on the test Redis: they would take later tests' jobs.
        for proc in running.processes:
            running.stop(proc)
        raise
    yield running
    for proc in running.processes:
        running.stop(proc)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium(monkeypatch: pytest.MonkeyPatch) -> Any:
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; `make test` "
            "does it when it can) to run the browser tests"
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; our ORM calls in the test are still
    # plain synchronous calls, so Django's async-safety guard does not apply here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()
