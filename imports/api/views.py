"""The JSON API's uploads and review endpoints (routes on imports/api/app.py's NinjaAPI), and bearer-token auth."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Query

from config.errors import AppError, InvalidRequest, PermissionDenied
from formats.converters import plain_decimal
from formats.models import CsvFormat, FormatStatus
from formats.services import APPROVE_PERMISSION
from imports import selectors
from imports.api import schemas
from imports.api.pagination import cursor_page
from imports.api.responses import error_response
from imports.api.router import router
from imports.guards.logins import token_attempt_failed, token_attempt_locked
from imports.guards.rate_limits import rate_limit_check, rate_limit_record
from imports.guards.request_body import require_whole_body
from imports.guards.upload_limits import upload_rate_limit_hit
from imports.reports import order_filters_strict, orders_filtered
from imports.reports import positions as reports_positions
from imports.services.fixes import file_rows_fix, fixable_file
from imports.services.idempotency import idempotent_call, request_fingerprint
from imports.services.uploads import file_retry_by_owner, review_approve, review_reject, upload_batch_create
from imports.targets import DEFAULT_TARGET, WRITERS


def json_body_doc(model: type[schemas.Schema], description: str) -> dict[str, Any]:
    """A JSON request body in the document, from its schema. The views read the body themselves
    (json_body): their messages name the field and what it must be."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:  # the nested schemas in place: the document's components are ninja's
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        return [inline(value) for value in node] if isinstance(node, list) else node

    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": inline(schema)}},
        }
    }


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "Judged by content, whatever the name: anything else (XML, HTML, binary, "
                            "an encrypted workbook, a zip bomb) is 400 unreadable_file and nothing is stored.",
                        },
                        "dedupe": {"type": "string", "enum": ["0", "1"], "description": "0 keeps duplicate trades."},
                        "target": {
                            "type": "string",
                            "enum": sorted(WRITERS),
                            "description": "What the files hold (default orders): their formats are that target's.",
                        },
                    },
                    "required": ["file"],
                }
            }
        },
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "A retried request with the same key gets the first response again.",
            "schema": {"type": "string", "maxLength": 255},
        }
    ],
}
FIX_BODY = json_body_doc(schemas.FixRequest, 'New cells by line: {"rows": {"<line>": {"<column>": "<value>"}}}.')
REVIEW_BODY = json_body_doc(
    schemas.ReviewRequest, "POST: optional corrected `mapping` and a `comment`; DELETE: the `reason` (required)."
)


