"""GET /api/batches/<id>: one upload session's status, overall progress, counts and per-file status."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404

from imports import selectors
from imports.api.views import api_view
from imports.models import UNFINISHED_FILE_STATUSES, ImportBatch

_ROW_FIELDS = ("total", "imported", "failed", "skipped", "duplicate", "staged")


def batch_summary(batch: ImportBatch) -> dict[str, Any]:
    """The JSON shape of a batch: overall figures from aggregates, then one small entry per file."""
    files = batch.files.all()
    sums = files.aggregate(
        **{name: Sum(f"rows_{name}") for name in _ROW_FIELDS if name != "staged"},
        # staged rows count only while they wait for a review, as in the file summary
        staged=Sum("rows_staged", filter=Q(status="PENDING_APPROVAL")),
    )
    by_status = dict(files.values_list("status").annotate(n=Count("id")).order_by())
    count = sum(by_status.values())
    # A file still queued or running counts with its own progress; a finished (or waiting-for-review)
    # one is done as far as this upload is concerned.
    unfinished = files.filter(status__in=UNFINISHED_FILE_STATUSES).aggregate(n=Count("id"), progress=Sum("progress"))
    done = count - (unfinished["n"] or 0)
    progress = 100.0 * done + (unfinished["progress"] or 0.0)
    rows = {name: sums[name] or 0 for name in _ROW_FIELDS}
    return {
        "id": batch.pk,
        "status": batch.status,
        "status_display": batch.get_status_display(),
        "created_at": batch.created_at.isoformat(),
        "updated_at": batch.updated_at.isoformat(),
        "progress": round(progress / count, 1) if count else 100.0,
        "files": {
            "count": count,
            "finished": done,
            "by_status": by_status,
            "items": [
                {
                    "id": f["id"],
                    "name": f["original_name"],
                    "status": f["status"],
                    "progress": round(f["progress"], 1),
                    "rows_total": f["rows_total"],
                    "rows_imported": f["rows_imported"],
                    "rows_failed": f["rows_failed"],
                    "error": f["error"] or None,
                }
                for f in files.order_by("id").values(
                    "id", "original_name", "status", "progress", "rows_total", "rows_imported", "rows_failed", "error"
                )
            ],
        },
        "rows": rows,
    }


@api_view(["GET"])
def batch_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    """GET /api/batches/<id>: status (PENDING -> PROCESSING -> COMPLETED / PARTIAL / FAILED), progress, files."""
    batch = get_object_or_404(selectors.batches_for(request.user), pk=batch_id)
    return JsonResponse(batch_summary(batch))
