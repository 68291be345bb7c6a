"""Per-user hourly rate limits on uploads and review decisions, counted in Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from config.errors import RateLimited
from formats.models import CsvFormat, FormatStatus
from imports.guards.rate_limits import rate_limit_hit
from imports.models import IdempotencyKey, ImportBatch
from tests.imports.pipeline.test_pipeline import TRADES, upload
from tests.security.conftest import bearer

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def trades(n: int) -> SimpleUploadedFile:
    return SimpleUploadedFile(f"t{n}.csv", (TRADES + f"2024-03-05 10:00:00,IBM,Buy,{n + 1},1,0,USD,X-{n}\n").encode())


def limits(settings: Any, **values: int) -> None:
    settings.AIRLOCK = {**settings.AIRLOCK, **values}


def test_it_answers_429_with_retry_after_past_the_upload_limit_and_stores_nothing(
    client: Client, settings: Any, user: Any, redis_clean: Any
) -> None:
    limits(settings, UPLOADS_PER_HOUR=2)
    for n in range(2):
        assert client.post("/api/uploads", {"file": trades(n)}, **bearer(user)).status_code == 202
    batches = ImportBatch.objects.count()
    response = client.post("/api/uploads", {"file": trades(3)}, **bearer(user))
    assert response.status_code == 429
    body = response.json()
    assert body["error"] == "rate_limited"
    assert body["message"].startswith(
        "Too many upload requests: the limit is 2 in any hour. The next one is possible in"
    )
    retry = body["details"]["retry_after"]
    assert 1 <= retry <= 3600 and response["Retry-After"] == str(retry)
    assert ImportBatch.objects.count() == batches


def test_a_bulk_request_of_many_files_counts_once(client: Client, settings: Any, user: Any, redis_clean: Any) -> None:
    limits(settings, UPLOADS_PER_HOUR=1)
    response = client.post("/api/uploads", {"file": [trades(n) for n in range(5)]}, **bearer(user))
    assert response.status_code == 202 and len(response.json()["files"]) == 5
    assert client.post("/api/uploads", {"file": trades(9)}, **bearer(user)).status_code == 429


def test_the_limit_is_per_user(client: Client, settings: Any, user: Any, other_user: Any, redis_clean: Any) -> None:
    limits(settings, UPLOADS_PER_HOUR=1)
    assert client.post("/api/uploads", {"file": trades(1)}, **bearer(user)).status_code == 202
    assert client.post("/api/uploads", {"file": trades(2)}, **bearer(user)).status_code == 429
    assert client.post("/api/uploads", {"file": trades(2)}, **bearer(other_user)).status_code == 202


def test_the_counter_is_shared_by_every_process(client: Client, settings: Any, user: Any, redis_clean: Any) -> None:
    """Another web process (here: a separate Python process) spends the same user's budget."""
    limits(settings, UPLOADS_PER_HOUR=3)
    script = (
        "import django, types; django.setup();"
        "from imports.guards.rate_limits import rate_limit_hit;"
        f"[rate_limit_hit(bucket='upload', user=types.SimpleNamespace(pk={user.pk})) for _ in range(3)]"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "AIRLOCK_UPLOADS_PER_HOUR": "3"}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=120)
    assert client.post("/api/uploads", {"file": trades(1)}, **bearer(user)).status_code == 429


def test_the_upload_page_shows_the_limit_message(client: Client, settings: Any, user: Any, redis_clean: Any) -> None:
    limits(settings, UPLOADS_PER_HOUR=1)
    client.force_login(user)
    assert client.post("/", {"file": trades(1), "dedupe": "on"}).status_code == 302
    response = client.post("/", {"file": trades(2), "dedupe": "on"})
    assert response.status_code == 429
    assert b"Too many upload requests: the limit is 1 in any hour." in response.content
    assert b'id="upload-form"' in response.content and response["Retry-After"]
    assert ImportBatch.objects.count() == 1
    assert client.get("/").status_code == 200  # looking at the page is not an upload


