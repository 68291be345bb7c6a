"""An upload that at least doubles the files table brings Postgres's statistics of it up to date in its own
transaction, so that the foreign-key check every order and staged row makes is planned on the file's id."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from imports.models import ImportFile
from imports.services.uploads import files_stats_refresh, upload_batch_create
from tests.conftest import csv_upload

pytestmark = pytest.mark.django_db

# The check Postgres runs for each order written (orders' foreign key to (file id, owner)), planned as its
# foreign-key triggers plan it: once per session, a generic plan.
ORDER_FILE_CHECK = "SELECT 1 FROM ONLY imports_importfile x WHERE id = $1 AND owner_id = $2 FOR KEY SHARE OF x"


def _generic_plan(file: ImportFile) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE order_file_check(bigint, int) AS {ORDER_FILE_CHECK}")
        try:
            cursor.execute("EXPLAIN EXECUTE order_file_check(%s, %s)", [file.pk, file.owner_id])
            return "\n".join(line for (line,) in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE order_file_check")


def _reltuples() -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'imports_importfile'::regclass")
        return cursor.fetchone()[0]


def _analyze() -> None:
    """The statistics of the table as it is now (ANALYZE writes its row count in place: not rolled back with the
    test that ran it, so each test starts from its own)."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE imports_importfile")


def _processed() -> None:
    """The files as their jobs leave them: each row rewritten with its layout (~1.5 KB of JSON)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE imports_importfile SET status = 'IMPORTED', "
            "layout = jsonb_build_object('header', (SELECT jsonb_agg(repeat('x', 30)) FROM generate_series(1, 50)))"
        )


def _upload(user: Any, count: int, tag: str) -> list[ImportFile]:
    files = [csv_upload(f"{tag}-{n}.csv", f"a,b\n{tag},{n}\n") for n in range(count)]
    return upload_batch_create(owner=user, files=files)[1]


def test_an_upload_that_doubles_the_files_table_analyzes_it_and_the_check_uses_the_files_id(
    user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        _upload(user, 3, "first")
        _analyze()  # the statistics of a tiny table, as on a new installation
        assert _reltuples() == 3
        files = _upload(user, 300, "many")
        _processed()
    assert _reltuples() == 303
    plan = _generic_plan(files[-1])
    assert "Index Cond: (id = $1)" in plan, plan
    assert "owner_id_" not in plan, plan


def test_an_upload_that_does_not_double_the_table_leaves_its_statistics_alone(
    user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        _analyze()
        assert _reltuples() == 0
        _upload(user, 20, "first")
        assert _reltuples() == 20, "an empty table's first upload analyzed it"
        _upload(user, 19, "second")
        assert _reltuples() == 20
        assert files_stats_refresh(0) is False
        assert files_stats_refresh(21) is True and _reltuples() == 39
