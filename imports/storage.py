"""Storing uploads under generated names, and reading them back as local files.

The storage is Django's default storage: MEDIA_ROOT on local disk, or an S3 bucket (imports/objectstore.py,
when AIRLOCK_S3_BUCKET is set). Readers need a local file they can read several times (encoding scan,
header, rows), so `local_path` gives the file itself on local disk, and for a remote storage a copy in a
temporary file that is bounded (never more bytes than the upload recorded), checked (the sha256 recorded
at upload: what is read is what was scanned and counted) and deleted afterwards. The copy streams: the
object is never held in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.utils import timezone

from config.errors import StorageUnavailable, UnreadableFile

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def sanitize_display_name(name: str, *, max_length: int = 255) -> str:
    """A file name fit for display only: no directories, control or bidi characters, bounded length."""
    name = name.replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in {"Cc", "Cf"})
    name = _UNSAFE.sub("", name).strip().lstrip(".") or "upload.csv"
    if len(name) > max_length:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:16] if dot else ""
        keep = max_length - len(ext) - 2
        name = f"{(stem if dot else name)[:keep]}…{'.' + ext if ext else ''}"
    return name


def store_upload(uploaded: File) -> tuple[str, str, int]:
    """Save an upload under a generated name; returns (stored_name, sha256, size)."""
    digest = hashlib.sha256()
    size = 0
    for chunk in uploaded.chunks():
        digest.update(chunk)
        size += len(chunk)
    uploaded.seek(0)
    name = new_upload_name()
    try:
        stored = default_storage.save(name, uploaded)
    except BaseException:
        # A write that failed part-way (disk full) leaves no partial file behind; the save's own error is
        # what the caller hears, also when the storage cannot be reached to clean up either.
        with contextlib.suppress(Exception):
            delete_stored(name)
        raise
    return stored, digest.hexdigest(), size


def new_upload_name() -> str:
    """A fresh storage name for an upload (the same scheme for form and direct uploads)."""
    return f"uploads/{timezone.now():%Y/%m/%d}/{uuid.uuid4().hex}.csv"


def stored_exists(name: str) -> bool:
    """Whether the stored upload is still there (retention deletes uploads past AIRLOCK_RETENTION_DAYS)."""
    return bool(name) and default_storage.exists(name)


def delete_stored(name: str) -> None:
    """Remove a stored upload (missing is fine: deletion is idempotent)."""
    if name and default_storage.exists(name):
        default_storage.delete(name)


def stored_older_than(prefix: str, cutoff: datetime) -> Iterator[str]:
    """Names of stored uploads under `prefix` last written before `cutoff` (the bucket's listing, or a walk
    of MEDIA_ROOT): what the orphan sweep of the cleanup looks at."""
    iter_stored = getattr(default_storage, "iter_stored", None)
    if iter_stored is not None:
        for name, modified in iter_stored(prefix):
            if modified < cutoff:
                yield name
        return
    try:
        root = Path(default_storage.path(""))
    except NotImplementedError:  # another remote storage: no listing we can rely on
        return
    base = root / prefix
    if not base.is_dir():
        return
    stamp = cutoff.timestamp()
    for directory, _, names in os.walk(base):
        for name in names:
            path = Path(directory) / name
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < stamp:
                    yield path.relative_to(root).as_posix()


@contextmanager
def local_path(name: str, *, size: int | None = None, sha256: str | None = None) -> Iterator[Path]:
    """A local filesystem path for a stored upload (a bounded, verified temporary copy for remote storages).

    `size` and `sha256` are what the upload recorded: the copy stops past `size` bytes (or the per-file
    limit when unknown) and must end with that sha256, else UnreadableFile says the stored object changed.
    """
    try:
        path = Path(default_storage.path(name))
    except NotImplementedError:
        path = None
    if path is not None:
        yield path
        return
    limit = size if size is not None else settings.AIRLOCK["MAX_FILE_BYTES"]
    work_dir = settings.AIRLOCK["WORK_DIR"] or tempfile.gettempdir()
    _check_free_space(work_dir, limit)
    fd, tmp = tempfile.mkstemp(prefix="airlock-upload-", suffix=".csv", dir=work_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            copied, digest = _copy_stored(name, out, limit)
        if (size is not None and copied != size) or (sha256 and digest != sha256):
            raise UnreadableFile(
                f"The stored upload no longer matches what was received ({copied:,} bytes, sha256 {digest[:12]}…; "
                f"recorded: {size if size is not None else '?'} bytes, {(sha256 or '?')[:12]}…), so nothing was read "
                "from it. Upload the file again.",
                details={"stored_name": name},
            )
        yield Path(tmp)
    finally:
        os.unlink(tmp)


def _copy_stored(name: str, out: BinaryIO, limit: int) -> tuple[int, str]:
    """Stream a stored upload into `out`, at most `limit` bytes; returns (size, sha256)."""

    def too_big(limit: int) -> UnreadableFile:
        return UnreadableFile(
            f"The stored upload is larger than the {limit:,} bytes recorded for it, so nothing was read from it.",
            details={"stored_name": name, "limit": limit},
        )

    try:
        copy_to = getattr(default_storage, "copy_to", None)
        if copy_to is not None:  # the S3 storage streams the object itself
            return copy_to(name, out, limit=limit, too_big=too_big)
        digest = hashlib.sha256()
        copied = 0
        with default_storage.open(name, "rb") as src:
            while chunk := src.read(1 << 20):
                copied += len(chunk)
                if copied > limit:
                    raise too_big(limit)
                digest.update(chunk)
                out.write(chunk)
        return copied, digest.hexdigest()
    except FileNotFoundError as exc:
        raise UnreadableFile(
            "The stored upload is missing from the file storage (deleted outside Airlock?), so the file cannot be "
            "read. Upload it again.",
            details={"stored_name": name},
        ) from exc


def _check_free_space(directory: str, needed: int) -> None:
    """Refuse to start a copy that cannot fit (a full disk mid-copy helps nobody); retried later."""
    free = shutil.disk_usage(directory).free
    if free < needed + 64 * 1024 * 1024:
        raise StorageUnavailable(
            f"Not enough free disk space in {directory} to copy the stored upload ({needed:,} bytes needed, "
            f"{free:,} free). Set AIRLOCK_WORK_DIR to a bigger disk.",
            details={"storage": "work_dir", "directory": directory, "needed": needed, "free": free},
        )
