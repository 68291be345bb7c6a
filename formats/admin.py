"""The review screen: pending formats first, sample rows, editable mapping, preview, decisions, history."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import Case, Count, IntegerField, Min, OuterRef, QuerySet, Subquery, Value, When
from django.forms.fields import InvalidJSONInput
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST
from import_export.admin import ImportExportMixin
from simple_history.admin import SimpleHistoryAdmin

from audit.services import record
from config.errors import AppError
from formats.approval import OVERRIDE_PERMISSION, chain_state, mapping_digest, policy_current
from formats.converters import COMMON_OPTIONS, CONVERTERS
from formats.filters import OPS
from formats.history import format_versions, mapping_diff
from formats.mapping import mapping_document_check
from formats.models import ApprovalPolicy, ApprovalStep, CsvFormat, FormatStatus, UserTier
from formats.resources import CsvFormatResource
from formats.services import APPROVE_PERMISSION, mapping_validate, reader_changed
from formats.targets import get_target
from imports.guards.rate_limits import rate_limit_check, rate_limit_record
from imports.pipeline.preview import preview
from imports.services.restore import review_restore_mapping
from imports.services.review import format_has_trades
from imports.services.rollback import format_policy_revoke
from imports.services.uploads import (
    approval_invalid_rate,
    review_approve,
    review_override,
    review_reject,
    review_save_mapping,
)

StagedRow = apps.get_model("staging", "StagedRow")
ImportFileRef = apps.get_model("imports", "ImportFile")

PREVIEW_ROWS = 20
# Opening the change page scans at most this many staged rows (~3 s, measured 1.7 s per 100k rows);
# the Preview button always scans every row.
PAGE_SCAN_LIMIT = 200_000


class PrettyJSONField(forms.JSONField):
    """A JSON field shown indented, so a reviewer can read and edit it."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


class CsvFormatForm(forms.ModelForm):
    # The JSON textarea is what is submitted and stored; the editable table on the page only writes into it.
    mapping = PrettyJSONField(
        widget=forms.Textarea(attrs={"rows": 18, "cols": 110, "class": "mapping-json", "spellcheck": "false"}),
        help_text="The stored mapping (docs/INTERFACES.md); the table above edits it, or edit it here.",
    )

    class Meta:
        model = CsvFormat
        fields = ["name", "mapping"]

    def clean_mapping(self) -> dict:
        mapping = self.cleaned_data["mapping"]
        try:
            if reader_changed(self.instance, mapping):
                # The table moves: the columns are known after the re-read, where the service checks them.
                mapping_document_check(mapping)
                return mapping
            return mapping_validate(target=self.instance.target, mapping=mapping, columns=self.instance.columns)
        except AppError as exc:
            raise forms.ValidationError(exc.message) from exc


def _editor_config(obj: CsvFormat) -> dict[str, Any]:
    """What the mapping editor's script needs: columns, the target's fields, converters, filter ops."""
    target = get_target(obj.target)
    return {
        "columns": obj.columns,
        "fields": [
            {"name": f.name, "label": f.label, "required": f.required, "kind": f.kind, "help": f.help}
            for f in target.fields
        ],
        "converters": [
            {"name": c.name, "label": c.label, "help": c.help, "options": {**c.options, **COMMON_OPTIONS}}
            for c in CONVERTERS.values()
        ],
        "filter_ops": list(OPS),
    }


def _cell(value: Any) -> str:
    # ISO timestamps with their offset: what gets written, not the template's localised rendering.
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def render_preview(
    obj: CsvFormat, summary: dict[str, Any] | None, error: str, seconds: float, available: int | None = None
) -> str:
    """The preview block's HTML: counts over the staged rows, top errors, the first rows as written."""
    fields = [f.name for f in get_target(obj.target).fields]
    rows = [{**row, "cells": [_cell(row["values"].get(f)) for f in fields]} for row in (summary or {}).get("rows", [])]
    return render_to_string(
        "admin/formats/csvformat/_preview.html",
        {
            "preview": summary,
            "rows": rows,
            "preview_error": error,
            "fields": fields,
            "seconds": round(seconds, 2),
            "partial_of": available if summary and available and summary["total"] < available else None,
        },
    )


