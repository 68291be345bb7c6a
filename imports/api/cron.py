"""Cron over HTTP for platforms without a scheduler process: POST /api/cron/cleanup-staging."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Query

from config.errors import AppError, PermissionDenied
from imports.api import schemas
from imports.api.router import router
from imports.services.retention import cleanup_staging


def _secret_ok(request: HttpRequest) -> bool:
    expected = settings.CRON_SECRET
    if not expected:
        return False  # unset means the endpoint is off, not open
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header.startswith("Bearer ") else request.headers.get("X-Cron-Secret", "")
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


@router.post(
    "/cron/cleanup-staging",
    url_name="api-cron-cleanup",
    auth=None,  # not a user's call: the view checks the CRON_SECRET, a user's token is no use here
    response={200: schemas.CleanupResult, **schemas.errors(403, 409)},
    summary="Run the retention cleanup (Authorization: Bearer <CRON_SECRET> or X-Cron-Secret)",
)
def cleanup_staging_view(request: HttpRequest, query: Query[schemas.CronQuery]) -> HttpResponse:
    """Run the retention cleanup with the CRON_SECRET (Bearer or X-Cron-Secret); 403 otherwise."""
    if not _secret_ok(request):
        error = PermissionDenied(
            "A valid cron secret is required (Authorization: Bearer <CRON_SECRET> or "
            "X-Cron-Secret); the endpoint is disabled while CRON_SECRET is unset.",
            code="invalid_cron_secret",
        )
        return JsonResponse(error.as_dict(), status=403)
    try:
        return JsonResponse(cleanup_staging(dry_run=query.dry_run in ("1", "true")))
    except AppError as exc:
        return JsonResponse(exc.as_dict(), status=exc.http_status)
