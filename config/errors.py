"""One error hierarchy for the whole product: services raise these, interfaces translate them."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """A failure with a human-readable message, a stable code and optional details."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": self.details}


class NotFound(AppError):
    code = "not_found"
    http_status = 404


class PermissionDenied(AppError):
    code = "permission_denied"
    http_status = 403


class Conflict(AppError):
    code = "conflict"
    http_status = 409


class InvalidRequest(AppError):
    code = "invalid_request"
    http_status = 400


class RateLimited(AppError):
    code = "rate_limited"
    http_status = 429


class ServiceUnavailable(AppError):
    """A service the request needs is down (Redis); nothing was changed, the client should retry later."""

    code = "service_unavailable"
    http_status = 503


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    http_status = 413


class UnreadableFile(AppError):
    """The uploaded bytes are not a CSV we can read (binary, empty, undecodable, no header...)."""

    code = "unreadable_file"
    http_status = 400


class StorageUnavailable(AppError):
    """The file storage (an S3 bucket) could not be reached or refused the request: nothing was half-stored,
    and a worker's job that meets it is retried like a lost database connection."""

    code = "storage_unavailable"
    http_status = 503


class MappingError(AppError):
    """A mapping refers to an unknown converter, column or field, or has bad options."""

    code = "invalid_mapping"
    http_status = 400


class ConversionError(ValueError):
    """One cell could not be converted; the message is shown to the user next to the row.

    `plain`, when given, is the message in the user's words (what was expected, with an example); the
    technical message (the converter's options) is then kept as the error's detail for admins."""

    def __init__(self, message: str, *, plain: str = "") -> None:
        super().__init__(message)
        self.plain = plain
