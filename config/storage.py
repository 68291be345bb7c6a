"""The default storage of uploads: Django's FileSystemStorage, made durable.

An upload is acknowledged (202) once its ImportFile row commits, and that row points at the stored bytes.
After a power loss, a row whose file is empty or missing could never be repaired: the same bytes uploaded
again are "the existing import" (unique owner + sha256). So `_save` flushes the file's data to disk
(fsync) and then the directory entries that make it reachable (the file's directory, and every directory
it had to create), before it returns the name, which is before the caller can write the row.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.files.storage import FileSystemStorage


class DurableFileSystemStorage(FileSystemStorage):
    """FileSystemStorage whose save() returns only once the file and its directory entries are on disk."""

    def _save(self, name: str, content: Any) -> str:
        directory = Path(self.path(name)).parent
        created = _missing_directories(directory)  # the ones this save is about to create
        name = super()._save(name, content)
        self.fsync_file(Path(self.path(name)))
        # The file's own entry lives in its directory; a directory created for it lives in its parent.
        for path in dict.fromkeys([directory, *(new.parent for new in created)]):
            self.fsync_directory(path)
        return name

    def fsync_file(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def fsync_directory(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _missing_directories(directory: Path) -> list[Path]:
    """The directory and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    return missing
