"""End to end over HTTP: upload -> pending format -> approve -> a real worker writes the orders."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.core.management import call_command

from imports.models import ImportFile, Order
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UNKNOWN_FORMAT = """Trade Date,Ticker,Buy or Sell,Shares,Fill Price,Fee,Ccy,Ref
2024-03-01 09:30:00,AAPL,Buy,10,171.25,1.00,USD,T-1
2024-03-01 10:15:00,MSFT,Sell,5,410.10,1.00,USD,T-2
2024-03-04 15:59:59,AAPL,Sell,4,174.00,0.50,USD,T-3
"""


def token_for(username: str, *flags: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("api_token", username, "--create", *flags, stdout=out)
    return out.getvalue().strip()


def test_an_unknown_format_waits_for_approval_then_a_worker_imports_it(stack: Stack) -> None:
    user_token = token_for("trader")
    admin_token = token_for("checker", "--approver")
    user = {"Authorization": f"Bearer {user_token}"}
    admin = {"Authorization": f"Bearer {admin_token}"}

    response = requests.post(
        f"{stack.base_url}/api/uploads",
        headers=user,
        files={"file": ("trades.csv", UNKNOWN_FORMAT.encode(), "text/csv")},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    file_id = response.json()["files"][0]["id"]

    def status() -> dict[str, Any]:
        return requests.get(f"{stack.base_url}/api/uploads/{file_id}", headers=user, timeout=10).json()

    pending = stack.wait_for(lambda: (s := status())["status"] == "PENDING_APPROVAL" and s, what="staging")
    assert pending["format"]["status"] == "PENDING"
    assert pending["rows"]["staged"] == 3
    assert Order.objects.count() == 0, "staged rows must not reach production before approval"

    formats = requests.get(f"{stack.base_url}/api/admin/formats/pending", headers=admin, timeout=10).json()
    fmt = next(f for f in formats["results"] if f["id"] == pending["format"]["id"])
    assert fmt["staged_rows"] == 3
    mapping = fmt["mapping"]
    assert mapping["fields"]["symbol"]["columns"] == ["Ticker"]

    # A plain user cannot approve; the reviewer can.
    denied = requests.post(f"{stack.base_url}/api/admin/formats/{fmt['id']}/approve", headers=user, json={}, timeout=10)
    assert denied.status_code == 403
    assert denied.json()["error"] == "permission_denied"
    approved = requests.post(
        f"{stack.base_url}/api/admin/formats/{fmt['id']}/approve", headers=admin, json={"mapping": mapping}, timeout=10
    )
    assert approved.status_code == 202, approved.text

    done = stack.wait_for(lambda: (s := status())["status"] == "IMPORTED" and s, what="migration")
    assert done["rows"]["imported"] == 3
    orders = requests.get(f"{stack.base_url}/api/orders", headers=user, timeout=10).json()
    assert len(orders["results"]) == 3 and orders["next"] is None
    by_ref = {o["broker_trade_id"]: o for o in orders["results"]}
    assert by_ref["T-2"]["side"] == "SELL" and by_ref["T-2"]["symbol"] == "MSFT"
    assert by_ref["T-2"]["quantity"] == "5" and by_ref["T-2"]["price"] == "410.1"
    assert Order.objects.filter(source_file_id=file_id).count() == 3
    assert ImportFile.objects.get(pk=file_id).format.approved_by.username == "checker"


def test_healthz_reports_the_database_redis_and_a_worker(stack: Stack) -> None:
    body = stack.wait_for(
        lambda: (r := requests.get(f"{stack.base_url}/healthz", timeout=5)).status_code == 200 and r.json(),
        what="a healthy /healthz",
    )
    assert body["database"] == "ok" and body["redis"] == "ok" and body["workers"] >= 1
    for proc in stack.processes[1:]:
        stack.stop(proc)
    down = stack.wait_for(
        lambda: (r := requests.get(f"{stack.base_url}/healthz", timeout=5)).status_code == 503 and r.json(),
        what="/healthz to notice the worker is gone",
    )
    assert down["workers"] == 0 and "worker" in down["problem"]
