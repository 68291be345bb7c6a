"""Dedupe keys of orders: a trade id's key whole, identical fills told apart by occurrence, resumable."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from imports.targets.base import DedupeKeys
from imports.targets.orders import order_identity

FILL = {
    "account": "u1",
    "symbol": "aapl",
    "side": "BUY",
    "quantity": Decimal("10.0"),
    "price": Decimal("101.50"),
    "executed_at": datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
}


def test_identical_fills_are_counted_in_order_and_a_resumed_counter_goes_on_from_the_keys_used() -> None:
    keys = DedupeKeys(order_identity)
    first, second, other = keys.key_for(FILL), keys.key_for(dict(FILL)), keys.key_for({**FILL, "side": "SELL"})
    assert first.endswith("#1") and second == first[:-1] + "2" and other.endswith("#1")
    assert first.split("#")[0] != other.split("#")[0]
    # Account case and number scale do not make another fill.
    assert keys.key_for({**FILL, "account": "U1", "quantity": Decimal("10")}) == first[:-1] + "3"
    resumed = DedupeKeys.resume(order_identity, [first, second, other])
    assert resumed.key_for(FILL) == first[:-1] + "3"
    assert resumed.key_for({**FILL, "side": "SELL"}) == other[:-1] + "2"
    # The counter keeps raw 32-byte digests (one entry per distinct fill of a big file).
    assert all(isinstance(digest, bytes) and len(digest) == 32 for digest in resumed.seen)


def test_a_trade_id_key_has_no_occurrence_and_is_the_same_each_time() -> None:
    keys = DedupeKeys(order_identity)
    with_id = {**FILL, "broker_trade_id": "T-1"}
    assert keys.key_for(with_id) == keys.key_for(dict(with_id))
    assert "#" not in keys.key_for(with_id) and not keys.seen
