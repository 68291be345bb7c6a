"""The JSON API's error shape, in a module of its own so guards that answer API requests (upload limits)
can use it without importing the views (which import the guards)."""

from __future__ import annotations

from django.http import JsonResponse

from config.errors import AppError


def error_response(error: AppError, status: int | None = None) -> JsonResponse:
    """{"error": code, "message": ..., "details": ...} with the error's HTTP status (Retry-After for 429)."""
    response = JsonResponse(error.as_dict(), status=status or error.http_status)
    if error.details.get("retry_after"):  # rate limits (429) say when to come back
        response["Retry-After"] = str(error.details["retry_after"])
    return response
