"""Fixtures for the hostile-input and access-control tests: owners with data, tokens, a real clamd."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from imports.models import ImportFile
from imports.services.uploads import review_approve
from tests.conftest import api_key_for
from tests.imports.pipeline.test_pipeline import TRADES, upload

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def bearer(user: Any) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {api_key_for(user)}"}


@pytest.fixture
def owned_files(user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any) -> dict[str, Any]:
    """`user` owns a file waiting for approval and a migrated file with orders and one invalid row."""
    imported = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=imported.format_id, actor=reviewer)
    run_jobs()
    pending = upload(
        user,
        text="When,Sym,Dir,Qty,Px\n2024-01-02,IBM,B,1,100\n",
        name="pending.csv",
        run_jobs=run_jobs,
        capture=django_capture_on_commit_callbacks,
    )
    imported.refresh_from_db()
    assert imported.status == "PARTIAL" and pending.status == "PENDING_APPROVAL"
    return {"imported": imported, "pending": pending, "batch": imported.batch_id, "trades": TRADES}


@pytest.fixture
def staff_without_perms(django_user_model: Any) -> Any:
    """Staff (admin access) and view permissions, but not approve/reject nor rollback."""
    staff = django_user_model.objects.create_user(username="staff-only", password="pw-staff-1", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label__in=["formats", "imports", "staging"], codename__startswith="view_"
        )
    )
    staff.user_permissions.add(Permission.objects.get(content_type__app_label="formats", codename="change_csvformat"))
    return django_user_model.objects.get(pk=staff.pk)


def file_of(pk: int) -> ImportFile:
    return ImportFile.objects.get(pk=pk)


# --------------------------------------------------------------------------------------------------
# A real clamd with a locally generated signature for the EICAR test string (no freshclam, no internet).


def _clamd_binary() -> str | None:
    found = shutil.which("clamd") or (Path("/usr/sbin/clamd").exists() and "/usr/sbin/clamd") or None
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    # Root on Debian: install it, as the issue asks (the package ships no signatures; we make our own).
    subprocess.run(
        ["apt-get", "install", "-y", "clamav-daemon"],
        check=False,
        capture_output=True,
        timeout=600,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("clamd") or (Path("/usr/sbin/clamd").exists() and "/usr/sbin/clamd") or None


class Clamd:
    def __init__(self, binary: str, root: Path, stream_max: str = "2M") -> None:
        self.root = root
        self.socket = str(root / "clamd.sock")
        db = root / "db"
        db.mkdir(parents=True, exist_ok=True)
        # A body signature (type 0 = any file, offset *) so EICAR is found anywhere inside a CSV.
        (db / "airlock-test.ndb").write_text(f"Airlock.Test.EICAR:0:*:{EICAR.hex()}\n")
        (root / "clamd.conf").write_text(
            f"LocalSocket {self.socket}\nDatabaseDirectory {db}\nForeground yes\n"
            f"StreamMaxLength {stream_max}\nLogFile {root / 'clamd.log'}\n"
        )
        self.log = (root / "clamd.out").open("w")
        self.process = subprocess.Popen(
            [binary, "-c", str(root / "clamd.conf")], stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"clamd exited: {(root / 'clamd.out').read_text()[-2000:]}")
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(self.socket)
                    probe.sendall(b"zPING\0")
                    if probe.recv(64).startswith(b"PONG"):
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("clamd did not answer PING within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="session")
def clamd(tmp_path_factory: Any) -> Iterator[Clamd]:
    binary = _clamd_binary()
    if binary is None:
        reason = (
            "clamd is not installed and cannot be installed here (needs root and apt-get: "
            "`apt-get install -y clamav-daemon`)"
        )
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    # A short path: unix socket paths are limited to ~100 characters.
    root = Path(tmp_path_factory.mktemp("clamd"))
    server = Clamd(binary, root)
    yield server
    server.stop()
