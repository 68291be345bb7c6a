"""What every target's writer provides, and the parts they share (rows, dedupe keys, duplicate reports).

A target is a production table an upload is written into. Its schema (fields, kinds, synonyms) lives in
`formats/targets.py`; its writer is one module beside this one (`orders.py`), registered in
`imports/targets/__init__.py`. The pipeline reaches a table only through its writer.
"""

from __future__ import annotations

import hashlib
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


def identity_digest(values: dict[str, Any], identity: str) -> str:
    """A record's digest when its target says nothing more about it: the sha256 of its identity, in hex."""
    return hashlib.sha256(identity.encode()).hexdigest()


Digest = Callable[[dict[str, Any], str], str]


# Per file and fingerprint digest, how many rows of the file had it so far (migration 0015: UNLOGGED, no WAL; a
# server crash empties it, and every run of a file rebuilds its rows first: keys_resumed).
OCCURRENCES_TABLE = "imports_fileoccurrence"


# The clause that adds a `batch(digest, n)` of hex digests to the file's totals (%(file_id)s) and returns
# `totals(digest, n)`: each digest's count after this batch.
OCCURRENCES_ADD = f"""totals AS (
            INSERT INTO {OCCURRENCES_TABLE} AS o (file_id, digest, n)
            SELECT %(file_id)s, decode(digest, 'hex'), n FROM batch
            ON CONFLICT (file_id, digest) DO UPDATE SET n = o.n + EXCLUDED.n
            RETURNING encode(o.digest, 'hex') AS digest, o.n
        )"""


def occurrences_sql(source: str) -> str:
    """WITH-clauses that number the (line, digest) rows `source` selects ('<digest>#<n>', n counted in line
    order after the file's earlier rows, %(file_id)s) and record the new totals, in the caller's transaction:
    they end with `keyed(line, key)`, for the caller's own clauses and SELECT. The next batch of the file (in
    this session or another one, after this one commits) goes on from those totals."""
    return f"""
        WITH pending AS ({source}),
        ranked AS (SELECT line, digest, row_number() OVER (PARTITION BY digest ORDER BY line) AS k FROM pending),
        batch AS (SELECT digest, count(*)::int AS n FROM pending GROUP BY digest),
        {OCCURRENCES_ADD},
        keyed AS (
            SELECT r.line, r.digest || '#' || (t.n - b.n + r.k) AS key
            FROM ranked r JOIN batch b USING (digest) JOIN totals t USING (digest)
        )"""


def occurrences_forget(*, file_ids: list[int]) -> None:
    """These files have ended: their occurrence totals are not needed any more (a re-run rebuilds them)."""
    if file_ids:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {OCCURRENCES_TABLE} WHERE file_id = ANY(%s::bigint[])", [file_ids])


class DedupeKeys:
    """Gives each row its dedupe key from its target's identity. An identity that starts with 'id|' (the
    source's own id) is the key whole; otherwise identical rows inside one file are told apart by occurrence
    ('<digest>#1', '#2'...), numbered by Postgres (occurrences_sql) in the transaction that writes them. The
    worker keeps no per-file state: a Counter of a 1,000,000-row file's digests held ~120 MB of its memory."""

    def __init__(self, identity: Identity, *, file_id: int, digest: Digest = identity_digest):
        self.identity = identity
        self.digest = digest
        self.file_id = file_id

    def digests(self, rows: list[TargetRow]) -> list[tuple[int, str]]:
        """Give each row its identity's digest as its key; returns the (line, digest) of the rows whose key still
        needs its occurrence number (a fingerprint; a source's own id is the key whole)."""
        numbered: list[tuple[int, str]] = []
        for row in rows:
            identity = self.identity(row.values)
            row.dedupe_key = self.digest(row.values, identity)
            if not identity.startswith("id|"):
                numbered.append((row.line, row.dedupe_key))
        return numbered

    def assign(self, rows: list[TargetRow]) -> None:
        """Set the keys of one batch's rows (numbered in line order); inside the batch's transaction."""
        numbered = self.digests(rows)
        if not numbered:
            return
        lines, digests = (list(column) for column in zip(*numbered, strict=True))
        with connection.cursor() as cursor:
            cursor.execute(
                occurrences_sql("SELECT * FROM unnest(%(lines)s::int[], %(digests)s::text[]) AS p(line, digest)")
                + " SELECT line, key FROM keyed",
                {"file_id": self.file_id, "lines": lines, "digests": digests},
            )
            keys = dict(cursor.fetchall())
        for row in rows:
            row.dedupe_key = keys.get(row.line, row.dedupe_key)


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
    # A record's digest (hex) from its values and identity (orders: the trade's date first, so that the unique
    # index is written where that date's keys are).
    digest: Digest = identity_digest
    # What follows a file's rows once they are all written (owner_id=, file_id=), before its outcome is settled.
    after_file: Callable[..., Any] | None = None

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    def keys_resumed(self, *, file_id: int, rebuild: bool = True) -> DedupeKeys:
        """The dedupe keys of a file's run: its occurrence totals rebuilt from the keys earlier runs used (rows
        written, and rows staged as duplicates), so a re-run after a crash goes on where they stopped.
        `rebuild=False`: no earlier run committed anything of the file (it has no totals to rebuild)."""
        if not rebuild:
            return DedupeKeys(self.identity, file_id=file_id, digest=self.digest)
        # Both statements in one round trip (one query message: Postgres runs it as one transaction, or within the
        # caller's): at the start of every file, where BEGIN, DELETE, INSERT and COMMIT were four (~0.5 ms).
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                DELETE FROM {OCCURRENCES_TABLE} WHERE file_id = %s;
                INSERT INTO {OCCURRENCES_TABLE} (file_id, digest, n)
                SELECT %s, decode(split_part(key, '#', 1), 'hex'), max(split_part(key, '#', 2)::int)
                FROM (
                    SELECT dedupe_key AS key FROM {self.table}
                     WHERE source_file_id = %s AND dedupe_key LIKE '%%#%%'
                    UNION ALL
                    SELECT errors -> 0 ->> 'dedupe_key' FROM staging_stagedrow
                     WHERE file_id = %s AND status = 'DUPLICATE' AND errors -> 0 ->> 'dedupe_key' LIKE '%%#%%'
                ) AS used
                GROUP BY 2
                """,
                [file_id, file_id, file_id, file_id],
            )
        return DedupeKeys(self.identity, file_id=file_id, digest=self.digest)

    def existing_by_key(self, *, owner_id: int, keys: list[str]) -> dict[str, tuple[int, int]]:
        """{dedupe_key: (source file id, source line)} of the owner's records with these keys."""
        keys = [key for key in keys if key]  # (an empty key is no identity: never a duplicate; callers pass any)
        if not keys:
            return {}
        # `dedupe_key <> ''` is the predicate of the orders' partial unique index (owner, key): without it Postgres
        # cannot use that index (it does not know the keys are not empty) and read every record of the owner instead,
        # for each batch with a conflict (1M orders: a parallel scan of the table; 20,000 keys probed: ~60 ms).
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT dedupe_key, source_file_id, source_line FROM {self.table} "
                "WHERE owner_id = %s AND dedupe_key <> '' AND dedupe_key = ANY(%s)",
                [owner_id, keys],
            )
            return {key: (file_id, line) for key, file_id, line in cursor.fetchall()}

    def delete_for_file(self, *, file_id: int) -> int:
        """Delete every record this file wrote (in the caller's transaction); returns how many."""
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {self.table} WHERE source_file_id = %s", [file_id])
            return cursor.rowcount
