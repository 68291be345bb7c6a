"""Error pages: browsers get the site's styled page (no stack trace, no versions), the JSON API its error shape."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import path

from config.urls import urlpatterns as site_urls

pytestmark = pytest.mark.django_db


def crash(request: Any) -> Any:
    raise RuntimeError("secret internal detail: /srv/app/settings.py line 42")


def forbidden(request: Any) -> Any:
    from django.core.exceptions import PermissionDenied

    raise PermissionDenied


urlpatterns = [path("boom/", crash), path("api/boom", crash), path("nope/", forbidden), *site_urls]
handler404 = "imports.api.reports.json_not_found"
handler500 = "imports.api.reports.json_server_error"
handler403 = "imports.api.reports.json_permission_denied"
handler400 = "imports.api.reports.json_bad_request"


def styled(body: str) -> bool:
    return re.search(r"/static/airlock/app\.[0-9a-f.]*css", body) is not None and 'id="error-page"' in body


def test_an_unknown_page_is_the_sites_styled_404(client: Client, user: Any) -> None:
    client.force_login(user)
    response = client.get("/no/such/page/")
    body = response.content.decode()
    assert response.status_code == 404 and styled(body) and "Page not found" in body
    assert "My imports" in body  # the site's navigation, so the user can go on


def test_an_unknown_api_url_keeps_the_json_error_shape(client: Client) -> None:
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_a_client_asking_for_json_gets_the_json_error_shape_and_a_browser_the_page(client: Client) -> None:
    script = client.get("/no/such/page/", HTTP_ACCEPT="application/json")
    assert script.status_code == 404 and script["Content-Type"] == "application/json"
    assert script.json()["error"] == "not_found"
    browser = client.get(
        "/no/such/page/", HTTP_ACCEPT="text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"
    )
    assert browser.status_code == 404 and styled(browser.content.decode())
    assert styled(client.get("/no/such/page/", HTTP_ACCEPT="*/*").content.decode())


@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_a_crash_for_a_client_asking_for_json_is_the_json_shape_without_the_detail(user: Any) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    response = client.get("/boom/", HTTP_ACCEPT="application/json")
    assert response.status_code == 500 and response.json()["error"] == "server_error"
    assert "secret" not in response.content.decode()
    forbidden = client.get("/nope/", HTTP_ACCEPT="application/json")
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "permission_denied"


@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_a_crash_is_a_styled_500_for_browsers_and_json_for_the_api_and_never_shows_the_detail(user: Any) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    page = client.get("/boom/")
    body = page.content.decode()
    assert page.status_code == 500 and styled(body) and "Something went wrong" in body
    assert "secret internal detail" not in body and "Traceback" not in body and "Django" not in body
    api = client.get("/api/boom")
    assert api.status_code == 500 and api.json()["error"] == "server_error"
    assert "secret" not in api.content.decode()


@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_a_forbidden_page_is_the_styled_403(client: Client, user: Any) -> None:
    client.force_login(user)
    response = client.get("/nope/")
    assert response.status_code == 403 and styled(response.content.decode())
    assert "Not allowed" in response.content.decode()


def test_a_form_sent_without_its_csrf_token_gets_the_styled_expired_form_page(user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/", {})
    body = response.content.decode()
    assert response.status_code == 403 and styled(body) and "This form has expired" in body
