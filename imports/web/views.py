"""Server-rendered pages: thin views over selectors and services."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from config.errors import AppError
from imports import reports, selectors
from imports.guards.request_body import require_whole_body
from imports.guards.upload_limits import upload_rate_limit_hit, upload_refused
from imports.models import FileStatus, Instrument
from imports.services.direct_uploads import direct_uploads_enabled
from imports.services.fixes import FIXABLE_STATUSES, file_rows_fix
from imports.services.uploads import file_retry_by_owner, upload_batch_create
from imports.web.exports import csv_response, xlsx_response
from imports.web.forms import UploadForm
from staging.models import AWAITING_APPROVAL

FILES_PER_UPLOAD_ON_LIST = 10


@login_required
def upload(request: HttpRequest) -> HttpResponse:
    """Upload one or many CSV files."""
    if request.method == "POST":
        try:
            require_whole_body(request)  # the CSRF check parsed the body: a cut-off request stores nothing
            upload_rate_limit_hit(request)  # here, after the CSRF check: a forged POST spends nothing
        except AppError as error:
            return upload_refused(request, "page", error)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch, files = upload_batch_create(
                owner=request.user,
                files=form.cleaned_data["file"],
                dedupe=form.cleaned_data["dedupe"],
                target=form.cleaned_data["target"],
            )
        except AppError as exc:
            form.add_error("file", exc.message)
        else:
            again = sum(1 for f in files if f.is_existing)
            retried = sum(1 for f in files if f.is_retried)
            if retried:
                messages.info(
                    request,
                    f"{retried} file(s) had been uploaded before and their import had failed: "
                    "they are being retried from where they stopped.",
                )
            if again > retried:
                messages.info(
                    request,
                    f"{again - retried} of {len(files)} file(s) had been uploaded before: "
                    "their earlier imports are listed below, not imported twice.",
                )
            if len(files) > again:
                messages.success(request, f"{len(files) - again} file(s) received. They are being processed.")
            return redirect("imports:list")
    return render(
        request,
        "imports/upload.html",
        {"form": form, "limits": settings.AIRLOCK, "direct": direct_uploads_enabled()},
    )


@login_required
def import_list(request: HttpRequest) -> HttpResponse:
    """The user's upload batches and their files with status, counts and live progress."""
    status = request.GET.get("status", "")
    status = status if status in FileStatus.values else ""
    files = selectors.files_for(request.user)
    by_status = dict(files.order_by().values_list("status").annotate(n=Count("id")))
    if status:
        files = files.filter(status=status)
    batches = selectors.batches_for(request.user).filter(pk__in=files.values("batch_id")).order_by("-created_at", "-id")
    page = Paginator(batches, 20).get_page(request.GET.get("page"))
    rows = []
    for batch in page:
        shown = files.filter(batch_id=batch.pk).order_by("pk")
        # A 300-file upload shows its first files here; its own page lists them all, paginated.
        rows.append(
            {
                "batch": batch,
                "files": list(shown[:FILES_PER_UPLOAD_ON_LIST]),
                "file_total": shown.count(),
                "figures": selectors.batch_figures(batch),
            }
        )
    filters = [{"value": "", "label": "All", "count": sum(by_status.values())}] + [
        {"value": value, "label": label, "count": by_status.get(value, 0)}
        for value, label in FileStatus.choices
        if by_status.get(value) or value == status
    ]
    return render(
        request,
        "imports/list.html",
        {
            "page": page,
            "batches": rows,
            "status": status,
            "filters": filters,
            "query": f"status={status}" if status else "",
        },
    )


@login_required
def batch_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    """One upload: its state, processing progress and figures, and its files (paginated)."""
    batch = get_object_or_404(selectors.batches_for(request.user), pk=batch_id)
    page = Paginator(selectors.files_for(request.user).filter(batch=batch).order_by("pk"), 50)
    return render(
        request,
        "imports/batch.html",
        {"batch": batch, "figures": selectors.batch_figures(batch), "page": page.get_page(request.GET.get("page"))},
    )


@login_required
def file_detail(request: HttpRequest, file_id: int) -> HttpResponse:
    """One file: what was detected, counts and skip reasons, and the invalid rows (paginated)."""
    file = selectors.file_for(request.user, file_id)
    page = Paginator(reports.ErrorList(file.pk), 50).get_page(request.GET.get("page"))
    skip_reasons = sorted(file.skip_reasons.items(), key=lambda item: -item[1])
    return render(
        request,
        "imports/detail.html",
        {
            "file": file,
            "page": page,
            "skip_reasons": skip_reasons,
            "header": reports.file_header(file),
            "rollback": selectors.rollback_info(file),
            "accounting": selectors.row_accounting(file),
            "phases": selectors.file_phases(file),
            "fixable": reports.rows_to_fix(file) if _fixable(file) else [],
        },
    )


