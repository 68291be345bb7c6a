"""Import services: uploads, review decisions that start work, and the reconciler's view of due work."""

from __future__ import annotations

import contextlib
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction

from audit.services import audit_event, events_append, record
from config.errors import Conflict, InvalidRequest, MappingError, PayloadTooLarge
from formats.approval import policy_current
from formats.models import CsvFormat, FormatStatus, UserTier
from formats.services import (
    format_approve,
    format_approve_by_policy,
    format_override,
    format_reject,
    format_review_check,
    format_update_mapping,
    reader_changed,
)
from imports.guards.scanning import upload_check_content
from imports.jobs import enqueue
from imports.lifecycle import batch_refresh_status, batches_refresh, files_end
from imports.models import REUPLOADABLE_FILE_STATUSES, BatchStatus, FileStatus, ImportBatch, ImportFile
from imports.pipeline.migrate import format_reprocess_invalid
from imports.selectors import file_for
from imports.services.notifications import notify_format_decision
from imports.services.quality import Quality, format_invalid_rate, format_quality_store
from imports.services.retry import file_retry
from imports.services.review import format_reader_apply
from imports.storage import delete_stored, sanitize_display_name, store_upload, stored_exists
from imports.targets import DEFAULT_TARGET, WRITERS
from staging.models import StagedRow, StagedStatus


def upload_batch_create(
    *, owner: Any, files: list[UploadedFile], dedupe: bool = True, target: str = DEFAULT_TARGET
) -> tuple[ImportBatch, list[ImportFile]]:
    """Store the files of one upload session and enqueue the new files' jobs (on commit; see files_enqueue).
    `target`: what the files hold (orders, instruments...); their headers are matched to that target's formats.

    The same bytes from the same owner return the existing import (same id): the unique constraint on
    (owner, sha256) decides, so ten identical uploads at once still make one import.
    """
    limits = settings.AIRLOCK
    upload_target_check(target)
    if not files:
        raise InvalidRequest("No file was uploaded: send one or more files in the 'file' field.", code="no_file")
    if len(files) > limits["MAX_FILES_PER_REQUEST"]:
        raise InvalidRequest(
            f"Too many files in one request: {len(files)} (the limit is {limits['MAX_FILES_PER_REQUEST']}).",
            code="too_many_files",
        )
    for uploaded in files:
        if uploaded.size is not None and uploaded.size > limits["MAX_FILE_BYTES"]:
            raise PayloadTooLarge(
                f"'{sanitize_display_name(uploaded.name or '')}' is {uploaded.size:,} bytes; the limit is "
                f"{limits['MAX_FILE_BYTES']:,} bytes per file.",
                details={"file": sanitize_display_name(uploaded.name or ""), "size": uploaded.size},
            )
    upload_check_content(owner=owner, files=files)  # binary sniff + virus scan, before anything is stored
    stored: list[str] = []
    try:
        # One request, one transaction: its files, their audit events and (in the caller's transaction) its
        # Idempotency-Key row commit together or not at all, and jobs are enqueued only on commit. A failure
        # at the second file leaves no import of the first (and no stored bytes), so the whole request can
        # simply be sent again.
        with transaction.atomic():
            return _batch_create(owner=owner, files=files, dedupe=dedupe, target=target, stored=stored)
    except BaseException:
        for name in stored:
            with contextlib.suppress(Exception):  # the request's own error is what the client hears
                delete_stored(name)
        raise


