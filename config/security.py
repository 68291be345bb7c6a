"""A Content-Security-Policy header on every response (Django 5.2 has no built-in CSP).

Scripts load from our origin; a template that needs an inline <script> marks it with
`nonce="{{ request.csp_nonce }}"` (a fresh random nonce per request), never with 'unsafe-inline'.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

# Scripts only from our own origin. Inline styles are allowed: the admin review screen and the status
# badges use style attributes, and inline CSS cannot run code. No framing, no plugins, no <base> tricks,
# forms post only to us.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# The django-rq dashboard's templates carry inline <script> blocks (job actions); superusers only.
RQ_DASHBOARD_POLICY = POLICY.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")


class ContentSecurityPolicyMiddleware:
    """Adds the Content-Security-Policy header unless a view already set one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            if request.path_info.startswith("/admin/rq/"):
                response["Content-Security-Policy"] = RQ_DASHBOARD_POLICY
            else:
                response["Content-Security-Policy"] = POLICY.replace(
                    "script-src 'self'", f"script-src 'self' 'nonce-{nonce}'"
                )
        return response
