"""API tokens: made with a key that is shown once and stored only as its sha256 (imports/models.py)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.services import record
from config.errors import Conflict
from imports.models import PREFIX_LENGTH, ApiToken, new_token_key


def api_token_create(*, user: Any, replace: bool = False, actor: Any = None) -> tuple[ApiToken, str]:
    """Give `user` a new API token; returns it and its key, which is not stored and cannot be shown again.

    A user has one token: with `replace`, the old one stops working at once; without, an existing token is
    a Conflict and nothing changes.
    """
    with transaction.atomic():
        existing = ApiToken.objects.select_for_update().filter(user=user).first()
        if existing is not None and not replace:
            raise Conflict(
                f"{user.username} already has an API token ({existing.prefix}…, made "
                f"{existing.created_at:%Y-%m-%d %H:%M} UTC). It is stored hashed and cannot be shown again; "
                "replace it with a new one to get a key (the old one then stops working).",
                code="api_token_exists",
                details={"prefix": existing.prefix},
            )
        if existing is not None:
            existing.delete()
        key = new_token_key()
        token = ApiToken.objects.create(user=user, key_hash=ApiToken.hash_key(key), prefix=key[:PREFIX_LENGTH])
        record(
            action="api_token.replaced" if existing is not None else "api_token.created",
            summary=f"API token {token.prefix}… made for {user.username}"
            + (f", replacing {existing.prefix}…" if existing is not None else ""),
            actor=actor,
            obj=token,
        )
    return token, key
