"""The JSON API with bearer tokens: uploads, status, orders, review, one error shape."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from audit.models import AuditEvent
from tests.conftest import api_key_for
from tests.imports.pipeline.test_pipeline import TRADES

pytestmark = pytest.mark.django_db


def bearer(user: Any) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {api_key_for(user)}"}


def post_upload(client: Client, user: Any, capture: Any, text: str = TRADES) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    with capture(execute=True):
        return client.post("/api/uploads", {"file": SimpleUploadedFile("t.csv", text.encode())}, **bearer(user))


def test_the_api_refuses_requests_without_login_in_the_error_shape(client: Client) -> None:
    response = client.get("/api/orders")
    assert response.status_code == 401
    assert response.json() == {
        "error": "not_authenticated",
        "message": "Authentication required: log in or send a Bearer token.",
        "details": {},
    }


def test_a_wrong_token_is_refused(client: Client) -> None:
    response = client.get("/api/orders", HTTP_AUTHORIZATION="Bearer nope")
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


def test_upload_returns_202_with_the_batch_and_file_ids(
    client: Client, user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    response = post_upload(client, user, django_capture_on_commit_callbacks)
    assert response.status_code == 202
    body = response.json()
    assert body["batch"] and body["files"][0]["status"] == "UPLOADED"
    run_jobs()
    status = client.get(f"/api/uploads/{body['files'][0]['id']}", **bearer(user)).json()
    assert status["status"] == "PENDING_APPROVAL"
    assert status["rows"] == {
        "total": 3,
        "staged": 3,
        "imported": 0,
        "invalid": 0,
        "failed": 0,
        "skipped": 0,
        "duplicate": 0,
    }
    assert status["format"]["status"] == "PENDING"


def test_another_users_file_answers_404(
    client: Client, user: Any, other_user: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    file_id = post_upload(client, user, django_capture_on_commit_callbacks).json()["files"][0]["id"]
    response = client.get(f"/api/uploads/{file_id}", **bearer(other_user))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_approve_with_a_corrected_mapping_then_orders_are_listed(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    post_upload(client, user, django_capture_on_commit_callbacks)
    run_jobs()
    pending = client.get("/api/admin/formats/pending", **bearer(reviewer)).json()["results"]
    assert len(pending) == 1
    mapping = pending[0]["mapping"]
    mapping["fields"]["quantity"]["options"]["default"] = "1"  # a correction: a blank quantity means 1
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/admin/formats/{pending[0]['id']}/approve",
            mapping and {"mapping": mapping},
            content_type="application/json",
            **bearer(reviewer),
        )
    assert response.status_code == 202, response.content
    assert response.json()["mapping"]["fields"]["quantity"]["options"]["default"] == "1"
    run_jobs()
    orders = client.get("/api/orders?page_size=1", **bearer(user)).json()
    assert len(orders["results"]) == 1 and orders["next"]
    rest = client.get(orders["next"], **bearer(user)).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    event = AuditEvent.objects.get(action="format.approved")
    assert event.actor == reviewer and event.details["mapping"]["fields"]["quantity"]["options"]["default"] == "1"


def test_an_invalid_corrected_mapping_is_refused_with_a_clear_message(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    post_upload(client, user, django_capture_on_commit_callbacks)
    run_jobs()
    format_id = client.get("/api/admin/formats/pending", **bearer(reviewer)).json()["results"][0]["id"]
    bad = {"fields": {"symbol": {"columns": ["Nope"], "converter": "text", "options": {}}}}
    response = client.post(
        f"/api/admin/formats/{format_id}/approve", {"mapping": bad}, content_type="application/json", **bearer(reviewer)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_mapping"
    assert "not mapped" in response.json()["message"] or "Nope" in response.json()["message"]


def test_reject_needs_a_reason(
    client: Client, user: Any, reviewer: Any, run_jobs: Any, django_capture_on_commit_callbacks: Any
) -> None:
    post_upload(client, user, django_capture_on_commit_callbacks)
    run_jobs()
    format_id = client.get("/api/admin/formats/pending", **bearer(reviewer)).json()["results"][0]["id"]
    missing = client.delete(
        f"/api/admin/formats/{format_id}/approve", {}, content_type="application/json", **bearer(reviewer)
    )
    assert missing.status_code == 400 and missing.json()["error"] == "reason_required"
    done = client.delete(
        f"/api/admin/formats/{format_id}/approve",
        {"reason": "duplicate of IBKR"},
        content_type="application/json",
        **bearer(reviewer),
    )
    assert done.status_code == 200 and done.json()["status"] == "REJECTED"


def test_api_token_command_prints_a_token_that_authenticates(client: Client) -> None:
    out = StringIO()
    call_command("api_token", "script-user", "--create", "--approver", stdout=out)
    token = out.getvalue().strip()
    response = client.get("/api/admin/formats/pending", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200


def test_session_writes_without_a_csrf_token_are_refused(user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/api/uploads", {})
    assert response.status_code == 403 and response.json()["error"] == "csrf_failed"
