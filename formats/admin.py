"""The review screen: pending formats first, sample rows, editable mapping, preview, approve/reject."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.apps import apps
from django.db.models import Case, Count, IntegerField, Min, OuterRef, QuerySet, Subquery, Value, When
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince
from simple_history.admin import SimpleHistoryAdmin

from config.errors import AppError
from formats.models import CsvFormat, FormatStatus
from formats.services import APPROVE_PERMISSION, format_update_mapping, mapping_validate


StagedRow = apps.get_model("staging", "StagedRow")
ImportFileRef = apps.get_model("imports", "ImportFile")


class CsvFormatForm(forms.ModelForm):
    mapping = forms.JSONField(widget=forms.Textarea(attrs={"rows": 24, "cols": 110, "class": "mapping-json"}))

    class Meta:
        model = CsvFormat
        fields = ["name", "mapping"]

    def clean_mapping(self) -> dict:
        mapping = self.cleaned_data["mapping"]
        try:
            return mapping_validate(target=self.instance.target, mapping=mapping, columns=self.instance.columns)
        except AppError as exc:
            raise forms.ValidationError(exc.message) from exc


@admin.register(CsvFormat)
class CsvFormatAdmin(SimpleHistoryAdmin):
    form = CsvFormatForm
    change_form_template = "admin/formats/csvformat/change_form.html"
    list_display = ("name", "status_badge", "target", "uploader", "file_count", "staged_count", "waiting",
                    "confidence_pct", "builtin")
    list_filter = ("status", "target", "builtin")
    search_fields = ("name", "fingerprint", "first_seen_file_name", "created_by__username")
    readonly_fields = ("status", "target", "fingerprint", "columns", "created_by", "first_seen_file_name",
                       "approved_by", "approved_at", "rejected_by", "rejected_at", "rejection_reason", "builtin")
    actions = ["approve_selected", "reject_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CsvFormat]:
        return (
            super().get_queryset(request)
            .select_related("created_by")
            .annotate(
                pending_first=Case(When(status=FormatStatus.PENDING, then=Value(0)), default=Value(1),
                                   output_field=IntegerField()),
                staged=Subquery(StagedRow.objects.filter(format=OuterRef("pk"), status="PENDING")
                                .values("format").annotate(n=Count("id")).values("n")),
                files_n=Subquery(ImportFileRef.objects.filter(format=OuterRef("pk")).values("format")
                                 .annotate(n=Count("id")).values("n")),
                oldest=Subquery(ImportFileRef.objects.filter(format=OuterRef("pk"), status="PENDING_APPROVAL")
                                .values("format").annotate(t=Min("created_at")).values("t")),
            )
            .order_by("pending_first", "created_at")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: CsvFormat) -> str:
        colours = {"PENDING": "#b26b00", "APPROVED": "#1a7f37", "REJECTED": "#b42318"}
        return format_html('<b style="color:{}">{}</b>', colours.get(obj.status, "#333"), obj.get_status_display())

    @admin.display(description="Uploaded by", ordering="created_by__username")
    def uploader(self, obj: CsvFormat) -> str:
        return obj.created_by.get_username() if obj.created_by else ("built-in" if obj.builtin else "—")

    @admin.display(description="Files", ordering="files_n")
    def file_count(self, obj: CsvFormat) -> int:
        return obj.files_n or 0

    @admin.display(description="Staged rows waiting", ordering="staged")
    def staged_count(self, obj: CsvFormat) -> int:
        return obj.staged or 0

    @admin.display(description="Waiting since", ordering="oldest")
    def waiting(self, obj: CsvFormat) -> str:
        return f"{timesince(obj.oldest, timezone.now())} ago" if obj.oldest else "—"

    @admin.display(description="Confidence", ordering="confidence")
    def confidence_pct(self, obj: CsvFormat) -> str:
        return f"{obj.confidence * 100:.0f}%"

    def get_fields(self, request: HttpRequest, obj: CsvFormat | None = None) -> list[str]:
        return ["name", "mapping", *self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: CsvFormat | None = None) -> tuple[str, ...]:
        if obj is not None and obj.status == FormatStatus.REJECTED:
            return ("name", "mapping", *self.readonly_fields)
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: CsvFormat, form: forms.ModelForm, change: bool) -> None:
        # Saving goes through the service so the change is validated, audited and kept in history.
        obj.name = form.cleaned_data["name"]
        CsvFormat.objects.filter(pk=obj.pk).update(name=obj.name)
        format_update_mapping(format_id=obj.pk, actor=request.user, mapping=form.cleaned_data["mapping"])

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        from imports.services import review_approve, review_reject

        obj = self.get_object(request, object_id) if object_id else None
        if request.method == "POST" and obj is not None and ("_approve" in request.POST or "_reject" in request.POST):
            try:
                if "_approve" in request.POST:
                    form = self.get_form(request, obj)(request.POST, instance=obj)
                    if not form.is_valid():
                        messages.error(request, "The mapping is not valid: " + "; ".join(
                            e for errors in form.errors.values() for e in errors))
                        return HttpResponseRedirect(request.path)
                    review_approve(format_id=obj.pk, actor=request.user, mapping=form.cleaned_data["mapping"])
                    messages.success(request, f"Approved '{obj.name}'. Its staged rows are being migrated.")
                else:
                    review_reject(format_id=obj.pk, actor=request.user, reason=request.POST.get("reason", ""))
                    messages.success(request, f"Rejected '{obj.name}'.")
            except AppError as exc:
                messages.error(request, exc.message)
                return HttpResponseRedirect(request.path)
            return HttpResponseRedirect(reverse("admin:formats_csvformat_changelist"))
        extra_context = extra_context or {}
        if obj is not None:
            extra_context.update(self._review_context(request, obj))
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _review_context(self, request: HttpRequest, obj: CsvFormat) -> dict[str, Any]:
        from imports.pipeline import preview

        try:
            summary = preview(fmt=obj, limit=10, scan_limit=200_000)
            preview_error = ""
        except AppError as exc:
            summary, preview_error = None, exc.message
        return {
            "can_review": request.user.has_perm(APPROVE_PERMISSION) and obj.status != FormatStatus.REJECTED,
            "sample_columns": obj.columns,
            "sample_rows": obj.sample_rows[:20],
            "mapping_fields": sorted((obj.mapping.get("fields") or {}).items()),
            "mapping_json": json.dumps(obj.mapping, indent=2),
            "preview": summary,
            "preview_error": preview_error,
        }

    @admin.action(description="Approve selected formats (their suggested mappings)")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[CsvFormat]) -> None:
        from imports.services import review_approve

        if not request.user.has_perm(APPROVE_PERMISSION):
            self.message_user(request, "You need the 'approve CSV formats' permission.", messages.ERROR)
            return
        for fmt in queryset.filter(status=FormatStatus.PENDING):
            try:
                review_approve(format_id=fmt.pk, actor=request.user)
                self.message_user(request, f"Approved '{fmt.name}'.", messages.SUCCESS)
            except AppError as exc:
                self.message_user(request, f"'{fmt.name}': {exc.message}", messages.ERROR)

    @admin.action(description="Reject selected formats…")
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[CsvFormat]) -> HttpResponse | None:
        from imports.services import review_reject

        if not request.user.has_perm(APPROVE_PERMISSION):
            self.message_user(request, "You need the 'approve CSV formats' permission.", messages.ERROR)
            return None
        if "reason" in request.POST:
            for fmt in queryset.filter(status=FormatStatus.PENDING):
                try:
                    review_reject(format_id=fmt.pk, actor=request.user, reason=request.POST["reason"])
                    self.message_user(request, f"Rejected '{fmt.name}'.", messages.SUCCESS)
                except AppError as exc:
                    self.message_user(request, f"'{fmt.name}': {exc.message}", messages.ERROR)
            return None
        return TemplateResponse(request, "admin/formats/csvformat/reject_reason.html", {
            **self.admin_site.each_context(request), "formats": queryset, "title": "Reject formats",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME, "opts": self.model._meta,
        })

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if not request.user.has_perm(APPROVE_PERMISSION):
            actions.pop("approve_selected", None)
            actions.pop("reject_selected", None)
        return actions
