"""`Idempotency-Key` on POST /api/uploads: a retried request gets the first response again.

The key row and the upload commit in one transaction, so a key is remembered only with the work it
stands for. A second request with the same key blocks on the unique index until the first commits,
then replays its response; if the first failed (rolled back), the second simply runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import Conflict, InvalidRequest
from imports.models import IdempotencyKey

MAX_KEY_LENGTH = 255
KEEP_FOR = timedelta(days=1)


def request_fingerprint(*, fields: dict[str, list[str]], files: dict[str, list[UploadedFile]]) -> str:
    """sha256 over the form fields and the files' names and bytes: what makes two requests 'the same'."""
    digest = hashlib.sha256()
    for name in sorted(fields):
        if name == "csrfmiddlewaretoken":
            continue
        for value in fields[name]:
            digest.update(f"field\0{name}\0{value}\0".encode())
    for name in sorted(files):
        for uploaded in files[name]:
            content = hashlib.sha256()
            for chunk in uploaded.chunks():
                content.update(chunk)
            uploaded.seek(0)
            digest.update(f"file\0{name}\0{uploaded.name}\0{content.hexdigest()}\0".encode())
    return digest.hexdigest()


def idempotent_call(
    *, user: Any, key: str, request_hash: str, run: Callable[[], tuple[int, dict[str, Any]]]
) -> tuple[int, dict[str, Any], bool]:
    """Run `run` once per (user, key); returns (status, body, replayed). Same key, other request -> 409."""
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.", code="invalid_idempotency_key"
        )
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(user=user, key=key, request_hash=request_hash)
        except IntegrityError:
            existing = IdempotencyKey.objects.get(user=user, key=key)
            if existing.request_hash != request_hash:
                raise Conflict(
                    "This Idempotency-Key was already used for a different request; use a new key for a new upload.",
                    code="idempotency_key_reused",
                    details={"key": key, "first_used_at": existing.created_at.isoformat()},
                ) from None
            return existing.response_status or 200, existing.response_body or {}, True
        status, body = run()
        record.response_status = status
        record.response_body = body
        record.save(update_fields=["response_status", "response_body"])
        # Answer with the body as stored (jsonb orders an object's keys its own way), so the first response
        # and every replay are the same bytes.
        record.refresh_from_db(fields=["response_body"])
    return status, record.response_body, False


def idempotency_keys_expire(*, older_than: timedelta = KEEP_FOR) -> int:
    """Forget keys older than a day (a client retries within minutes, not days)."""
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