def test_review_decisions_are_limited_per_hour(
    client: Client,
    settings: Any,
    user: Any,
    reviewer: Any,
    run_jobs: Any,
    redis_clean: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    first = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    second = upload(
        user,
        text="When,Sym,Dir,Qty,Px\n2024-01-02,IBM,B,1,100\n",
        name="b.csv",
        run_jobs=run_jobs,
        capture=django_capture_on_commit_callbacks,
    )
    limits(settings, REVIEWS_PER_HOUR=1)
    ok = client.delete(
        f"/api/admin/formats/{first.format_id}/approve",
        {"reason": "wrong broker"},
        content_type="application/json",
        **bearer(reviewer),
    )
    assert ok.status_code == 200, ok.content
    refused = client.delete(
        f"/api/admin/formats/{second.format_id}/approve",
        {"reason": "wrong broker"},
        content_type="application/json",
        **bearer(reviewer),
    )
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert "approve/reject decisions" in refused.json()["message"] and refused["Retry-After"]
    assert CsvFormat.objects.get(pk=second.format_id).status == FormatStatus.PENDING
    # The admin's change-page buttons share the same budget.
    client.force_login(reviewer)
    response = client.post(
        f"/admin/formats/csvformat/{second.format_id}/change/", {"_reject": "1", "reason": "x"}, follow=True
    )
    assert b"Too many approve/reject decisions" in response.content
    assert CsvFormat.objects.get(pk=second.format_id).status == FormatStatus.PENDING


def test_the_window_slides_and_the_message_says_when_the_next_upload_is_possible(
    user: Any, settings: Any, redis_clean: Any
) -> None:
    limits(settings, UPLOADS_PER_HOUR=2)
    start = 7200.0 * 1000 + 3000  # 50 minutes into a clock hour: a fixed window would reset 10 minutes later
    rate_limit_hit(bucket="upload", user=user, now=start)
    rate_limit_hit(bucket="upload", user=user, now=start + 1500)
    with pytest.raises(RateLimited) as refused:
        rate_limit_hit(bucket="upload", user=user, now=start + 1800)  # past the clock hour: still refused
    # The first upload leaves the last hour at start + 3600: 30 minutes from now, and the message says when.
    assert refused.value.details["retry_after"] == 1800
    at = timezone.localtime(datetime.fromtimestamp(start + 3600, tz=UTC))
    assert f"The next one is possible in 30 minutes, at {at:%H:%M}" in refused.value.message
    # A refused request is not counted: the next one is allowed as soon as the first leaves the window.
    rate_limit_hit(bucket="upload", user=user, now=start + 3601)
    with pytest.raises(RateLimited) as again:
        rate_limit_hit(bucket="upload", user=user, now=start + 3602)
    assert again.value.details["retry_after"] == 1498  # the second upload leaves the window at start + 5100
    keys = redis_clean.keys("airlock:ratelimit:upload:*")
    assert keys and all(0 < redis_clean.ttl(key) <= 3660 for key in keys)


def test_refused_review_calls_do_not_spend_the_review_limit(
    client: Client,
    settings: Any,
    user: Any,
    reviewer: Any,
    run_jobs: Any,
    redis_clean: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    pending = upload(user, run_jobs=run_jobs, capture=django_capture_on_commit_callbacks)
    limits(settings, REVIEWS_PER_HOUR=2)
    for _ in range(5):  # answered 400: a mapping that is not an object
        bad = client.post(
            f"/api/admin/formats/{pending.format_id}/approve",
            {"mapping": "nope"},
            content_type="application/json",
            **bearer(reviewer),
        )
        assert bad.status_code == 400
    ok = client.delete(
        f"/api/admin/formats/{pending.format_id}/approve",
        {"reason": "wrong broker"},
        content_type="application/json",
        **bearer(reviewer),
    )
    assert ok.status_code == 200, ok.content
    assert CsvFormat.objects.get(pk=pending.format_id).status == FormatStatus.REJECTED


def test_forged_cross_site_posts_do_not_spend_the_upload_quota(settings: Any, user: Any, redis_clean: Any) -> None:
    """Ten POSTs without a CSRF token are refused (403) and leave the victim's hourly budget whole."""
    limits(settings, UPLOADS_PER_HOUR=2)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    for n in range(10):
        assert browser.post("/", {"file": trades(n), "dedupe": "on"}).status_code == 403
        assert browser.post("/api/uploads", {"file": trades(n)}).status_code == 403
    assert ImportBatch.objects.count() == 0
    browser.get("/")  # the page sets the CSRF cookie, as a real browser would receive it
    token = browser.cookies["csrftoken"].value
    ok = browser.post("/", {"file": trades(20), "dedupe": "on", "csrfmiddlewaretoken": token})
    assert ok.status_code == 302, ok.content
    api = browser.post("/api/uploads", {"file": trades(21)}, HTTP_X_CSRFTOKEN=token)
    assert api.status_code == 202, api.content
    refused = browser.post("/api/uploads", {"file": trades(22)}, HTTP_X_CSRFTOKEN=token)
    assert refused.status_code == 429, "the two genuine uploads, and only they, were counted"
    assert ImportBatch.objects.count() == 2


def test_retries_with_the_same_idempotency_key_get_the_stored_response_not_429(
    client: Client, settings: Any, user: Any, redis_clean: Any
) -> None:
    limits(settings, UPLOADS_PER_HOUR=2)
    headers = {**bearer(user), "HTTP_IDEMPOTENCY_KEY": "retry-me"}
    first = client.post("/api/uploads", {"file": trades(1)}, **headers)
    assert first.status_code == 202
    for _ in range(15):
        again = client.post("/api/uploads", {"file": trades(1)}, **headers)
        assert again.status_code == 202, again.content
        assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert client.post("/api/uploads", {"file": trades(2)}, **bearer(user)).status_code == 202
    refused = client.post("/api/uploads", {"file": trades(3)}, **{**bearer(user), "HTTP_IDEMPOTENCY_KEY": "new"})
    assert refused.status_code == 429
    assert ImportBatch.objects.count() == 2
    # A refused request does not use up its key: it replays nothing and can run once the window allows.
    assert not IdempotencyKey.objects.filter(user=user, key="new").exists()
