"""The JSON API's shapes, as typed schemas: django-ninja generates the OpenAPI document (GET /api/schema) from
these and the routes' signatures, so the document cannot drift from the code.

The views build their answers as plain dicts (imports/selectors.py, imports/reports.py) and return them as
JSON responses; these classes describe them. The API's fuzz test (tests/e2e/test_api_fuzz.py) checks every
answer against this document.
"""

from __future__ import annotations

from typing import Any, Literal

from ninja import Field, Schema

from formats.models import FormatStatus
from imports.models import BatchStatus, FileStatus
from staging.models import StagedStatus

FileStatusName = Literal[tuple(FileStatus.values)]  # type: ignore[valid-type]
BatchStatusName = Literal[tuple(BatchStatus.values)]  # type: ignore[valid-type]
RowStatusName = Literal[tuple(StagedStatus.values)]  # type: ignore[valid-type]
FormatStatusName = Literal[tuple(FormatStatus.values)]  # type: ignore[valid-type]


class Error(Schema):
    """Every error: a stable code, a sentence for people, and what it is about."""

    error: str = Field(description="Stable machine-readable code, e.g. not_found.")
    message: str = Field(description="Human-readable explanation.")
    details: dict[str, Any]


def errors(*statuses: int) -> dict[int, type[Error]]:
    """The error answers a route documents: {status: Error} for each status."""
    return dict.fromkeys(statuses, Error)


# -- uploads --------------------------------------------------------------------------------------------


class AcceptedFile(Schema):
    id: int
    name: str
    status: FileStatusName
    existing: bool = Field(description="The same bytes were uploaded before: that import.")
    retried: bool = Field(
        description="That earlier import had failed: this upload retried it (from where it had got to)."
    )


class UploadAccepted(Schema):
    batch: int
    files: list[AcceptedFile]


class FormatRef(Schema):
    id: int
    name: str
    status: FormatStatusName


class FileRows(Schema):
    total: int
    staged: int
    imported: int
    invalid: int
    failed: int = Field(deprecated=True, description="The same count as invalid (its older name).")
    skipped: int
    duplicate: int


class FileLayout(Schema):
    encoding: str | None = None
    delimiter: str | None = None
    header_line: int | None = None
    section: str | None = None


class RolledBack(Schema):
    by: str | None = None
    at: str
    reason: str | None = None
    deleted: int | None = None
    kept: int | None = None


class FileSummary(Schema):
    id: int
    batch: int
    name: str
    status: FileStatusName
    status_display: str
    size: int
    sha256: str
    format: FormatRef | None
    rows: FileRows
    accounting: str = Field(description="Where every row went, adding up to the total.")
    skip_reasons: dict[str, int]
    progress: float = Field(ge=0, le=100)
    error: str | None
    layout: FileLayout | None
    created_at: str
    finished_at: str | None
    updated_at: str
    rolled_back: RolledBack | None = Field(description="For a rolled-back file: who rolled it back, when and why.")


class NumberPage(Schema):
    count: int
    page: int
    pages: int
    page_size: int


class FilePage(NumberPage):
    results: list[FileSummary]


class RowError(Schema):
    row: int = Field(description="The CSV or NDJSON line, the sheet's row, or the JSON record's number.")
    field: str | None = Field(description="Target field; null for a problem with the whole row.")
    value: str | None
    error: str


class ErrorPage(NumberPage):
    file: int
    rows_invalid: int
    rows_failed: int = Field(deprecated=True, description="The same count as rows_invalid (its older name).")
    kind: str = Field(description="csv, ndjson, json, or a workbook kind (then `sheet` names the sheet).")
    sheet: str | None = None
    results: list[RowError]


class FixResult(Schema):
    model_config = {"extra": "allow"}
    file: FileSummary


# -- direct uploads -------------------------------------------------------------------------------------


class DeclaredFile(Schema):
    name: str
    size: int
    sha256: str = Field(description="SHA-256 of the bytes, 64 hex digits.")


class DirectSignRequest(Schema):
    files: list[DeclaredFile]
    dedupe: bool = True
    target: str = Field("orders", description="What the files hold: orders or instruments.")


class PresignedPost(Schema):
    url: str
    fields: dict[str, str]


class ExistingFile(AcceptedFile):
    batch: int


class SignedFile(Schema):
    name: str
    size: int
    key: str | None = Field(description="Where to send it; null when `existing` answers instead.")
    upload: PresignedPost | None = Field(description="A multipart POST: `fields`, then the file, to `url`.")
    existing: ExistingFile | None = Field(description="The caller's earlier import of the same bytes.")


class DirectSigned(Schema):
    expires_in: int
    files: list[SignedFile]


class DirectConfirmRequest(Schema):
    keys: list[str]


# -- batches, orders, staging ---------------------------------------------------------------------------


class BatchFile(Schema):
    id: int
    name: str
    status: FileStatusName
    progress: float
    rows_total: int
    rows_imported: int
    rows_invalid: int
    rows_failed: int = Field(deprecated=True, description="The same count as rows_invalid (its older name).")
    error: str | None


class BatchFiles(Schema):
    count: int
    finished: int = Field(description="Files done: finished or waiting for approval.")
    waiting: int = Field(description="Files waiting for an admin's approval.")
    by_status: dict[str, int]
    items: list[BatchFile] | None = Field(None, description="One entry per file; left out with ?items=0.")


class BatchSummary(Schema):
    id: int
    status: BatchStatusName
    status_display: str
    progress: float = Field(ge=0, le=100)
    files: BatchFiles
    rows: dict[str, int]
    created_at: str
    updated_at: str


