"""An admin can pin where the table is (header line) before approval: rows are re-read and re-staged."""

from __future__ import annotations

from typing import Any

import pytest

from config.errors import MappingError
from formats.models import CsvFormat
from imports.models import FileStatus, ImportFile, Order
from imports.services.uploads import review_approve, review_save_mapping
from staging.models import StagedRow
from tests.factories import uploaded_file

pytestmark = pytest.mark.django_db

TWO_TABLES = """Cash account,,,,
Date,Details,Amount,Balance,
2024-01-02,Deposit,1000.00,1000.00,
2024-01-05,Interest,1.20,1001.20,
,,,,
Trades,,,,
Date,Ticker,Action,Quantity,Price
2024-01-03,VWRL,Buy,3,98.10
2024-01-04,VUSA,Buy,2,75.00
2024-01-09,VWRL,Sell,1,99.00
"""


def staged_file(user: Any, run_jobs: Any, capture: Any) -> ImportFile:
    return uploaded_file(user, "report.csv", TWO_TABLES, run_jobs=run_jobs, capture=capture)


def test_pinning_the_header_line_re_reads_the_columns_and_re_stages_the_rows(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = staged_file(user, run_jobs, django_capture_on_commit_callbacks)
    fmt = file.format
    # Of the two stacked tables the reader took the one whose header names the trade fields...
    assert fmt.columns[:2] == ["Date", "Ticker"]
    assert fmt.mapping["fields"]["symbol"]["columns"] == ["Ticker"]
    assert sorted(StagedRow.objects.filter(file=file).values_list("line", flat=True)) == [8, 9, 10]
    # ...and an admin who wants the other one pins its header line: columns re-read, rows re-staged.
    mapping = {**fmt.mapping, "reader": {"section": None, "header_line": 2}}
    fmt = review_save_mapping(format_id=fmt.pk, actor=reviewer, mapping=mapping)
    assert fmt.columns == ["Date", "Details", "Amount", "Balance"]
    assert sorted(StagedRow.objects.filter(file=file).values_list("line", flat=True)) == [3, 4]


def test_approving_with_a_moved_table_and_stale_fields_is_refused_but_the_rows_are_re_staged(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = staged_file(user, run_jobs, django_capture_on_commit_callbacks)
    suggested = file.format.mapping
    stale = {**suggested, "reader": {"section": None, "header_line": 2}}  # fields still name 'Ticker'...
    with pytest.raises(MappingError, match="moved the table"):
        review_approve(format_id=file.format_id, actor=reviewer, mapping=stale)
    fmt = CsvFormat.objects.get(pk=file.format_id)
    assert fmt.status == "PENDING" and "Details" in fmt.columns and "Ticker" not in fmt.columns
    assert sorted(StagedRow.objects.filter(file=file).values_list("line", flat=True)) == [3, 4]
    assert not Order.objects.exists()
    # Pinned back to the trades table, the corrected suggestion imports exactly its three trades.
    fields = suggested["fields"]
    fields["currency"] = {"columns": [], "converter": "constant", "options": {"value": "GBP"}}
    fields["executed_at"]["options"]["tz"] = "Europe/London"
    mapping = {**suggested, "reader": {"section": None, "header_line": 7}, "fields": fields}
    fmt = review_save_mapping(format_id=fmt.pk, actor=reviewer, mapping=mapping)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=fmt.pk, actor=reviewer, mapping=fmt.mapping)
    run_jobs()
    file.refresh_from_db()
    assert file.status == FileStatus.IMPORTED, file.error
    assert sorted(Order.objects.values_list("symbol", "side", "source_line")) == [
        ("VUSA", "BUY", 9),
        ("VWRL", "BUY", 8),
        ("VWRL", "SELL", 10),
    ]
