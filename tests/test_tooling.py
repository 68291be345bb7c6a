"""The developer tooling: the Makefile's test wrapper, the cron configuration and `make run` (config.run)."""

from __future__ import annotations

import http.client
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import requests

from config import run
from tests.e2e.test_redis_outage import PrivateRedis

ROOT = Path(__file__).resolve().parent.parent
UP_MESSAGE = "Airlock is up at"

FakeWeb = tuple[int, dict[str, int]]  # (port, status per path)


def make_env(**extra: str) -> dict[str, str]:
    """Our environment without the outer make's flags, so a `make test` run does not leak into inner makes."""
    env = {key: value for key, value in os.environ.items() if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    return {**env, **extra}


def run_make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env=make_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def isolated_tests_dir(tmp_path: Path) -> Path:
    """A folder with its own pytest.ini, so the inner pytest ignores the project's configuration."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    suite = tmp_path / "suite"
    suite.mkdir()
    return suite


def inner_pytest_args(suite: Path) -> str:
    return f"PYTEST_ARGS=-p no:django -p no:cacheprovider {suite}"


# -- the Makefile ----------------------------------------------------------------------------------


def test_make_test_runs_pytest() -> None:
    result = run_make("-n", "test")
    assert result.returncode == 0, result.stderr
    assert "-m pytest" in result.stdout


def test_make_test_fails_with_a_message_when_no_tests_are_collected(isolated_tests_dir: Path) -> None:
    result = run_make("pytest", inner_pytest_args(isolated_tests_dir))
    assert result.returncode != 0
    assert "collected no tests" in result.stderr


def test_make_test_passes_when_the_collected_tests_pass(isolated_tests_dir: Path) -> None:
    (isolated_tests_dir / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    result = run_make("pytest", inner_pytest_args(isolated_tests_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_make_test_fails_when_a_test_fails(isolated_tests_dir: Path) -> None:
    (isolated_tests_dir / "test_ko.py").write_text("def test_ko():\n    assert False\n")
    result = run_make("pytest", inner_pytest_args(isolated_tests_dir))
    assert result.returncode != 0
    assert "1 failed" in result.stdout
    assert "collected no tests" not in result.stderr


def test_ci_runs_exactly_make_test() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in script
    lines = [line.strip() for line in script.splitlines() if not line.lstrip().startswith("#")]
    commands = [line for line in lines if "make" in line]
    assert commands == ["exec make test"]


# -- the cron configuration ------------------------------------------------------------------------


def test_the_cron_config_runs_reconcile_every_minute_escalation_every_ten_and_cleanup_daily() -> None:
    from django_rq.cron import DjangoCronScheduler

    scheduler = DjangoCronScheduler()
    scheduler.load_config_from_file("config/cron.py")

    jobs = {job.func_name: job for job in scheduler.get_jobs()}
    assert set(jobs) == {
        "imports.jobs.tasks.reconcile_job",
        "imports.jobs.tasks.escalate_job",
        "imports.jobs.tasks.cleanup_job",
    }
    assert jobs["imports.jobs.tasks.reconcile_job"].interval == 60
    assert jobs["imports.jobs.tasks.escalate_job"].interval == 600
    assert jobs["imports.jobs.tasks.cleanup_job"].cron == "17 3 * * *"
    assert {job.queue_name for job in jobs.values()} == {"default"}


# -- config.run's helpers --------------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[FakeWeb]:
    """A tiny HTTP server answering each path with the status set in the returned dict (404 if unset)."""
    statuses: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  (the stdlib's name)
            status = statuses.get(self.path, 404)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "https://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], statuses
    server.shutdown()
    server.server_close()


def test_the_web_server_counts_as_up_when_the_login_page_answers(http_server: FakeWeb) -> None:
    port, statuses = http_server
    statuses["/accounts/login/"] = 200
    assert run.web_answers(port)


def test_the_web_server_counts_as_up_when_healthz_redirects(http_server: FakeWeb) -> None:
    port, statuses = http_server
    statuses["/healthz"] = 301
    assert run.web_answers(port)


def test_the_web_server_is_not_up_while_it_answers_server_errors(http_server: FakeWeb) -> None:
    port, statuses = http_server
    statuses["/healthz"] = 500
    statuses["/accounts/login/"] = 502
    assert not run.web_answers(port)


def test_the_web_server_is_not_up_while_nothing_listens() -> None:
    assert not run.web_answers(free_port())


def test_run_refuses_to_start_when_the_port_is_taken(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert run.Supervisor(port).run() == 1
    assert "already in use" in capsys.readouterr().out


def test_run_gives_its_children_an_emptied_folder_for_the_prometheus_multiprocess_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "histogram_4242.db").write_bytes(b"left by an earlier run")
    (folder / "README").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    supervisor = run.Supervisor(8000)
    supervisor.reset_metrics_dir()
    assert sorted(path.name for path in folder.iterdir()) == ["README"]
    assert supervisor.child_env()["PROMETHEUS_MULTIPROC_DIR"] == str(folder)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    assert run.Supervisor(8000).child_env()["PROMETHEUS_MULTIPROC_DIR"].endswith("prometheus")


# -- `make run` end to end -------------------------------------------------------------------------


class RunningProduct:
    """`python -m config.run` on its own var/ (fresh Postgres and Redis), with its output collected."""

    def __init__(self, var_dir: Path, port: int, **extra_env: str) -> None:
        self.var_dir = var_dir
        self.port = port
        self.lines: list[str] = []
        self.up = threading.Event()
        env = make_env(PORT=str(port), AIRLOCK_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1")
        for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "MEDIA_ROOT", "STATIC_ROOT"):
            env.pop(name, None)
        self.env = {**env, **extra_env}
        env = self.env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "config.run"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if UP_MESSAGE in line:
                self.up.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)[-6000:]

    def wait_until_up(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not self.up.wait(0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"config.run never said {UP_MESSAGE!r}:\n{self.output}")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def child(self, marker: str) -> psutil.Process:
        """The child process whose command line contains marker."""
        for process in self.descendants():
            if marker in _cmdline(process):
                return process
        raise AssertionError(f"no child running {marker!r}")

    def leftovers(self, remembered: list[psutil.Process]) -> list[str]:
        """Processes of this run still alive: remembered descendants or anything naming its port or var/."""
        markers = (f"127.0.0.1:{self.port}", str(self.var_dir))
        candidates = [
            *remembered,
            *(p for p in psutil.process_iter() if any(m in _cmdline(p) for m in markers)),
        ]
        return sorted({f"{process.pid}: {_cmdline(process)}" for process in candidates if _alive(process)})

    def local_servers_answer(self) -> bool:
        run_dir = self.var_dir / "run"
        return _socket_answers(run_dir / "redis.sock") or _socket_answers(run_dir / ".s.PGSQL.54329")

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """A GET sent exactly as written (no normalisation of dots or escapes), without proxies."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.putrequest("GET", path, skip_accept_encoding=True)
            connection.endheaders()
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        except OSError:
            return 0, {}, b""
        finally:
            connection.close()

    def status(self, path: str) -> int:
        return self.get(path)[0]

    def wait_for(self, check: Callable[[], object], what: str, timeout: float = 120) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output}")

    def manage(self, *args: str) -> str:
        """A management command against this run's database (its own var/)."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return result.stdout.strip()

    def cleanup(self) -> None:
        """After a failed test: stop what is left of this run (only its own processes)."""
        if self.process.poll() is None:
            remembered = self.descendants()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                for process in remembered:
                    if _alive(process):
                        process.kill()
        subprocess.run(
            [sys.executable, "-m", "config.localstack", "stop"],
            cwd=ROOT,
            env=make_env(AIRLOCK_VAR_DIR=str(self.var_dir)),
            capture_output=True,
            timeout=60,
            check=False,
        )


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _socket_answers(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(1)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


@pytest.fixture
def product() -> Iterator[RunningProduct]:
    # A short path: Postgres' unix socket path must stay under 107 bytes.
    var_dir = Path(tempfile.mkdtemp(prefix="airlock-run-"))
    running = RunningProduct(var_dir, free_port())
    try:
        yield running
    finally:
        running.cleanup()
        shutil.rmtree(var_dir, ignore_errors=True)


@pytest.mark.e2e
def test_make_run_stops_all_its_processes_and_local_servers_on_sigterm(product: RunningProduct) -> None:
    product.wait_until_up()
    remembered = product.descendants()
    assert any("rqworker" in _cmdline(process) for process in remembered)
    assert any("airlock_cron" in _cmdline(process) for process in remembered)

    product.process.send_signal(signal.SIGTERM)

    assert product.process.wait(60) == 0, product.output
    assert product.leftovers(remembered) == []
    assert not product.local_servers_answer(), "config.run left the Postgres / Redis it started running"


@pytest.mark.e2e
def test_make_run_restarts_a_child_or_local_server_that_dies_and_keeps_the_rest_running(
    product: RunningProduct,
) -> None:
    product.wait_until_up()
    web, cron = product.child("config.wsgi"), product.child("airlock_cron")
    worker = product.child("rqworker")
    product.wait_for(lambda: product.status("/healthz") == 200, what="a healthy product")

    worker.kill()
    product.wait_for(lambda: "restarted worker" in product.output, what="the worker to be restarted")
    assert f"worker (pid {worker.pid}) exited with exit code -9" in product.output
    product.wait_for(lambda: product.status("/healthz") == 200, what="/healthz with the new worker")
    assert product.child("rqworker").pid != worker.pid
    assert product.child("config.wsgi").pid == web.pid and product.child("airlock_cron").pid == cron.pid

    # The web server too (the master: its workers follow it), and the local Postgres this run started.
    web.kill()
    product.wait_for(lambda: "restarted web" in product.output, what="the web server to be restarted")
    product.wait_for(lambda: product.status("/livez") == 200, what="the new web server")
    postmaster = int((product.var_dir / "pg" / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, signal.SIGKILL)
    product.wait_for(lambda: "the local postgres is running again" in product.output, what="Postgres back")
    product.wait_for(lambda: product.status("/readyz") == 200, what="/readyz with the new Postgres")
    product.wait_for(lambda: product.status("/healthz") == 200, what="/healthz after all that")
    assert product.process.poll() is None and "stopping" not in product.output


@pytest.mark.e2e
def test_make_run_serves_static_files_itself_never_answers_500_and_names_no_versions(
    product: RunningProduct,
) -> None:
    product.wait_until_up()
    login = product.get("/accounts/login/")
    assert login[0] == 200 and "python" not in login[1].get("server", "").lower()
    css = re.search(rb'href="(/static/admin/css/[^"]+)"', login[2]) or re.search(rb'href="(/static/[^"]+)"', login[2])
    assert css, login[2][:2000]
    status, headers, _ = product.get(css.group(1).decode())
    assert status == 200 and "max-age" in headers["cache-control"]
    for path in ["/static/..%2f..%2fmanage.py", "/static/..%2f..%2f..%2f..%2fetc%2fpasswd", "/static/%2e%2e/manage.py"]:
        status, headers, body = product.get(path)
        assert status == 404 and b"SECRET_KEY" not in body and b"root:" not in body, (path, status)
        server = headers.get("server", "")
        assert not any(ch.isdigit() for ch in server) and "python" not in server.lower(), server
    product.process.send_signal(signal.SIGTERM)
    assert product.process.wait(60) == 0, product.output
    assert "Internal Server Error" not in product.output


@pytest.fixture
def product_on_private_redis(tmp_path: Path) -> Iterator[tuple[RunningProduct, PrivateRedis]]:
    """make run with REDIS_URL set: a Redis this run does not own, which the test stops and starts."""
    redis_server = PrivateRedis(tmp_path)
    redis_server.start()
    var_dir = Path(tempfile.mkdtemp(prefix="airlock-run-"))
    running = RunningProduct(var_dir, free_port(), REDIS_URL=redis_server.url)
    try:
        yield running, redis_server
    finally:
        running.cleanup()
        redis_server.stop()
        shutil.rmtree(var_dir, ignore_errors=True)


@pytest.mark.e2e
def test_after_a_redis_outage_make_run_is_whole_again_without_a_hand_restart(
    product_on_private_redis: tuple[RunningProduct, PrivateRedis],
) -> None:
    product, redis_server = product_on_private_redis
    product.wait_until_up()
    product.wait_for(lambda: product.status("/healthz") == 200, what="a healthy product")
    token = product.manage("api_token", "alice", "--create")

    def upload(name: str) -> requests.Response:
        text = (
            f"Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Ccy,Ref\n2024-03-01 09:30:00,AAPL,Buy,10,1.5,USD,{name}\n"
        )
        return requests.post(
            f"http://127.0.0.1:{product.port}/api/uploads",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": (f"{name}.csv", text.encode(), "text/csv")},
            timeout=30,
        )

    redis_server.stop()
    during = upload("during")
    assert during.status_code == 503 and during.json()["error"] == "service_unavailable", during.text
    time.sleep(20)  # an outage long enough for every child to have tried Redis and failed
    redis_server.start()

    product.wait_for(lambda: product.status("/healthz") == 200, what="/healthz after the outage", timeout=180)
    for marker in ("config.wsgi", "rqworker", "airlock_cron"):
        assert _alive(product.child(marker)), marker
    after = upload("after")
    assert after.status_code == 202, after.text
    file_id = after.json()["files"][0]["id"]

    def staged() -> bool:
        answer = requests.get(
            f"http://127.0.0.1:{product.port}/api/uploads/{file_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        return answer.json()["status"] not in ("QUEUED", "PROCESSING")

    product.wait_for(staged, what="the worker to process an upload after the outage")
    assert product.process.poll() is None and "stopping" not in product.output


def test_the_pages_script_follows_the_models_set_of_unfinished_file_statuses() -> None:
    # static/airlock/app.js keeps polling a file while it moves; the set is the model's, typed once more
    # in the script (which has no build step): this keeps the two from drifting apart.
    from imports.models import UNFINISHED_FILE_STATUSES

    script = (Path(__file__).resolve().parents[1] / "static/airlock/app.js").read_text(encoding="utf-8")
    found = re.search(r"var MOVING = \[([^\]]*)\];", script)
    assert found, "app.js no longer defines MOVING"
    assert re.findall(r'"([A-Z_]+)"', found.group(1)) == [str(status) for status in UNFINISHED_FILE_STATUSES]
