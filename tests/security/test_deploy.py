"""Production settings: `check --deploy` is clean, security headers and CSP, CSRF on every form."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.security.conftest import bearer

ROOT = Path(__file__).resolve().parents[2]


def production_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRLOCK_SECURE", "SECURE_", "DEBUG", "DJANGO_SETTINGS_MODULE"))
    }
    env.update(
        {
            "SECRET_KEY": secrets.token_urlsafe(64),
            "DEBUG": "0",
            "ALLOWED_HOSTS": "airlock.example.com",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **extra,
        }
    )
    return env


def test_check_deploy_passes_with_production_settings() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_with_a_weak_secret_key() -> None:
    """The check above can fail: a short, guessable key is reported (without any key nothing starts at all:
    tests/test_deployment.py)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(SECRET_KEY="change-me"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0 and "security.W009" in (result.stdout + result.stderr)


def test_production_turns_on_https_cookies_and_hsts() -> None:
    script = (
        "import json; from django.conf import settings as s;"
        "print(json.dumps({k: getattr(s, k, None) for k in ('SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE',"
        "'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SESSION_COOKIE_HTTPONLY',"
        "'SECURE_CONTENT_TYPE_NOSNIFF', 'X_FRAME_OPTIONS', 'SECURE_REFERRER_POLICY', 'DEBUG')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup();" + script],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_REFERRER_POLICY": "same-origin",
        "DEBUG": False,
    }


@pytest.mark.django_db
def test_pages_and_api_answers_carry_the_security_headers(client: Client, settings: Any, user: Any) -> None:
    settings.SECURE_HSTS_SECONDS = 31536000  # as in production; HSTS is only sent over https
    client.force_login(user)
    for url in ("/", "/imports/", "/api/orders", "/accounts/login/", "/admin/login/"):
        response = client.get(url, secure=True)
        assert response["X-Content-Type-Options"] == "nosniff", url
        assert response["X-Frame-Options"] == "DENY", url
        assert response["Referrer-Policy"] == "same-origin", url
        assert response["Strict-Transport-Security"].startswith("max-age=31536000"), url
        csp = response["Content-Security-Policy"]
        assert re.search(r"script-src 'self' 'nonce-[\w-]{20,}';", csp), csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp and "unsafe-inline'; img" in csp, url


def test_templates_have_no_inline_script_that_the_csp_would_block() -> None:
    """script-src 'self' + nonce: an inline <script> must carry the request's nonce; no on* handlers."""
    problems = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag and 'type="application/json"' not in tag and "request.csp_nonce" not in tag:
                problems.append(f"{path.relative_to(ROOT)}: inline {tag}")
        if re.search(r"\son[a-z]+\s*=", text):
            problems.append(f"{path.relative_to(ROOT)}: inline event handler attribute")
        if "javascript:" in text:
            problems.append(f"{path.relative_to(ROOT)}: javascript: URL")
    assert not problems, "\n".join(problems)


def test_every_post_form_in_our_templates_has_a_csrf_token() -> None:
    forms = []
    for path in (ROOT / "templates").rglob("*.html"):
        for match in re.finditer(r"<form\b[^>]*method=\"post\"[^>]*>(.*?)</form>", path.read_text(), re.S | re.I):
            forms.append((path.relative_to(ROOT), "{% csrf_token %}" in match.group(1)))
    assert len(forms) >= 3
    assert all(has_token for _, has_token in forms), [str(path) for path, ok in forms if not ok]


@pytest.mark.django_db
def test_session_posts_without_a_csrf_token_are_refused(user: Any, reviewer: Any) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from imports.models import ImportBatch
    from tests.imports.pipeline.test_pipeline import TRADES

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.post("/", {"file": SimpleUploadedFile("t.csv", TRADES.encode())})
    assert page.status_code == 403
    api = client.post("/api/uploads", {"file": SimpleUploadedFile("t.csv", TRADES.encode())})
    assert api.status_code == 403 and api.json()["error"] == "csrf_failed"
    assert not ImportBatch.objects.exists()
    # With a bearer token there is no cookie to forge: no CSRF token needed.
    ok = client.post("/api/uploads", {"file": SimpleUploadedFile("t.csv", TRADES.encode())}, **bearer(user))
    assert ok.status_code == 202
    client.force_login(reviewer)
    assert client.post("/admin/logout/").status_code == 403


@pytest.mark.django_db
def test_the_review_screens_inline_script_carries_the_nonce_of_its_csp(
    client: Client, reviewer: Any, owned_files: dict[str, Any]
) -> None:
    client.force_login(reviewer)
    response = client.get(f"/admin/formats/csvformat/{owned_files['pending'].format_id}/change/")
    nonce = re.search(r"'nonce-([\w-]+)'", response["Content-Security-Policy"]).group(1)
    scripts = re.findall(rb"<script\b[^>]*>", response.content)
    inline = [tag for tag in scripts if b"src=" not in tag and b"application/json" not in tag]
    assert inline, "the review screen has no inline script any more: drop this test"
    assert all(f'nonce="{nonce}"'.encode() in tag for tag in inline), inline
    assert client.get("/").get("Content-Security-Policy") != response["Content-Security-Policy"]  # fresh nonce
