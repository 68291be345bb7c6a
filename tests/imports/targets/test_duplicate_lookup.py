"""A batch's rows that hit a conflict are looked up among the owner's earlier records by their keys
(TargetWriter.existing_by_key): through the partial unique index on (owner, key), not by reading every record of
the owner (a re-upload of an overlapping export has a conflict in every batch)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imports.targets.orders import WRITER
from tests.imports.targets.test_order_file_owner import a_file

pytestmark = pytest.mark.django_db

ORDERS = 50_000


def orders_of(owner: Any, name: str, count: int) -> int:
    """`count` orders of one file of the owner, keyed 'k<line>' (line = 2, 3...); returns the file's id."""
    file = a_file(owner, name)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO imports_order (owner_id, account, symbol, side, quantity, price, commission, currency,
                                       executed_at, broker_trade_id, source_file_id, source_line, dedupe_key,
                                       created_at)
            SELECT %s, '', 'S' || (n %% 50), 'BUY', 1, 1, 0, 'USD', '2024-01-02 00:00+00', '', %s, n, 'k' || n, now()
            FROM generate_series(2, %s + 1) AS n
            """,
            [owner.pk, file.pk, count],
        )
    return file.pk


def test_earlier_records_are_found_by_key_and_owner(user: Any, other_user: Any) -> None:
    mine = orders_of(user, "mine.csv", 300)
    orders_of(other_user, "theirs.csv", 400)  # the same keys, k2...k401: another owner's, never a duplicate

    found = WRITER.existing_by_key(owner_id=user.pk, keys=["k2", "k301", "k302", "k350", "", "k-none"])

    assert found == {"k2": (mine, 2), "k301": (mine, 301)}


def test_the_lookup_probes_the_unique_index_instead_of_reading_the_owners_records(user: Any) -> None:
    orders_of(user, "big.csv", ORDERS)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE imports_order")
    # More than 100 keys (a batch has up to 20,000): up to 100 listed constants Postgres itself sees that none is
    # empty and may use the partial index without being told; past that it may not.
    keys = [f"k{line}" for line in range(1000, 1150)]

    with CaptureQueriesContext(connection) as queries:
        found = WRITER.existing_by_key(owner_id=user.pk, keys=keys)
    (lookup,) = [q["sql"] for q in queries.captured_queries if "imports_order" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + lookup)
        explained = cursor.fetchone()[0]
    (plan,) = json.loads(explained) if isinstance(explained, str) else explained

    assert len(found) == len(keys)
    # The plan's nodes that read imports_order: one index scan of the unique index, reading only the keys' rows.
    reads = list(_nodes_on(plan["Plan"], "imports_order"))
    assert [(node["Node Type"], node.get("Index Name")) for node in reads] == [
        ("Index Scan", "order_unique_owner_trade")
    ], json.dumps(plan, indent=1)
    assert reads[0]["Actual Rows"] == len(keys)
    assert reads[0].get("Rows Removed by Filter", 0) == 0


def _nodes_on(node: dict[str, Any], table: str) -> Any:
    if node.get("Relation Name") == table:
        yield node
    for child in node.get("Plans", []):
        yield from _nodes_on(child, table)
