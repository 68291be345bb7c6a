"""The instruments target, through the same gateway as orders: an upload naming the target, a suggested mapping,
approval, validation (ISIN check digit, MIC), and upserts keyed by ISIN (else ticker + exchange)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from formats.models import FormatStatus
from imports.models import FileStatus, ImportFile, Instrument, Order
from imports.services.uploads import review_approve, upload_batch_create
from imports.targets.instruments import instrument_identity, isin_check_digit_ok, validate_instrument
from staging.models import StagedRow, StagedStatus
from tests.conftest import api_key_for, csv_upload

pytestmark = pytest.mark.django_db

LIST = """ISIN,Ticker,Exchange,Name,Currency,Type
US0378331005,AAPL,XNAS,Apple Inc,USD,Equity
US5949181045,MSFT,XNAS,Microsoft Corp,USD,Equity
US0378331006,BAD,XNAS,Typo Inc,USD,Equity
,SAP,XETR,SAP SE,EUR,Equity
"""

REFRESHED = """ISIN,Ticker,Exchange,Name,Currency,Type
US0378331005,AAPL,XNAS,Apple Inc.,USD,Equity
US5949181045,MSFT,XNAS,Microsoft Corp,USD,Equity
IE00B4L5Y983,IWDA,XAMS,iShares Core MSCI World,USD,ETF
,SAP,XETR,SAP SE,EUR,Equity
"""


def upload(owner: Any, name: str, text: str, run_jobs: Any, capture: Any) -> ImportFile:
    with capture(execute=True):
        _, files = upload_batch_create(owner=owner, files=[csv_upload(name, text)], target="instruments")
    run_jobs()
    return ImportFile.objects.get(pk=files[0].pk)


def test_isin_check_digits_mic_and_an_identity_are_checked_with_messages_that_say_what_was_expected() -> None:
    assert isin_check_digit_ok("US0378331005") and isin_check_digit_ok("IE00B4L5Y983")
    assert not isin_check_digit_ok("US0378331006")
    assert validate_instrument({"isin": "US0378331005", "name": "Apple", "mic": "XNAS"}) == []
    [typo] = validate_instrument({"isin": "US0378331006", "name": "Apple"})
    assert (typo["field"], typo["message"]) == ("isin", "ISIN check digit does not match: a typo in the code?")
    [short] = validate_instrument({"isin": "US03783310", "name": "Apple"})
    assert short["message"].startswith("ISIN must be 12 characters")
    [mic] = validate_instrument({"ticker": "AAPL", "mic": "NASDAQ", "name": "Apple"})
    assert mic["message"] == "exchange must be a 4-character ISO 10383 MIC (XNAS, XETR...)"
    [neither] = validate_instrument({"name": "Apple"})
    assert neither["message"] == "an ISIN or a ticker is required"
    assert instrument_identity({"isin": " us0378331005 ", "ticker": "AAPL"}) == "id|isin|US0378331005"
    assert instrument_identity({"ticker": "sap", "mic": "xetr"}) == "id|ticker|SAP|XETR"


def test_an_instruments_list_is_suggested_approved_imported_and_a_refreshed_list_updates_in_place(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    first = upload(user, "instruments.csv", LIST, run_jobs, capture)
    assert first.status == FileStatus.PENDING_APPROVAL  # master data is never judged "no trades"
    fmt = first.format
    assert fmt.target == "instruments" and fmt.status == FormatStatus.PENDING
    fields = fmt.mapping["fields"]
    assert {name: spec["columns"] for name, spec in fields.items() if spec["columns"]} == {
        "isin": ["ISIN"],
        "ticker": ["Ticker"],
        "mic": ["Exchange"],
        "name": ["Name"],
        "currency": ["Currency"],
        "asset_class": ["Type"],
    }
    with capture(execute=True):
        review_approve(format_id=fmt.pk, actor=reviewer)
    run_jobs()
    first.refresh_from_db()
    assert (first.status, first.rows_imported, first.rows_invalid) == (FileStatus.PARTIAL, 3, 1)
    typo = StagedRow.objects.get(file=first, status=StagedStatus.INVALID)
    assert typo.line == 4 and typo.errors[0]["message"] == "ISIN check digit does not match: a typo in the code?"
    assert Order.objects.count() == 0
    apple = Instrument.objects.get(owner=user, isin="US0378331005")
    assert (apple.ticker, apple.mic, apple.name, apple.currency, apple.source_file_id) == (
        "AAPL",
        "XNAS",
        "Apple Inc",
        "USD",
        first.pk,
    )

    # The refreshed list: same format, imported at once; one name changed, one new, two unchanged.
    second = upload(user, "instruments-december.csv", REFRESHED, run_jobs, capture)
    assert second.format_id == fmt.pk
    assert (second.status, second.rows_imported, second.rows_duplicate, second.rows_invalid) == (
        FileStatus.IMPORTED,
        2,
        2,
        0,
    )
    assert Instrument.objects.filter(owner=user).count() == 4  # updated in place, not doubled
    apple.refresh_from_db()
    assert (apple.name, apple.source_file_id, apple.updated_by_file_id) == ("Apple Inc.", first.pk, second.pk)
    unchanged = StagedRow.objects.get(file=second, line=3)
    assert unchanged.status == StagedStatus.DUPLICATE and "line 3 of import file" in unchanged.errors[0]["message"]


def test_an_upload_naming_an_unknown_target_is_refused_and_stores_nothing(user: Any) -> None:
    client = Client()
    response = client.post(
        "/api/uploads",
        {"file": SimpleUploadedFile("t.csv", LIST.encode()), "target": "positions"},
        HTTP_AUTHORIZATION=f"Bearer {api_key_for(user)}",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_target"
    assert body["message"] == "Unknown target 'positions': what the files hold is one of instruments, orders."
    assert not ImportFile.objects.exists()


def test_the_upload_page_offers_the_targets_and_files_sent_as_instruments_are_matched_to_instruments(
    client: Client, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(user)
    page = client.get("/").content.decode()
    assert '<option value="orders" selected>Broker trade orders</option>' in page
    assert '<option value="instruments">Instruments (master data)</option>' in page
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/", {"file": SimpleUploadedFile("list.csv", LIST.encode()), "target": "instruments"})
    assert response.status_code == 302
    assert ImportFile.objects.get(owner=user, original_name="list.csv").target == "instruments"
