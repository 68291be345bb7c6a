"""Direct uploads: the browser sends files straight to the S3 bucket; the web process never holds the bytes.

Two requests, then a worker step:

1. **sign** (POST /api/uploads/direct): the browser names the files it is about to send (name, size and the
   sha256 it computed). The limits of a form upload hold (files per request, bytes per file, empty files;
   the hourly upload limit is counted by the view). A file its owner already uploaded gets that import back
   instead of an upload URL (the same idempotency by content hash as a form upload); every other file gets a
   slot (DirectUploadSlot) and a presigned POST bound to its key and *exact* size, valid
   AIRLOCK_DIRECT_UPLOAD_EXPIRES seconds: the bucket refuses any other key or length.
2. **confirm** (POST /api/uploads/direct/confirm): the slots whose objects arrived become one upload batch and
   its files, their jobs enqueued on commit. Each object is checked first (there, exactly the promised size);
   one missing or wrong object refuses the whole request, naming the files, and creates nothing. Confirming
   the same slots again answers with the files they became.
3. **the worker** checks the object before anything reads it (`imports.guards.scanning.stored_check_content`):
   its sha256 against the one the browser declared (a mismatch fails the file), its type by content and the
   virus scan (failing closed), exactly what a form upload gets in its request.

Slots not confirmed within their validity plus an hour are deleted by the cleanup together with any object a
browser sent for them (`direct_uploads_expire`), so no unseen bytes stay in the bucket.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.services import audit_event, events_append
from config.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge
from imports.models import BatchStatus, DirectUploadSlot, ImportBatch, ImportFile
from imports.services.uploads import (
    existing_upload,
    files_enqueue,
    files_insert,
    live_uploads,
    upload_target_check,
)
from imports.storage import delete_stored, new_upload_name, sanitize_display_name
from imports.targets import DEFAULT_TARGET

_SHA256 = re.compile(r"[0-9a-f]{64}")
# A slot can still be confirmed this long after its upload URL expired (the last bytes of a slow upload that
# started in time); after it, the cleanup deletes the slot and whatever was sent for it.
CONFIRM_GRACE = timedelta(hours=1)


@dataclass
class SignedFile:
    """One file of a sign request: an upload slot with its presigned POST, or the owner's earlier import."""

    name: str
    size: int
    slot: DirectUploadSlot | None = None
    post: dict[str, Any] | None = None
    existing: ImportFile | None = None


def direct_uploads_enabled() -> bool:
    """Direct uploads need the uploads to live in a bucket that can sign POST policies."""
    return bool(settings.AIRLOCK.get("DIRECT_UPLOADS")) and hasattr(default_storage, "presigned_post")


def _require_enabled() -> None:
    if not direct_uploads_enabled():
        raise NotFound(
            "Direct uploads are not available: uploads are not stored in an S3 bucket here (AIRLOCK_S3_BUCKET) or "
            "AIRLOCK_DIRECT_UPLOADS is off. Send the files to POST /api/uploads instead.",
            code="direct_uploads_off",
        )


def _declared(item: Any, index: int) -> tuple[str, int, str]:
    """(display name, size, sha256) of one declared file, or InvalidRequest naming what is wrong."""
    if not isinstance(item, dict):
        raise InvalidRequest(f"files[{index}] must be an object with name, size and sha256.", code="invalid_file")
    raw_name = item.get("name")
    if not isinstance(raw_name, str) or not raw_name.strip():
        raise InvalidRequest(f"files[{index}].name must be the file's name.", code="invalid_file")
    name = sanitize_display_name(raw_name[:1000])
    size = item.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidRequest(f"files[{index}].size ('{name}') must be its size in bytes.", code="invalid_file")
    if size == 0:
        raise InvalidRequest(f"'{name}' is empty: there is nothing to import.", code="empty_file")
    limit = settings.AIRLOCK["MAX_FILE_BYTES"]
    if size > limit:
        raise PayloadTooLarge(
            f"'{name}' is {size:,} bytes; the limit is {limit:,} bytes per file.", details={"file": name, "size": size}
        )
    sha256 = item.get("sha256")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
        raise InvalidRequest(
            f"files[{index}].sha256 ('{name}') must be the SHA-256 of its bytes as 64 hex digits.", code="invalid_file"
        )
    return name, size, sha256.lower()


