"""A Content-Security-Policy header on every response (Django 5.2 has no built-in CSP).

Scripts load from our origin; a template that needs an inline <script> marks it with
`nonce="{{ request.csp_nonce }}"` (a fresh random nonce per request), never with 'unsafe-inline'.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
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


def upload_origins() -> str:
    """Where the browser may send files itself: the bucket's public origin when direct uploads are on, else ''."""
    conf = getattr(settings, "AIRLOCK_S3", {})
    if not (settings.AIRLOCK.get("DIRECT_UPLOADS") and conf.get("BUCKET")):
        return ""
    endpoint = conf.get("PUBLIC_ENDPOINT_URL") or conf.get("ENDPOINT_URL")
    if not endpoint:
        return "https://*.amazonaws.com"  # AWS S3 itself: the bucket's virtual-host or regional endpoint
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


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
                policy = POLICY.replace("script-src 'self'", f"script-src 'self' 'nonce-{nonce}'")
                origins = upload_origins()
                if origins:  # direct uploads: the page sends files to the bucket (imports/services/direct_uploads.py)
                    policy = policy.replace("connect-src 'self'", f"connect-src 'self' {origins}")
                response["Content-Security-Policy"] = policy
        return response
