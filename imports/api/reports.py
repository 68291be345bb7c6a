"""The read side of the JSON API: upload lists, row errors, staging status, staged rows, admin stats, schema.

Same conventions as imports/api/views.py: routes on the NinjaAPI of imports/api/app.py (session or bearer
auth, `{"error", "message", "details"}` errors), every lookup scoped to the caller (another user's id answers
404). The `query` parameters document the filters; the views read them with the helpers below, whose
messages name the bad value.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Query

from config.errors import AppError, InvalidRequest, NotFound, PermissionDenied
from imports import reports, selectors
from imports.api import schemas
from imports.api.pagination import cursor_page, number_page
from imports.api.responses import error_response
from imports.api.router import router
from imports.api.views import _require_reviewer
from imports.models import FileStatus
from staging.models import StagedStatus, shown_status_filter

MAX_IDS = 500


def parse_ids(request: HttpRequest, name: str = "ids") -> list[int] | None:
    """?ids=1,2,3 (at most 500) or None when absent; anything else is a 400."""
    raw = request.GET.get(name, "").strip()
    if not raw:
        return None
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not all(part.isdigit() for part in parts):
        raise InvalidRequest(
            f"'{name}' must be a comma-separated list of ids.",
            code="invalid_filter",
            details={name: raw[:200]},
        )
    if len(parts) > MAX_IDS:
        raise InvalidRequest(f"At most {MAX_IDS} ids per request.", code="invalid_filter")
    return [int(part) for part in parts]


def _choice(request: HttpRequest, name: str, choices: list[str]) -> str:
    value = request.GET.get(name, "").strip().upper()
    if value and value not in choices:
        raise InvalidRequest(
            f"Unknown {name} '{value}'. Use one of: {', '.join(choices)}.",
            code="invalid_filter",
            details={name: value, "choices": choices},
        )
    return value


def _id(request: HttpRequest, name: str, what: str) -> int | None:
    value = request.GET.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise InvalidRequest(f"'{name}' must be a {what} id.", code="invalid_filter", details={name: value})
    return int(value)


@router.get(
    "/uploads",
    url_name="api-uploads",
    response={200: schemas.FilePage, **schemas.errors(400, 401)},
    summary="The caller's files, newest first",
)
def upload_list(request: HttpRequest, query: Query[schemas.UploadQuery]) -> HttpResponse:
    """GET /api/uploads?status=&batch=&ids=: the caller's files, newest first, page-number paginated."""
    files = selectors.files_for(request.user)
    status = _choice(request, "status", list(FileStatus.values))
    if status:
        files = files.filter(status=status)
    batch = _id(request, "batch", "batch")
    if batch is not None:
        files = files.filter(batch_id=batch)
    ids = parse_ids(request)
    if ids is not None:
        files = files.filter(pk__in=ids)
    return JsonResponse(number_page(request, files.order_by("-created_at", "-id"), selectors.file_summary))


@router.get(
    "/uploads/{int:file_id}/errors",
    url_name="api-upload-errors",
    response={200: schemas.ErrorPage, **schemas.errors(400, 401, 404)},
    summary="The file's invalid rows: one item per (row, field) problem",
)
def upload_errors(request: HttpRequest, file_id: int, query: Query[schemas.PageQuery]) -> HttpResponse:
    """GET /api/uploads/<id>/errors: the invalid rows' problems, one item per (row, field)."""
    file = selectors.file_for(request.user, file_id)
    body = number_page(request, reports.ErrorList(file.pk), lambda e: e.as_dict())
    # What `row` counts: the CSV or NDJSON line, the sheet's row (with the sheet), the JSON record.
    layout = file.layout or {}
    where = {"kind": layout.get("kind", "csv")}
    if where["kind"] in reports.WORKBOOK_KINDS:
        where["sheet"] = layout.get("section")
    return JsonResponse(
        {"file": file.pk, "rows_invalid": file.rows_invalid, "rows_failed": file.rows_invalid, **where, **body}
    )


@router.get(
    "/staging/status",
    url_name="api-staging-status",
    response={200: schemas.StagingStatus, **schemas.errors(401)},
    summary="The caller's staged rows and files by status, and what waits for approval",
)
def staging_status(request: HttpRequest) -> HttpResponse:
    """GET /api/staging/status: the caller's staged rows and files by status."""
    return JsonResponse(reports.staging_status(request.user))


@router.get(
    "/staging/orders",
    url_name="api-staging-orders",
    response={200: schemas.StagedRowPage, **schemas.errors(400, 401, 404)},
    summary="The caller's staged rows (raw cells), by file and line",
)
def staging_orders(request: HttpRequest, query: Query[schemas.StagedQuery]) -> HttpResponse:
    """GET /api/staging/orders: the caller's staged rows (raw cells), cursor-paginated."""
    rows = reports.staged_rows_for(request.user)
    status = _choice(request, "status", list(StagedStatus.values))
    if status:
        rows = rows.filter(shown_status_filter(status))
    file = _id(request, "file", "file")
    if file is not None:
        rows = rows.filter(file_id=selectors.file_for(request.user, file).pk)
    ids = parse_ids(request)
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    return JsonResponse(
        cursor_page(
            request,
            rows,
            keys=[("file_id", False), ("line", False)],
            kinds=[int, int],
            serialize=reports.staged_row_json,
        )
    )


@router.get(
    "/admin/staging/stats",
    url_name="api-admin-staging-stats",
    response={200: schemas.StagingStats, **schemas.errors(401, 403)},
    summary="Staging figures for reviewers (approve permission)",
)
def admin_staging_stats(request: HttpRequest) -> HttpResponse:
    """GET /api/admin/staging/stats (approve permission)."""
    _require_reviewer(request)
    return JsonResponse(reports.admin_staging_stats())


def wants_json(request: HttpRequest) -> bool:
    """An error for this request is answered in the API's JSON shape: every /api/ URL, and a client elsewhere
    whose Accept header prefers JSON to HTML (a script calling a page URL); browsers, which ask for HTML or
    */*, get the styled page."""
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "")
    return "json" in accept and request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 handler: the API's error shape under /api/ (or for a client asking for JSON), the styled page elsewhere."""
    if wants_json(request):
        return error_response(NotFound("Not found."))
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def json_permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """403 handler: the API's error shape under /api/, the site's styled page elsewhere."""
    if wants_json(request):
        return error_response(PermissionDenied("You may not do this."))
    from django.views.defaults import permission_denied

    return permission_denied(request, exception or Exception())


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400 handler: the API's error shape under /api/, the site's styled page elsewhere."""
    if wants_json(request):
        return error_response(InvalidRequest("The request could not be understood.", code="bad_request"))
    from django.views.defaults import bad_request

    return bad_request(request, exception or Exception())


def json_server_error(request: HttpRequest) -> HttpResponse:
    """500 handler: the API's error shape under /api/ (or for a client asking for JSON), the styled page elsewhere."""
    if wants_json(request):
        return error_response(
            AppError("Something went wrong on our side; it has been logged.", code="server_error"), 500
        )
    from django.views.defaults import server_error

    return server_error(request)