def _batch_create(
    *, owner: Any, files: list[UploadedFile], dedupe: bool, target: str, stored: list[str]
) -> tuple[ImportBatch, list[ImportFile]]:
    batch = ImportBatch.objects.create(owner=owner, status=BatchStatus.PENDING)
    pending: list[ImportFile] = []
    for uploaded in files:
        stored_name, sha256, size = store_upload(uploaded)
        stored.append(stored_name)
        pending.append(
            ImportFile(
                batch=batch,
                owner=owner,
                original_name=sanitize_display_name(uploaded.name or "upload.csv"),
                stored_name=stored_name,
                sha256=sha256,
                size=size,
                dedupe=dedupe,
                target=target,
            )
        )
    new_files = files_insert(owner, pending)
    inserted = {id(file) for file in new_files}
    results: list[ImportFile] = []
    for file in pending:
        if id(file) in inserted:
            results.append(file)
            continue
        # These bytes are already a live import of the owner's (or an earlier file of this request).
        stored.remove(file.stored_name)
        delete_stored(file.stored_name)
        existing = existing_upload(owner=owner, sha256=file.sha256)
        if existing is None:  # pragma: no cover - the check or the constraint that refused us names a live import
            raise IntegrityError(f"no live import of {file.sha256} although its insert was refused")
        results.append(existing)
    events_append(
        [
            audit_event(
                action="file.uploaded",
                actor=owner,
                obj=file,
                summary=f"{owner.get_username()} uploaded '{file.original_name}' ({file.size:,} bytes)",
                details={"sha256": file.sha256, "batch": batch.pk, "size": file.size},
            )
            for file in new_files
        ]
    )
    files_enqueue(new_files)
    if not new_files:
        # Every file was already uploaded: answer with the batch that holds the first of them instead
        # of leaving an empty batch behind for each repeated upload.
        batch.delete()
        return results[0].batch, results
    batch.file_count = len(new_files)
    batch.save(update_fields=["file_count", "updated_at"])
    return batch, results


def files_insert(owner: Any, files: list[ImportFile]) -> list[ImportFile]:
    """Insert the files whose bytes are not a live import of the owner's yet (the first of equal ones in this
    request); returns those inserted, in order.

    One SELECT and one INSERT for the whole request, a form's upload or a bucket's confirm (per file, a savepoint and
    its INSERT cost ~1.5 ms: a 300-file upload's request took ~0.45 s longer). The unique constraint on (owner,
    sha256) still decides: when another request committed some of the same bytes between the check and the INSERT,
    the files go in one at a time, each in a savepoint, and those refused are the other request's."""
    live = live_uploads(owner, [file.sha256 for file in files])
    fresh: list[ImportFile] = []
    for file in files:
        if file.sha256 not in live:
            live.add(file.sha256)
            fresh.append(file)
    if not fresh:
        return []
    try:
        with transaction.atomic():
            ImportFile.objects.bulk_create(fresh)
        return fresh
    except IntegrityError:
        for file in fresh:
            file.pk = None
            file._state.adding = True
    inserted: list[ImportFile] = []
    for file in fresh:
        try:
            with transaction.atomic():
                file.save(force_insert=True)
        except IntegrityError:
            file.pk = None
            continue
        inserted.append(file)
    return inserted


def _live_imports(owner: Any) -> Any:
    """The owner's imports whose bytes may not be uploaded again as a new import (the unique constraint's rows)."""
    return ImportFile.objects.exclude(status__in=REUPLOADABLE_FILE_STATUSES).filter(owner=owner)


def live_uploads(owner: Any, sha256s: list[str]) -> set[str]:
    """Which of these SHA-256s are a live import of the owner's (the bytes existing_upload would answer with)."""
    return set(_live_imports(owner).filter(sha256__in=sha256s).values_list("sha256", flat=True))


def files_enqueue(files: list[ImportFile]) -> None:
    """Queue the new files of one upload (on commit): small ones first, a many-file upload on its own queue, small
    files together (imports/jobs/enqueue.py). The files table's planner statistics are brought up to date first
    when this upload at least doubled it (files_stats_refresh)."""
    files_stats_refresh(len(files))
    bulk = "bulk" if len(files) > 20 else None
    enqueue.enqueue_files_process([(file.pk, file.size, upload_queue(size=file.size, bulk=bulk)) for file in files])


