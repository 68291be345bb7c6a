"""Direct uploads to the bucket: POST /api/uploads/direct signs, POST /api/uploads/direct/confirm imports.

The flow and its checks are in imports/services/direct_uploads.py; these views only read JSON and answer.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from config.errors import InvalidRequest
from imports.api import schemas
from imports.api.router import router
from imports.api.views import json_body, json_body_doc, upload_files_json
from imports.guards.upload_limits import upload_rate_limit_hit
from imports.services.direct_uploads import SignedFile, direct_uploads_confirm, direct_uploads_sign
from imports.targets import DEFAULT_TARGET


def _signed_json(item: SignedFile) -> dict[str, Any]:
    if item.existing is not None:
        existing = {**upload_files_json([item.existing])[0], "batch": item.existing.batch_id}
        return {"name": item.name, "size": item.size, "key": None, "upload": None, "existing": existing}
    assert item.slot is not None and item.post is not None
    return {"name": item.name, "size": item.size, "key": item.slot.key, "upload": item.post, "existing": None}


@router.post(
    "/uploads/direct",
    url_name="api-uploads-direct",
    response={200: schemas.DirectSigned, **schemas.errors(400, 401, 404, 413, 429)},
    summary="Direct upload, step 1: presigned POSTs to send files straight to the bucket",
    openapi_extra=json_body_doc(schemas.DirectSignRequest, "The files about to be sent: name, size and SHA-256."),
)
def direct_sign(request: HttpRequest) -> HttpResponse:
    """POST /api/uploads/direct {"files": [{name, size, sha256}], "dedupe", "target"}: a presigned POST per new file."""
    body = json_body(request)
    dedupe = body.get("dedupe", True)
    if not isinstance(dedupe, bool):
        raise InvalidRequest("'dedupe' must be true or false.", code="invalid_dedupe")
    upload_rate_limit_hit(request)  # one upload request, counted here; its confirm is part of it
    target = body.get("target", DEFAULT_TARGET)
    signed = direct_uploads_sign(owner=request.user, files=body.get("files"), dedupe=dedupe, target=target)
    return JsonResponse(
        {"expires_in": settings.AIRLOCK["DIRECT_UPLOAD_EXPIRES"], "files": [_signed_json(s) for s in signed]}
    )


@router.post(
    "/uploads/direct/confirm",
    url_name="api-uploads-direct-confirm",
    response={202: schemas.UploadAccepted, **schemas.errors(400, 401, 404, 409)},
    summary="Direct upload, step 2: the objects sent to the bucket become one upload",
    openapi_extra=json_body_doc(schemas.DirectConfirmRequest, "The keys of the files that reached the bucket."),
)
def direct_confirm(request: HttpRequest) -> HttpResponse:
    """POST /api/uploads/direct/confirm {"keys": [...]}: the uploaded objects become one upload (202)."""
    body = json_body(request)
    batch, files = direct_uploads_confirm(owner=request.user, keys=body.get("keys"))
    return JsonResponse({"batch": batch.pk, "files": upload_files_json(files)}, status=202)
