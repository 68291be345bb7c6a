"""Login throttling (django-axes): wrong passwords lock the username for that address for the cool-off."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "right-pw-1234"


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