def files_stats_refresh(added: int) -> bool:
    """ANALYZE the files table, in the upload's transaction, when Postgres's statistics count fewer rows than the
    upload added; True if it ran.

    Every order (and staged row) written checks its foreign key to its file's row, a query each worker plans once
    and keeps. Planned from the statistics of a table that was tiny at its last ANALYZE (a new installation, or one
    owner's first upload of hundreds of files), that check can pick the index on the owner (or the format) and read
    every file of that owner for each row: measured on 300 uploaded files, 1,000 rows each, two workers, every
    commit took 80-160 ms instead of ~4 and the upload 25-27 s instead of ~7.5, until autovacuum's ANALYZE came
    round. Analyzed here (a few ms: the table is small, by the condition; the upload's own rows count), the
    statistics commit with the files, and every worker plans the check again before the files' jobs start. Once
    the table is large no upload doubles it, and nothing is run. SKIP_LOCKED: a running ANALYZE or VACUUM of the
    table (which refreshes them anyway) is not waited for; the lock taken is one DML does not wait on."""
    if not added:
        return False
    table = ImportFile._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        (estimated,) = cursor.fetchone()
        if estimated >= added:
            return False
        cursor.execute(f"ANALYZE (SKIP_LOCKED) {table}")
    return True


def upload_target_check(target: Any) -> None:
    """An upload names a target Airlock can write (imports/targets/); InvalidRequest naming them otherwise."""
    if not isinstance(target, str) or target not in WRITERS:
        known = ", ".join(sorted(WRITERS))
        raise InvalidRequest(
            f"Unknown target {str(target)[:40]!r}: what the files hold is one of {known}.",
            code="invalid_target",
            details={"target": str(target)[:40], "targets": sorted(WRITERS)},
        )


def upload_queue(*, size: int, bulk: str | None) -> str:
    """The RQ queue of a new file: a big upload's own queue, else small files first."""
    return bulk or ("high" if size < 5 * 1024 * 1024 else "default")


def existing_upload(*, owner: Any, sha256: str) -> ImportFile | None:
    """The owner's live import of these bytes (marked `is_existing`); a FAILED one is retried, as asked again."""
    existing = _live_imports(owner).filter(sha256=sha256).first()
    if existing is None:
        return None
    existing.is_existing = True
    if existing.status == FileStatus.FAILED:
        _file_retry_by_owner(existing, owner)
    return existing


def file_retry_by_owner(*, file_id: int, owner: Any) -> str:
    """The owner's Retry of their own FAILED file, from its page or the API, without uploading it again:
    resumed from where Postgres says it got, exactly like an admin's Retry. Refused, changing nothing, for
    another user's file (404), a file that is not failed, or one whose stored upload is gone."""
    file = file_for(owner, file_id)
    if file.status != FileStatus.FAILED:
        raise Conflict(
            f"'{file.original_name}' is {file.get_status_display().lower()}, not failed: only a failed import can "
            "be retried.",
            code="retry_refused",
        )
    if not stored_exists(file.stored_name):
        raise Conflict(
            f"The uploaded copy of '{file.original_name}' is no longer kept (retention), so it cannot be retried: "
            "upload the file again.",
            code="upload_gone",
        )
    return file_retry(file_id=file.pk, actor=owner, by_owner=True, how="by its owner (Retry)")


def _file_retry_by_owner(file: ImportFile, owner: Any) -> None:
    """The same bytes of a FAILED import uploaded again: its owner asks for it again, so it is retried (from
    where Postgres says it got, like an admin's Retry) instead of answering with the failure. A file whose
    worker kept dying keeps its count of starts: one more death fails it again at once."""
    try:
        file.status = file_retry(file_id=file.pk, actor=owner, by_owner=True)
    except Conflict:
        file.refresh_from_db()  # retried by someone else a moment ago
        return
    file.error = ""
    file.is_retried = True
    batch_refresh_status(batch_id=file.batch_id)