def direct_uploads_sign(
    *, owner: Any, files: Any, dedupe: bool = True, target: str = DEFAULT_TARGET
) -> list[SignedFile]:
    """Check the declared files and issue one presigned POST per new file (nothing is stored yet)."""
    _require_enabled()
    upload_target_check(target)
    limits = settings.AIRLOCK
    if not isinstance(files, list) or not files:
        raise InvalidRequest("No file was named: send files: [{name, size, sha256}, ...].", code="no_file")
    if len(files) > limits["MAX_FILES_PER_REQUEST"]:
        raise InvalidRequest(
            f"Too many files in one request: {len(files)} (the limit is {limits['MAX_FILES_PER_REQUEST']}).",
            code="too_many_files",
        )
    declared = [_declared(item, i) for i, item in enumerate(files)]  # every file checked before any is signed
    expires = limits["DIRECT_UPLOAD_EXPIRES"]
    signed: list[SignedFile] = []
    # One SELECT for the files already uploaded and one INSERT for the new slots, not two statements per file
    # (300 files: 605 statements, ~0.6 s of the request).
    with transaction.atomic():
        live = live_uploads(owner, [sha256 for _, _, sha256 in declared])
        expires_at = timezone.now() + timedelta(seconds=expires)
        for name, size, sha256 in declared:
            existing = existing_upload(owner=owner, sha256=sha256) if sha256 in live else None
            if existing is not None:
                signed.append(SignedFile(name=name, size=size, existing=existing))
                continue
            slot = DirectUploadSlot(
                owner=owner,
                key=new_upload_name(),
                original_name=name,
                size=size,
                sha256=sha256,
                dedupe=dedupe,
                target=target,
                expires_at=expires_at,
            )
            signed.append(SignedFile(name=name, size=size, slot=slot))
        DirectUploadSlot.objects.bulk_create([item.slot for item in signed if item.slot is not None])
        for item in signed:
            if item.slot is not None:
                # Presigning is a local computation (no request to the bucket): 300 files sign in ~0.1 s.
                item.post = default_storage.presigned_post(item.slot.key, size=item.size, expires=expires)
    return signed


def direct_uploads_confirm(*, owner: Any, keys: Any) -> tuple[ImportBatch, list[ImportFile]]:
    """Turn the owner's uploaded slots into one batch of import files (all or nothing); idempotent per slot."""
    _require_enabled()
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise InvalidRequest('Name the uploaded files: keys: ["…", …] as the sign request gave them.', code="no_file")
    if len(keys) > settings.AIRLOCK["MAX_FILES_PER_REQUEST"]:
        raise InvalidRequest(
            f"Too many files in one request: {len(keys)} (the limit is {settings.AIRLOCK['MAX_FILES_PER_REQUEST']}).",
            code="too_many_files",
        )
    keys = list(dict.fromkeys(keys))
    with transaction.atomic():
        slots = {s.key: s for s in DirectUploadSlot.objects.select_for_update().filter(owner=owner, key__in=keys)}
        unknown = [k for k in keys if k not in slots]
        if unknown:
            # Another user's slot answers like one that never existed.
            raise NotFound(
                f"{len(unknown)} of the {len(keys)} files were never signed for you or have expired: "
                f"{', '.join(k[-40:] for k in unknown[:5])}. Ask for new upload URLs and send them again.",
                code="unknown_upload",
                details={"keys": unknown[:50]},
            )
        ordered = [slots[k] for k in keys]
        new = [s for s in ordered if s.file_id is None]
        _check_arrived(new)
        batch, made = _confirm(owner, new) if new else (None, {})
        files: list[ImportFile] = []
        for slot in ordered:
            if slot.pk in made:
                files.append(made[slot.pk])
            else:
                again = ImportFile.objects.get(pk=slot.file_id)
                again.is_existing = True
                files.append(again)
        return batch or files[0].batch, files


