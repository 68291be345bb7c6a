"""The target schema registry: the 'orders' target as docs/INTERFACES.md describes it."""

from __future__ import annotations

import dataclasses

import pytest

from config.errors import MappingError
from formats.targets import KINDS, TARGETS, Target, TargetField, get_target


def test_it_defines_the_orders_fields_in_the_documented_order() -> None:
    target = get_target("orders")
    assert [field.name for field in target.fields] == [
        "account",
        "symbol",
        "side",
        "quantity",
        "price",
        "commission",
        "currency",
        "executed_at",
        "broker_trade_id",
    ]


def test_it_gives_each_orders_field_its_documented_kind_and_requiredness() -> None:
    target = get_target("orders")
    expected = {
        "account": ("text", False),
        "symbol": ("text", True),
        "side": ("side", True),
        "quantity": ("decimal", True),
        "price": ("decimal", True),
        "commission": ("decimal", False),
        "currency": ("currency", True),
        "executed_at": ("datetime", True),
        "broker_trade_id": ("text", False),
    }
    assert {field.name: (field.kind, field.required) for field in target.fields} == expected


def test_it_lists_the_required_fields() -> None:
    names = [field.name for field in get_target("orders").required_fields()]
    assert names == ["symbol", "side", "quantity", "price", "currency", "executed_at"]


def test_it_finds_a_field_by_name() -> None:
    field = get_target("orders").field("price")
    assert isinstance(field, TargetField)
    assert field.label == "Price"


def test_it_rejects_an_unknown_field_naming_the_known_ones() -> None:
    with pytest.raises(MappingError) as caught:
        get_target("orders").field("colour")
    assert "colour" in caught.value.message
    assert "symbol" in caught.value.message


def test_it_rejects_an_unknown_target_naming_the_known_ones() -> None:
    with pytest.raises(MappingError) as caught:
        get_target("invoices")
    assert "invoices" in caught.value.message
    assert "orders" in caught.value.message


def test_it_registers_every_target_under_its_own_name() -> None:
    assert all(isinstance(target, Target) and target.name == name for name, target in TARGETS.items())


def test_it_uses_only_known_kinds() -> None:
    assert all(field.kind in KINDS for target in TARGETS.values() for field in target.fields)


def test_it_keeps_targets_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_target("orders").name = "trades"  # type: ignore[misc]


def test_it_has_multilingual_synonyms_for_the_quantity() -> None:
    synonyms = set(get_target("orders").field("quantity").synonyms)
    assert {
        "qty",
        "shares",
        "antal",
        "aantal",
        "počet",
        "quantité",
        "anzahl",
        "cantidad",
        "no of shares",
    } <= synonyms


def test_it_has_broker_specific_synonyms_seen_in_real_exports() -> None:
    target = get_target("orders")
    assert "t price" in target.field("price").synonyms
    assert "comm/fee" in target.field("commission").synonyms
    assert "currencyprimary" in target.field("currency").synonyms
    assert "date/time" in target.field("executed_at").synonyms
    assert "ibexecid" in target.field("broker_trade_id").synonyms
    assert "clientaccountid" in target.field("account").synonyms
    assert "typ av transaktion" in target.field("side").synonyms
    assert "värdepapper" in target.field("symbol").synonyms


def test_it_gives_every_field_a_label_a_help_text_and_synonyms() -> None:
    for field in get_target("orders").fields:
        assert field.label and field.help and field.synonyms
