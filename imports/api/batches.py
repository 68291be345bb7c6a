"""GET /api/batches/<id>: one upload session's status, overall progress, counts and per-file status."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from ninja import Query

from imports import selectors
from imports.api import schemas
from imports.api.router import router
from imports.models import ImportBatch


def batch_summary(batch: ImportBatch, *, items: bool = True) -> dict[str, Any]:
    """The JSON shape of a batch: overall figures from aggregates, then (with `items`) one small entry per file."""
    summary = selectors.batch_figures(batch)
    summary["created_at"] = batch.created_at.isoformat()
    summary["updated_at"] = batch.updated_at.isoformat()
    if items:
        summary["files"]["items"] = [
            {
                "id": f["id"],
                "name": f["original_name"],
                "status": f["status"],
                "progress": round(f["progress"], 1),
                "rows_total": f["rows_total"],
                "rows_imported": f["rows_imported"],
                "rows_invalid": f["rows_invalid"],
                "rows_failed": f["rows_invalid"],  # the API's older name of rows_invalid
                "error": f["error"] or None,
            }
            for f in batch.files.order_by("id").values(
                "id", "original_name", "status", "progress", "rows_total", "rows_imported", "rows_invalid", "error"
            )
        ]
    return summary


@router.get(
    "/batches/{int:batch_id}",
    url_name="api-batch-detail",
    response={200: schemas.BatchSummary, **schemas.errors(401, 404)},
    summary="One upload session: status, overall progress, row counts and its files",
)
def batch_detail(request: HttpRequest, batch_id: int, query: Query[schemas.BatchQuery]) -> HttpResponse:
    """GET /api/batches/<id>: status (PENDING -> PROCESSING -> COMPLETED / PARTIAL / FAILED), progress, files."""
    batch = get_object_or_404(selectors.batches_for(request.user), pk=batch_id)
    # ?items=0 leaves out the per-file list (the pages poll only the figures of a 300-file upload).
    return JsonResponse(batch_summary(batch, items=query.items != "0"))