def review_approve(
    *, format_id: int, actor: Any, mapping: dict[str, Any] | None = None, comment: str = ""
) -> CsvFormat:
    """Approve (or correct) a format and start migrating its staged rows.

    Every check runs first (formats.services.format_review_check), then the writes, in one transaction: a
    refused approval changes nothing. A mapping that moves the table (reader.header_line / section) re-reads
    and re-stages the waiting files inside that transaction; when the table's new columns no longer fit the
    submitted fields, the re-read and a fresh suggestion are kept for review and the approval is refused
    with `mapping_resuggested` (nobody approved that suggestion yet).
    """
    resuggested = False
    with transaction.atomic():
        fmt = CsvFormat.objects.select_for_update().get(pk=format_id)
        format_review_check(fmt=fmt, actor=actor, mapping=mapping, approve=True)
        if mapping is not None and reader_changed(fmt, mapping):
            applied = format_reader_apply(format_id=format_id, mapping=mapping, actor=actor)
            resuggested = applied.get("fields") != mapping.get("fields")
            mapping = applied
        if not resuggested:
            fmt = _approve_checked(format_id=format_id, actor=actor, mapping=mapping, comment=comment)
    if resuggested:
        raise MappingError(
            "The reader settings moved the table: its columns changed, so the mapping was re-suggested for "
            "them. Review the new mapping, then approve.",
            code="mapping_resuggested",
        )
    return fmt


def _approve_checked(*, format_id: int, actor: Any, mapping: dict[str, Any] | None, comment: str = "") -> CsvFormat:
    """The writes of an approval whose checks passed (inside review_approve's transaction): one step of the
    approval chain, and the migration once the chain is complete."""
    was_approved = CsvFormat.objects.filter(pk=format_id, status="APPROVED").exists()
    fmt = format_approve(
        format_id=format_id,
        actor=actor,
        mapping=mapping,
        comment=comment,
        invalid_rate=None if was_approved else approval_invalid_rate(format_id),
    )
    if fmt.status != FormatStatus.APPROVED:
        return fmt  # the chain needs more approvers: nothing is migrated yet
    _approved_start(fmt, was_approved=was_approved, corrected=mapping is not None)
    return fmt


def review_override(*, format_id: int, actor: Any, reason: Any) -> CsvFormat:
    """Emergency override (formats.services.format_override), then the migration as for any approval."""
    with transaction.atomic():
        fmt = format_override(format_id=format_id, actor=actor, reason=reason)
        _approved_start(fmt, was_approved=False, corrected=False)
    return fmt


def _approved_start(fmt: CsvFormat, *, was_approved: bool, corrected: bool) -> None:
    """A format has just been approved (or corrected): tell the uploaders, release its staged rows, migrate."""
    if not was_approved:
        notify_format_decision(
            approved=True,
            file_ids=list(
                ImportFile.objects.filter(format_id=fmt.pk, status=FileStatus.PENDING_APPROVAL).values_list(
                    "pk", flat=True
                )
            ),
        )
    # Its PENDING rows are open rows of an approved format now: the migration claims them as they are (no
    # rewrite of every staged row inside the approval's transaction: that took seconds per million rows).
    if was_approved and corrected:
        format_reprocess_invalid(format_id=fmt.pk)
    enqueue.enqueue_format_migrate(fmt.pk)


def approval_invalid_rate(format_id: int) -> float | None:
    """The share of the format's staged rows that would be invalid, for the policy's risk rule; None when risk
    changes nothing under the policy (then nothing is scanned)."""
    policy = policy_current()
    if policy.risky_approvers_required <= policy.approvers_required:
        return None
    return format_invalid_rate(CsvFormat.objects.get(pk=format_id))