class TokenAuthenticationMiddleware:
    """`Authorization: Bearer <token>` authenticates API calls (no session, no CSRF needed)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        # /api/cron/ takes the CRON_SECRET as its bearer (imports/api/cron.py), /metrics the
        # AIRLOCK_METRICS_TOKEN (imports/monitoring/views.py): neither is a user's token.
        if header.startswith("Bearer ") and not request.path.startswith(("/api/cron/", "/metrics")):
            # A client with too many failed tokens or logins is refused before its token is looked at, so
            # tokens cannot be guessed at speed (imports/guards/logins.py, AIRLOCK_LOGIN_FAILURE_LIMIT).
            locked = token_attempt_locked(request)
            if locked is not None:
                return error_response(locked)
            user = selectors.api_token_user(header[7:].strip())
            if user is None:
                token_attempt_failed(request)
                return error_response(AppError("Invalid or inactive API token.", code="invalid_token"), 401)
            request.user = user
            request._dont_enforce_csrf_checks = True  # a bearer token cannot be sent by a forged form
        return self.get_response(request)


def json_body(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


def upload_files_json(files: list[Any]) -> list[dict[str, Any]]:
    """The files of an upload answer: id, name, status, and whether the same bytes had been uploaded before."""
    return [
        {"id": f.pk, "name": f.original_name, "status": f.status, "existing": f.is_existing, "retried": f.is_retried}
        for f in files
    ]


@router.post(
    "/uploads",
    url_name="api-uploads",
    response={202: schemas.UploadAccepted, **schemas.errors(400, 401, 413, 429, 503)},
    summary="Upload one or many files: CSV, .xlsx/.xlsm/.xls/.ods workbooks, JSON or NDJSON",
    openapi_extra=UPLOAD_BODY,
)
def uploads(request: HttpRequest) -> HttpResponse:
    """POST /api/uploads: multipart, field `file` (repeatable) -> 202 with the batch and its files."""
    files = request.FILES.getlist("file")
    require_whole_body(request)  # before anything is stored or counted: a cut-off request changes nothing
    dedupe = request.POST.get("dedupe", "1").lower() not in ("0", "false", "no")
    target = request.POST.get("target", DEFAULT_TARGET)

    def run() -> tuple[int, dict[str, Any]]:
        # Counted here, after the CSRF check (api_view) and only for new work: a retry with the same
        # Idempotency-Key replays the stored response without calling run(), so it never gets a 429.
        upload_rate_limit_hit(request)
        batch, results = upload_batch_create(owner=request.user, files=files, dedupe=dedupe, target=target)
        return 202, {"batch": batch.pk, "files": upload_files_json(results)}

    key = request.headers.get("Idempotency-Key")
    if key is None:
        status, body = run()
        return JsonResponse(body, status=status)
    # A retried request with the same key gets the first response (imports/services/idempotency.py).

    request_hash = request_fingerprint(fields=dict(request.POST.lists()), files=dict(request.FILES.lists()))
    status, body, replayed = idempotent_call(user=request.user, key=key, request_hash=request_hash, run=run)
    response = JsonResponse(body, status=status)
    response["Idempotent-Replayed"] = "true" if replayed else "false"
    return response


@router.get(
    "/uploads/{int:file_id}",
    url_name="api-upload-detail",
    response={200: schemas.FileSummary, **schemas.errors(401, 404)},
    summary="One file's status, format, row counts, progress and detected layout",
)
def upload_detail(request: HttpRequest, file_id: int) -> HttpResponse:
    """GET /api/uploads/<id>: status, format, row counts, progress."""
    return JsonResponse(selectors.file_summary(selectors.file_for(request.user, file_id)))


@router.post(
    "/uploads/{int:file_id}/retry",
    url_name="api-upload-retry",
    response={202: schemas.FileSummary, **schemas.errors(401, 404, 409, 429)},
    summary="Retry your own failed file from where it stopped, without uploading it again",
)
def upload_retry(request: HttpRequest, file_id: int) -> HttpResponse:
    """POST /api/uploads/<id>/retry: the owner retries a FAILED file without uploading it again."""
    upload_rate_limit_hit(request)
    file_retry_by_owner(file_id=file_id, owner=request.user)
    return JsonResponse(selectors.file_summary(selectors.file_for(request.user, file_id)), status=202)


@router.post(
    "/uploads/{int:file_id}/rows",
    url_name="api-upload-fix-rows",
    response={202: schemas.FixResult, **schemas.errors(400, 401, 404, 409)},
    summary="Fix invalid rows in place: new cells by line; the rows are imported again",
    openapi_extra=FIX_BODY,
)
def upload_fix_rows(request: HttpRequest, file_id: int) -> HttpResponse:
    """POST /api/uploads/<id>/rows {"rows": {line: {column: value}}}: fix invalid rows; they import again."""
    fixable_file(actor=request.user, file_id=file_id)  # another user's id is 404 before the body is even read
    body = json_body(request)
    result = file_rows_fix(file_id=file_id, owner=request.user, edits=body.get("rows"))
    file = fixable_file(actor=request.user, file_id=file_id)
    return JsonResponse({**result.as_dict(), "file": selectors.file_summary(file)}, status=202)


def _order_json(order: Any) -> dict[str, Any]:
    return {
        "id": order.pk,
        "account": order.account,
        "symbol": order.symbol,
        "side": order.side,
        "quantity": plain_decimal(order.quantity),
        "price": plain_decimal(order.price),
        "commission": plain_decimal(order.commission),
        "currency": order.currency,
        "executed_at": order.executed_at.isoformat(),
        "broker_trade_id": order.broker_trade_id,
        "source_file": order.source_file_id,
        "source_line": order.source_line,
        "instrument": _instrument_json(order.instrument) if order.instrument_id else None,
    }


def _instrument_json(instrument: Any) -> dict[str, Any]:
    return {"id": instrument.pk, "name": instrument.name, "isin": instrument.isin, "ticker": instrument.ticker}


@router.get(
    "/positions",
    url_name="api-positions",
    response={200: schemas.Positions, **schemas.errors(400, 401)},
    summary="Net quantity per instrument across brokers (orders filtered as /api/orders)",
)
def positions(request: HttpRequest, query: Query[schemas.OrderQuery]) -> HttpResponse:
    """GET /api/positions: one position per instrument however each broker spelled it; orders not linked to an
    instrument yet are one position per symbol."""
    rows = reports_positions(orders_filtered(request.user, order_filters_strict(request.GET)))
    return JsonResponse({"results": [{**row, "quantity": plain_decimal(row["quantity"])} for row in rows]})


@router.get(
    "/orders",
    url_name="api-orders",
    response={200: schemas.OrderPage, **schemas.errors(400, 401)},
    summary="The caller's orders (never staged rows), newest first",
)
def orders(request: HttpRequest, query: Query[schemas.OrderQuery]) -> HttpResponse:
    """GET /api/orders: the caller's orders, filtered like the page, cursor-paginated (?cursor, ?page_size)."""
    # `query` documents the filters; order_filters_strict reads them (its messages name the bad value).
    queryset = orders_filtered(request.user, order_filters_strict(request.GET))
    return JsonResponse(
        cursor_page(
            request, queryset, keys=[("executed_at", True), ("id", True)], kinds=[datetime, int], serialize=_order_json
        )
    )


