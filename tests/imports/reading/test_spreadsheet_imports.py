"""Spreadsheets and JSON through the whole pipeline: the same trades from CSV, .xlsx, .xls, .ods, JSON and
NDJSON become identical orders; a new workbook waits with a suggested mapping like a CSV; row errors
name the sheet and the row."""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from formats.models import FormatStatus
from imports.models import FileStatus, ImportFile, Order
from imports.reports import error_report_rows
from imports.services.uploads import review_approve
from staging.models import StagedRow
from tests.factories import uploaded_file
from tests.imports.reading import workbooks as W

pytestmark = pytest.mark.django_db

HEADER = ["Trade Date", "Ticker", "Buy or Sell", "Shares", "Fill Price", "Fee", "Ccy", "Ref"]
# Typed as a workbook holds them: a datetime, numbers (one with a float artefact), text.
TRADES = [
    [datetime(2024, 3, 1, 9, 30), "AAPL", "Buy", 10, 171.25, 1.0, "USD", "T-1"],
    [datetime(2024, 3, 1, 10, 15), "MSFT", "Sell", 5, 0.1 + 0.2, 1.0, "USD", "T-2"],
    [datetime(2024, 3, 4, 15, 59, 59), "SAP", "Buy", 7, 120.5, 0.5, "EUR", "T-3"],
]
CSV = (
    ",".join(HEADER)
    + "\n2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,USD,T-1"
    + "\n2024-03-01 10:15:00,MSFT,Sell,5,0.3,1.00,USD,T-2"
    + "\n2024-03-04 15:59:59,SAP,Buy,7,120.50,0.50,EUR,T-3\n"
)
ORDER_FIELDS = ("symbol", "side", "quantity", "price", "commission", "currency", "executed_at", "broker_trade_id")


def records() -> list[dict[str, Any]]:
    """The trades as JSON records (numbers as JSON numbers, the time as text)."""
    out = []
    for row in TRADES:
        record = dict(zip(HEADER, row, strict=True))
        record["Trade Date"] = row[0].strftime("%Y-%m-%d %H:%M:%S")
        record["Fill Price"] = round(row[4], 10)
        out.append(record)
    return out


def write(kind: str, tmp_path: Path) -> bytes:
    path = tmp_path / f"trades.{kind}"
    sheet = {"Trades": [["Account statement"], [], HEADER, *TRADES, ["Total", None, None, 22]]}
    if kind == "csv":
        return CSV.encode()
    if kind == "xlsx":
        W.xlsx(path, sheet)
    elif kind == "xlsx-1904":
        W.xlsx(path, sheet, date1904=True)
    elif kind == "xls":
        W.xls(path, sheet)
    elif kind == "ods":
        W.ods(path, sheet)
    elif kind == "json":
        path.write_text(json.dumps({"account": "U1", "trades": records()}))
    elif kind == "ndjson":
        path.write_text("".join(json.dumps(r) + "\n" for r in records()))
    return path.read_bytes()


def upload(owner: Any, name: str, data: bytes, run_jobs: Any, capture: Any) -> ImportFile:
    return uploaded_file(owner, name, data, run_jobs=run_jobs, capture=capture)


def orders_of(owner: Any) -> list[tuple]:
    return sorted(Order.objects.filter(owner=owner).values_list(*ORDER_FIELDS))


# A mapping the SQL fast path compiles: files of the format then go straight from the file to orders.
DIRECT_MAPPING = {
    "version": 1,
    "reader": {"section": None, "header_line": None},
    "filters": [],
    "fields": {
        "symbol": {"columns": ["Ticker"], "converter": "text", "options": {"upper": True}},
        "side": {"columns": ["Buy or Sell"], "converter": "side", "options": {}},
        "quantity": {"columns": ["Shares"], "converter": "decimal", "options": {"abs": True}},
        "price": {"columns": ["Fill Price"], "converter": "decimal", "options": {}},
        "commission": {"columns": ["Fee"], "converter": "decimal", "options": {"abs": True}},
        "currency": {"columns": ["Ccy"], "converter": "currency", "options": {}},
        "executed_at": {
            "columns": ["Trade Date"],
            "converter": "datetime",
            "options": {"formats": ["%Y-%m-%d %H:%M:%S"], "tz": "UTC"},
        },
        "broker_trade_id": {"columns": ["Ref"], "converter": "text", "options": {}},
    },
}


