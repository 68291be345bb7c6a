"""Durability of what is acknowledged: uploaded bytes reach the disk before the row that points at them
commits, and the database acknowledges a commit only once it is on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test import Client

from config.paths import RUN_DIR
from imports.models import ImportFile
from tests.conftest import api_key_for
from tests.e2e.conftest import database_url_for_tests

TRADES = b"Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Ccy,Ref\n2024-03-01 09:30:00,AAPL,Buy,10,171.25,USD,T-1\n"


def committed_rows_pointing_at(path: Path, media_root: Path) -> int:
    """ImportFile rows another session can see (so: committed) whose stored file is `path`."""
    with psycopg.connect(database_url_for_tests(), autocommit=True) as other:
        name = str(path.relative_to(media_root))
        return other.execute("SELECT count(*) FROM imports_importfile WHERE stored_name = %s", [name]).fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_an_uploads_bytes_and_directory_are_fsynced_before_its_row_commits(
    monkeypatch: pytest.MonkeyPatch, settings: Any, user: Any, redis_clean: Any
) -> None:
    """With the storage the settings configure by default; every fsync is recorded with what was committed."""
    media = Path(settings.MEDIA_ROOT)
    synced: list[tuple[str, Path, int | None]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if media in path.parents:
            kind = "dir" if path.is_dir() else "file"
            synced.append((kind, path, committed_rows_pointing_at(path, media) if kind == "file" else None))

    monkeypatch.setattr(os, "fsync", recording_fsync)
    response = Client().post(
        "/api/uploads",
        {"file": _upload("t.csv")},
        HTTP_AUTHORIZATION=f"Bearer {api_key_for(user)}",
        HTTP_HOST="127.0.0.1",
    )
    assert response.status_code == 202, response.content

    stored = media / ImportFile.objects.get().stored_name
    files = [(path, rows) for kind, path, rows in synced if kind == "file"]
    directories = [path for kind, path, _ in synced if kind == "dir"]
    assert files == [(stored, 0)], synced  # the file's data reached the disk while no row pointed at it yet
    # Then its directory entry, and the entry of every directory created for it (MEDIA_ROOT is fresh, so
    # uploads/Y/M/D all are), each in its parent: deepest first.
    assert directories == [stored.parent, *(d for d in stored.parent.parents if media in d.parents)], synced
    assert synced[0][0] == "file"
    assert committed_rows_pointing_at(stored, media) == 1  # and the row is committed after


def _upload(name: str) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, TRADES, content_type="text/csv")


@pytest.mark.django_db
def test_the_database_acknowledges_a_commit_only_once_it_is_on_disk() -> None:
    """The project-local Postgres of make run / make test runs with the durable settings (README "Durability")."""
    if connection.settings_dict["HOST"] != str(RUN_DIR):
        pytest.skip(f"DATABASE_URL points at {connection.settings_dict['HOST']!r}: its settings are its operator's")
    with connection.cursor() as cursor:
        values = {}
        for name in ("synchronous_commit", "fsync", "full_page_writes"):
            cursor.execute(f"SHOW {name}")
            values[name] = cursor.fetchone()[0]
    assert values == {"synchronous_commit": "on", "fsync": "on", "full_page_writes": "on"}