def _invalid_mapping(request: HttpRequest, form: forms.ModelForm) -> HttpResponse:
    """Back to the change page with the form's mapping errors as one message."""
    problems = "; ".join(e for errors in form.errors.values() for e in errors)
    messages.error(request, f"The mapping is not valid: {problems}")
    return HttpResponseRedirect(request.path)


@admin.register(CsvFormat)
class CsvFormatAdmin(ImportExportMixin, SimpleHistoryAdmin):
    form = CsvFormatForm
    resource_classes = [CsvFormatResource]
    change_form_template = "admin/formats/csvformat/change_form.html"
    object_history_template = "admin/formats/csvformat/object_history.html"
    list_display = (
        "name",
        "status_badge",
        "target",
        "uploader",
        "file_count",
        "files_waiting",
        "staged_count",
        "waiting",
        "confidence_pct",
        "quality",
        "age",
        "builtin",
    )
    list_filter = ("status", "target", "builtin", "approved_by_policy")
    search_fields = ("name", "fingerprint", "first_seen_file_name", "created_by__username")
    readonly_fields = (
        "status",
        "target",
        "created_by",
        "first_seen_file_name",
        "fingerprint",
        "columns",
        "approved_by",
        "approved_at",
        "rejected_by",
        "rejected_at",
        "rejection_reason",
        "verdict",
        "builtin",
        "approved_by_policy",
        "quality",
        "quality_parts",
    )
    actions = ["approve_selected", "reject_selected", "has_trades_selected"]
    list_per_page = 50

    # --- list -------------------------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[CsvFormat]:
        return (
            super()
            .get_queryset(request)
            .select_related("created_by")
            .annotate(
                pending_first=Case(
                    When(status=FormatStatus.PENDING, then=Value(0)),
                    default=Value(1),
                    output_field=IntegerField(),
                ),
                staged=Subquery(
                    StagedRow.objects.filter(format=OuterRef("pk"), status="PENDING")
                    .values("format")
                    .annotate(n=Count("id"))
                    .values("n")
                ),
                files_n=Subquery(
                    ImportFileRef.objects.filter(format=OuterRef("pk"))
                    .values("format")
                    .annotate(n=Count("id"))
                    .values("n")
                ),
                files_waiting_n=Subquery(
                    ImportFileRef.objects.filter(format=OuterRef("pk"), status="PENDING_APPROVAL")
                    .values("format")
                    .annotate(n=Count("id"))
                    .values("n")
                ),
                oldest=Subquery(
                    ImportFileRef.objects.filter(format=OuterRef("pk"), status="PENDING_APPROVAL")
                    .values("format")
                    .annotate(t=Min("created_at"))
                    .values("t")
                ),
            )
            # Pending first, the longest-waiting first among them.
            .order_by("pending_first", "oldest", "created_at")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: CsvFormat | None = None) -> bool:
        # A reviewer (approve permission) must be able to open and correct what they approve.
        return super().has_view_permission(request, obj) or request.user.has_perm(APPROVE_PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj: CsvFormat | None = None) -> bool:
        return super().has_change_permission(request, obj) or request.user.has_perm(APPROVE_PERMISSION)

    def has_import_permission(self, request: HttpRequest) -> bool:
        # An imported file may carry APPROVED formats: importing is an approval, so it needs that permission.
        return request.user.has_perm(APPROVE_PERMISSION)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: CsvFormat) -> str:
        colours = {"PENDING": "#b26b00", "APPROVED": "#1a7f37", "REJECTED": "#b42318", "NO_TRADES": "#555"}
        return format_html('<b style="color:{}">{}</b>', colours.get(obj.status, "#333"), obj.get_status_display())

    @admin.display(description="Uploaded by", ordering="created_by__username")
    def uploader(self, obj: CsvFormat) -> str:
        return obj.created_by.get_username() if obj.created_by else ("built-in" if obj.builtin else "—")

    @admin.display(description="Files", ordering="files_n")
    def file_count(self, obj: CsvFormat) -> int:
        return obj.files_n or 0

    @admin.display(description="Files waiting", ordering="files_waiting_n")
    def files_waiting(self, obj: CsvFormat) -> int:
        return obj.files_waiting_n or 0

    @admin.display(description="Staged rows waiting", ordering="staged")
    def staged_count(self, obj: CsvFormat) -> int:
        return obj.staged or 0

    @admin.display(description="Waiting since", ordering="oldest")
    def waiting(self, obj: CsvFormat) -> str:
        return f"{timesince(obj.oldest, timezone.now())} ago" if obj.oldest else "—"

    @admin.display(description="Confidence", ordering="confidence")
    def confidence_pct(self, obj: CsvFormat) -> str:
        if obj.builtin:
            return "—"
        colour = "#1a7f37" if obj.confidence >= 0.8 else "#b26b00" if obj.confidence >= 0.5 else "#b42318"
        return format_html('<span style="color:{}">{}%</span>', colour, f"{obj.confidence * 100:.0f}")

    @admin.display(description="Age", ordering="created_at")
    def age(self, obj: CsvFormat) -> str:
        """How long ago the format was first seen (a pending one: how long the review has been open)."""
        return timesince(obj.created_at, timezone.now()).split(",")[0]

    # --- change page ------------------------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: CsvFormat | None = None) -> list:
        return [
            (
                None,
                {
                    "fields": [
                        "name",
                        ("status", "target"),
                        ("created_by", "first_seen_file_name"),
                        ("approved_by", "approved_at"),
                        ("rejected_by", "rejected_at"),
                        "rejection_reason",
                        "verdict",
                        "fingerprint",
                        "builtin",
                    ]
                },
            ),
            ("Mapping JSON (what is stored)", {"fields": ["mapping"], "classes": ["mapping-json-fieldset"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: CsvFormat | None = None) -> tuple[str, ...]:
        if obj is not None and (
            obj.status == FormatStatus.REJECTED
            # An approved mapping decides what gets written: only a reviewer may correct it.
            or (obj.status == FormatStatus.APPROVED and not request.user.has_perm(APPROVE_PERMISSION))
        ):
            return ("name", "mapping", *self.readonly_fields)
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: CsvFormat, form: forms.ModelForm, change: bool) -> None:
        # Saving goes through the service so the change is validated, audited and kept in history.
        # Read-only fields (a rejected format, an approved one seen by a non-reviewer) are not in the form.
        if "name" in form.cleaned_data:
            obj.name = form.cleaned_data["name"]
            CsvFormat.objects.filter(pk=obj.pk).update(name=obj.name)
        if "mapping" in form.cleaned_data:
            # Through the review service: a moved table (reader header line / section) re-reads and
            # re-stages the waiting files, as the README promises for Save.

            try:
                review_save_mapping(format_id=obj.pk, actor=request.user, mapping=form.cleaned_data["mapping"])
            except AppError as exc:
                request._airlock_save_failed = True  # type: ignore[attr-defined]
                messages.error(request, f"The mapping was not saved: {exc.message}")

    def message_user(
        self, request: HttpRequest, message: str, level: int = messages.INFO, *args: Any, **kwargs: Any
    ) -> None:
        if level == messages.SUCCESS and getattr(request, "_airlock_save_failed", False):
            return  # save_model reported why nothing was saved
        super().message_user(request, message, level, *args, **kwargs)

    def get_urls(self) -> list:
        prefix = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        own = [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name=f"{prefix}_preview",
            ),
            path(
                "<path:object_id>/history/<int:history_id>/restore-mapping/",
                self.admin_site.admin_view(self.restore_mapping_view),
                name=f"{prefix}_restore_mapping",
            ),
        ]
        return own + super().get_urls()

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id) if object_id else None
        if request.method == "POST" and obj is not None:
            if {"_approve", "_reject", "_override", "_revoke"} & set(request.POST):
                return self._review_post(request, obj)
            if obj.status == FormatStatus.APPROVED and "mapping" in request.POST:
                return self._correct_post(request, obj)
        extra_context = extra_context or {}
        if obj is not None:
            extra_context.update(self._review_context(request, obj))
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _review_post(self, request: HttpRequest, obj: CsvFormat) -> HttpResponse:
        try:
            # AIRLOCK_REVIEWS_PER_HOUR: refused when used up; only an accepted decision is counted (below).
            rate_limit_check(bucket="review", user=request.user)
            if "_revoke" in request.POST:
                done = format_policy_revoke(
                    format_id=obj.pk, actor=request.user, reason=request.POST.get("revoke_reason", "")
                )
                rate_limit_record(bucket="review", user=request.user)
                messages.warning(
                    request,
                    f"Revoked the approval by policy of '{obj.name}': {done['files']} file(s) rolled back "
                    f"({done['deleted']} orders deleted), the format is rejected.",
                )
            elif "_override" in request.POST:
                review_override(format_id=obj.pk, actor=request.user, reason=request.POST.get("override_reason", ""))
                rate_limit_record(bucket="review", user=request.user)
                messages.warning(request, f"Approved '{obj.name}' by emergency override; every approver has been told.")
            elif "_approve" in request.POST:
                form = self.get_form(request, obj)(request.POST, instance=obj)
                if not form.is_valid():
                    return _invalid_mapping(request, form)
                was_approved = obj.status == FormatStatus.APPROVED
                fmt = review_approve(
                    format_id=obj.pk,
                    actor=request.user,
                    mapping=form.cleaned_data["mapping"],
                    comment=request.POST.get("comment", ""),
                )
                rate_limit_record(bucket="review", user=request.user)
                if was_approved:
                    messages.success(
                        request, f"Corrected the mapping of '{obj.name}'. Its invalid rows are being re-processed."
                    )
                elif fmt.status == FormatStatus.APPROVED:
                    messages.success(request, f"Approved '{obj.name}'. Its staged rows are being migrated.")
                else:
                    chain = fmt.approval_chain
                    messages.info(
                        request,
                        f"Your approval of '{obj.name}' is recorded ({chain.describe()}): "
                        f"{chain.missing} more approver(s) needed before its rows are imported.",
                    )
                    return HttpResponseRedirect(request.path)
            else:
                review_reject(format_id=obj.pk, actor=request.user, reason=request.POST.get("reason", ""))
                rate_limit_record(bucket="review", user=request.user)
                messages.success(request, f"Rejected '{obj.name}'.")
        except AppError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(request.path)
        return HttpResponseRedirect(reverse("admin:formats_csvformat_changelist"))

    def _correct_post(self, request: HttpRequest, obj: CsvFormat) -> HttpResponse:
        """Save on an approved format is a correction: same path as approving again with a new mapping."""

        if not request.user.has_perm(APPROVE_PERMISSION):
            messages.error(
                request,
                "Only a reviewer with the 'approve CSV formats' permission can change the "
                "mapping of an approved format.",
            )
            return HttpResponseRedirect(request.path)
        form = self.get_form(request, obj)(request.POST, instance=obj)
        if not form.is_valid():
            return _invalid_mapping(request, form)
        if form.cleaned_data["name"] != obj.name:
            CsvFormat.objects.filter(pk=obj.pk).update(name=form.cleaned_data["name"])
        if form.cleaned_data["mapping"] != obj.mapping:
            try:
                review_approve(format_id=obj.pk, actor=request.user, mapping=form.cleaned_data["mapping"])
            except AppError as exc:
                messages.error(request, exc.message)
                return HttpResponseRedirect(request.path)
            messages.success(
                request, f"Corrected the mapping of '{obj.name}'. Its invalid rows are being re-processed."
            )
        else:
            messages.info(request, "The mapping did not change.")
        if "_continue" in request.POST:
            return HttpResponseRedirect(request.path)
        return HttpResponseRedirect(reverse("admin:formats_csvformat_changelist"))

    def _review_context(self, request: HttpRequest, obj: CsvFormat) -> dict[str, Any]:
        counts = dict(StagedRow.objects.filter(format=obj).values_list("status").annotate(n=Count("id")))
        previewable = sum(n for status, n in counts.items() if status != "REJECTED")

        chain = None
        if obj.status == FormatStatus.PENDING:
            # As the approve button will count it (the same sample of staged rows for the risk rule).
            chain = chain_state(obj, invalid_rate=approval_invalid_rate(obj.pk))
        return {
            "can_review": request.user.has_perm(APPROVE_PERMISSION) and obj.status != FormatStatus.REJECTED,
            "can_revoke": obj.approved_by_policy
            and obj.status == FormatStatus.APPROVED
            and request.user.has_perm(APPROVE_PERMISSION)
            and request.user.has_perm("imports.rollback_importfile"),
            "can_override": request.user.has_perm(OVERRIDE_PERMISSION)
            and obj.status in (FormatStatus.PENDING, FormatStatus.NO_TRADES),
            "chain": chain,
            "chain_steps": list(ApprovalStep.objects.filter(format=obj).select_related("approver")),
            "chain_digest": mapping_digest(obj.mapping or {}),
            "can_edit": self.has_change_permission(request, obj)
            and "mapping" not in self.get_readonly_fields(request, obj),
            "sample_columns": obj.columns,
            "sample_rows": obj.sample_rows[:20],
            "editor_config": _editor_config(obj),
            "mapping_json": json.dumps(obj.mapping, indent=2),
            "staged_counts": sorted(counts.items()),
            "preview_url": reverse("admin:formats_csvformat_preview", args=[obj.pk]),
            "preview_html": self._preview_html(obj, obj.mapping, available=previewable),
        }

    def _preview_html(self, obj: CsvFormat, mapping: dict[str, Any], *, available: int) -> str:
        started = time.monotonic()
        try:
            summary = preview(fmt=obj, mapping=mapping, limit=PREVIEW_ROWS, scan_limit=PAGE_SCAN_LIMIT)
            error = ""
        except AppError as exc:
            summary, error = None, exc.message
        return render_preview(obj, summary, error, time.monotonic() - started, available)

    # --- preview without saving -------------------------------------------------------------------------

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST an edited mapping; get back the preview HTML and counts. Nothing is saved."""
        return require_POST(self._preview_view)(request, object_id)

    def _preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404("No such format.")
        if not self.has_view_or_change_permission(request, obj):
            raise DjangoPermissionDenied
        try:
            mapping = json.loads(request.POST.get("mapping") or "")
        except ValueError as exc:
            return JsonResponse({"ok": False, "error": f"The mapping is not valid JSON: {exc}"}, status=400)
        try:
            mapping = mapping_validate(target=obj.target, mapping=mapping, columns=obj.columns)
        except AppError as exc:
            return JsonResponse({"ok": False, "error": exc.message}, status=400)

        started = time.monotonic()
        summary = preview(fmt=obj, mapping=mapping, limit=PREVIEW_ROWS)
        seconds = round(time.monotonic() - started, 2)
        html = render_preview(obj, summary, "", seconds)
        return JsonResponse(
            {
                "ok": True,
                "html": html,
                "seconds": seconds,
                "summary": {key: summary[key] for key in ("total", "would_import", "would_be_invalid", "would_skip")},
            }
        )

    # --- history ----------------------------------------------------------------------------------------

    def revert_disabled(self, request: HttpRequest, obj: CsvFormat | None = None) -> bool:
        # simple-history's own "revert" form would save every field of the old version; restoring goes
        # through restore_mapping_view (validated, audited, re-processing for approved formats) instead.
        return True

    def history_form_view(
        self,
        request: HttpRequest,
        object_id: str,
        version_id: str,
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # simple-history's per-version form would save every field of the old version on POST (even with
        # the revert button hidden); the history page and its "Restore this mapping" replace it.
        return HttpResponseRedirect(reverse("admin:formats_csvformat_history", args=[object_id]))

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        records = (
            list(
                CsvFormat.history.filter(id=obj.pk)
                .select_related("history_user")
                .order_by("-history_date", "-history_id")[:200]
            )
            if obj
            else []
        )
        can_restore = (
            bool(obj)
            and obj.status != FormatStatus.REJECTED
            and self.has_change_permission(request, obj)
            and (obj.status != FormatStatus.APPROVED or request.user.has_perm(APPROVE_PERMISSION))
        )
        context = {
            "versions": format_versions(records),
            "can_restore": can_restore,
            "current_mapping": obj.mapping if obj else None,
            **(extra_context or {}),
        }
        return super().history_view(request, object_id, extra_context=context)

    def restore_mapping_view(self, request: HttpRequest, object_id: str, history_id: int) -> HttpResponse:
        """Restore the mapping of one history version (POST)."""

        obj = get_object_or_404(CsvFormat, pk=object_id)
        history_url = reverse("admin:formats_csvformat_history", args=[obj.pk])
        if not self.has_change_permission(request, obj):
            raise DjangoPermissionDenied
        if request.method != "POST" or request.POST.get("confirm") != "yes":
            return self._restore_confirmation(request, obj, history_id)
        try:
            review_restore_mapping(format_id=obj.pk, history_id=history_id, actor=request.user)
        except AppError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(history_url)
        messages.success(
            request,
            f"Restored the mapping of '{obj.name}'"
            + (" and re-processing its invalid rows." if obj.status == FormatStatus.APPROVED else "."),
        )
        return HttpResponseRedirect(reverse("admin:formats_csvformat_change", args=[obj.pk]))

    def _restore_confirmation(self, request: HttpRequest, obj: CsvFormat, history_id: int) -> HttpResponse:
        """What restoring a version would change and do, with a button to confirm (nothing happens before)."""
        version = get_object_or_404(CsvFormat.history, id=obj.pk, history_id=history_id)
        files = ImportFileRef.objects.filter(format=obj, rows_invalid__gt=0)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "object": obj,
            "version": version,
            "title": f"Restore a mapping of {obj.name}",
            "changes": mapping_diff(obj.mapping, version.mapping),
            "invalid_files": files.count(),
            "invalid_rows": sum(files.values_list("rows_invalid", flat=True)),
            "staged_rows": StagedRow.objects.filter(format=obj).exclude(status="REJECTED").count(),
            "chain_steps": ApprovalStep.objects.filter(format=obj, reset_at__isnull=True).count(),
        }
        return TemplateResponse(request, "admin/formats/csvformat/restore_confirmation.html", context)

    # --- bulk actions -----------------------------------------------------------------------------------

    def _review_rate_ok(self, request: HttpRequest) -> bool:
        """False (with a message) when AIRLOCK_REVIEWS_PER_HOUR is used up; counts nothing (see _review_counted)."""

        try:
            rate_limit_check(bucket="review", user=request.user)
        except AppError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return False
        return True

    def _review_counted(self, request: HttpRequest) -> None:
        """Count one accepted bulk decision against AIRLOCK_REVIEWS_PER_HOUR (refused ones are not counted)."""

        rate_limit_record(bucket="review", user=request.user)

    @admin.action(description="Approve selected formats (their suggested mappings)")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[CsvFormat]) -> None:
        if not request.user.has_perm(APPROVE_PERMISSION):
            self.message_user(request, "You need the 'approve CSV formats' permission.", messages.ERROR)
            return
        if not self._review_rate_ok(request):
            return
        accepted = False
        for fmt in queryset.filter(status=FormatStatus.PENDING):
            try:
                done = review_approve(format_id=fmt.pk, actor=request.user)
                accepted = True
                if done.status == FormatStatus.APPROVED:
                    self.message_user(request, f"Approved '{fmt.name}'.", messages.SUCCESS)
                else:
                    # The same policy as one by one: one admin's bulk action is one step of each chain.
                    chain = done.approval_chain
                    self.message_user(
                        request,
                        f"'{fmt.name}': your approval is recorded ({chain.describe()}), {chain.missing} more needed.",
                        messages.INFO,
                    )
            except AppError as exc:
                self.message_user(request, f"'{fmt.name}': {exc.message}", messages.ERROR)
        if accepted:
            self._review_counted(request)
        ignored = queryset.exclude(status=FormatStatus.PENDING).count()
        if ignored:
            self.message_user(
                request,
                f"{ignored} selected format(s) were not pending and were left as they are.",
                messages.WARNING,
            )

    @admin.action(description="Holds trades after all: send selected 'No trades' formats to review")
    def has_trades_selected(self, request: HttpRequest, queryset: QuerySet[CsvFormat]) -> None:
        if not request.user.has_perm(APPROVE_PERMISSION):
            self.message_user(request, "You need the 'approve CSV formats' permission.", messages.ERROR)
            return
        for fmt in queryset.filter(status=FormatStatus.NO_TRADES):
            try:
                files = format_has_trades(format_id=fmt.pk, actor=request.user)
            except AppError as exc:
                self.message_user(request, f"'{fmt.name}': {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request, f"'{fmt.name}' is pending review; {files} file(s) wait for its approval.", messages.SUCCESS
            )
        ignored = queryset.exclude(status=FormatStatus.NO_TRADES).count()
        if ignored:
            self.message_user(
                request,
                f"{ignored} selected format(s) were not judged 'No trades' and were left as they are.",
                messages.WARNING,
            )

    @admin.action(description="Reject selected formats…")
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[CsvFormat]) -> HttpResponse | None:
        if not request.user.has_perm(APPROVE_PERMISSION):
            self.message_user(request, "You need the 'approve CSV formats' permission.", messages.ERROR)
            return None
        if "reason" in request.POST:
            if not request.POST["reason"].strip():
                self.message_user(request, "A reason is required to reject formats.", messages.ERROR)
                return None
            if not self._review_rate_ok(request):
                return None
            accepted = False
            for fmt in queryset.filter(status=FormatStatus.PENDING):
                try:
                    review_reject(format_id=fmt.pk, actor=request.user, reason=request.POST["reason"])
                    accepted = True
                    self.message_user(request, f"Rejected '{fmt.name}'.", messages.SUCCESS)
                except AppError as exc:
                    self.message_user(request, f"'{fmt.name}': {exc.message}", messages.ERROR)
            if accepted:
                self._review_counted(request)
            return None
        return TemplateResponse(
            request,
            "admin/formats/csvformat/reject_reason.html",
            {
                **self.admin_site.each_context(request),
                "formats": queryset,
                "title": "Reject formats",
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if not request.user.has_perm(APPROVE_PERMISSION):
            actions.pop("approve_selected", None)
            actions.pop("reject_selected", None)
        return actions


class ApprovalPolicyForm(forms.ModelForm):
    class Meta:
        model = ApprovalPolicy
        fields = (
            "approvers_required",
            "risky_approvers_required",
            "risky_invalid_rate",
            "risky_when_unlike_approved",
            "step_expiry_hours",
            "escalate_after_hours",
            "auto_approve",
            "auto_min_quality",
            "auto_min_confidence",
            "auto_max_invalid_rate",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        needed, risky = data.get("approvers_required"), data.get("risky_approvers_required")
        if needed is not None and needed < 1:
            self.add_error("approvers_required", "At least one person approves a format.")
        if needed is not None and risky is not None and risky < needed:
            self.add_error("risky_approvers_required", "A risky format needs at least as many approvers as any.")
        for name in ("risky_invalid_rate", "auto_min_confidence", "auto_max_invalid_rate"):
            value = data.get(name)
            if value is not None and not 0 <= value <= 1:
                self.add_error(name, "A share between 0 and 1 (0.2 = 20%).")
        if (data.get("auto_min_quality") or 0) > 100:
            self.add_error("auto_min_quality", "A score from 0 to 100.")
        return data


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(SimpleHistoryAdmin):
    """The one approval policy: editable by whoever may change it, each change kept and audited."""

    form = ApprovalPolicyForm

    list_display = (
        "__str__",
        "risky_invalid_rate",
        "risky_when_unlike_approved",
        "step_expiry_hours",
        "escalate_after_hours",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not ApprovalPolicy.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: ApprovalPolicy | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        policy = policy_current()  # the one row, created with its defaults on first visit
        return HttpResponseRedirect(reverse("admin:formats_approvalpolicy_change", args=[policy.pk]))

    def save_model(self, request: HttpRequest, obj: ApprovalPolicy, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        changed = {name: form.cleaned_data.get(name) for name in form.changed_data}
        record(
            action="approval_policy.changed",
            actor=request.user,
            obj=obj,
            summary=f"{request.user.get_username()} changed the approval policy: {changed}"[:500],
            details={"changed": changed, "policy": str(obj)},
        )


@admin.register(UserTier)
class UserTierAdmin(SimpleHistoryAdmin):
    """Tiers of users (groups): staging required (the default) or trusted (auto-approved when it passes)."""

    list_display = ("group", "staging_required")

    def save_model(self, request: HttpRequest, obj: UserTier, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        record(
            action="approval_policy.tier_changed",
            actor=request.user,
            obj=obj,
            summary=f"{request.user.get_username()} set the tier {obj}",
            details={"group": obj.group.name, "staging_required": obj.staging_required},
        )