def review_auto_approve(*, file_id: int) -> bool:
    """The first file of a new format is staged: score the format, and approve it by policy when the policy
    (or the uploader's trusted tier) allows it and its numbers pass every threshold. True when approved."""
    file = ImportFile.objects.select_related("owner").get(pk=file_id)
    fmt = CsvFormat.objects.filter(pk=file.format_id, status=FormatStatus.PENDING, first_seen_file_id=file_id).first()
    if fmt is None:
        return False  # judged or decided already, or not this format's first file
    quality = format_quality_store(fmt)
    policy = policy_current()
    trusted = (
        file.owner_id is not None
        and UserTier.objects.filter(group__user=file.owner_id, staging_required=False).exists()
    )
    if not (policy.auto_approve or trusted):
        return False
    refused = _auto_refusals(quality, policy)
    numbers = {
        "quality": quality.score,
        "lowest_confidence": quality.lowest_confidence,
        "invalid_rate": quality.invalid_rate,
        "trusted_tier": trusted,
    }
    if refused:
        record(
            action="format.auto_approval_refused",
            obj=fmt,
            summary=f"'{fmt.name}' was not approved by policy: {'; '.join(refused)}; it waits for review",
            details={**numbers, "refused": refused, "parts": quality.parts},
        )
        return False
    with transaction.atomic():
        fmt = format_approve_by_policy(format_id=fmt.pk, numbers={**numbers, "parts": quality.parts})
        if fmt is None:
            return False
        _approved_start(fmt, was_approved=False, corrected=False)
    return True


def _auto_refusals(quality: Quality, policy: Any) -> list[str]:
    """The thresholds a format's numbers miss ([] when auto-approval may go ahead)."""
    refused = []
    if quality.score < policy.auto_min_quality:
        refused.append(f"quality {quality.score} < {policy.auto_min_quality}")
    if quality.lowest_confidence < policy.auto_min_confidence:
        refused.append(
            f"lowest required-field confidence {quality.lowest_confidence:.2f} < {policy.auto_min_confidence}"
        )
    if quality.invalid_rate is None or quality.would_import == 0:
        refused.append("no staged row would import")
    elif quality.invalid_rate > policy.auto_max_invalid_rate:
        refused.append(
            f"{quality.invalid_rate:.1%} of the rows would be invalid (limit {policy.auto_max_invalid_rate:.1%})"
        )
    return refused


def review_save_mapping(*, format_id: int, actor: Any, mapping: dict[str, Any]) -> CsvFormat:
    """Save an edited mapping without approving; a moved table (header line / section) re-stages first.

    Checked before anything is written (formats.services.format_review_check), in one transaction.
    """
    with transaction.atomic():
        fmt = CsvFormat.objects.select_for_update().get(pk=format_id)
        format_review_check(fmt=fmt, actor=actor, mapping=mapping, approve=False)
        if reader_changed(fmt, mapping):
            format_reader_apply(format_id=format_id, mapping=mapping, actor=actor)
        else:
            format_update_mapping(format_id=format_id, actor=actor, mapping=mapping)
        fmt = CsvFormat.objects.get(pk=format_id)
        if fmt.status == FormatStatus.PENDING:
            format_quality_store(fmt)  # the list shows the score of the mapping as it is now
        return fmt


def review_reject(*, format_id: int, actor: Any, reason: str | None) -> CsvFormat:
    """Reject a format: its staged rows and waiting files are marked rejected."""
    with transaction.atomic():
        fmt = format_reject(format_id=format_id, actor=actor, reason=reason)
        notify_format_decision(
            approved=False,
            reason=fmt.rejection_reason,
            file_ids=list(
                ImportFile.objects.filter(format_id=format_id, status=FileStatus.PENDING_APPROVAL).values_list(
                    "pk", flat=True
                )
            ),
        )
        StagedRow.objects.filter(format_id=format_id, status__in=[StagedStatus.PENDING, StagedStatus.APPROVED]).update(
            status=StagedStatus.REJECTED
        )
        waiting = ImportFile.objects.filter(format_id=format_id, status=FileStatus.PENDING_APPROVAL)
        batch_ids = list(waiting.values_list("batch_id", flat=True).distinct())
        files_end(
            waiting,
            status=FileStatus.REJECTED,
            message=f"The format was rejected: {fmt.rejection_reason}",
            progress=100.0,
        )
        batches_refresh(batch_ids=batch_ids)
    return fmt
