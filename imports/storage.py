"""Storing uploads under generated names, and reading them back as local files."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.files.base import File
from django.core.files.storage import default_storage
from django.utils import timezone

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
    today = timezone.now()
    name = f"uploads/{today:%Y/%m/%d}/{uuid.uuid4().hex}.csv"
    stored = default_storage.save(name, uploaded)
    return stored, digest.hexdigest(), size


def delete_stored(name: str) -> None:
    """Remove a stored upload (missing is fine: deletion is idempotent)."""
    if name and default_storage.exists(name):
        default_storage.delete(name)


@contextmanager
def local_path(name: str) -> Iterator[Path]:
    """A local filesystem path for a stored file (copied to a temp file for remote storages)."""
    try:
        path = Path(default_storage.path(name))
    except NotImplementedError:
        path = None
    if path is not None:
        yield path
        return
    fd, tmp = tempfile.mkstemp(suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as out, default_storage.open(name, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        yield Path(tmp)
    finally:
        os.unlink(tmp)
