"""Template context shared by every page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from imports.selectors import staging_summary


def staging_banner(request: HttpRequest) -> dict[str, Any]:
    """How many of the user's rows wait for a format approval (the banner on every page)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or request.path.startswith("/admin/"):
        return {}
    return {"staging_banner": staging_summary(user)}