def _check_arrived(slots: list[DirectUploadSlot]) -> None:
    """Every object is in the bucket with exactly its promised size and its slot is still valid, or nothing is done."""
    late = [s for s in slots if s.expires_at + CONFIRM_GRACE < timezone.now()]
    if late:
        raise Conflict(
            f"The upload URLs of {len(late)} files expired before they were confirmed ("
            f"{', '.join(s.original_name for s in late[:5])}): ask for new URLs and send them again.",
            code="upload_expired",
            details={"files": [s.original_name for s in late[:50]]},
        )
    missing: list[str] = []
    wrong: list[str] = []
    for slot, size in zip(slots, default_storage.heads([slot.key for slot in slots]), strict=True):
        if size is None:
            missing.append(slot.original_name)
        elif size != slot.size:
            wrong.append(f"{slot.original_name} ({size:,} bytes, {slot.size:,} declared)")
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"not in the bucket yet: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
        if wrong:
            parts.append(f"not the declared size: {', '.join(wrong[:5])}")
        raise Conflict(
            f"{len(missing) + len(wrong)} of {len(slots)} files cannot be confirmed ({'; '.join(parts)}). Nothing was "
            "created: send the missing files again, then confirm.",
            code="upload_incomplete",
            details={"missing": missing[:50], "wrong_size": wrong[:50]},
        )


def _confirm(owner: Any, slots: list[DirectUploadSlot]) -> tuple[ImportBatch, dict[int, ImportFile]]:
    """The slots' import files in one batch, their audit events and the slots' links to them, as an upload's: a few
    statements for the whole request, not five per file (imports.services.uploads.files_insert)."""
    batch = ImportBatch.objects.create(owner=owner, status=BatchStatus.PENDING)
    pending = [
        ImportFile(
            batch=batch,
            owner=owner,
            original_name=slot.original_name,
            stored_name=slot.key,
            sha256=slot.sha256,
            size=slot.size,
            dedupe=slot.dedupe,
            target=slot.target,
            content_checked=False,  # the worker sniffs and scans the object before reading it
        )
        for slot in slots
    ]
    new_files = files_insert(owner, pending)
    inserted = {id(file) for file in new_files}
    made: dict[int, ImportFile] = {}
    drop: list[str] = []
    for slot, file in zip(slots, pending, strict=True):
        if id(file) not in inserted:
            # The same bytes were confirmed meanwhile (another request, or twice in this one): that import
            # answers, and this object is a spare copy, deleted once the transaction commits.
            existing = existing_upload(owner=owner, sha256=slot.sha256)
            if existing is None:  # pragma: no cover - the check or the constraint that refused us names a live import
                raise IntegrityError(f"no live import of {slot.sha256} although its insert was refused")
            file = existing
            drop.append(slot.key)
        slot.file = file
        made[slot.pk] = file
    # (Plain SQL: the ORM's bulk_update builds a CASE of one branch per slot, ~1 ms of Python each.)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {DirectUploadSlot._meta.db_table} AS slot SET file_id = linked.file_id "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS linked(id, file_id) WHERE slot.id = linked.id",
            [[slot.pk for slot in slots], [slot.file_id for slot in slots]],
        )
    events_append(
        [
            audit_event(
                action="file.uploaded",
                actor=owner,
                obj=file,
                summary=f"{owner.get_username()} uploaded '{file.original_name}' ({file.size:,} bytes) to the bucket",
                details={"sha256": file.sha256, "batch": batch.pk, "size": file.size, "direct": True},
            )
            for file in new_files
        ]
    )
    files_enqueue(new_files)
    if not new_files:
        batch.delete()
        batch = next(iter(made.values())).batch
    else:
        batch.file_count = len(new_files)
        batch.save(update_fields=["file_count", "updated_at"])
    if drop:
        transaction.on_commit(lambda: _delete_quietly(drop))
    return batch, made


def _delete_quietly(names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(Exception):  # a spare copy left behind is removed by the expiry sweep
            delete_stored(name)


def direct_uploads_expire(*, now: Any = None) -> int:
    """Delete slots never confirmed past their validity and grace, and any object sent for them."""
    now = now or timezone.now()
    expired = DirectUploadSlot.objects.filter(file__isnull=True, expires_at__lt=now - CONFIRM_GRACE)
    removed = 0
    for slot in expired.iterator(chunk_size=500):
        delete_stored(slot.key)  # a storage fault stops the sweep here; the next run goes on
        slot.delete()
        removed += 1
    # Confirmed slots are only a record of the promise; the import file carries on from here.
    DirectUploadSlot.objects.filter(file__isnull=False, expires_at__lt=now - CONFIRM_GRACE).delete()
    return removed
