"""What every target's writer provides, and the parts they share (rows, dedupe keys, duplicate reports).

A target is a production table an upload is written into. Its schema (fields, kinds, synonyms) lives in
`formats/targets.py`; its writer is one module beside this one (`orders.py`), registered in
`imports/targets/__init__.py`. The pipeline reaches a table only through its writer.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection, models

# Characters that make a value markup or script in a page or a spreadsheet; no ticker, ISIN or instrument
# name holds them. The SQL fast path refuses the same set (imports/pipeline/fastpath.py).
MARKUP_CHARACTERS = frozenset('<>"`{}\\')


@dataclass
class TargetRow:
    """A converted row ready to write: its line in the file, its values, and its dedupe key ('' if none)."""

    line: int
    values: dict[str, Any]
    dedupe_key: str = ""


Identity = Callable[[dict[str, Any]], str]


class DedupeKeys:
    """Gives each row its dedupe key from its target's identity. An identity that starts with 'id|' (the
    source's own id) is the key whole; otherwise identical rows inside one file are told apart by occurrence."""

    def __init__(self, identity: Identity, seen: Counter | None = None):
        self.identity = identity
        self.seen: Counter = seen or Counter()

    def key_for(self, values: dict[str, Any]) -> str:
        identity = self.identity(values)
        digest = hashlib.sha256(identity.encode()).hexdigest()
        if identity.startswith("id|"):
            return digest
        return self.key_for_digest(digest)

    def key_for_digest(self, digest: str) -> str:
        """The next occurrence of a fingerprint digest in this file ('<digest>#1', '#2'...). The counter
        keeps the 32 bytes of each digest, not its 64 hex characters: it holds one entry per distinct row
        of the file (measured: 117 instead of 152 MB for 1,000,000 fills)."""
        raw = bytes.fromhex(digest)
        self.seen[raw] += 1
        return f"{digest}#{self.seen[raw]}"

    @classmethod
    def resume(cls, identity: Identity, keys: list[str]) -> DedupeKeys:
        """Rebuild the occurrence counter from the keys a crashed run already used for this file."""
        seen: Counter = Counter()
        for key in keys:
            if "#" in key:
                digest, _, occurrence = key.rpartition("#")
                raw = bytes.fromhex(digest)
                seen[raw] = max(seen[raw], int(occurrence))
        return cls(identity, seen)


def duplicate_errors(key: str, source: tuple[int, int]) -> list[dict[str, Any]]:
    """The staged row errors of a row whose record the owner already has at (file id, line)."""
    return [
        {
            "field": None,
            "value": "",
            "dedupe_key": key,
            "duplicate_of_file": source[0],
            "duplicate_of_line": source[1],
            "message": f"duplicate of line {source[1]} of import file {source[0]}",
        }
    ]


@dataclass(frozen=True)
class TargetWriter:
    """How the pipeline validates and writes the rows of one target.

    `model` is the production table: it has `owner`, `source_file`, `source_line` and a `dedupe_key`
    unique per owner, so that a re-run is idempotent on (file, line) and a record the owner already has is
    reported as a duplicate. `insert` writes valid rows in one statement and returns the lines it wrote
    (ON CONFLICT DO NOTHING); `fast_path` says whether imports/pipeline/fastpath.py can write it in SQL;
    `after_file` runs once a file's rows are written (reconciliation of orders against instruments).
    """

    name: str
    model: type[models.Model]
    validate: Callable[[dict[str, Any]], list[dict[str, Any]]]
    identity: Identity
    insert: Callable[..., set[int]]
    fast_path: bool = False
    # What follows a file's rows once they are all written (owner_id=, file_id=), before its outcome is settled.
    after_file: Callable[..., Any] | None = None

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    def keys(self) -> DedupeKeys:
        """A fresh occurrence counter for one file."""
        return DedupeKeys(self.identity)

    def keys_resumed(self, *, file_id: int) -> DedupeKeys:
        """The occurrence counter of a file a crashed run already wrote part of: rebuilt from the keys it used
        (rows written, and rows staged as duplicates)."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT dedupe_key FROM {self.table} WHERE source_file_id = %s AND dedupe_key LIKE '%%#%%'
                UNION ALL
                SELECT errors -> 0 ->> 'dedupe_key' FROM staging_stagedrow
                 WHERE file_id = %s AND status = 'DUPLICATE' AND errors -> 0 ->> 'dedupe_key' LIKE '%%#%%'
                """,
                [file_id, file_id],
            )
            return DedupeKeys.resume(self.identity, [key for (key,) in cursor.fetchall()])

    def existing_by_key(self, *, owner_id: int, keys: list[str]) -> dict[str, tuple[int, int]]:
        """{dedupe_key: (source file id, source line)} of the owner's records with these keys."""
        if not keys:
            return {}
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT dedupe_key, source_file_id, source_line FROM {self.table} "
                "WHERE owner_id = %s AND dedupe_key = ANY(%s)",
                [owner_id, keys],
            )
            return {key: (file_id, line) for key, file_id, line in cursor.fetchall()}

    def delete_for_file(self, *, file_id: int) -> int:
        """Delete every record this file wrote (in the caller's transaction); returns how many."""
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {self.table} WHERE source_file_id = %s", [file_id])
            return cursor.rowcount