@pytest.mark.parametrize("mapping", ["suggested", "direct"])
def test_the_same_trades_from_csv_xlsx_xls_ods_json_and_ndjson_become_identical_orders(
    django_user_model: Any,
    reviewer: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
    tmp_path: Path,
    mapping: str,
    settings: Any,
) -> None:
    """With the suggested mapping, rows staged, then migrated; and with one the SQL fast path compiles, rows read
    straight from the file into orders, chunk by chunk."""
    capture = django_capture_on_commit_callbacks
    if mapping == "suggested":
        settings.AIRLOCK = {**settings.AIRLOCK, "DIRECT_IMPORT": False}
    first = django_user_model.objects.create_user(username="csv-user")
    csv_file = upload(first, "trades.csv", write("csv", tmp_path), run_jobs, capture)
    assert csv_file.status == FileStatus.PENDING_APPROVAL
    with capture(execute=True):
        review_approve(
            format_id=csv_file.format_id, actor=reviewer, mapping=DIRECT_MAPPING if mapping == "direct" else None
        )
    run_jobs()
    csv_file.refresh_from_db()
    assert csv_file.status == FileStatus.IMPORTED and csv_file.rows_imported == 3
    expected = orders_of(first)
    # No float artefact anywhere: MSFT's 0.1 + 0.2 is 0.3 in every kind of file.
    assert [o[3] for o in expected] == [Decimal("171.25"), Decimal("0.3"), Decimal("120.5")]
    for kind in ("xlsx", "xlsx-1904", "xls", "ods", "json", "ndjson"):
        owner = django_user_model.objects.create_user(username=f"{kind}-user")
        file = upload(owner, f"trades.{kind.split('-')[0]}", write(kind, tmp_path), run_jobs, capture)
        assert file.format_id == csv_file.format_id, f"{kind}: a format of its own ({file.error})"
        assert file.status == FileStatus.IMPORTED, f"{kind}: {file.status} {file.error}"
        assert (file.rows_imported, file.rows_invalid) == (3, 0), kind
        assert orders_of(owner) == expected, kind
        assert (file.layout or {}).get("kind") == kind.split("-")[0]
        assert ("direct" in file.layout) == (mapping == "direct"), kind


def test_a_new_workbook_waits_as_a_pending_format_with_a_sensible_suggestion(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any, tmp_path: Path
) -> None:
    file = upload(user, "statement.xlsx", write("xlsx", tmp_path), run_jobs, django_capture_on_commit_callbacks)
    assert file.status == FileStatus.PENDING_APPROVAL and file.rows_staged == 3
    assert file.layout["section"] == "Trades" and file.layout["header_line"] == 3
    assert file.skip_reasons == {'summary row "Total"': 1}
    fmt = file.format
    assert fmt.status == FormatStatus.PENDING
    assert fmt.sample_rows[1][:5] == ["2024-03-01 10:15:00", "MSFT", "Sell", "5", "0.3"]
    fields = fmt.mapping["fields"]
    assert fields["executed_at"]["columns"] == ["Trade Date"] and fields["symbol"]["columns"] == ["Ticker"]
    assert fields["side"]["columns"] == ["Buy or Sell"] and fields["quantity"]["columns"] == ["Shares"]
    assert fields["price"]["columns"] == ["Fill Price"] and fields["currency"]["columns"] == ["Ccy"]
    assert fmt.mapping["reader"]["section"] is None  # the sheet's name is not pinned: the next export's may differ


