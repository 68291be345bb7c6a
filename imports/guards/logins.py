"""Throttling of failed API tokens, with django-axes like the login pages (failures kept in Postgres).

Both login pages go through Django's backends, where axes' `AxesStandaloneBackend` refuses a locked-out
(username, address) pair before the password is checked (config/settings.py). The API token check does
not go through a backend, so `TokenAuthenticationMiddleware` asks `token_attempt_locked` first and
reports each wrong token with `token_attempt_failed`: wrong tokens are counted per client address (under
the pseudo-username TOKEN_USERNAME, which no real username can be), with the same limit and cool-off as
passwords (AIRLOCK_LOGIN_FAILURE_LIMIT, AIRLOCK_LOGIN_COOLOFF_MINUTES). `manage.py axes_reset` or
`axes_reset_ip ADDRESS` lifts a block early.
"""

from __future__ import annotations

from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, QueryDict

from config.errors import RateLimited

# Django's username validator allows letters, digits and @.+-_ only, so no account can be called this.
TOKEN_USERNAME = "(api token)"
API_TOKEN_SENDER = "airlock.api_token"


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or the one AIRLOCK_TRUSTED_PROXIES proxies in front of us recorded.

    Each trusted proxy (nginx, a load balancer) appends the address it was reached from to
    X-Forwarded-For, so the client is the N-th entry from the right; anything further left was sent by
    the client itself and could be forged to dodge a lockout or to lock someone else out.
    """
    proxies = settings.AIRLOCK["TRUSTED_PROXIES"]
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")


class _TokenAttempt:
    """The request as axes sees a failed token: without its body (a refused caller's upload is never parsed
    nor logged)."""

    def __init__(self, request: HttpRequest) -> None:
        self._request = request
        self.POST = QueryDict()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def _credentials() -> dict[str, Any]:
    return {"username": TOKEN_USERNAME}


def token_attempt_locked(request: HttpRequest) -> RateLimited | None:
    """The error to answer with if this client may not try a token now (too many wrong tokens)."""
    if AxesProxyHandler.is_allowed(_TokenAttempt(request), _credentials()):
        return None
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return RateLimited(
        f"Too many wrong API tokens from your address: calls with a token are refused for {minutes} minute"
        f"{'s' if minutes != 1 else ''} after the last wrong one. An administrator can lift the block sooner.",
        code="too_many_failed_attempts",
        details={"retry_after": int(settings.AXES_COOLOFF_TIME.total_seconds())},
    )


def token_attempt_failed(request: HttpRequest) -> None:
    """Count a wrong or inactive token against the client, like a wrong password."""
    user_login_failed.send(sender=API_TOKEN_SENDER, credentials=_credentials(), request=_TokenAttempt(request))