class InstrumentRef(Schema):
    id: int
    name: str
    isin: str
    ticker: str


class Position(Schema):
    instrument: InstrumentRef | None
    symbol: str | None = Field(description="For orders not linked to an instrument: their symbol.")
    quantity: str = Field(description="Bought minus sold, plain decimal notation.")
    trades: int
    symbols: list[str] = Field(description="Every spelling of the instrument in the orders.")


class Positions(Schema):
    results: list[Position]


class Order(Schema):
    id: int
    account: str
    symbol: str
    side: Literal["BUY", "SELL"]
    quantity: str = Field(description="Plain decimal notation, no trailing zeros.")
    price: str
    commission: str
    currency: str
    executed_at: str
    broker_trade_id: str
    source_file: int
    source_line: int
    instrument: InstrumentRef | None = Field(description="The instrument the symbol was reconciled to; null while not.")


class CursorPage(Schema):
    next: str | None = Field(description="URL of the next page; null on the last page.")
    page_size: int


class OrderPage(CursorPage):
    results: list[Order]


class StagedFormat(Schema):
    id: int
    name: str
    status: FormatStatusName


class StagedRow(Schema):
    id: int
    file: int
    file_name: str
    line: int
    status: RowStatusName
    status_display: str
    cells: list[str]
    format: StagedFormat
    errors: list[dict[str, Any]]


class StagedRowPage(CursorPage):
    results: list[StagedRow]


class Waiting(Schema):
    rows: int
    files: int


class StagingStatus(Schema):
    rows: dict[str, int]
    files: dict[str, int]
    waiting: Waiting


# -- review (approve permission) ------------------------------------------------------------------------


class PendingFormat(Schema):
    id: int
    name: str
    target: str
    status: FormatStatusName
    columns: list[str]
    mapping: dict[str, Any] = Field(description="See docs/INTERFACES.md (mapping JSON).")
    confidence: float | None
    sample_rows: list[list[Any]]
    created_at: str
    created_by: str | None
    staged_rows: int | None
    files: int | None
    waiting_since: str | None


class PendingFormats(Schema):
    results: list[PendingFormat]


class ReviewRequest(Schema):
    mapping: dict[str, Any] | None = Field(None, description="POST: a corrected mapping (docs/INTERFACES.md).")
    comment: str = Field("", description="POST: why, for the format's history.")
    reason: str | None = Field(None, description="DELETE: why the format is rejected (required).")


class FixRequest(Schema):
    rows: dict[str, dict[str, str]] = Field(description="{line: {column: new value}} for the file's invalid rows.")


class OrderQuery(Schema):
    symbol: str | None = Field(None, description="Exact symbol (case-insensitive).")
    side: str | None = Field(None, description="BUY or SELL.")
    date_from: str | None = Field(None, description="Executed on or after this day (YYYY-MM-DD, UTC).")
    date_to: str | None = Field(None, description="Executed on or before this day (YYYY-MM-DD, UTC).")
    source_file: str | None = Field(None, description="Only orders from this import file id.")
    instrument: str | None = Field(None, description="Only orders linked to this instrument id ('none': not linked).")
    cursor: str | None = Field(None, description="Opaque cursor from a previous page's `next` link.")
    page_size: str | None = Field(None, description="Items per page, 1..500 (default 50).")


class PageQuery(Schema):
    page: str | None = Field(None, description="1-based page number.")
    page_size: str | None = Field(None, description="Items per page, 1..500 (default 50).")


class UploadQuery(PageQuery):
    status: str | None = Field(None, description="Only files with this status.")
    batch: str | None = Field(None, description="Only files of this upload batch.")
    ids: str | None = Field(None, description="Comma-separated ids (at most 500) to fetch only those.")


class StagedQuery(Schema):
    status: str | None = Field(None, description="Only rows with this status.")
    file: str | None = Field(None, description="Only rows of this import file.")
    ids: str | None = Field(None, description="Comma-separated ids (at most 500).")
    cursor: str | None = Field(None, description="Opaque cursor from a previous page's `next` link.")
    page_size: str | None = Field(None, description="Items per page, 1..500 (default 50).")


class BatchQuery(Schema):
    items: str | None = Field(None, description="0 leaves out the per-file list.")


class CronQuery(Schema):
    dry_run: str | None = Field(None, description="1 or true: say what would be deleted, delete nothing.")


class ApprovalChain(Schema):
    required: int
    approvals: int
    approvers: list[str]
    missing: int
    risk: list[str]
    expired_steps: int


class ApprovalAnswer(Schema):
    id: int
    status: FormatStatusName
    approved: bool
    approval: ApprovalChain | None
    mapping: dict[str, Any]


class RejectionAnswer(Schema):
    id: int
    status: FormatStatusName
    reason: str | None


class Approvals(Schema):
    count: int = Field(description="Formats approved in the window.")
    median_seconds_to_approval: int | None


class Throughput(Schema):
    migrations: int
    rows: int
    seconds: float
    rows_per_second: float | None


class ErrorRate(Schema):
    rows_processed: int
    rows_invalid: int
    rows_failed: int = Field(deprecated=True, description="The same count as rows_invalid (its older name).")
    rate: float | None
    files_finished: int
    files_failed: int


class StagingStats(Schema):
    window_days: int
    staged_rows: dict[str, int]
    pending_formats: int
    oldest_pending_format_age_seconds: int | None
    approvals: Approvals
    migration_throughput: Throughput
    error_rate: ErrorRate


class CleanupResult(Schema):
    model_config = {"extra": "allow"}
    days: int
    dry_run: bool
    files: int
    staged_rows: int
    uploads: int
    purged: int
