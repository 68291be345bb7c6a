"""An order's file and owner are one foreign key in Postgres (migration 0017): (source_file_id, owner_id) refers to
the file's (id, owner_id), checked at commit like the two keys it replaced; a staged row's file and format likewise
(staging migration 0002)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from imports.models import FileStatus, ImportBatch, ImportFile, Order
from staging.models import StagedRow
from tests.imports.pipeline.test_fastpath import approved_bench_format

pytestmark = pytest.mark.django_db


def a_file(owner: Any, name: str = "a.csv") -> ImportFile:
    batch = ImportBatch.objects.create(owner=owner)
    return ImportFile.objects.create(
        batch=batch, owner=owner, original_name=name, stored_name=f"s/{name}", sha256=name, size=1,
        status=FileStatus.IMPORTED,
    )  # fmt: skip


@contextmanager
def checked_as_at_commit() -> Iterator[None]:
    """A savepoint whose deferred foreign keys are checked at its end, as a commit checks them (the test's own
    transaction never commits)."""
    with transaction.atomic():
        yield
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def an_order(owner: Any, file_id: int, line: int = 2) -> None:
    with checked_as_at_commit():
        Order.objects.create(
            owner=owner, source_file_id=file_id, source_line=line, symbol="AAPL", side="BUY", quantity=Decimal(1),
            price=Decimal(1), currency="USD", executed_at=datetime(2024, 1, 2, tzinfo=UTC),
        )  # fmt: skip


def test_an_order_of_its_files_owner_is_written(user: Any) -> None:
    file = a_file(user)
    an_order(user, file.pk)
    assert Order.objects.filter(source_file=file, owner=user).count() == 1


def test_an_order_of_another_owner_than_its_files_is_refused(user: Any, other_user: Any) -> None:
    file = a_file(user)
    with pytest.raises(IntegrityError, match="order_file_owner_fk"):
        an_order(other_user, file.pk)
    assert not Order.objects.exists()


def test_an_order_of_a_file_that_is_not_there_is_refused(user: Any) -> None:
    file = a_file(user)
    with pytest.raises(IntegrityError, match="order_file_owner_fk"):
        an_order(user, file.pk + 1000)
    assert not Order.objects.exists()


def test_a_file_with_orders_cannot_change_owner_or_be_deleted_under_them(user: Any, other_user: Any) -> None:
    file = a_file(user)
    an_order(user, file.pk)
    with pytest.raises(IntegrityError, match="order_file_owner_fk"), checked_as_at_commit():
        ImportFile.objects.filter(pk=file.pk).update(owner=other_user)
    with pytest.raises(IntegrityError, match="order_file_owner_fk"), checked_as_at_commit():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM imports_importfile WHERE id = %s", [file.pk])
    assert ImportFile.objects.get(pk=file.pk).owner_id == user.pk


def test_deleting_a_user_deletes_their_files_orders_as_before(user: Any) -> None:
    file = a_file(user)
    an_order(user, file.pk)
    with checked_as_at_commit():
        Order.objects.filter(owner=user).delete()  # (PROTECT: the orders go first, as a rollback does)
        user.delete()
    assert not ImportFile.objects.filter(pk=file.pk).exists() and not Order.objects.exists()


def test_the_old_keys_are_gone_and_the_new_one_is_validated() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, convalidated, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'imports_order'::regclass AND contype = 'f' ORDER BY conname"
        )
        keys = {name: (valid, definition) for name, valid, definition in cursor.fetchall()}
    assert keys["order_file_owner_fk"] == (
        True,
        "FOREIGN KEY (source_file_id, owner_id) REFERENCES imports_importfile(id, owner_id) "
        "DEFERRABLE INITIALLY DEFERRED",
    )
    # Besides it, only the instrument's key: none on owner_id or source_file_id alone.
    assert [d for _, d in keys.values() if "(owner_id)" in d or "(source_file_id)" in d] == []
    assert len(keys) == 2


# A staged row's file and format are one foreign key too (staging migration 0002): (file_id, format_id) refers to
# the file's (id, format_id).


def a_staged_row(file_id: int, format_id: int, line: int = 2) -> None:
    with checked_as_at_commit():
        StagedRow.objects.create(file_id=file_id, format_id=format_id, line=line, raw=["a", "b"])


def test_a_row_is_staged_for_its_files_format_and_no_other(user: Any) -> None:
    fmt, other = (approved_bench_format(name) for name in ("staged-key-a", "staged-key-b"))
    file = a_file(user)
    ImportFile.objects.filter(pk=file.pk).update(format=fmt)
    a_staged_row(file.pk, fmt.pk)
    with pytest.raises(IntegrityError, match="staged_file_format_fk"):
        a_staged_row(file.pk, other.pk, line=3)
    with pytest.raises(IntegrityError, match="staged_file_format_fk"), checked_as_at_commit():
        ImportFile.objects.filter(pk=file.pk).update(format=other)  # (its staged rows would stay with the first)
    assert list(StagedRow.objects.filter(file=file).values_list("format_id", flat=True)) == [fmt.pk]


def test_the_staged_rows_keep_one_key_and_no_single_column_index() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'staging_stagedrow'::regclass AND contype = 'f'"
        )
        keys = [definition for (definition,) in cursor.fetchall()]
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'staging_stagedrow'")
        indexes = [definition.split(" USING btree ")[1] for (definition,) in cursor.fetchall()]
    assert keys == [
        "FOREIGN KEY (file_id, format_id) REFERENCES imports_importfile(id, format_id) DEFERRABLE INITIALLY DEFERRED"
    ]
    assert sorted(indexes) == ["(file_id, line)", "(file_id, status, line)", "(format_id, status)", "(id)"]
