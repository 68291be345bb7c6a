"""Login throttling (django-axes): wrong passwords lock the username for that address for the cool-off."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from tests.security.conftest import bearer

pytestmark = pytest.mark.django_db

PASSWORD = "right-pw-1234"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Each login attempt that reaches the password check costs a full PBKDF2 hash (about a second on a busy
    machine); what is tested here is the counting, not the hash."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def member(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        username="throttled", password=PASSWORD, is_staff=True, is_superuser=True
    )


def _login(client: Client, path: str, password: str) -> Any:
    return client.post(path, {"username": "throttled", "password": password, "next": "/"})


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_after_the_failure_limit_the_right_password_is_refused_during_the_cool_off(
    client: Client, settings: Any, member: Any, path: str
) -> None:
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    for _ in range(5):
        wrong = _login(client, path, "wrong-password")
        assert wrong.status_code in (200, 429) and not _logged_in(client)
    refused = _login(client, path, PASSWORD)
    assert refused.status_code == 429, refused.content
    assert b"Too many failed logins" in refused.content and b"after 5 wrong passwords" in refused.content
    assert not _logged_in(client)
    # Another address is not locked out by this one's failures (the lock is per username and IP).
    elsewhere = Client(REMOTE_ADDR="10.9.8.7")
    assert _login(elsewhere, path, PASSWORD).status_code == 302 and _logged_in(elsewhere)


def test_the_lock_ends_after_the_cool_off_and_axes_reset_lifts_it_early(
    client: Client, settings: Any, member: Any
) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        _login(client, "/accounts/login/", "wrong-password")
    assert _login(client, "/accounts/login/", PASSWORD).status_code == 429
    # Cool-off over: the attempts are older than AXES_COOLOFF_TIME.
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert _login(client, "/accounts/login/", PASSWORD).status_code == 302 and _logged_in(client)
    client.logout()
    for _ in range(3):
        _login(client, "/accounts/login/", "wrong-password")
    assert _login(client, "/accounts/login/", PASSWORD).status_code == 429
    call_command("axes_reset")
    assert _login(client, "/accounts/login/", PASSWORD).status_code == 302 and _logged_in(client)


def test_fewer_failures_than_the_limit_then_the_right_password_logs_in_and_resets_the_count(
    client: Client, settings: Any, member: Any
) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        _login(client, "/accounts/login/", "wrong-password")
    assert _login(client, "/accounts/login/", PASSWORD).status_code == 302 and _logged_in(client)
    client.logout()
    for _ in range(2):
        _login(client, "/accounts/login/", "wrong-password")
    assert _login(client, "/accounts/login/", PASSWORD).status_code == 302, "the success reset the count"


def test_api_token_guessing_is_throttled_per_client_address(client: Client, settings: Any, user: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 5
    statuses = [client.get("/api/orders", HTTP_AUTHORIZATION=f"Bearer guess-{n:040d}").status_code for n in range(20)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    locked = client.get("/api/orders", **bearer(user))
    assert locked.status_code == 429, "even the right token is refused while the address is locked out"
    body = locked.json()
    assert body["error"] == "too_many_failed_attempts"
    assert "calls with a token are refused for 15 minutes" in body["message"] and locked["Retry-After"] == "900"
    assert Client(REMOTE_ADDR="10.0.0.8").get("/api/orders", **bearer(user)).status_code == 200
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert client.get("/api/orders", **bearer(user)).status_code == 200, "the cool-off has passed"


def test_axes_reset_ip_lifts_a_token_lockout(client: Client, settings: Any, user: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    for n in range(3):
        client.get("/api/orders", HTTP_AUTHORIZATION=f"Bearer guess-{n}")
    assert client.get("/api/orders", **bearer(user)).status_code == 429
    call_command("axes_reset_ip", "127.0.0.1")
    assert client.get("/api/orders", **bearer(user)).status_code == 200


def test_a_refused_tokens_upload_is_neither_parsed_nor_logged(client: Client) -> None:
    response = client.post(
        "/api/uploads", {"file": SimpleUploadedFile("x.csv", b"secret,data\n")}, HTTP_AUTHORIZATION="Bearer nope"
    )
    assert response.status_code == 401
    attempt = AccessAttempt.objects.get()
    assert "secret" not in attempt.post_data and attempt.path_info == "/api/uploads"
    assert attempt.username == "(api token)"


def test_behind_a_trusted_proxy_clients_are_told_apart_and_a_forged_forwarded_for_does_not_help(
    client: Client, settings: Any, member: Any
) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, "TRUSTED_PROXIES": 1}
    settings.AXES_FAILURE_LIMIT = 5
    # nginx appends the address it saw (203.0.113.9) to whatever the client sent.
    for n in range(5):
        client.post(
            "/accounts/login/",
            {"username": "throttled", "password": "wrong"},
            HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, 203.0.113.9",
        )
    forged = client.post(
        "/accounts/login/",
        {"username": "throttled", "password": PASSWORD},
        HTTP_X_FORWARDED_FOR="10.1.1.1, 203.0.113.9",
    )
    assert forged.status_code == 429
    other = Client().post(
        "/accounts/login/", {"username": "throttled", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="203.0.113.10"
    )
    assert other.status_code == 302, "another client behind the same nginx is not locked out"