def test_row_errors_of_a_workbook_name_the_sheet_and_the_row(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any, tmp_path: Path
) -> None:
    bad = [datetime(2024, 3, 5, 11, 0), "IBM", "Buy", 0, 190.0, 1.0, "USD", "T-4"]  # quantity 0
    path = W.xlsx(tmp_path / "t.xlsx", {"Summary": [["Cash", 10]], "Trades": [HEADER, *TRADES, bad]})
    file = upload(user, "t.xlsx", path.read_bytes(), run_jobs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    run_jobs()
    file.refresh_from_db()
    assert (file.status, file.rows_imported, file.rows_invalid) == (FileStatus.PARTIAL, 3, 1)
    [row] = list(error_report_rows(file))
    assert row[-1] == "sheet 'Trades', row 5: Quantity: quantity must be greater than 0 (value '0')"
    assert row[:4] == ["2024-03-05 11:00:00", "IBM", "Buy", "0"]


def test_a_workbook_the_reader_refuses_fails_with_the_message_and_stores_nothing(
    user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any, tmp_path: Path
) -> None:
    sheet = W.sheet_xml(
        [
            '<row r="1"><c r="A1" t="inlineStr"><is><t>Symbol</t></is></c>'
            '<c r="B1" t="inlineStr"><is><t>Qty</t></is></c></row>',
            '<row r="2"><c r="A2" t="inlineStr"><is><t>AAPL</t></is></c><c r="B2"><v>1</v></c></row>',
            '<row r="3"><c r="A3" t="inlineStr"><is><t>MSFT</t></is></c><c r="ZZ3"><v>1</v></c></row>',
        ]
    )
    path = W.xlsx_package(tmp_path / "wide.xlsx", sheet_xml=sheet)
    file = upload(user, "wide.xlsx", path.read_bytes(), run_jobs, django_capture_on_commit_callbacks)
    assert file.status == FileStatus.FAILED
    assert "Sheet 'Trades', row 3 has a value in column ZZ" in file.error
    assert not StagedRow.objects.filter(file=file).exists() and not Order.objects.exists()


def test_a_workbook_broken_far_down_is_refused_whole_and_keeps_no_order(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any, tmp_path: Path, settings: Any
) -> None:
    """XML broken after 3,000 good rows (well past what the layout detection reads) fails the file whole,
    as a broken CSV line does: nothing of it is imported or left staged (the import commits 1,000-row
    chunks; those written before the broken row are removed again)."""
    capture = django_capture_on_commit_callbacks
    first = upload(user, "trades.csv", write("csv", tmp_path), run_jobs, capture)
    with capture(execute=True):
        review_approve(format_id=first.format_id, actor=reviewer, mapping=DIRECT_MAPPING)
    run_jobs()
    settings.AIRLOCK = {**settings.AIRLOCK, "FAST_BATCH_SIZE": 1000, "BATCH_SIZE": 1000}

    def cell(ref: str, text: str) -> str:
        return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'

    rows = ['<row r="1">' + "".join(cell(f"{chr(65 + i)}1", name) for i, name in enumerate(HEADER)) + "</row>"]
    for n in range(2, 3002):
        values = [f"2024-04-01 10:{n % 60:02d}:00", "AAPL", "Buy", "1", "10", "0", "USD", f"B-{n}"]
        rows.append(f'<row r="{n}">' + "".join(cell(f"{chr(65 + i)}{n}", v) for i, v in enumerate(values)) + "</row>")
    rows.append('<row r="3002"><c r="A3002"><v>1</c></row>')  # </v> missing: not well-formed
    path = W.xlsx_package(tmp_path / "broken.xlsx", sheet_xml=W.sheet_xml(rows))
    file = upload(user, "broken.xlsx", path.read_bytes(), run_jobs, capture)
    assert file.status == FileStatus.FAILED, file.error
    assert file.error.startswith("Sheet 'Trades', row 3002: 'xl/worksheets/sheet1.xml' is not well-formed XML")
    assert re.search(r"Nothing was imported from this file \(the [\d,]+ rows read before that line were", file.error)
    assert not Order.objects.filter(source_file=file).exists()
    assert not StagedRow.objects.filter(file=file).exists()


def test_the_errors_api_says_which_sheet_the_rows_are_numbered_in(
    client: Any, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any, tmp_path: Path
) -> None:
    from tests.security.conftest import bearer

    bad = [datetime(2024, 3, 5, 11, 0), "IBM", "Buy", 0, 190.0, 1.0, "USD", "T-4"]
    path = W.xlsx(tmp_path / "t.xlsx", {"Trades": [["Statement"], HEADER, *TRADES, bad]})
    file = upload(user, "t.xlsx", path.read_bytes(), run_jobs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        review_approve(format_id=file.format_id, actor=reviewer)
    run_jobs()
    body = client.get(f"/api/uploads/{file.pk}/errors", **bearer(user)).json()
    assert (body["kind"], body["sheet"]) == ("xlsx", "Trades")
    assert [(item["row"], item["field"]) for item in body["results"]] == [(6, "quantity")]
