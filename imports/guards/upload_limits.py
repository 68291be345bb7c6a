"""Guards around upload requests: rate limit, request size, file size and file count, before any processing.

Django parses a multipart body lazily, the first time something reads `request.POST`/`request.FILES`
(the CSRF middleware does, for the upload page). A parse error there would become Django's bare 400
page, so `UploadGuardMiddleware` parses upload requests itself, early, and turns every limit into the
product's error: the JSON error shape for the API, the upload page with a message for the form.

Order of checks for an upload POST: authenticated (else the view answers 401 / redirects, without the
body being read) -> a user whose hourly upload budget is already spent is refused (read-only look at the
counter, before the body is read, so a blocked user costs nothing) -> Content-Length against
AIRLOCK_MAX_REQUEST_BYTES -> streaming parse where `UploadLimitHandler` aborts a file as soon as it passes
AIRLOCK_MAX_FILE_BYTES, closing (and so deleting) the temp files written so far. Django's
DATA_UPLOAD_MAX_NUMBER_FILES (= AIRLOCK_MAX_FILES_PER_REQUEST) caps the file count.

The request is *counted* against the budget only by the upload views (`upload_rate_limit_hit`), which run
after the CSRF check and, for the API, after an `Idempotency-Key` replay: a forged cross-site POST
(403) or the retry of a stored request never spends the user's quota, whatever the middleware order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.urls import Resolver404, resolve

from config.errors import AppError, InvalidRequest, PayloadTooLarge
from imports.api.responses import error_response
from imports.guards.rate_limits import rate_limit_check, rate_limit_hit
from imports.storage import sanitize_display_name

UPLOAD_VIEWS = {"imports:upload": "page", "imports:api-uploads": "api"}


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


class UploadRejected(MultiPartParserError):
    """Raised from inside the multipart parser; carries the AppError to answer with."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.message)
        self.error = error


class UploadLimitHandler(FileUploadHandler):
    """First upload handler: counts each file's bytes and aborts the request past the per-file limit."""

    def handle_raw_input(
        self, input_data: Any, META: dict[str, Any], content_length: int, boundary: bytes, encoding: str | None = None
    ) -> None:
        limit = settings.AIRLOCK["MAX_REQUEST_BYTES"]
        if content_length and content_length > limit:
            raise UploadRejected(
                PayloadTooLarge(
                    f"The upload is {_megabytes(content_length)}; at most {_megabytes(limit)} can be sent in one "
                    "request. Send the files in several requests.",
                    details={"size": content_length, "limit": limit},
                )
            )
        return None

    def new_file(self, field_name: str, file_name: str, *args: Any, **kwargs: Any) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        self.display_name = sanitize_display_name(file_name or "")
        limit = settings.AIRLOCK["MAX_FILE_BYTES"]
        if self.content_length is not None and self.content_length > limit:
            self._reject(self.content_length)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > settings.AIRLOCK["MAX_FILE_BYTES"]:
            self._reject(None)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None

    def _reject(self, size: int | None) -> None:
        limit = settings.AIRLOCK["MAX_FILE_BYTES"]
        # The later handlers may hold a half-written temp file of this upload: close it now (a closed
        # NamedTemporaryFile is deleted). Files completed earlier are closed by the parser itself.
        for handler in getattr(self.request, "upload_handlers", []):
            if handler is not self and getattr(handler, "file", None) is not None:
                handler.file.close()
        how_big = f"is {_megabytes(size)}; the limit is" if size else "is larger than the limit of"
        raise UploadRejected(
            PayloadTooLarge(
                f"'{self.display_name}' {how_big} {_megabytes(limit)} per file. Nothing was stored; "
                "split the export into smaller files.",
                details={"file": self.display_name, "limit": limit, **({"size": size} if size else {})},
            )
        )


def _parse_error(exc: Exception) -> AppError:
    if isinstance(exc, UploadRejected):
        return exc.error
    if isinstance(exc, TooManyFilesSent):
        limit = settings.AIRLOCK["MAX_FILES_PER_REQUEST"]
        return InvalidRequest(
            f"Too many files in one request: the limit is {limit}. Nothing was stored; "
            "send the files in several requests.",
            code="too_many_files",
            details={"limit": limit},
        )
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge("The form fields of the upload are too large.")
    return InvalidRequest(f"The upload could not be read as multipart form data: {exc}.", code="invalid_upload")


def _upload_view(request: HttpRequest) -> str | None:
    try:
        return UPLOAD_VIEWS.get(resolve(request.path_info).view_name)
    except Resolver404:
        return None


class UploadGuardMiddleware:
    """Refuse blocked users and pre-parse upload POSTs so every limit answers in the product's error shape."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or not request.user.is_authenticated:
            return self.get_response(request)
        kind = _upload_view(request)
        if kind is None:
            return self.get_response(request)
        try:
            if "Idempotency-Key" not in request.headers:  # a retry may be a replay of a stored response
                rate_limit_check(bucket="upload", user=request.user)
            try:
                request.POST  # noqa: B018 - parse now, with the limits, instead of inside the CSRF check
            except (MultiPartParserError, TooManyFilesSent, RequestDataTooBig) as exc:
                raise _parse_error(exc) from exc
        except AppError as error:
            return upload_refused(request, kind, error)
        return self.get_response(request)


def upload_rate_limit_hit(request: HttpRequest) -> None:
    """Count this upload request against the user's hourly budget (AIRLOCK_UPLOADS_PER_HOUR); raises RateLimited.

    Called by the upload views, never by a middleware: a view runs only after the CSRF check passed.
    """
    rate_limit_hit(bucket="upload", user=request.user)


def upload_refused(request: HttpRequest, kind: str, error: AppError) -> HttpResponse:
    """The refusal of an upload: the JSON error shape for the API, the upload page with the message otherwise."""
    from imports.web.forms import UploadForm

    if kind == "api":
        return error_response(error)
    if not request.user.is_authenticated:  # pragma: no cover - checked before
        return redirect_to_login(request.get_full_path())
    messages.error(request, error.message)
    response = render(
        request, "imports/upload.html", {"form": UploadForm(), "limits": settings.AIRLOCK}, status=error.http_status
    )
    retry_after = error.details.get("retry_after")
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response