def _require_reviewer(request: HttpRequest) -> None:
    if not request.user.has_perm(APPROVE_PERMISSION):
        raise PermissionDenied("You need the 'approve CSV formats' permission.")


def _format_json(fmt: CsvFormat) -> dict[str, Any]:
    return {
        "id": fmt.pk,
        "name": fmt.name,
        "target": fmt.target,
        "status": fmt.status,
        "columns": fmt.columns,
        "mapping": fmt.mapping,
        "confidence": fmt.confidence,
        "sample_rows": fmt.sample_rows[:5],
        "created_at": fmt.created_at.isoformat(),
        "created_by": fmt.created_by.get_username() if fmt.created_by else None,
        "staged_rows": getattr(fmt, "staged_count", None),
        "files": getattr(fmt, "file_count", None),
        "waiting_since": fmt.waiting_since.isoformat() if getattr(fmt, "waiting_since", None) else None,
    }


@router.get(
    "/admin/formats/pending",
    url_name="api-pending-formats",
    response={200: schemas.PendingFormats, **schemas.errors(401, 403)},
    summary="Pending formats with mapping, sample rows and staged-row counts (approve permission)",
)
def pending_formats(request: HttpRequest) -> HttpResponse:
    """GET /api/admin/formats/pending."""
    _require_reviewer(request)
    pending = selectors.pending_formats().select_related("created_by")
    return JsonResponse({"results": [_format_json(f) for f in pending]})


@router.api_operation(
    ["POST", "DELETE"],
    "/admin/formats/{int:format_id}/approve",
    url_name="api-format-review",
    response={
        200: schemas.ApprovalAnswer | schemas.RejectionAnswer,
        202: schemas.ApprovalAnswer,
        **schemas.errors(400, 401, 403, 404, 409, 429),
    },
    summary="POST: one approval step (optional corrected mapping); DELETE: reject with a reason",
    openapi_extra=REVIEW_BODY,
)
def format_review(request: HttpRequest, format_id: int) -> HttpResponse:
    """POST approves (optional {"mapping": ...}); DELETE rejects ({"reason": ...})."""
    _require_reviewer(request)
    # The review limit counts decisions: refused here once used up, counted only when the decision is
    # accepted (a refused call, 400 or 409, spends nothing).
    rate_limit_check(bucket="review", user=request.user)
    body = json_body(request)
    if request.method == "POST":
        mapping, comment = body.get("mapping"), body.get("comment", "")
        if mapping is not None and not isinstance(mapping, dict):
            raise InvalidRequest("'mapping' must be a JSON object.", code="invalid_mapping")
        if not isinstance(comment, str):
            raise InvalidRequest("'comment' must be text.", code="invalid_comment")
        fmt = review_approve(format_id=format_id, actor=request.user, mapping=mapping, comment=comment)
        rate_limit_record(bucket="review", user=request.user)
        # 202: approved, its rows are being migrated; 200: the step is recorded and the chain needs more people.
        chain = getattr(fmt, "approval_chain", None)
        answer = {
            "id": fmt.pk,
            "status": fmt.status,
            "approved": fmt.status == FormatStatus.APPROVED,
            "approval": chain.as_dict() if chain is not None else None,
            "mapping": fmt.mapping,
        }
        return JsonResponse(answer, status=202 if answer["approved"] else 200)
    # Not str(): a number or an object is refused with a message, never stored as its Python repr.
    fmt = review_reject(format_id=format_id, actor=request.user, reason=body.get("reason"))
    rate_limit_record(bucket="review", user=request.user)
    return JsonResponse({"id": fmt.pk, "status": fmt.status, "reason": fmt.rejection_reason})
