"""Reconciliation of orders against instruments: exact (ISIN, ticker, alias, a suffix removed) in SQL, fuzzy once per
value, decisions once per value applying to past and future orders, and rollbacks that would orphan orders refused."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Sum
from django.test import Client

from audit.models import AuditEvent
from config.errors import Conflict, InvalidRequest
from imports.bench import data
from imports.models import FileStatus, ImportFile, Instrument, InstrumentLink, Order, Side
from imports.pipeline import fastpath
from imports.services.reconciliation import candidates, reconcile_decide, reconcile_queue, variants
from imports.services.rollback import file_rollback
from imports.services.uploads import review_approve, upload_batch_create
from imports.targets import WRITERS
from tests.conftest import api_key_for, csv_upload

pytestmark = pytest.mark.django_db

INSTRUMENTS = """ISIN,Ticker,Exchange,Name,Currency,Aliases
US0378331005,AAPL,XNAS,Apple Inc,USD,APPLE INC
US5949181045,MSFT,XNAS,Microsoft Corp,USD,
"""

BROKER_A = """Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref
2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,USD,A-1
2024-03-02 10:15:00,MSFT,Buy,5,410.10,1.00,USD,A-2
"""

BROKER_B = """Date,Symbol,Side,Quantity,Price,Currency,Order Id
2024-03-05,US0378331005,Sell,4,175.00,USD,B-1
2024-03-06,AAPL.US,Buy,2,176.00,USD,B-2
2024-03-07,APPLE INC,Buy,1,177.00,USD,B-3
"""

FUZZY = """Date,Symbol,Side,Quantity,Price,Currency,Order Id
2024-04-01,APPLE COMPUTER,Buy,3,170.00,USD,C-1
2024-04-02,APPLE COMPUTER,Buy,1,171.00,USD,C-2
"""


def imported(owner: Any, reviewer: Any, name: str, text: str, run_jobs: Any, capture: Any, target: str) -> ImportFile:
    """Upload, approve the file's format if it is new, import; the file as the database holds it then."""
    with capture(execute=True):
        _, [file] = upload_batch_create(owner=owner, files=[csv_upload(name, text)], target=target)
    run_jobs()
    file.refresh_from_db()
    if file.status == FileStatus.PENDING_APPROVAL:
        with capture(execute=True):
            review_approve(format_id=file.format_id, actor=reviewer)
        run_jobs()
        file.refresh_from_db()
    assert file.status == FileStatus.IMPORTED, (file.status, file.error)
    return file


def positions(owner: Any) -> dict[Any, Decimal]:
    """Net quantity per instrument (None: orders not linked yet)."""
    net: dict[Any, Decimal] = {}
    for instrument, side, quantity in (
        Order.objects.filter(owner=owner)
        .values_list("instrument", "side")
        .annotate(q=Sum("quantity"))
        .values_list("instrument", "side", "q")
    ):
        net[instrument] = net.get(instrument, Decimal(0)) + (quantity if side == Side.BUY else -quantity)
    return net


