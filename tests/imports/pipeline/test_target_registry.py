"""The pipeline reaches a target's table only through the writer registered for the format's target."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from config.errors import MappingError
from imports.models import FileStatus, Order
from imports.pipeline import fastpath
from imports.services.uploads import review_approve
from imports.targets import WRITERS, writer_for
from imports.targets.orders import WRITER, validate_order
from staging.models import StagedRow, StagedStatus
from tests.factories import uploaded_file

pytestmark = pytest.mark.django_db

TRADES = """Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref
2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,USD,T-1
2024-03-01 10:15:00,MSFT,Sell,5,410.10,1.00,USD,T-2
2024-03-04 15:59:59,AAPL,Sell,7,174.00,0.50,USD,T-3
"""


def test_an_unknown_target_names_the_targets_that_have_a_writer() -> None:
    assert writer_for("orders").validate is validate_order and writer_for("orders").model is WRITER.model
    with pytest.raises(MappingError) as refused:
        writer_for("positions")
    assert refused.value.message == "No writer for target 'positions': imports can be written into instruments, orders."


def test_migration_validates_and_writes_through_the_registered_writer_and_skips_sql_without_its_path(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    inserted: list[list[int]] = []

    def only_apple(values: dict[str, Any]) -> list[dict[str, Any]]:
        errors = validate_order(values)
        if values.get("symbol") != "AAPL":
            errors.append({"field": "symbol", "value": values.get("symbol"), "message": "only AAPL here"})
        return errors

    def insert(**kwargs: Any) -> set[int]:
        inserted.append([row.line for row in kwargs["rows"]])
        return WRITER.insert(**kwargs)

    def no_sql(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a writer without a SQL path must not be given a SQL plan")

    # The orders writer as a second target would register its own: no SQL path, its own checks and insert.
    monkeypatch.setitem(WRITERS, "orders", replace(WRITER, validate=only_apple, insert=insert, fast_path=False))
    monkeypatch.setattr(fastpath, "plan_for", no_sql)
    file = uploaded_file(user, "trades.csv", TRADES, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    run_jobs()
    file.refresh_from_db()
    assert file.status == FileStatus.PARTIAL
    assert [sorted(lines) for lines in inserted] == [[2, 4]]
    assert sorted(Order.objects.filter(source_file=file).values_list("source_line", flat=True)) == [2, 4]
    invalid = StagedRow.objects.get(file=file, status=StagedStatus.INVALID)
    assert (invalid.line, invalid.errors[0]["message"]) == (3, "only AAPL here")