def _fixable(file: Any) -> bool:
    """Invalid rows the owner can correct on the page: a finished import of an approved format."""
    return (
        file.rows_invalid > 0
        and file.status in FIXABLE_STATUSES
        and file.format is not None
        and file.format.status == "APPROVED"
    )


@login_required
@require_POST
def file_retry(request: HttpRequest, file_id: int) -> HttpResponse:
    """The owner's Retry of a failed file (counted as an upload request), then back to its page."""
    try:
        upload_rate_limit_hit(request)  # after the CSRF check: a forged POST spends nothing
        file_retry_by_owner(file_id=file_id, owner=request.user)
    except AppError as exc:
        if exc.http_status == 404:
            raise Http404(exc.message) from exc
        messages.error(request, exc.message)
    else:
        messages.success(request, "Retrying the import from where it stopped.")
    return redirect("imports:detail", file_id=file_id)


@login_required
@require_POST
def file_fix_rows(request: HttpRequest, file_id: int) -> HttpResponse:
    """The owner's corrections of invalid rows (cells named cell-<line>-<column index>), imported again."""
    file = selectors.file_for(request.user, file_id)
    columns = list(file.format.columns) if file.format else []
    edits: dict[int, dict[str, str]] = {}
    for name, value in request.POST.items():
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == "cell" and parts[1].isdigit() and parts[2].isdigit():
            index = int(parts[2])
            if index < len(columns):
                edits.setdefault(int(parts[1]), {})[columns[index]] = value
    try:
        result = file_rows_fix(file_id=file.pk, owner=request.user, edits=edits)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        sent = len(result.resubmitted)
        if sent:
            messages.success(request, f"{sent} corrected row{'s' if sent != 1 else ''} sent to import again.")
        if result.unchanged:
            messages.info(request, f"{len(result.unchanged)} row(s) were not changed, so they stay invalid.")
        if result.not_invalid:
            messages.info(request, f"{len(result.not_invalid)} row(s) were no longer invalid; left as they are.")
    return redirect("imports:detail", file_id=file_id)


@login_required
def file_errors_csv(request: HttpRequest, file_id: int) -> HttpResponse:
    """The invalid rows as CSV (original cells + an 'errors' column) to fix and upload again."""
    file = selectors.file_for(request.user, file_id)
    stem = file.original_name.rsplit(".", 1)[0]
    header = [*reports.file_header(file), "errors"]
    return csv_response(f"{stem}-errors.csv", header, reports.error_report_rows(file))


@login_required
def file_errors_xlsx(request: HttpRequest, file_id: int) -> HttpResponse:
    """The same invalid rows as an Excel workbook (every cell text, as uploaded)."""
    file = selectors.file_for(request.user, file_id)
    stem = file.original_name.rsplit(".", 1)[0]
    header = [*reports.file_header(file), "errors"]
    return xlsx_response(f"{stem}-errors.xlsx", header, reports.error_report_rows(file), sheet="Invalid rows")


@login_required
def staged_rows(request: HttpRequest) -> HttpResponse:
    """The user's rows waiting for an admin to approve their format, raw, with their file's header."""
    rows = reports.staged_rows_for(request.user).filter(AWAITING_APPROVAL)
    rows = rows.order_by("file_id", "line")
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    groups: list[dict] = []
    for row in page:
        if not groups or groups[-1]["file"].pk != row.file_id:
            groups.append({"file": row.file, "header": reports.file_header(row.file), "rows": []})
        groups[-1]["rows"].append(row)
    return render(request, "imports/staged.html", {"page": page, "groups": groups})


@login_required
def order_list(request: HttpRequest) -> HttpResponse:
    """The user's orders (never staged rows), filtered, with figures per currency."""
    filters = reports.order_filters_parse(request.GET)
    orders = reports.orders_filtered(request.user, filters)
    page = Paginator(orders.order_by("-executed_at", "-id"), 100).get_page(request.GET.get("page"))
    sources = selectors.files_for(request.user).filter(orders__isnull=False).distinct()
    sources = sources.order_by("-created_at")
    return render(
        request,
        "imports/orders.html",
        {
            "page": page,
            "filters": filters,
            "figures": reports.order_figures(orders),
            "positions": reports.positions(orders, limit=50),
            "instruments": Instrument.objects.filter(owner=request.user).order_by("name"),
            "sources": sources,
            "query": urlencode(filters.as_query()),
        },
    )
