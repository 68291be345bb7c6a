"""Server-rendered pages: thin views over selectors and services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from config.errors import AppError
from imports import selectors
from imports.forms import UploadForm
from imports.services import upload_batch_create


@login_required
def upload(request: HttpRequest) -> HttpResponse:
    """Upload one or many CSV files."""
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            batch, files = upload_batch_create(
                owner=request.user, files=form.cleaned_data["file"], dedupe=form.cleaned_data["dedupe"]
            )
        except AppError as exc:
            form.add_error("file", exc.message)
        else:
            messages.success(request, f"{len(files)} file(s) received. They are being processed.")
            return redirect("imports:list")
    return render(request, "imports/upload.html", {"form": form})


@login_required
def import_list(request: HttpRequest) -> HttpResponse:
    """The user's import files with status and counts."""
    files = selectors.files_for(request.user)
    status = request.GET.get("status")
    if status:
        files = files.filter(status=status)
    page = Paginator(files, 50).get_page(request.GET.get("page"))
    return render(request, "imports/list.html", {"page": page, "status": status})


@login_required
def file_detail(request: HttpRequest, file_id: int) -> HttpResponse:
    """One file: what was detected, counts, and the invalid rows."""
    file = selectors.file_for(request.user, file_id)
    failed = file.staged_rows.filter(status="FAILED").order_by("line")
    page = Paginator(failed, 50).get_page(request.GET.get("page"))
    return render(request, "imports/detail.html", {"file": file, "page": page})


@login_required
def order_list(request: HttpRequest) -> HttpResponse:
    """The user's orders (never staged rows)."""
    orders = selectors.orders_for(request.user)
    page = Paginator(orders, 100).get_page(request.GET.get("page"))
    return render(request, "imports/orders.html", {"page": page})
