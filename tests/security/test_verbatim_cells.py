"""Staged rows keep what was uploaded: a leading TAB or CR of a cell (a formula hidden behind one) is stored as
is, in a CSV and in a workbook; only surrounding spaces are trimmed. Exports neutralise it on the way out."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from imports.models import ImportFile
from imports.services.uploads import review_approve
from staging.models import StagedRow
from tests.factories import uploaded_file
from tests.imports.pipeline.test_pipeline import TRADES
from tests.imports.reading import workbooks as W

pytestmark = pytest.mark.django_db

HEADER = TRADES.splitlines()[0]
# Quantity 0: an invalid row, so it is kept staged and shows in the errors download.
HOSTILE_CSV = HEADER + '\n2024-03-04 15:59:59,"\t=1+1",Sell,0,174.00,0.50,USD,"\r=2+2"\n'
SPACED_CSV = HEADER + '\n2024-03-04 15:59:59,  MSFT  ,Sell,0,174.00,0.50,USD," T-9 "\n'


def upload(owner: Any, name: str, data: bytes, run_jobs: Any, capture: Any) -> ImportFile:
    return uploaded_file(owner, name, data, run_jobs=run_jobs, capture=capture)


def staged_cells(file: ImportFile) -> list[list[str]]:
    return list(StagedRow.objects.filter(file=file).order_by("line").values_list("raw", flat=True))


def test_a_leading_tab_or_cr_of_a_csv_cell_is_staged_verbatim_and_neutralised_on_export(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, "hostile.csv", HOSTILE_CSV.encode(), run_jobs, django_capture_on_commit_callbacks)
    ((_, symbol, *_, ref),) = staged_cells(file)
    assert (symbol, ref) == ("\t=1+1", "\r=2+2")
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    run_jobs()
    ((_, symbol, *_, ref),) = staged_cells(file)
    assert (symbol, ref) == ("\t=1+1", "\r=2+2"), "the migration keeps the failed row verbatim too"
    client.force_login(user)
    body = b"".join(client.get(f"/imports/{file.pk}/errors.csv").streaming_content).decode().lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(body)))
    assert any(cell.startswith("'\t") for cell in rows[1]) and any(cell.startswith("'\r") for cell in rows[1])
    assert not any(cell.startswith(("\t", "\r", "=")) for row in rows[1:] for cell in row)


def test_surrounding_spaces_are_still_trimmed(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file = upload(user, "spaced.csv", SPACED_CSV.encode(), run_jobs, django_capture_on_commit_callbacks)
    ((_, symbol, *_, ref),) = staged_cells(file)
    assert (symbol, ref) == ("MSFT", "T-9")


def test_a_leading_tab_or_cr_of_a_workbook_text_cell_is_staged_verbatim(
    tmp_path: Path, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    rows = [HEADER.split(","), ["2024-03-04 15:59:59", "\t=1+1", "Sell", 0, 174.0, 0.5, "USD", "\r=2+2"]]
    path = W.xlsx(tmp_path / "hostile.xlsx", {"Trades": rows})
    file = upload(user, "hostile.xlsx", path.read_bytes(), run_jobs, django_capture_on_commit_callbacks)
    ((_, symbol, *_, ref),) = staged_cells(file)
    assert (symbol, ref) == ("\t=1+1", "\r=2+2")
