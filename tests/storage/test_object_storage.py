"""The upload storage on a real S3-compatible server (SeaweedFS started under var/, see tests/conftest.py).

What the rest of the product relies on: uploads land in the bucket under the configured prefix, a worker
gets a bounded, verified local copy (never the object in memory), deletes are idempotent, and every
fault of the bucket is a StorageUnavailable with a message saying what and where.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import tracemalloc
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from config.errors import StorageUnavailable, UnreadableFile
from imports.models import FileStatus, ImportBatch, ImportFile
from imports.services.retention import cleanup_staging, stored_orphans_delete
from imports.services.uploads import upload_batch_create
from imports.storage import delete_stored, local_path, store_upload
from tests.conftest import api_key_for, csv_upload

ROOT = Path(__file__).resolve().parents[2]
CSV = b"Date,Symbol,Side,Qty,Price\n2024-01-02,AAPL,BUY,10,185.5\n"


def _temp_copies() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("airlock-upload-")}


def test_the_storage_is_chosen_by_environment_variables_alone() -> None:
    env = {
        **os.environ,
        "AIRLOCK_S3_BUCKET": "trades",
        "AIRLOCK_S3_ENDPOINT_URL": "http://minio.internal:9000",
        "AIRLOCK_S3_REGION": "eu-west-3",
        "AIRLOCK_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AIRLOCK_S3_SECRET_ACCESS_KEY": "secret-example",
        "AIRLOCK_S3_PREFIX": "airlock/",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("STORAGE_BACKEND", None)
    script = (
        "import django; django.setup()\n"
        "from django.core.files.storage import default_storage as s\n"
        "print(type(s._wrapped if hasattr(s, '_wrapped') and s._wrapped else s).__name__)\n"
        "s._setup()\n"
        "print(s.bucket_name, s.endpoint_url, s.region_name, s.location, s.access_key,\n"
        "      s.client_config.s3['addressing_style'], s.key('uploads/x.csv'))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[1].split() == [
        "trades",
        "http://minio.internal:9000",
        "eu-west-3",
        "airlock",
        "AKIAEXAMPLE",
        "path",
        "airlock/uploads/x.csv",
    ]


def test_a_bad_addressing_style_or_two_storages_at_once_refuse_to_start() -> None:
    base = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    for extra, message in [
        ({"AIRLOCK_S3_BUCKET": "b", "AIRLOCK_S3_ADDRESSING_STYLE": "sideways"}, "must be path, virtual or auto"),
        ({"AIRLOCK_S3_BUCKET": "b", "STORAGE_BACKEND": "x.Y"}, "not both"),
    ]:
        result = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"],
            cwd=ROOT,
            env={**base, **extra},
            capture_output=True,
            text=True,
        )
        assert result.returncode != 0 and message in result.stderr, result.stderr[-500:]


def test_an_upload_is_stored_in_the_bucket_under_the_prefix(s3: Any) -> None:
    name, sha256, size = store_upload(csv_upload("trades.csv", CSV))
    assert name.startswith("uploads/") and name.endswith(".csv")
    assert (sha256, size) == (hashlib.sha256(CSV).hexdigest(), len(CSV))
    assert s3.keys() == [s3.key(name)]
    body = s3.bucket.client.get_object(Bucket=s3.bucket.name, Key=s3.key(name))["Body"].read()
    assert body == CSV


def test_a_worker_reads_a_verified_temporary_copy_that_is_deleted_afterwards(s3: Any) -> None:
    name, sha256, size = store_upload(csv_upload("trades.csv", CSV))
    before = _temp_copies()
    with local_path(name, size=size, sha256=sha256) as path:
        assert path.read_bytes() == CSV
        assert path.name.startswith("airlock-upload-")
        assert _temp_copies() - before == {path.name}
    assert not path.exists() and _temp_copies() == before


def test_the_copy_goes_to_the_configured_work_directory(s3: Any, settings: Any, tmp_path: Path) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "WORK_DIR": str(tmp_path)}
    name, sha256, size = store_upload(csv_upload("trades.csv", CSV))
    with local_path(name, size=size, sha256=sha256) as path:
        assert path.parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_an_object_replaced_after_the_upload_is_refused_before_anything_is_read(s3: Any) -> None:
    name, sha256, size = store_upload(csv_upload("trades.csv", CSV))
    swapped = CSV.replace(b"AAPL", b"EVIL")
    assert len(swapped) == size
    s3.bucket.client.put_object(Bucket=s3.bucket.name, Key=s3.key(name), Body=swapped)
    before = _temp_copies()
    with pytest.raises(UnreadableFile, match="no longer matches what was received"):
        with local_path(name, size=size, sha256=sha256):
            pytest.fail("the changed object was handed to the reader")
    assert _temp_copies() == before


def test_an_object_bigger_than_recorded_is_refused_and_its_partial_copy_removed(s3: Any) -> None:
    name, sha256, _size = store_upload(csv_upload("trades.csv", CSV))
    s3.bucket.client.put_object(Bucket=s3.bucket.name, Key=s3.key(name), Body=CSV * 200_000)  # ~11 MB
    before = _temp_copies()
    with pytest.raises(UnreadableFile, match=f"larger than the {len(CSV):,} bytes recorded"):
        with local_path(name, size=len(CSV), sha256=sha256):
            pytest.fail("the oversized object was handed to the reader")
    assert _temp_copies() == before


def test_copying_a_big_object_holds_at_most_a_few_megabytes_in_memory(s3: Any) -> None:
    row = b"2024-01-02,AAPL,BUY,10,185.5\n"
    payload = CSV + row * (40 * 1024 * 1024 // len(row))  # 40 MB
    name = default_storage.save("uploads/big.csv", ContentFile(payload))
    digest = hashlib.sha256(payload).hexdigest()
    del payload
    tracemalloc.start()
    try:
        with local_path(name, size=len(CSV) + len(row) * (40 * 1024 * 1024 // len(row)), sha256=digest) as path:
            _current, peak = tracemalloc.get_traced_memory()
            assert path.stat().st_size > 40_000_000
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while copying a 40 MB object"


def test_a_missing_object_is_a_readable_error(s3: Any) -> None:
    with pytest.raises(UnreadableFile, match="missing from the file storage"):
        with local_path("uploads/2024/01/02/nothing-here.csv", size=10, sha256="0" * 64):
            pytest.fail("a missing object gave a path")


def test_deleting_a_stored_upload_removes_the_object_and_is_idempotent(s3: Any) -> None:
    name, _sha, _size = store_upload(csv_upload("trades.csv", CSV))
    assert s3.keys() == [s3.key(name)]
    delete_stored(name)
    assert s3.keys() == []
    delete_stored(name)  # already gone: no error


def test_an_unreachable_bucket_is_storage_unavailable_naming_the_endpoint(s3: Any, settings: Any) -> None:
    port = closed_port()
    settings.AIRLOCK_S3 = {**settings.AIRLOCK_S3, "ENDPOINT_URL": f"http://127.0.0.1:{port}", "MAX_ATTEMPTS": 1}
    with pytest.raises(StorageUnavailable) as caught:
        store_upload(csv_upload("trades.csv", CSV))
    assert caught.value.http_status == 503 and caught.value.code == "storage_unavailable"
    assert f"127.0.0.1:{port}" in caught.value.message and "store the upload" in caught.value.message


def test_wrong_credentials_are_storage_unavailable_with_the_servers_reason(s3: Any, settings: Any) -> None:
    settings.AIRLOCK_S3 = {**settings.AIRLOCK_S3, "SECRET_ACCESS_KEY": "not-the-secret"}
    with pytest.raises(StorageUnavailable, match="SignatureDoesNotMatch"):
        store_upload(csv_upload("trades.csv", CSV))
    assert s3.keys() == []


def test_a_copy_that_cannot_fit_on_the_work_disk_is_refused_before_it_starts(s3: Any) -> None:
    name, sha256, _size = store_upload(csv_upload("trades.csv", CSV))
    before = _temp_copies()
    with pytest.raises(StorageUnavailable, match="Not enough free disk space"):
        with local_path(name, size=10**18, sha256=sha256):
            pytest.fail("copied anyway")
    assert _temp_copies() == before


def test_a_presigned_post_takes_exactly_its_key_and_its_size_and_the_server_refuses_the_rest(s3: Any) -> None:
    post = default_storage.presigned_post("uploads/direct.csv", size=len(CSV), expires=300)
    assert post["fields"]["key"] == s3.key("uploads/direct.csv")

    too_big = requests.post(post["url"], data=post["fields"], files={"file": ("a.csv", CSV + b"x")}, timeout=30)
    assert too_big.status_code == 400 and "EntityTooLarge" in too_big.text
    too_small = requests.post(post["url"], data=post["fields"], files={"file": ("a.csv", CSV[:-1])}, timeout=30)
    assert too_small.status_code == 400
    other_key = {**post["fields"], "key": s3.key("uploads/elsewhere.csv")}
    moved = requests.post(post["url"], data=other_key, files={"file": ("a.csv", CSV)}, timeout=30)
    assert moved.status_code == 403
    assert s3.keys() == []

    ok = requests.post(post["url"], data=post["fields"], files={"file": ("a.csv", CSV)}, timeout=30)
    assert ok.status_code in (200, 201, 204), ok.text
    assert s3.keys() == [s3.key("uploads/direct.csv")]
    assert default_storage.head("uploads/direct.csv") == len(CSV)


def test_many_objects_are_looked_up_at_once_each_size_in_its_place(s3: Any) -> None:
    # (A confirm of direct uploads checks every object: more objects than requests in flight at once.)
    names = [store_upload(csv_upload(f"t{n}.csv", CSV + b"x" * n))[0] for n in range(11)]
    asked = [*names[:5], "uploads/2024/01/02/never-sent.csv", *names[5:]]

    sizes = default_storage.heads(asked)

    assert sizes == [*(len(CSV) + n for n in range(5)), None, *(len(CSV) + n for n in range(5, 11))]
    assert default_storage.head(names[3]) == len(CSV) + 3
    assert default_storage.head("uploads/2024/01/02/never-sent.csv") is None


def test_looking_objects_up_in_an_unreachable_bucket_is_storage_unavailable(s3: Any, settings: Any) -> None:
    port = closed_port()
    settings.AIRLOCK_S3 = {**settings.AIRLOCK_S3, "ENDPOINT_URL": f"http://127.0.0.1:{port}", "MAX_ATTEMPTS": 1}
    with pytest.raises(StorageUnavailable, match="look up a stored upload"):
        default_storage.heads(["uploads/a.csv", "uploads/b.csv", "uploads/c.csv"])


def test_a_presigned_post_is_signed_for_the_public_endpoint_when_one_is_set(s3: Any, settings: Any) -> None:
    settings.AIRLOCK_S3 = {**settings.AIRLOCK_S3, "PUBLIC_ENDPOINT_URL": "https://files.example.com"}
    post = default_storage.presigned_post("uploads/direct.csv", size=10, expires=300)
    assert post["url"] == f"https://files.example.com/{s3.bucket.name}"


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_retention_deletes_the_objects_of_old_finished_files_and_keeps_the_rest(s3: Any, user: Any) -> None:
    _, files = upload_batch_create(owner=user, files=[csv_upload("old.csv", CSV), csv_upload("new.csv", CSV + b"\n")])
    old, new = files
    ImportFile.objects.filter(pk=old.pk).update(
        status=FileStatus.IMPORTED, updated_at=timezone.now() - timedelta(days=40)
    )
    ImportFile.objects.filter(pk=new.pk).update(status=FileStatus.IMPORTED)
    assert sorted(s3.keys()) == sorted([s3.key(old.stored_name), s3.key(new.stored_name)])

    result = cleanup_staging(days=30)
    assert result["uploads"] == 1
    assert s3.keys() == [s3.key(new.stored_name)]
    assert ImportFile.objects.get(pk=old.pk).upload_deleted_at is not None
    assert cleanup_staging(days=30)["uploads"] == 0  # idempotent: nothing left to delete


class CuttableProxy:
    """A TCP proxy in front of the S3 server that goes dead after forwarding `puts` PUT requests: a real
    network fault mid-upload (connections closed, new ones refused), not a mocked storage."""

    def __init__(self, target: str, puts: int) -> None:
        parsed = urlsplit(target)
        self.target = (parsed.hostname, parsed.port)
        self.puts_left = puts
        self.dead = False
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.dead:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_client and data.startswith(b"PUT "):
                    if self.puts_left <= 0:
                        self.dead = True
                    self.puts_left -= 1
                if self.dead:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def revive(self) -> None:
        self.dead = False
        self.puts_left = 10**6

    def close(self) -> None:
        self.server.close()


@pytest.mark.django_db
def test_the_bucket_going_away_mid_upload_refuses_the_request_and_its_leftover_is_swept_later(
    s3: Any, user: Any, settings: Any, client: Any
) -> None:
    proxy = CuttableProxy(s3.bucket.server.endpoint_url, puts=1)
    try:
        settings.AIRLOCK_S3 = {**settings.AIRLOCK_S3, "ENDPOINT_URL": proxy.url, "MAX_ATTEMPTS": 1}
        files = [csv_upload(f"{i}.csv", CSV + bytes([65 + i])) for i in range(3)]
        answer = client.post("/api/uploads", {"file": files}, HTTP_AUTHORIZATION=f"Bearer {api_key_for(user)}")
        assert answer.status_code == 503, answer.content
        body = answer.json()
        assert body["error"] == "storage_unavailable"
        assert f"bucket '{s3.bucket.name}' at {proxy.url}" in body["message"]
        assert "could not store the upload" in body["message"]
        assert not ImportFile.objects.exists() and not ImportBatch.objects.exists()
        # The first file reached the bucket before the fault, and its removal could not reach it either: no row
        # names it, so the cleanup's orphan sweep deletes it once the bucket is back.
        assert len(s3.keys()) == 1
        proxy.revive()
        assert stored_orphans_delete(older_than=timedelta(0)) == 1
        assert s3.keys() == []
    finally:
        proxy.close()


@pytest.mark.django_db
def test_the_orphan_sweep_keeps_every_object_a_file_or_an_upload_slot_names(s3: Any, user: Any) -> None:
    _, files = upload_batch_create(owner=user, files=[csv_upload("kept.csv", CSV)])
    leftover, _, _ = store_upload(ContentFile(CSV + b"x", name="leftover.csv"))
    assert stored_orphans_delete() == 0  # younger than a day: may belong to an upload still being committed
    assert stored_orphans_delete(older_than=timedelta(0)) == 1
    assert s3.keys() == [s3.key(files[0].stored_name)]
    assert not default_storage.exists(leftover)


@pytest.mark.django_db
def test_the_orphan_sweep_walks_local_disk_too(user: Any) -> None:
    _, files = upload_batch_create(owner=user, files=[csv_upload("kept.csv", CSV)])
    leftover, _, _ = store_upload(ContentFile(CSV + b"x", name="leftover.csv"))
    old = (timezone.now() - timedelta(days=2)).timestamp()
    for name in (leftover, files[0].stored_name):
        os.utime(default_storage.path(name), (old, old))
    assert stored_orphans_delete() == 1
    assert not default_storage.exists(leftover) and default_storage.exists(files[0].stored_name)


def test_storage_ready_creates_a_missing_bucket_once(s3: Any, settings: Any) -> None:
    bucket = f"ready-{os.getpid()}-{s3.prefix}".lower()[:60]
    settings.AIRLOCK_S3 = {**settings.AIRLOCK_S3, "BUCKET": bucket}
    first, again = StringIO(), StringIO()
    call_command("storage_ready", stdout=first)
    call_command("storage_ready", stdout=again)
    assert first.getvalue().strip() == f"bucket '{bucket}' at {s3.bucket.server.endpoint_url}: created"
    assert again.getvalue().strip().endswith(": exists")
    s3.bucket.client.delete_bucket(Bucket=bucket)


def test_storage_ready_on_local_disk_does_nothing(settings: Any) -> None:
    out = StringIO()
    call_command("storage_ready", stdout=out)
    assert out.getvalue().startswith("uploads are stored on local disk (")
