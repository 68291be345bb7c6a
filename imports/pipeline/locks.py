"""Postgres advisory locks: one process works on a file at a time (staging, migration, rollback).

Session-level locks are released by Postgres when the holder's connection ends, so a worker killed
with SIGKILL (or whose backend was terminated) never leaves a file locked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import Error, connection

# The first key of the two-int form namespaces our locks away from retention's single-key lock.
FILE_LOCK_NAMESPACE = 0x4149_4631  # "AIF1"
# Held, on top of the file's lock, by a rollback for its whole run: a second rollback of the same file can
# then say that a rollback (not a worker) is at it.
ROLLBACK_LOCK_NAMESPACE = 0x4149_5242  # "AIRB"


@contextmanager
def _try_lock(namespace: int, file_id: int) -> Iterator[bool]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, file_id])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired and connection.connection is not None and not connection.needs_rollback:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, file_id])
            except Error:
                # The connection died, and Postgres released the lock with the session: drop it.
                connection.close()


@contextmanager
def file_lock(file_id: int) -> Iterator[bool]:
    """Try to take the file's lock for this session; yields False (and does nothing) when another holds it."""
    with _try_lock(FILE_LOCK_NAMESPACE, file_id) as acquired:
        yield acquired


@contextmanager
def rollback_lock(file_id: int) -> Iterator[bool]:
    """Try to take the lock that marks a rollback of the file running; False when another rollback holds it."""
    with _try_lock(ROLLBACK_LOCK_NAMESPACE, file_id) as acquired:
        yield acquired


def file_lock_held_elsewhere(file_id: int) -> bool:
    """True when another session holds the file's lock (someone is staging/migrating/rolling it back)."""
    return file_lock_held(file_id, elsewhere=True)


def file_lock_held(file_id: int, *, elsewhere: bool = False) -> bool:
    """True when a session (another one than this, with `elsewhere`) holds the file's lock."""
    other = " AND pid <> pg_backend_pid()" if elsewhere else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
            f"AND objid = %s AND objsubid = 2 AND granted{other})",
            [FILE_LOCK_NAMESPACE, file_id],
        )
        return bool(cursor.fetchone()[0])
