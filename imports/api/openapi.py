"""The OpenAPI 3 description of the JSON API, written by hand (keep it in step with imports/urls.py).

tests/imports/test_api_user.py checks that every /api/ URL pattern is documented here.
"""

from __future__ import annotations

from typing import Any

FILE_STATUSES = [
    "UPLOADED",
    "PROCESSING",
    "PENDING_APPROVAL",
    "MIGRATING",
    "IMPORTED",
    "PARTIAL",
    "FAILED",
    "REJECTED",
    "NO_TRADES",
    "ROLLED_BACK",
    "PURGED",
]
ROW_STATUSES = ["PENDING", "APPROVED", "MIGRATING", "MIGRATED", "FAILED", "SKIPPED", "DUPLICATE", "REJECTED"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthenticated"},
}
NOT_FOUND = {"404": {"$ref": "#/components/responses/NotFound"}}
FORBIDDEN = {"403": {"$ref": "#/components/responses/Forbidden"}}


def _param(
    name: str,
    description: str,
    schema: dict[str, Any] | None = None,
    where: str = "query",
    required: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


PAGE_SIZE = _param(
    "page_size", "Items per page, 1..500 (default 50).", {"type": "integer", "minimum": 1, "maximum": 500}
)
PAGE = _param("page", "1-based page number.", {"type": "integer", "minimum": 1})
CURSOR = _param("cursor", "Opaque cursor from a previous page's `next` link.")
FILE_ID = _param("file_id", "Import file id.", {"type": "integer"}, where="path", required=True)
BATCH_ID = _param("batch_id", "Upload batch id.", {"type": "integer"}, where="path", required=True)
APPROVAL_ANSWER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "status": {"type": "string"},
        "approved": {"type": "boolean"},
        "approval": {
            "type": ["object", "null"],
            "properties": {
                "required": {"type": "integer"},
                "approvals": {"type": "integer"},
                "approvers": {"type": "array", "items": {"type": "string"}},
                "missing": {"type": "integer"},
                "risk": {"type": "array", "items": {"type": "string"}},
                "expired_steps": {"type": "integer"},
            },
        },
        "mapping": {"type": "object"},
    },
}
FORMAT_ID = _param("format_id", "Format id.", {"type": "integer"}, where="path", required=True)
IDS = _param("ids", "Comma-separated ids (at most 500) to fetch only those.")

ORDER_FILTERS = [
    _param("symbol", "Exact symbol (case-insensitive)."),
    _param("side", "BUY or SELL.", {"type": "string", "enum": ["BUY", "SELL"]}),
    _param("date_from", "Executed on or after this day (YYYY-MM-DD, UTC).", {"type": "string", "format": "date"}),
    _param("date_to", "Executed on or before this day (YYYY-MM-DD, UTC).", {"type": "string", "format": "date"}),
    _param("source_file", "Only orders from this import file id.", {"type": "integer"}),
]


def _cursor_list(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["results", "next", "page_size"],
        "properties": {
            "results": {"type": "array", "items": _ref(item)},
            "next": {
                "type": ["string", "null"],
                "description": "URL of the next page; null on the last page.",
            },
            "page_size": {"type": "integer"},
        },
    }


def _number_list(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["count", "page", "pages", "page_size", "results"],
        "properties": {
            "count": {"type": "integer"},
            "page": {"type": "integer"},
            "pages": {"type": "integer"},
            "page_size": {"type": "integer"},
            "results": {"type": "array", "items": _ref(item)},
        },
    }


def _counts(keys: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "integer"} for key in keys}}


