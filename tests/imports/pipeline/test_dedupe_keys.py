"""Dedupe keys of orders: a trade id's key whole, identical fills told apart by occurrence (numbered by Postgres,
not in the worker's memory), resumable from the keys a file already used."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from imports.models import Order
from imports.targets.base import OCCURRENCES_TABLE, DedupeKeys, TargetRow, occurrences_forget
from imports.targets.orders import WRITER, order_identity
from tests.factories import uploaded_file

pytestmark = pytest.mark.django_db

FILL = {
    "account": "u1",
    "symbol": "aapl",
    "side": "BUY",
    "quantity": Decimal("10.0"),
    "price": Decimal("101.50"),
    "executed_at": datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
}


def keyed(keys: DedupeKeys, *batch: tuple[int, dict[str, Any]]) -> list[str]:
    rows = [TargetRow(line=line, values=values) for line, values in batch]
    keys.assign(rows)
    return [row.dedupe_key for row in rows]


def totals(file_id: int) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT encode(digest, 'hex'), n FROM {OCCURRENCES_TABLE} WHERE file_id = %s", [file_id])
        return dict(cursor.fetchall())


def test_identical_fills_are_numbered_in_line_order_across_batches_and_files_are_apart() -> None:
    keys = DedupeKeys(order_identity, file_id=10_001)
    # Given out of line order: numbered by line. Account case and number scale do not make another fill.
    second, first, other = keyed(keys, (5, dict(FILL)), (2, FILL), (3, {**FILL, "side": "SELL"}))
    assert first.endswith("#1") and second == first[:-1] + "2" and other.endswith("#1")
    assert first.split("#")[0] != other.split("#")[0]
    # The next batch (another transaction, maybe another session) goes on from the committed totals.
    assert keyed(keys, (7, {**FILL, "account": "U1", "quantity": Decimal("10")})) == [first[:-1] + "3"]
    assert totals(10_001) == {first[: -1 - 1]: 3, other[:-2]: 1}
    # Another file counts its own.
    assert keyed(DedupeKeys(order_identity, file_id=10_002), (2, FILL)) == [first]
    occurrences_forget(file_ids=[10_001])
    assert totals(10_001) == {} and totals(10_002) == {first[:-2]: 1}


def test_a_trade_id_key_has_no_occurrence_and_is_the_same_each_time() -> None:
    keys = DedupeKeys(order_identity, file_id=10_003)
    with_id = {**FILL, "broker_trade_id": "T-1"}
    first, again = keyed(keys, (2, with_id), (3, dict(with_id)))
    assert first == again and "#" not in first and totals(10_003) == {}


def test_a_resumed_run_goes_on_from_the_keys_the_file_already_used(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = uploaded_file(user, "fills.csv", "a,b\n1,2\n", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    used = keyed(DedupeKeys(order_identity, file_id=file.pk), (2, FILL), (3, FILL))
    Order.objects.bulk_create(
        Order(
            owner=user,
            source_file=file,
            source_line=line,
            dedupe_key=key,
            symbol="AAPL",
            side="BUY",
            quantity=10,
            price=1,
            currency="USD",
            executed_at=FILL["executed_at"],
        )  # fmt: skip
        for line, key in zip((2, 3), used, strict=True)
    )
    occurrences_forget(file_ids=[file.pk])  # as a server crash empties the unlogged table
    resumed = WRITER.keys_resumed(file_id=file.pk)
    assert keyed(resumed, (4, FILL)) == [used[0][:-1] + "3"]
