"""Access control: login everywhere, owners only, review/rollback permissions, segregation of duties."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from audit.models import AuditEvent
from formats.models import CsvFormat, FormatStatus
from tests.security.conftest import bearer

pytestmark = pytest.mark.django_db

# Patterns under imports.urls that are deliberately public, with why. Everything else needs a login.
PUBLIC = {"imports:api-schema": "the OpenAPI description: endpoint names only, no data"}
# Patterns authenticated by something other than a user login: refused (403) without it.
SECRET_AUTH = {"imports:api-cron-cleanup": "CRON_SECRET shared secret (imports/api/cron.py), off while unset"}
# Which of the fixture's objects an id parameter names. A new endpoint with another id parameter makes
# test_every_endpoint_that_takes_an_id_answers_404_for_another_users_id fail until it is added here.
ID_PARAMS = {"file_id": lambda files: files["imported"].pk, "batch_id": lambda files: files["batch"]}
# Ids that are not owned by an uploader: reviewers act on every format (permission-checked instead).
NOT_OWNED = {"format_id"}


def imports_patterns() -> list[tuple[str, URLPattern]]:
    """(namespaced name, pattern) of every URL under imports.urls, walked from the root resolver."""
    found: list[tuple[str, URLPattern]] = []

    def walk(patterns: list, namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, pattern.namespace or namespace)
            elif namespace == "imports" and pattern.name:
                found.append((f"imports:{pattern.name}", pattern))

    walk(get_resolver().url_patterns, None)
    assert len(found) >= 8, found
    return found


def url_for(name: str, pattern: URLPattern, ids: dict[str, int] | None = None) -> str:
    params = {key: (ids or {}).get(key, 999999) for key in pattern.pattern.converters}
    return reverse(name, kwargs=params)


@pytest.mark.parametrize("method", ["get", "post"])
def test_every_imports_url_needs_a_login(client: Client, method: str) -> None:
    problems = []
    for name, pattern in imports_patterns():
        if name in PUBLIC:
            continue
        url = url_for(name, pattern)
        response = getattr(client, method)(url)
        if name in SECRET_AUTH:
            ok = response.status_code in (403, 405)
        elif url.startswith("/api/"):
            ok = response.status_code == 401 and response.json()["error"] == "not_authenticated"
            # A wrong method may be refused first: 405 says nothing about any data.
            ok = ok or response.status_code == 405
        else:
            ok = response.status_code in (302, 405) and (
                response.status_code == 405 or response["Location"].startswith("/accounts/login/")
            )
        if not ok:
            problems.append(f"{method.upper()} {url} ({name}) -> {response.status_code}")
    assert not problems, "reachable without login:\n" + "\n".join(problems)


def test_a_bad_bearer_token_is_refused_on_every_api_url(client: Client) -> None:
    for n, (name, pattern) in enumerate(imports_patterns()):
        url = url_for(name, pattern)
        if not url.startswith("/api/") or name in PUBLIC or name in SECRET_AUTH:
            continue
        # Each from its own address: a client with too many wrong tokens is locked out (429), tested in
        # test_login_throttling.py; here every URL must answer the wrong token itself.
        response = client.get(url, HTTP_AUTHORIZATION="Bearer forged-token", REMOTE_ADDR=f"10.20.{n // 250}.{n % 250}")
        assert response.status_code == 401 and response.json()["error"] == "invalid_token", url


def _call(client: Client, url: str, headers: dict[str, str]) -> Any:
    response = client.get(url, **headers)
    if response.status_code == 405:
        response = client.post(url, **headers)
    return response


# POST actions the owner's imported file is in the wrong state for, or sent without a body (only a FAILED file
# is retried; a fix names its rows).
STATE_ACTIONS = {"imports:retry", "imports:api-upload-retry", "imports:fix-rows", "imports:api-upload-fix-rows"}


def test_every_endpoint_that_takes_an_id_answers_404_for_another_users_id(
    client: Client, user: Any, other_user: Any, owned_files: dict[str, Any]
) -> None:
    checked = []
    for name, pattern in imports_patterns():
        params = set(pattern.pattern.converters)
        if not params or params & NOT_OWNED:
            continue
        unknown = params - set(ID_PARAMS)
        assert not unknown, f"{name} takes {unknown}: add it to ID_PARAMS so ownership is tested"
        url = url_for(name, pattern, {key: ID_PARAMS[key](owned_files) for key in params})
        api = url.startswith("/api/")
        if api:
            stranger, owner = bearer(other_user), bearer(user)
        else:
            stranger = owner = {}
            client.force_login(other_user)
        response = _call(client, url, stranger)
        assert response.status_code == 404, f"{url}: another user got {response.status_code}"
        if api:
            assert response.json()["error"] == "not_found"
        # The owner reaches the same URL (so the 404 above is about ownership, not a bad URL).
        if not api:
            client.force_login(user)
        response = _call(client, url, owner)
        if name in STATE_ACTIONS:
            # A POST action on a file in the wrong state for it: refused for the state (409, or the page
            # with its message), which shows the owner reached it.
            assert response.status_code in (302, 400, 409), f"{url}: the owner got {response.status_code}"
            if api:
                assert response.json()["error"] in ("retry_refused", "invalid_fix", "invalid_json")
            checked.append(url)
            client.logout()
            continue
        assert response.status_code == 200, f"{url}: the owner got {response.status_code}"
        body = b"".join(response.streaming_content) if response.streaming else response.content
        if url.endswith(".xlsx"):  # a workbook: its parts, unpacked
            with zipfile.ZipFile(io.BytesIO(body)) as book:
                body = b"".join(book.read(name) for name in book.namelist())
        assert b"trades.csv" in body or b"quantity" in body, f"{url}: the owner does not see their file"
        checked.append(url)
        client.logout()
    assert any("/api/uploads/" in url for url in checked) and any(url.startswith("/imports/") for url in checked)


def test_lists_show_only_the_callers_own_files_orders_and_staged_rows(
    client: Client, user: Any, other_user: Any, owned_files: dict[str, Any]
) -> None:
    client.force_login(other_user)
    for url in ("/imports/", "/orders/", "/staged/"):
        page = client.get(url)
        assert page.status_code == 200
        assert b"trades.csv" not in page.content and b"MSFT" not in page.content, url
        assert b"pending.csv" not in page.content and b"IBM" not in page.content, url
    for url in ("/api/orders", "/api/uploads"):
        body = client.get(url, **bearer(other_user)).json()
        assert body["results"] == [], url
    staged = client.get("/api/staging/orders", **bearer(other_user)).json()
    assert staged["results"] == []
    client.force_login(user)
    assert b"MSFT" in client.get("/orders/").content
    assert b"IBM" in client.get("/staged/").content
    assert len(client.get("/api/orders", **bearer(user)).json()["results"]) == 2


# --------------------------------------------------------------------------------------------------
# Review permissions


def test_staff_without_the_approve_permission_gets_403_from_the_review_api(
    client: Client, staff_without_perms: Any, owned_files: dict[str, Any]
) -> None:
    fmt_id = owned_files["pending"].format_id
    headers = bearer(staff_without_perms)
    assert client.get("/api/admin/formats/pending", **headers).status_code == 403
    approve = client.post(f"/api/admin/formats/{fmt_id}/approve", {}, content_type="application/json", **headers)
    reject = client.delete(
        f"/api/admin/formats/{fmt_id}/approve", {"reason": "no"}, content_type="application/json", **headers
    )
    for response in (approve, reject):
        assert response.status_code == 403
        assert response.json()["error"] == "permission_denied"
        assert "approve CSV formats" in response.json()["message"]
    assert CsvFormat.objects.get(pk=fmt_id).status == FormatStatus.PENDING


def test_staff_without_the_approve_permission_do_not_see_the_admin_actions_nor_the_buttons(
    client: Client, staff_without_perms: Any, reviewer: Any, owned_files: dict[str, Any]
) -> None:
    fmt_id = owned_files["pending"].format_id
    client.force_login(staff_without_perms)
    changelist = client.get("/admin/formats/csvformat/")
    assert changelist.status_code == 200
    assert b"approve_selected" not in changelist.content and b"reject_selected" not in changelist.content
    change = client.get(f"/admin/formats/csvformat/{fmt_id}/change/")
    assert change.status_code == 200
    assert b'name="_approve"' not in change.content and b'name="_reject"' not in change.content
    # Posting the button anyway changes nothing.
    client.post(f"/admin/formats/csvformat/{fmt_id}/change/", {"_reject": "1", "reason": "x"})
    client.post("/admin/formats/csvformat/", {"action": "approve_selected", "_selected_action": [fmt_id]})
    assert CsvFormat.objects.get(pk=fmt_id).status == FormatStatus.PENDING

    client.force_login(reviewer)
    assert b"approve_selected" in client.get("/admin/formats/csvformat/").content
    assert b'name="_approve"' in client.get(f"/admin/formats/csvformat/{fmt_id}/change/").content


def test_rollback_actions_need_the_rollback_permission(
    client: Client, django_user_model: Any, staff_without_perms: Any, owned_files: dict[str, Any]
) -> None:
    from django.contrib.auth.models import Permission

    file = owned_files["imported"]
    client.force_login(staff_without_perms)
    page = client.get("/admin/imports/importfile/")
    assert page.status_code == 200 and b"rollback_selected" not in page.content
    # Posting the action anyway: Django refuses an action the user does not have; nothing is deleted.
    client.post("/admin/imports/importfile/", {"action": "rollback_selected", "_selected_action": [file.pk]})
    file.refresh_from_db()
    assert file.status == "PARTIAL" and file.orders.count() == 2
    # An API endpoint for rollback, when one exists, must refuse too.
    for name, pattern in imports_patterns():
        if "rollback" in name:
            url = url_for(name, pattern, {"file_id": file.pk})
            assert client.post(url, **bearer(staff_without_perms)).status_code in (403, 404), url
    staff_without_perms.user_permissions.add(Permission.objects.get(codename="rollback_importfile"))
    client.force_login(django_user_model.objects.get(pk=staff_without_perms.pk))
    assert b"rollback_selected" in client.get("/admin/imports/importfile/").content


@pytest.mark.parametrize("allow_self", [False, True])
def test_segregation_of_duties_follows_the_setting_and_records_the_approver(
    client: Client,
    settings: Any,
    reviewer: Any,
    run_jobs: Any,
    django_capture_on_commit_callbacks: Any,
    allow_self: bool,
) -> None:
    from tests.imports.pipeline.test_pipeline import upload

    settings.AIRLOCK = {**settings.AIRLOCK, "ALLOW_SELF_APPROVAL": allow_self}
    file = upload(reviewer, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)  # reviewer uploads
    response = client.post(
        f"/api/admin/formats/{file.format_id}/approve", {}, content_type="application/json", **bearer(reviewer)
    )
    fmt = CsvFormat.objects.get(pk=file.format_id)
    if allow_self:
        assert response.status_code == 202, response.content
        assert fmt.status == FormatStatus.APPROVED and fmt.approved_by == reviewer and fmt.approved_at
        event = AuditEvent.objects.get(action="format.approved", object_id=str(fmt.pk))
        assert event.actor_id == reviewer.pk and event.actor_label == "reviewer"
    else:
        assert response.status_code == 403
        assert "Segregation of duties" in response.json()["message"]
        assert fmt.status == FormatStatus.PENDING and fmt.approved_by is None
        assert not AuditEvent.objects.filter(action="format.approved").exists()


def test_another_reviewer_can_approve_and_is_recorded_as_approver(
    client: Client, user: Any, reviewer: Any, owned_files: dict[str, Any]
) -> None:
    fmt = CsvFormat.objects.get(pk=owned_files["imported"].format_id)
    assert fmt.approved_by == reviewer and fmt.approved_at is not None
    assert AuditEvent.objects.filter(action="format.approved", object_id=str(fmt.pk), actor=reviewer).exists()


# --------------------------------------------------------------------------------------------------
# The django-rq dashboard


def test_the_rq_dashboard_is_for_superusers_only(client: Client, django_user_model: Any, reviewer: Any) -> None:
    assert client.get("/admin/rq/").status_code == 302
    client.force_login(reviewer)  # staff with review rights, not superuser
    response = client.get("/admin/rq/")
    assert response.status_code in (302, 403)
    if response.status_code == 302:
        assert response["Location"].startswith("/admin/login/")
    for name in ("queues/0/", "workers/0/"):
        assert client.get(f"/admin/rq/{name}").status_code in (302, 403, 404)
    root = django_user_model.objects.create_superuser(username="root", password="pw-root-1")
    client.force_login(root)
    response = client.get("/admin/rq/")
    assert response.status_code == 200 and b"high" in response.content
