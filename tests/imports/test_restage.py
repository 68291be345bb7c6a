"""An admin can pin where the table is (header line) before approval: rows are re-read and re-staged."""

from __future__ import annotations

from typing import Any

import pytest

from config.errors import MappingError
from formats.models import CsvFormat
from imports.models import FileStatus, ImportFile, Order
from imports.services.uploads import review_approve, review_save_mapping, upload_batch_create
from staging.models import StagedRow
from tests.conftest import csv_upload

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
    with capture(execute=True):
        _, files = upload_batch_create(owner=user, files=[csv_upload("report.csv", TWO_TABLES)])
    run_jobs()
    return ImportFile.objects.get(pk=files[0].pk)


def test_pinning_the_header_line_re_reads_the_columns_and_re_stages_the_rows(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = staged_file(user, run_jobs, django_capture_on_commit_callbacks)
    fmt = file.format
    assert "Ticker" not in fmt.columns  # the reader found the first table
    mapping = {**fmt.mapping, "reader": {"section": None, "header_line": 7}}
    fmt = review_save_mapping(format_id=fmt.pk, actor=reviewer, mapping=mapping)
    assert fmt.columns[:2] == ["Date", "Ticker"]
    assert fmt.mapping["fields"]["symbol"]["columns"] == ["Ticker"]
    lines = sorted(StagedRow.objects.filter(file=file).values_list("line", flat=True))
    assert lines == [8, 9, 10]


def test_approving_with_a_moved_table_and_stale_fields_is_refused_but_the_rows_are_re_staged(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = staged_file(user, run_jobs, django_capture_on_commit_callbacks)
    stale = {
        **file.format.mapping,
        "reader": {"section": None, "header_line": 7},
        "fields": {"symbol": {"columns": ["Details"], "converter": "text", "options": {}}},
    }
    with pytest.raises(MappingError, match="moved the table"):
        review_approve(format_id=file.format_id, actor=reviewer, mapping=stale)
    fmt = CsvFormat.objects.get(pk=file.format_id)
    assert fmt.status == "PENDING" and "Ticker" in fmt.columns
    fields = fmt.mapping["fields"]
    fields["currency"] = {"columns": [], "converter": "constant", "options": {"value": "GBP"}}
    fields["executed_at"]["options"]["tz"] = "Europe/London"
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
