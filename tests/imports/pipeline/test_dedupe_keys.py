"""Dedupe keys of orders: a trade id's key whole, identical fills told apart by occurrence (numbered by Postgres,
not in the worker's memory), resumable from the keys a file already used."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from imports.models import FileStatus, ImportBatch, ImportFile, Order
from imports.targets.base import OCCURRENCES_TABLE, DedupeKeys, TargetRow, duplicate_errors, occurrences_forget
from imports.targets.orders import WRITER, order_digest, order_identity
from staging.models import StagedRow, StagedStatus
from tests.factories import uploaded_file
from tests.imports.pipeline.test_fastpath import approved_bench_format

pytestmark = pytest.mark.django_db

FILL = {
    "account": "u1",
    "symbol": "aapl",
    "side": "BUY",
    "quantity": Decimal("10.0"),
    "price": Decimal("101.50"),
    "executed_at": datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
}


def order_keys(file_id: int) -> DedupeKeys:
    return DedupeKeys(order_identity, file_id=file_id, digest=order_digest)


def keyed(keys: DedupeKeys, *batch: tuple[int, dict[str, Any]]) -> list[str]:
    rows = [TargetRow(line=line, values=values) for line, values in batch]
    keys.assign(rows)
    return [row.dedupe_key for row in rows]


def totals(file_id: int) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT encode(digest, 'hex'), n FROM {OCCURRENCES_TABLE} WHERE file_id = %s", [file_id])
        return dict(cursor.fetchall())


def test_identical_fills_are_numbered_in_line_order_across_batches_and_files_are_apart() -> None:
    keys = order_keys(10_001)
    # Given out of line order: numbered by line. Account case and number scale do not make another fill.
    second, first, other = keyed(keys, (5, dict(FILL)), (2, FILL), (3, {**FILL, "side": "SELL"}))
    assert first.endswith("#1") and second == first[:-1] + "2" and other.endswith("#1")
    assert first.split("#")[0] != other.split("#")[0]
    # The next batch (another transaction, maybe another session) goes on from the committed totals.
    assert keyed(keys, (7, {**FILL, "account": "U1", "quantity": Decimal("10")})) == [first[:-1] + "3"]
    assert totals(10_001) == {first[: -1 - 1]: 3, other[:-2]: 1}
    # Another file counts its own.
    assert keyed(order_keys(10_002), (2, FILL)) == [first]
    occurrences_forget(file_ids=[10_001])
    assert totals(10_001) == {} and totals(10_002) == {first[:-2]: 1}


def test_a_trade_id_key_has_no_occurrence_and_is_the_same_each_time() -> None:
    keys = order_keys(10_003)
    with_id = {**FILL, "broker_trade_id": "T-1"}
    first, again = keyed(keys, (2, with_id), (3, dict(with_id)))
    assert first == again and "#" not in first and totals(10_003) == {}


def test_a_resumed_run_goes_on_from_the_keys_the_file_already_used(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = uploaded_file(user, "fills.csv", "a,b\n1,2\n", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    used = keyed(order_keys(file.pk), (2, FILL), (3, FILL))
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


def test_an_order_key_starts_with_the_trades_utc_date_so_a_files_keys_sit_together() -> None:
    keys = order_keys(10_004)
    late_evening_in_new_york = {**FILL, "executed_at": datetime(2024, 3, 1, 21, 0, tzinfo=ZoneInfo("America/New_York"))}
    morning, evening, next_day, traded = keyed(
        keys,
        (2, FILL),
        (3, {**FILL, "executed_at": datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC)}),
        (4, late_evening_in_new_york),  # 02:00 UTC on the 2nd
        (5, {**FILL, "broker_trade_id": "T-9"}),
    )
    assert [key[:8] for key in (morning, evening, next_day, traded)] == ["20240301", "20240301", "20240302", "20240301"]
    # The rest is the first 128 bits of the identity's sha256: 40 hex digits in all, '#n' for a fill.
    identity = order_identity(FILL)
    assert morning == "20240301" + hashlib.sha256(identity.encode()).hexdigest()[:32] + "#1"
    assert re.fullmatch(r"[0-9a-f]{40}", traded) and len(morning) == 42


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_existing_orders_and_their_duplicates_the_keys_the_pipeline_computes_now(
    user: Any,
) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("imports", "0015_file_occurrences")])
    try:
        fmt = approved_bench_format("keys-by-date")
        batch = ImportBatch.objects.create(owner=user)
        files = [
            ImportFile.objects.create(
                batch=batch,
                owner=user,
                original_name=f"{n}.csv",
                stored_name=f"s{n}",
                sha256=f"h{n}",
                size=1,
                format=fmt,
                status=FileStatus.IMPORTED,
            )  # fmt: skip
            for n in range(2)
        ]
        traded = {**FILL, "broker_trade_id": "T-7", "executed_at": datetime(2023, 12, 31, 23, 30, tzinfo=UTC)}
        old = {  # the keys as the code before wrote them: the identity's whole sha256
            2: hashlib.sha256(order_identity(FILL).encode()).hexdigest() + "#1",
            3: hashlib.sha256(order_identity(traded).encode()).hexdigest(),
            4: "",  # de-duplication off
        }
        for line, values in ((2, FILL), (3, traded), (4, FILL)):
            Order.objects.create(
                owner=user, source_file=files[0], source_line=line, dedupe_key=old[line], currency="USD",
                **{**values, "symbol": "AAPL"},
            )  # fmt: skip
        # The second file had the fill again: staged as a duplicate, with the key it collided with.
        StagedRow.objects.create(
            file=files[1], format=fmt, line=2, raw=[], status=StagedStatus.DUPLICATE,
            errors=duplicate_errors(old[2], (files[0].pk, 2)),
        )  # fmt: skip
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    keys = dict(Order.objects.filter(source_file=files[0]).values_list("source_line", "dedupe_key"))
    assert keys == {
        2: order_digest(FILL, order_identity(FILL)) + "#1",
        3: "20231231" + hashlib.sha256(order_identity(traded).encode()).hexdigest()[:32],
        4: "",
    }
    assert keys[3] == order_digest(traded, order_identity(traded))
    assert StagedRow.objects.get(file=files[1]).errors[0]["dedupe_key"] == keys[2]