SCHEMAS: dict[str, Any] = {
    "BatchSummary": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "status": {
                "type": "string",
                "enum": ["PENDING", "PROCESSING", "WAITING", "COMPLETED", "PARTIAL", "FAILED"],
            },
            "status_display": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "progress": {"type": "number", "minimum": 0, "maximum": 100},
            "files": {
                "type": "object",
                "properties": {
                    "count": {"type": "integer"},
                    "finished": {"type": "integer", "description": "Files done: finished or waiting for approval."},
                    "waiting": {"type": "integer", "description": "Files waiting for an admin's approval."},
                    "by_status": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "items": {
                        "type": "array",
                        "items": {"type": "object"},
                        "description": "One entry per file; left out with ?items=0.",
                    },
                },
            },
            "rows": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error", "message", "details"],
        "properties": {
            "error": {"type": "string", "description": "Stable machine-readable code, e.g. not_found."},
            "message": {"type": "string", "description": "Human-readable explanation."},
            "details": {"type": "object", "additionalProperties": True},
        },
    },
    "UploadAccepted": {
        "type": "object",
        "properties": {
            "batch": {"type": "integer"},
            "files": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "status": {"type": "string", "enum": FILE_STATUSES},
                        "existing": {
                            "type": "boolean",
                            "description": "The same bytes were uploaded before: that import.",
                        },
                        "retried": {
                            "type": "boolean",
                            "description": "That earlier import had failed: this upload retried it (from where "
                            "it had got to, like an admin's Retry).",
                        },
                    },
                },
            },
        },
    },
    "FileSummary": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "batch": {"type": "integer"},
            "name": {"type": "string"},
            "status": {"type": "string", "enum": FILE_STATUSES},
            "status_display": {"type": "string"},
            "size": {"type": "integer"},
            "sha256": {"type": "string"},
            "format": {
                "type": ["object", "null"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "status": {"type": "string", "enum": ["PENDING", "APPROVED", "REJECTED", "NO_TRADES"]},
                },
            },
            "rows": _counts(["total", "staged", "imported", "failed", "skipped", "duplicate"]),
            "accounting": {"type": "string", "description": "Where every row went, adding up to the total"},
            "skip_reasons": {"type": "object", "additionalProperties": {"type": "integer"}},
            "progress": {"type": "number", "minimum": 0, "maximum": 100},
            "error": {"type": ["string", "null"]},
            "layout": {
                "type": ["object", "null"],
                "properties": {
                    "encoding": {"type": "string"},
                    "delimiter": {"type": "string"},
                    "header_line": {"type": "integer"},
                    "section": {"type": ["string", "null"]},
                },
            },
            "created_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "rolled_back": {
                "type": ["object", "null"],
                "description": "For a rolled-back file: who rolled it back, when and why.",
                "properties": {
                    "by": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"},
                    "reason": {"type": "string"},
                    "deleted": {"type": "integer"},
                    "kept": {"type": "integer"},
                },
            },
        },
    },
    "RowError": {
        "type": "object",
        "required": ["row", "field", "value", "error"],
        "properties": {
            "row": {"type": "integer", "description": "Physical line in the file."},
            "field": {
                "type": ["string", "null"],
                "description": "Target field; null for a problem with the whole row.",
            },
            "value": {"type": "string"},
            "error": {"type": "string"},
        },
    },
    "Order": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "account": {"type": "string"},
            "symbol": {"type": "string"},
            "side": {"type": "string", "enum": ["BUY", "SELL"]},
            "quantity": {"type": "string", "format": "decimal"},
            "price": {"type": "string", "format": "decimal"},
            "commission": {"type": "string", "format": "decimal"},
            "currency": {"type": "string"},
            "executed_at": {"type": "string", "format": "date-time"},
            "broker_trade_id": {"type": "string"},
            "source_file": {"type": "integer"},
            "source_line": {"type": "integer"},
        },
    },
    "StagedRow": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "file": {"type": "integer"},
            "file_name": {"type": "string"},
            "line": {"type": "integer"},
            "status": {"type": "string", "enum": ROW_STATUSES},
            "status_display": {"type": "string"},
            "cells": {"type": "array", "items": {"type": "string"}},
            "format": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "status": {"type": "string"},
                },
            },
            "errors": {"type": "array", "items": {"type": "object"}},
        },
    },
    "StagingStatus": {
        "type": "object",
        "properties": {
            "rows": _counts(ROW_STATUSES),
            "files": _counts(FILE_STATUSES),
            "waiting": _counts(["rows", "files"]),
        },
    },
    "PendingFormat": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "target": {"type": "string"},
            "status": {"type": "string"},
            "columns": {"type": "array", "items": {"type": "string"}},
            "mapping": {"type": "object", "description": "See docs/INTERFACES.md (mapping JSON)."},
            "confidence": {"type": "number"},
            "sample_rows": {"type": "array", "items": {"type": "array"}},
            "created_at": {"type": "string", "format": "date-time"},
            "created_by": {"type": ["string", "null"]},
            "staged_rows": {"type": ["integer", "null"]},
            "files": {"type": ["integer", "null"]},
            "waiting_since": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "StagingStats": {
        "type": "object",
        "properties": {
            "window_days": {"type": "integer"},
            "staged_rows": _counts(ROW_STATUSES),
            "pending_formats": {"type": "integer"},
            "oldest_pending_format_age_seconds": {"type": ["integer", "null"]},
            "approvals": {
                "type": "object",
                "properties": {
                    "count": {"type": "integer", "description": "Formats approved in the window."},
                    "median_seconds_to_approval": {
                        "type": ["integer", "null"],
                        "description": "Median of (approved_at - created_at).",
                    },
                },
            },
            "migration_throughput": {
                "type": "object",
                "properties": {
                    "migrations": {"type": "integer"},
                    "rows": {"type": "integer"},
                    "seconds": {"type": "number"},
                    "rows_per_second": {"type": ["number", "null"]},
                },
            },
            "error_rate": {
                "type": "object",
                "properties": {
                    "rows_processed": {"type": "integer"},
                    "rows_failed": {"type": "integer"},
                    "rate": {"type": ["number", "null"]},
                    "files_finished": {"type": "integer"},
                    "files_failed": {"type": "integer"},
                },
            },
        },
    },
}