def test_the_same_instrument_named_differently_by_two_brokers_ends_as_one_instrument_and_one_position(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    imported(user, reviewer, "instruments.csv", INSTRUMENTS, run_jobs, capture, "instruments")
    imported(user, reviewer, "broker-a.csv", BROKER_A, run_jobs, capture, "orders")
    imported(user, reviewer, "broker-b.csv", BROKER_B, run_jobs, capture, "orders")
    apple = Instrument.objects.get(owner=user, isin="US0378331005")
    microsoft = Instrument.objects.get(owner=user, ticker="MSFT")
    by_symbol = dict(Order.objects.filter(owner=user).values_list("symbol", "instrument"))
    # ticker, ISIN, ticker with an exchange suffix and an alias of the list: all the same instrument
    assert by_symbol == {
        "AAPL": apple.pk,
        "US0378331005": apple.pk,
        "AAPL.US": apple.pk,
        "APPLE INC": apple.pk,
        "MSFT": microsoft.pk,
    }
    assert positions(user) == {apple.pk: Decimal(10 - 4 + 2 + 1), microsoft.pk: Decimal(5)}
    suffix = InstrumentLink.objects.get(owner=user, value="AAPL.US")
    assert (suffix.method, suffix.instrument, suffix.decided_by) == (InstrumentLink.Method.NORMALIZED, apple, None)
    assert AuditEvent.objects.filter(action="instrument.matched").count() == 1


def test_orders_that_come_before_their_instruments_are_linked_when_the_list_arrives(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    imported(user, reviewer, "broker-a.csv", BROKER_A, run_jobs, capture, "orders")
    assert set(Order.objects.filter(owner=user).values_list("instrument", flat=True)) == {None}
    imported(user, reviewer, "instruments.csv", INSTRUMENTS, run_jobs, capture, "instruments")
    assert not Order.objects.filter(owner=user, instrument__isnull=True).exists()


def test_a_fuzzy_match_below_the_threshold_waits_a_decision_links_all_its_rows_and_the_next_file_follows_it(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    imported(user, reviewer, "instruments.csv", INSTRUMENTS, run_jobs, capture, "instruments")
    first = imported(user, reviewer, "fuzzy.csv", FUZZY, run_jobs, capture, "orders")
    assert Order.objects.filter(source_file=first, instrument__isnull=True).count() == 2
    [waiting] = reconcile_queue(owner_id=user.pk)
    assert (waiting.value, waiting.orders, [f.pk for f in waiting.files]) == ("APPLE COMPUTER", 2, [first.pk])
    best = waiting.candidates[0]
    assert best.instrument.ticker == "AAPL" and 0.5 < best.score < 0.92 and "name 'Apple Inc' is close" in best.why

    changed = reconcile_decide(
        actor=reviewer, owner_id=user.pk, value="apple computer", action="link", instrument_id=best.instrument.pk
    )
    assert changed == 2 and reconcile_queue(owner_id=user.pk) == []
    link = InstrumentLink.objects.get(owner=user, value="APPLE COMPUTER")
    assert (link.method, link.decided_by, link.format) == (InstrumentLink.Method.DECISION, reviewer, None)
    assert AuditEvent.objects.get(action="instrument.decided").actor == reviewer

    later = imported(
        user,
        reviewer,
        "fuzzy-may.csv",
        FUZZY.replace("C-", "D-").replace("2024-04", "2024-05"),
        run_jobs,
        capture,
        "orders",
    )
    assert set(Order.objects.filter(source_file=later).values_list("instrument", flat=True)) == {best.instrument.pk}


def test_leaving_a_value_unlinked_takes_it_out_of_the_queue_and_create_makes_an_instrument_from_the_order(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    imported(user, reviewer, "instruments.csv", INSTRUMENTS, run_jobs, capture, "instruments")
    imported(user, reviewer, "fuzzy.csv", FUZZY, run_jobs, capture, "orders")
    reconcile_decide(actor=reviewer, owner_id=user.pk, value="APPLE COMPUTER", action="leave")
    assert reconcile_queue(owner_id=user.pk) == []
    assert reconcile_decide(actor=reviewer, owner_id=user.pk, value="APPLE COMPUTER", action="create") == 2
    made = Instrument.objects.get(owner=user, ticker="APPLE COMPUTER")
    assert (made.name, made.currency) == ("APPLE COMPUTER", "USD")


def test_a_rollback_of_an_instruments_import_that_orders_reference_is_refused_with_the_list(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    listing = imported(user, reviewer, "instruments.csv", INSTRUMENTS, run_jobs, capture, "instruments")
    imported(user, reviewer, "broker-a.csv", BROKER_A, run_jobs, capture, "orders")
    with pytest.raises(Conflict) as refused:
        file_rollback(file_id=listing.pk, actor=reviewer)
    assert refused.value.code == "rollback_instruments_referenced"
    assert "Apple Inc (US0378331005) (1 orders); Microsoft Corp (US5949181045) (1 orders)" in refused.value.message
    assert Instrument.objects.filter(source_file=listing).count() == 2
    assert ImportFile.objects.get(pk=listing.pk).status == FileStatus.IMPORTED


def test_suffixes_and_pairs_are_read_off_and_candidates_say_why() -> None:
    assert variants("AAPL.US") == ["AAPL"] and variants("AAPL:XNAS") == ["AAPL"]
    assert variants("ETH-EUR") == ["ETH"] and variants("XETHZ") == ["ETH"] and variants("XXBTZ") == ["BTC"]
    assert variants("AAPL") == []


def test_candidates_of_an_owner_without_instruments_are_none(user: Any) -> None:
    assert candidates(user.pk, "AAPL") == []


def test_orders_api_and_pages_show_the_instrument_filter_by_it_and_group_one_position_per_instrument(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    imported(user, reviewer, "instruments.csv", INSTRUMENTS, run_jobs, capture, "instruments")
    imported(user, reviewer, "broker-a.csv", BROKER_A, run_jobs, capture, "orders")
    second = imported(user, reviewer, "fuzzy.csv", FUZZY, run_jobs, capture, "orders")
    apple = Instrument.objects.get(owner=user, ticker="AAPL")
    client, auth = Client(), {"HTTP_AUTHORIZATION": f"Bearer {api_key_for(user)}"}

    held = client.get("/api/positions", **auth).json()["results"]
    assert [(p["instrument"] and p["instrument"]["ticker"], p["symbol"], p["quantity"], p["trades"]) for p in held] == [
        (None, "APPLE COMPUTER", "4", 2),
        ("AAPL", None, "10", 1),
        ("MSFT", None, "5", 1),
    ]
    linked = client.get(f"/api/orders?instrument={apple.pk}", **auth).json()["results"]
    assert [(o["symbol"], o["instrument"]) for o in linked] == [
        ("AAPL", {"id": apple.pk, "name": "Apple Inc", "isin": "US0378331005", "ticker": "AAPL"})
    ]
    assert len(client.get("/api/orders?instrument=none", **auth).json()["results"]) == 2
    bad = client.get("/api/orders?instrument=apple", **auth)
    assert bad.status_code == 400 and bad.json()["details"]["instrument"].startswith("'apple' is not an instrument id")

    client.force_login(user)
    page = client.get("/orders/").content.decode()
    assert 'id="positions-table"' in page and "not linked yet" in page and ">Apple Inc</a>" in page
    detail = client.get(f"/imports/{second.pk}/").content.decode()
    assert 'data-phase="reconcile"' in detail and "0 linked to an instrument, 2 waiting for a decision" in detail
    reconcile_decide(actor=reviewer, owner_id=user.pk, value="APPLE COMPUTER", action="link", instrument_id=apple.pk)
    held = client.get("/api/positions", **auth).json()["results"]
    assert [(p["instrument"]["ticker"], p["quantity"], p["symbols"]) for p in held] == [
        ("AAPL", "14", ["AAPL", "APPLE COMPUTER"]),
        ("MSFT", "5", ["MSFT"]),
    ]
    detail = client.get(f"/imports/{second.pk}/").content.decode()
    assert "2 linked to an instrument, 0 waiting for a decision" in detail


@pytest.mark.parametrize("sql_path", [True, False])
def test_orders_are_linked_as_they_are_written_on_the_sql_and_the_python_path(
    user: Any,
    reviewer: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: Any,
    sql_path: bool,
) -> None:
    capture = django_capture_on_commit_callbacks
    imported(user, reviewer, "instruments.csv", INSTRUMENTS, run_jobs, capture, "instruments")
    # No pass after the file: what is linked was linked by the INSERT itself.
    monkeypatch.setitem(WRITERS, "orders", replace(WRITERS["orders"], after_file=None, fast_path=sql_path))
    # The benchmark's layout and mapping: a mapping the SQL path compiles.
    lines = [",".join(data.HEADER)]
    for n, symbol in enumerate(["US0378331005", "apple inc", "AAPL.US"]):
        lines.append(f"U1,{symbol},Buy,1,10.5,0,USD,2024-03-0{n + 1} 10:00:00,T-{n},NASDAQ,LMT,x")
    with capture(execute=True):
        _, [file] = upload_batch_create(owner=user, files=[csv_upload("bench.csv", "\n".join(lines) + "\n")])
    run_jobs()
    fmt = ImportFile.objects.get(pk=file.pk).format
    with capture(execute=True):
        review_approve(format_id=fmt.pk, actor=reviewer, mapping={**fmt.mapping, "fields": data.MAPPING["fields"]})
    run_jobs()
    assert ImportFile.objects.get(pk=file.pk).status == FileStatus.IMPORTED
    # With fast_path on, the SQL path writes the orders; off, the Python path does.
    assert fastpath.plan_for(data.MAPPING, data.HEADER, dedupe=True) is not None
    by_symbol = dict(Order.objects.filter(source_file=file).values_list("symbol", "instrument__ticker"))
    # ISIN and alias at insert time; 'AAPL.US' (a suffix rule, decided once per value) waits for the pass after
    assert by_symbol == {"US0378331005": "AAPL", "APPLE INC": "AAPL", "AAPL.US": None}


def test_a_decision_on_a_value_no_order_holds_or_out_of_bounds_is_refused_and_changes_nothing(
    user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    file = imported(user, reviewer, "fuzzy.csv", FUZZY, run_jobs, capture, "orders")
    with pytest.raises(Conflict, match="No order of this owner holds 'TSLA': nothing to decide."):
        reconcile_decide(actor=reviewer, owner_id=user.pk, value="tsla", action="leave")
    with pytest.raises(Conflict, match="in files of that format"):
        reconcile_decide(actor=reviewer, owner_id=user.pk, value="APPLE COMPUTER", action="leave", format_id=999999)
    with pytest.raises(Conflict):
        reconcile_decide(actor=reviewer, owner_id=999999, value="APPLE COMPUTER", action="create")
    with pytest.raises(InvalidRequest, match="1 to 64 characters"):
        reconcile_decide(actor=reviewer, owner_id=user.pk, value="X" * 65, action="leave")
    with pytest.raises(InvalidRequest, match="'link', 'create' or 'leave'"):
        reconcile_decide(actor=reviewer, owner_id=user.pk, value="APPLE COMPUTER", action="merge")
    assert not InstrumentLink.objects.exists() and not Instrument.objects.exists()
    assert set(Order.objects.filter(source_file=file).values_list("instrument", flat=True)) == {None}
