"""A request is stored whole or not at all: an upload whose body ended before its Content-Length (the client
went away inside the second file) is refused before anything is stored, so a retry of the whole request
(with the same Idempotency-Key) is new work, not a conflict with a half-stored one."""

from __future__ import annotations

from django.http import HttpRequest

from config.errors import InvalidRequest


def require_whole_body(request: HttpRequest) -> None:
    """Raise InvalidRequest when fewer bytes arrived than the request announced.

    Call after the form data was parsed (request.POST / request.FILES): Django's multipart parser reads the
    body to its end, so a complete request has consumed exactly CONTENT_LENGTH bytes. A body cut short ends
    the parse early (the last file truncated, or missing) without an error; this is where that is caught.
    """
    if request.content_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return  # Django parses (and so reads to its end) only form bodies; other bodies are not uploads
    request.FILES  # noqa: B018 - parse the body now if nothing did yet (reads it to its end)
    stream = getattr(request, "_stream", None)
    limit = getattr(stream, "limit", None)
    arrived = getattr(stream, "_pos", None)  # django.core.handlers.wsgi.LimitedStream's count of bytes read
    if isinstance(limit, int) and isinstance(arrived, int) and arrived < limit:
        raise InvalidRequest(
            f"The upload was cut off: {arrived:,} of {limit:,} bytes arrived, so nothing was stored. Send the "
            "whole request again (with the same Idempotency-Key if you used one).",
            code="upload_incomplete",
        )