def openapi_schema(server_url: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Airlock API",
            "version": "1",
            "description": "Import gateway for CSV, spreadsheet and JSON exports. Authenticate with a session or "
            "`Authorization: Bearer <token>` (`python manage.py api_token USERNAME`). Errors are always "
            '`{"error", "message", "details"}`. Another user\'s ids answer 404.',
        },
        "servers": [{"url": server_url}] if server_url else [],
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/uploads": {
                "post": {
                    "summary": "Upload one or many files: CSV, .xlsx/.xlsm/.xls/.ods workbooks, JSON or NDJSON",
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
                                            "description": "Judged by content, whatever the name: anything "
                                            "else (XML, HTML, binary, an encrypted workbook, a zip bomb) is "
                                            "400 unreadable_file and nothing is stored.",
                                        },
                                        "dedupe": {
                                            "type": "string",
                                            "enum": ["0", "1"],
                                            "description": "0 keeps duplicate trades.",
                                        },
                                    },
                                    "required": ["file"],
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json(_ref("UploadAccepted"), "Accepted: files are processed in the background"),
                        "413": {"$ref": "#/components/responses/BadRequest"},
                        **ERRORS,
                    },
                },
                "get": {
                    "summary": "The caller's files, newest first",
                    "parameters": [
                        _param(
                            "status",
                            "Only files with this status.",
                            {"type": "string", "enum": FILE_STATUSES},
                        ),
                        _param("batch", "Only files of this upload batch.", {"type": "integer"}),
                        IDS,
                        PAGE,
                        PAGE_SIZE,
                    ],
                    "responses": {"200": _json(_number_list("FileSummary")), **ERRORS},
                },
            },
            "/api/uploads/direct": {
                "post": {
                    "summary": "Direct upload, step 1: presigned POSTs to send files straight to the bucket",
                    "description": "Only when uploads are stored in an S3 bucket (else 404 direct_uploads_off). Each "
                    "new file gets a `key` and an `upload` ({url, fields}: a multipart POST to the bucket bound to "
                    "that key and exactly that size); a file whose bytes the caller already uploaded gets "
                    "`existing` instead. Counts as one upload request against the hourly limit.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "files": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "properties": {
                                                    "name": {"type": "string"},
                                                    "size": {"type": "integer", "minimum": 1},
                                                    "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                                                },
                                                "required": ["name", "size", "sha256"],
                                            },
                                        },
                                        "dedupe": {"type": "boolean"},
                                    },
                                    "required": ["files"],
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "expires_in": {"type": "integer"},
                                    "files": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "name": {"type": "string"},
                                                "size": {"type": "integer"},
                                                "key": {"type": ["string", "null"]},
                                                "upload": {"type": ["object", "null"]},
                                                "existing": {"type": ["object", "null"]},
                                            },
                                        },
                                    },
                                },
                            }
                        ),
                        "413": {"$ref": "#/components/responses/BadRequest"},
                        **ERRORS,
                        **NOT_FOUND,
                    },
                }
            },
            "/api/uploads/direct/confirm": {
                "post": {
                    "summary": "Direct upload, step 2: the objects sent to the bucket become one upload",
                    "description": "All or nothing: an object missing or not of its declared size is 409 "
                    "upload_incomplete naming the files, and nothing is created. Confirming again answers with the "
                    "same files (existing: true). The worker checks each object's sha256, type and virus scan "
                    "before reading it.",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"keys": {"type": "array", "items": {"type": "string"}}},
                                    "required": ["keys"],
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json(_ref("UploadAccepted"), "Accepted: files are processed in the background"),
                        "409": {"$ref": "#/components/responses/Conflict"},
                        **ERRORS,
                        **NOT_FOUND,
                    },
                }
            },
            "/api/batches/{batch_id}": {
                "get": {
                    "summary": "One upload session: status, overall progress, row counts and its files",
                    "parameters": [BATCH_ID],
                    "responses": {"200": _json(_ref("BatchSummary")), **ERRORS, **NOT_FOUND},
                }
            },
            "/api/uploads/{file_id}": {
                "get": {
                    "summary": "One file's status, format, row counts, progress and detected layout",
                    "parameters": [FILE_ID],
                    "responses": {"200": _json(_ref("FileSummary")), **ERRORS, **NOT_FOUND},
                }
            },
            "/api/uploads/{file_id}/retry": {
                "post": {
                    "summary": "Retry your own failed file from where it stopped, without uploading it again",
                    "parameters": [FILE_ID],
                    "responses": {
                        "202": _json(_ref("FileSummary"), "Queued again"),
                        **ERRORS,
                        **NOT_FOUND,
                        "409": {"$ref": "#/components/responses/Conflict"},
                    },
                }
            },
            "/api/uploads/{file_id}/rows": {
                "post": {
                    "summary": "Fix invalid rows in place: new cells by line; the rows are imported again",
                    "description": (
                        "The file's owner, or staff with imports.change_importfile; anyone else gets 404. "
                        "409 file_busy while a worker holds the file, 409 fix_refused for a rolled-back or "
                        "unfinished file; a refusal changes nothing."
                    ),
                    "parameters": [FILE_ID],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["rows"],
                                    "properties": {
                                        "rows": {
                                            "type": "object",
                                            "additionalProperties": {
                                                "type": "object",
                                                "additionalProperties": {"type": "string"},
                                            },
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "resubmitted": {"type": "array", "items": {"type": "integer"}},
                                    "unchanged": {"type": "array", "items": {"type": "integer"}},
                                    "not_invalid": {"type": "array", "items": {"type": "integer"}},
                                    "file": _ref("FileSummary"),
                                },
                            },
                            "Sent to import again",
                        ),
                        **ERRORS,
                        **NOT_FOUND,
                        "409": {"$ref": "#/components/responses/Conflict"},
                    },
                }
            },
            "/api/uploads/{file_id}/errors": {
                "get": {
                    "summary": "The file's invalid rows: one item per (row, field) problem",
                    "parameters": [FILE_ID, PAGE, PAGE_SIZE],
                    "responses": {
                        "200": _json(
                            {
                                "allOf": [
                                    _number_list("RowError"),
                                    {
                                        "type": "object",
                                        "properties": {
                                            "file": {"type": "integer"},
                                            "rows_failed": {"type": "integer"},
                                        },
                                    },
                                ]
                            }
                        ),
                        **ERRORS,
                        **NOT_FOUND,
                    },
                }
            },
            "/api/orders": {
                "get": {
                    "summary": "The caller's orders (never staged rows), newest first",
                    "parameters": [*ORDER_FILTERS, CURSOR, PAGE_SIZE],
                    "responses": {"200": _json(_cursor_list("Order")), **ERRORS},
                }
            },
            "/api/staging/status": {
                "get": {
                    "summary": "The caller's staged rows and files by status, and what waits for approval",
                    "responses": {"200": _json(_ref("StagingStatus")), **ERRORS},
                }
            },
            "/api/staging/orders": {
                "get": {
                    "summary": "The caller's staged rows (raw cells), by file and line",
                    "parameters": [
                        _param(
                            "status",
                            "Only rows with this status (e.g. PENDING).",
                            {"type": "string", "enum": ROW_STATUSES},
                        ),
                        _param("file", "Only rows of this import file.", {"type": "integer"}),
                        IDS,
                        CURSOR,
                        PAGE_SIZE,
                    ],
                    "responses": {"200": _json(_cursor_list("StagedRow")), **ERRORS, **NOT_FOUND},
                }
            },
            "/api/admin/formats/pending": {
                "get": {
                    "summary": "Pending formats with mapping, sample rows and staged-row counts (approve permission)",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"results": {"type": "array", "items": _ref("PendingFormat")}},
                            }
                        ),
                        **ERRORS,
                        **FORBIDDEN,
                    },
                }
            },
            "/api/admin/formats/{format_id}/approve": {
                "post": {
                    "summary": (
                        "Record an approval step (optionally with a corrected mapping, which starts the chain "
                        "again); approved, and its staged rows migrate, once the policy's approvers are reached"
                    ),
                    "parameters": [FORMAT_ID],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"mapping": {"type": "object"}, "comment": {"type": "string"}},
                                }
                            }
                        }
                    },
                    "responses": {
                        "202": _json(APPROVAL_ANSWER, "Approved; migration queued"),
                        "200": _json(APPROVAL_ANSWER, "Step recorded; the chain needs more approvers"),
                        **ERRORS,
                        **FORBIDDEN,
                        **NOT_FOUND,
                        "409": {"$ref": "#/components/responses/Conflict"},
                    },
                },
                "delete": {
                    "summary": "Reject with a reason",
                    "parameters": [FORMAT_ID],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["reason"],
                                    "properties": {"reason": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "integer"},
                                    "status": {"type": "string"},
                                    "reason": {"type": "string"},
                                },
                            }
                        ),
                        **ERRORS,
                        **FORBIDDEN,
                        **NOT_FOUND,
                        "409": {"$ref": "#/components/responses/Conflict"},
                    },
                },
            },
            "/api/admin/staging/stats": {
                "get": {
                    "summary": "Staging dashboard figures over the last 7 days (approve permission)",
                    "responses": {"200": _json(_ref("StagingStats")), **ERRORS, **FORBIDDEN},
                }
            },
            "/api/cron/cleanup-staging": {
                "post": {
                    "summary": "Run the retention cleanup (for platforms without a scheduler process)",
                    "security": [{"cron": []}],
                    "parameters": [_param("dry_run", "1 reports what would be deleted without deleting.")],
                    "responses": {
                        "200": _json({"type": "object"}),
                        "403": {"$ref": "#/components/responses/Forbidden"},
                    },
                }
            },
            "/api/schema": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _json({"type": "object"})},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "200 when the database, Redis and a worker are up; 503 otherwise",
                    "security": [],
                    "responses": {
                        "200": _json({"type": "object"}),
                        "503": _json({"type": "object"}, "Something is down"),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cron": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Cron-Secret",
                    "description": "The CRON_SECRET setting (also accepted as a Bearer token).",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "sessionid",
                    "description": "Browser session; writes also need the X-CSRFToken header.",
                },
            },
            "responses": {
                "BadRequest": _json(
                    _ref("Error"), "Invalid request (invalid_request, invalid_filter, invalid_cursor…)"
                ),
                "Unauthenticated": _json(_ref("Error"), "Not logged in / invalid token"),
                "Forbidden": _json(_ref("Error"), "Missing permission"),
                "NotFound": _json(_ref("Error"), "Not found (also for another user's ids)"),
                "Conflict": _json(_ref("Error"), "The object's state does not allow this"),
            },
            "schemas": SCHEMAS,
        },
    }
