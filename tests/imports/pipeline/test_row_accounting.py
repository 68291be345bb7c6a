"""The file page and API account for every row: the parts always add up to the file's total."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from imports.models import FileStatus, ImportFile
from imports.selectors import row_accounting
from imports.services.rollback import file_rollback
from imports.services.uploads import review_approve, upload_batch_create
from tests.conftest import csv_upload
from tests.e2e.test_faults import MAPPING
from tests.imports.api.test_api import bearer
from tests.imports.services.test_idempotency import approved_import

pytestmark = pytest.mark.django_db

# Two trades, one kept twice (a duplicate), a cash row (skipped by the mapping's filter) and an invalid row.
TRADES = b"""Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref
2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,USD,T-1
2024-03-01 10:15:00,MSFT,Sell,5,410.10,1.00,USD,T-2
2024-03-01 10:15:00,MSFT,Sell,5,410.10,1.00,USD,T-2
2024-03-02 10:15:00,CASH,Deposit,0,0,0,USD,D-1
2024-03-04 15:59:59,AAPL,Sell,0,174.00,0.50,USD,T-3
"""


def added_up(text: str) -> bool:
    total, parts = text.split("; ")[0].split(" = ")
    numbers = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) [a-z]", parts)]
    return int(total.split()[0].replace(",", "")) == sum(numbers)


def test_every_row_of_a_file_is_accounted_for_on_the_page_the_api_and_after_a_rollback(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, TRADES)
    text = row_accounting(file)
    assert added_up(text), text
    assert text.startswith(f"{file.rows_total} rows = ") and "imported" in text
    client.force_login(user)
    assert text in client.get(f"/imports/{file.pk}/").content.decode()
    assert client.get(f"/api/uploads/{file.pk}", **bearer(user)).json()["accounting"] == text
    file_rollback(file_id=file.pk, actor=reviewer, reason="test")
    after = row_accounting(ImportFile.objects.get(pk=file.pk))
    assert added_up(after) and "removed by the rollback" in after, after


def test_a_file_with_imported_skipped_duplicate_and_invalid_rows_names_each_part_with_its_count(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # The mapping skips the cash row by a filter: two trades imported, one kept twice, one cash row, one invalid.
    mapping = {**MAPPING, "filters": [{"column": "Buy or Sell", "op": "not_in", "values": ["Deposit"]}]}
    with django_capture_on_commit_callbacks(execute=True):
        _, [file] = upload_batch_create(owner=user, files=[csv_upload("export.csv", TRADES)])
    run_jobs()
    file.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer, mapping=mapping)
    run_jobs()
    file.refresh_from_db()
    text = "5 rows = 2 imported + 1 skipped + 1 duplicate + 1 invalid"
    assert row_accounting(file) == text
    client.force_login(user)
    assert text in client.get(f"/imports/{file.pk}/").content.decode()


def test_a_file_still_being_imported_says_so_for_the_rows_not_settled_yet(user: Any) -> None:
    file = ImportFile(owner=user, original_name="x.csv", status=FileStatus.MIGRATING, rows_total=10, rows_imported=4)
    assert row_accounting(file) == "10 rows = 4 imported + 6 still being imported"
    waiting = ImportFile(owner=user, original_name="y.csv", status=FileStatus.PENDING_APPROVAL, rows_total=3,
                         rows_staged=3)  # fmt: skip
    assert row_accounting(waiting) == "3 rows = 3 waiting for approval"


def test_lines_the_reader_skipped_are_named_after_the_rows_that_add_up(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # A blank line and a totals line are no rows of the file; the sentence still adds up, and says so.
    text = TRADES.replace(b"\n2024-03-02", b"\n\n2024-03-02", 1) + b"Total,,,,,,,\n"
    file = approved_import(user, reviewer, run_jobs, django_capture_on_commit_callbacks, text)
    accounting = row_accounting(file)
    assert added_up(accounting), accounting
    assert accounting.endswith("; 2 other lines skipped while reading"), accounting
