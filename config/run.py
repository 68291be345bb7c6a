"""`make run`: start the whole product (Postgres, Redis, web, RQ worker, cron scheduler) and keep it running.

Run with `python -m config.run`. Environment:

    PORT            web port on 127.0.0.1 (default 8000)
    DATABASE_URL    use this Postgres instead of starting the project-local one under var/
    REDIS_URL       use this Redis instead of starting the project-local one under var/
    PROMETHEUS_MULTIPROC_DIR  where the processes write their metrics files (default var/prometheus; its
                    *.db files are deleted on start: the histograms of /metrics begin again with the run)

The web server is gunicorn with config/gunicorn.py (as in the Docker image), static files served by
WhiteNoise. This process is a supervisor: a child that exits (web, worker or scheduler; for instance a
busy worker when Redis goes away) is logged and started again after a back-off (1 s, doubling up to
RESTART_BACKOFF_MAX, back to 1 s once it has run STABLE_AFTER seconds), and a project-local Postgres or
Redis this run started is started again if it stops answering. So an outage heals by itself: nothing is
stopped because one part failed. Only at start-up, before the web server has answered once, does a child
that keeps failing (START_ATTEMPTS times: a broken configuration, not an outage) stop the run with a
non-zero exit code.

Ctrl-C or SIGTERM stops the children (the worker finishes its current batch, up to 30 s), then the local
servers this run started, and exits 0. A second Ctrl-C kills what is left at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psutil

from config import localstack
from config.paths import VAR_DIR

BASE_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
KILL_GRACE = 5.0
PR_SET_PDEATHSIG = 1
RESTART_BACKOFF_FIRST = 1.0
RESTART_BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0
START_ATTEMPTS = 3
LOCAL_SERVER_CHECK_SECONDS = 2.0
TICK = 0.25

SETUP_COMMANDS: list[list[str]] = [
    ["migrate", "--noinput"],
    ["collectstatic", "--noinput", "-v0"],
    ["load_builtin_formats"],
    ["ensure_demo_admin"],
]


@dataclass
class Child:
    """One long-running process of the product, in its own process group, restarted when it exits."""

    name: str
    args: list[str]
    process: subprocess.Popen | None = None
    descendants: set[psutil.Process] = field(default_factory=set)
    started_at: float = 0.0
    starts: int = 0
    failures: int = 0  # exits in a row without a stable run in between: the back-off exponent
    restart_at: float | None = None  # set while the child is dead and waiting for its restart

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, env: dict[str, str]) -> None:
        # Own process group: a Ctrl-C in the terminal reaches only the supervisor, which then stops the
        # children in order (and the worker gets one SIGTERM: a warm shutdown).
        self.process = subprocess.Popen(self.args, cwd=BASE_DIR, env=env, process_group=0, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()
        self.starts += 1
        self.restart_at = None


@dataclass
class LocalServer:
    """A project-local Postgres or Redis this run started, watched so it can be started again."""

    name: str
    running: Callable[[], bool]
    start: Callable[[], bool]
    failures: int = 0
    retry_at: float = 0.0


def backoff(failures: int) -> float:
    """Seconds to wait before the next start after `failures` exits in a row (1, 2, 4, ... capped)."""
    return min(RESTART_BACKOFF_MAX, RESTART_BACKOFF_FIRST * 2 ** max(0, failures - 1))


class Supervisor:
    """Starts the children, restarts the ones that exit, and stops everything on a signal."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.started_at = time.monotonic()
        self.signals_received = 0
        self.children: list[Child] = []
        self.local_servers: dict[str, bool] = {}
        self.watched_servers: list[LocalServer] = []
        self.up = False
        self.next_server_check = 0.0
        self.metrics_dir = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or VAR_DIR / "prometheus")

    # -- signals --------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Record the request; the main loop does the stopping (never block in a handler)."""
        self.signals_received += 1
        if self.signals_received == 1:
            message = f"\n[run] {signal.Signals(signum).name} received: stopping Airlock...\n"
        else:
            message = "[run] second signal: killing the remaining processes now.\n"
        # os.write, not print: a handler that prints while the main loop is printing would raise
        # "reentrant call" from the buffered stdout.
        os.write(sys.stdout.fileno(), message.encode())

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    @property
    def stop_requested(self) -> bool:
        return self.signals_received > 0

    # -- steps ----------------------------------------------------------------------------------

    def start_local_servers(self) -> None:
        """Start the project-local Postgres / Redis that DATABASE_URL / REDIS_URL don't provide."""
        self.local_servers = localstack.ensure_started()
        for name, started in self.local_servers.items():
            env_name = "DATABASE_URL" if name == "postgres" else "REDIS_URL"
            if os.environ.get(env_name):
                source = f"from {env_name}"
            else:
                source = "started (var/)" if started else "already running (var/), reused"
            say(f"{name}: {source}")
        starters = {
            "postgres": (localstack.postgres_running, localstack.start_postgres),
            "redis": (localstack.redis_running, localstack.start_redis),
        }
        self.watched_servers = [
            LocalServer(name, *starters[name]) for name, started in self.local_servers.items() if started
        ]

    def reset_metrics_dir(self) -> None:
        """An empty folder for prometheus-client's multiprocess files, shared by web and workers.

        Files of an earlier run hold pids that may be reused now; the histograms start again with the run
        (Prometheus treats that as a counter reset). Only the *.db files are removed: the folder may be given.
        """
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.metrics_dir.glob("*.db"):
            stale.unlink(missing_ok=True)

    def run_setup(self) -> bool:
        """Run migrations, collectstatic and the data set-up commands; False if one fails."""
        for command in SETUP_COMMANDS:
            if self.stop_requested:
                return False
            say(f"manage.py {' '.join(command)}")
            result = subprocess.run(self.manage(*command), cwd=BASE_DIR, env=self.child_env(), check=False)
            if result.returncode != 0 and not self.stop_requested:
                say(f"manage.py {command[0]} failed with exit code {result.returncode}")
                return False
        return True

    def manage(self, *args: str) -> list[str]:
        return [sys.executable, str(BASE_DIR / "manage.py"), *args]

    def child_env(self) -> dict[str, str]:
        """Ours, plus what a local plain-http run needs; anything set in the environment wins."""
        defaults = {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            # Plain http on 127.0.0.1: no HTTPS redirect or secure-only cookies (production turns them on).
            "AIRLOCK_SECURE": "0",
            "AIRLOCK_SITE_URL": f"http://{HOST}:{self.port}",
        }
        return {
            **defaults,
            **os.environ,
            "GUNICORN_BIND": f"{HOST}:{self.port}",
            # Web, worker (its work horses) and scheduler write their histograms here; /metrics merges them.
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            "PYTHONUNBUFFERED": "1",  # logs interleave in order
        }

    def build_children(self) -> list[Child]:
        """The same commands as the Docker image / docker-compose (web, worker, cron)."""
        return [
            Child("web", [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]),
            Child("worker", self.manage("rqworker", "high", "default", "bulk", "--with-scheduler")),
            Child("cron", self.manage("airlock_cron", "config/cron.py")),
        ]

    def start_children(self) -> None:
        self.children = self.build_children()
        for child in self.children:
            child.start(self.child_env())
            say(f"started {child.name} (pid {child.pid}): {' '.join(child.args[1:])}")

    def print_banner(self) -> None:
        url = f"http://{HOST}:{self.port}/"
        lines = [
            f"Airlock:  {url}",
            f"Admin:    {url}admin/",
            f"Stop:     Ctrl-C (or kill -TERM {os.getpid()})",
        ]
        width = max(len(line) for line in lines) + 4
        print("\n" + "=" * width, *(f"  {line}" for line in lines), "=" * width + "\n", sep="\n", flush=True)

    # -- supervision ----------------------------------------------------------------------------

    def supervise(self) -> int:
        """Until a stop is requested: restart exited children and local servers. The exit code."""
        while not self.stop_requested:
            now = time.monotonic()
            if not self.up:
                if web_answers(self.port):
                    self.up = True
                    print(f"Airlock is up at http://{HOST}:{self.port}/ (started in {now - self.started_at:.1f} s)",
                          flush=True)  # fmt: skip
                elif now - self.started_at > READY_TIMEOUT:
                    say(f"the web server did not answer on port {self.port} within {READY_TIMEOUT:.0f} s")
                    return 1
            for child in self.children:
                if not self.tend(child, now):
                    return 1
            if now >= self.next_server_check:
                self.tend_local_servers(now)
                self.next_server_check = now + LOCAL_SERVER_CHECK_SECONDS
            self.remember_descendants()
            time.sleep(TICK)
        return 0

    def tend(self, child: Child, now: float) -> bool:
        """Note an exit and schedule the restart, or restart when due; False: give up (start-up failure)."""
        if child.running():
            if child.failures and now - child.started_at >= STABLE_AFTER:
                child.failures = 0
            return True
        if child.restart_at is None:
            assert child.process is not None
            child.failures += 1
            uptime = now - child.started_at
            code = child.process.returncode
            if not self.up and child.failures >= START_ATTEMPTS:
                say(f"{child.name} exited with exit code {code} {child.failures} times while starting: giving up")
                return False
            delay = backoff(child.failures)
            child.restart_at = now + delay
            say(f"{child.name} (pid {child.pid}) exited with exit code {code} after {uptime:.1f} s; "
                f"restarting it in {delay:.0f} s")  # fmt: skip
        elif now >= child.restart_at:
            child.start(self.child_env())
            say(f"restarted {child.name} (pid {child.pid}, start #{child.starts})")
        return True

    def tend_local_servers(self, now: float) -> None:
        """Start again a local Postgres / Redis this run started and that stopped answering."""
        for server in self.watched_servers:
            if now < server.retry_at or server.running():
                if server.running():
                    server.failures = 0
                continue
            say(f"the local {server.name} is not answering: starting it again")
            try:
                server.start()
            except localstack.LocalStackError as exc:
                server.failures += 1
                server.retry_at = now + backoff(server.failures)
                say(f"could not start the local {server.name} (retrying in {backoff(server.failures):.0f} s): {exc}")
            else:
                say(f"the local {server.name} is running again")

    def remember_descendants(self) -> None:
        """Note the children's own subprocesses (gunicorn workers, the RQ work horse in its own group)."""
        for child in self.children:
            if not child.running():
                continue
            try:
                child.descendants.update(psutil.Process(child.pid).children(recursive=True))
            except psutil.Error:
                pass

    def stop_children(self) -> None:
        """SIGTERM every child's group, wait up to STOP_TIMEOUT, then force what is left."""
        self.remember_descendants()
        for child in self.children:
            if child.running():
                say(f"stopping {child.name} (pid {child.pid})")
                _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and self.signals_received < 2:
            if not any(child.running() for child in self.children):
                break
            time.sleep(0.2)
        stubborn = [child for child in self.children if child.running()]
        if stubborn and self.signals_received < 2:
            # A second SIGTERM is the RQ worker's cold shutdown: it takes its work horse down with it.
            for child in stubborn:
                say(f"{child.name} still running after {STOP_TIMEOUT:.0f} s: forcing it")
                _signal_group(child.pid, signal.SIGTERM)
            grace = time.monotonic() + KILL_GRACE
            while time.monotonic() < grace and any(child.running() for child in stubborn):
                time.sleep(0.2)
        for child in self.children:
            if child.process is None:
                continue
            if child.running():
                _signal_group(child.pid, signal.SIGKILL)
            child.process.wait()
            # Sweep stragglers: members left in the group and subprocesses in groups of their own
            # (also those of earlier runs of a restarted child, e.g. a work horse it left behind).
            _signal_group(child.pid, signal.SIGKILL)
            for descendant in child.descendants:
                try:
                    descendant.kill()  # psutil checks the pid was not reused before signalling
                except psutil.Error:
                    pass

    def stop_local_servers(self) -> None:
        """Stop only the Postgres / Redis this run started itself."""
        if any(self.local_servers.values()):
            say("stopping the local servers this run started")
        localstack.stop(self.local_servers)

    # -- the whole run --------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, supervise until a signal, stop everything; the process exit code."""
        if not port_is_free(self.port):
            say(f"port {self.port} on {HOST} is already in use: stop what uses it or set PORT=...")
            return 1
        self.install_signal_handlers()
        try:
            self.start_local_servers()
        except localstack.LocalStackError as exc:
            say(f"could not start the local servers: {exc}")
            return 1
        exit_code = 0
        self.reset_metrics_dir()
        try:
            if not self.run_setup():
                exit_code = 0 if self.stop_requested else 1
            else:
                self.start_children()
                self.print_banner()
                exit_code = self.supervise()
        finally:
            self.stop_children()
            self.stop_local_servers()
        say("Airlock stopped." if exit_code == 0 else "Airlock stopped after an error.")
        return exit_code


def say(message: str) -> None:
    """Print one line of the supervisor's own output, marked so it stands out among the children's."""
    print(f"[run] {message}", flush=True)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the supervisor itself is killed (SIGKILL, OOM)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: a hard-killed supervisor leaves its children behind


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


# No proxies (an http_proxy in the environment must not intercept 127.0.0.1) and no redirects.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def web_answers(port: int) -> bool:
    """True when /livez, /healthz or /accounts/login/ answers without a server error (a redirect counts)."""
    for path in ("/livez", "/healthz", "/accounts/login/"):
        try:
            with _opener.open(f"http://{HOST}:{port}{path}", timeout=2) as response:
                if response.status < 400:
                    return True
        except urllib.error.HTTPError as exc:
            if exc.code < 400:
                return True
        except (urllib.error.URLError, OSError):
            return False
    return False


def main() -> int:
    """Entry point of `python -m config.run`."""
    os.chdir(BASE_DIR)
    port = int(os.environ.get("PORT") or 8000)
    return Supervisor(port).run()


if __name__ == "__main__":
    sys.exit(main())
