from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path

from config.errors import AppError
from formats.services import APPROVE_PERMISSION
from imports.models import Alert, ApiToken, ImportBatch, ImportFile, Instrument, Order
from imports.services.reconciliation import reconcile_decide, reconcile_queue
from imports.services.retry import file_retry
from imports.services.rollback import duplicates_reimport, file_rollback, rollback_preview


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ImportBatch)
class ImportBatchAdmin(ReadOnlyAdmin):
    list_display = ("id", "owner", "status", "file_count", "created_at")
    list_filter = ("status",)


@admin.register(ImportFile)
class ImportFileAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "original_name",
        "owner",
        "status",
        "format",
        "rows_total",
        "rows_imported",
        "rows_invalid",
        "rows_skipped",
        "rows_duplicate",
        "progress",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("original_name", "sha256", "owner__username")
    raw_id_fields = ("batch", "format")
    actions = ["retry_selected", "rollback_selected", "rollback_keeping_changed"]

    # The actions only call services (imports/jobs/failures.py, imports/services/rollback.py) and report per file.
    def has_rollback_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("imports.rollback_importfile")

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Whoever may roll back must be able to open the list that holds the action, however the rollback
        # permission was granted.
        return super().has_view_permission(request, obj) or self.has_rollback_permission(request)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("imports.rollback_importfile") or request.user.is_superuser

    @admin.action(description="Retry selected failed imports", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: Any) -> None:
        self._each(
            request,
            queryset,
            lambda f: f"'{f.original_name}' queued again ({file_retry(file_id=f.pk, actor=request.user)}).",
        )

    @admin.action(description="Roll back selected imports (refused if orders changed since)…", permissions=["rollback"])
    def rollback_selected(self, request: HttpRequest, queryset: Any) -> TemplateResponse | None:
        return self._rollback(request, queryset, keep_changed=False, action="rollback_selected")

    @admin.action(description="Roll back selected imports, keeping orders changed since…", permissions=["rollback"])
    def rollback_keeping_changed(self, request: HttpRequest, queryset: Any) -> TemplateResponse | None:
        return self._rollback(request, queryset, keep_changed=True, action="rollback_keeping_changed")

    def _rollback(
        self, request: HttpRequest, queryset: Any, *, keep_changed: bool, action: str
    ) -> TemplateResponse | None:
        """First an intermediate page (like Django's delete confirmation) saying what would be removed;
        only its confirmed POST, with a reason, rolls anything back."""
        reason = request.POST.get("reason", "").strip()
        if request.POST.get("confirm") != "yes" or not reason:
            return self._rollback_confirmation(
                request, queryset, keep_changed=keep_changed, action=action, reason_missing="confirm" in request.POST
            )

        def one(file: ImportFile) -> str:
            result = file_rollback(file_id=file.pk, actor=request.user, keep_changed=keep_changed, reason=reason)
            if result.already_rolled_back:
                return f"'{file.original_name}' was already rolled back."
            text = f"'{file.original_name}' rolled back: {result.deleted} orders deleted"
            if result.kept_changed:
                text += f", {len(result.kept_changed)} changed orders kept"
            if result.duplicates_in_other_files:
                others = ImportFile.objects.filter(pk__in=result.duplicates_in_other_files).order_by("pk")
                names = ", ".join(f"'{o.original_name}'" for o in others)
                rows = sum(result.duplicates_in_other_files.values())
                if request.POST.get("reimport_duplicates") == "yes":
                    again = duplicates_reimport(rolled_back_file_id=file.pk, actor=request.user)
                    text += f"; {sum(again.values())} rows of {names} skipped as duplicates are being imported again"
                else:
                    text += (
                        f"; {rows} rows of {names} had been skipped as duplicates of the deleted orders and are "
                        "not in production now"
                    )
            return text + "."

        self._each(request, queryset, one)
        return None

    def _rollback_confirmation(
        self, request: HttpRequest, queryset: Any, *, keep_changed: bool, action: str, reason_missing: bool
    ) -> TemplateResponse:
        previews = [rollback_preview(file_id=f.pk, keep_changed=keep_changed) for f in queryset.order_by("pk")]
        context = {
            **self.admin_site.each_context(request),
            "title": "Roll back imports: are you sure?",
            "opts": self.model._meta,
            "previews": previews,
            "action": action,
            "keep_changed": keep_changed,
            "reason": request.POST.get("reason", ""),
            "reason_missing": reason_missing,
            "total_deleted": sum(p.to_delete for p in previews),
            "any_duplicates": any(p.duplicates_in_other_files for p in previews),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/imports/importfile/rollback_confirmation.html", context)

    def _each(self, request: HttpRequest, queryset: Any, action: Any) -> None:
        for file in queryset:
            try:
                self.message_user(request, action(file), messages.SUCCESS)
            except AppError as exc:
                self.message_user(request, f"'{file.original_name}': {exc.message}", messages.ERROR)


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = (
        "executed_at",
        "owner",
        "account",
        "symbol",
        "side",
        "quantity",
        "price",
        "commission",
        "currency",
        "broker_trade_id",
        "source_file",
        "source_line",
    )
    list_filter = ("side", "currency")
    search_fields = ("symbol", "broker_trade_id", "account")
    raw_id_fields = ("source_file",)


@admin.register(Instrument)
class InstrumentAdmin(ReadOnlyAdmin):
    """Master data imported through Airlock (the instruments target): changed by importing a refreshed list."""

    list_display = ("name", "isin", "ticker", "mic", "currency", "asset_class", "owner", "source_file", "updated_at")
    list_filter = ("asset_class", "currency")
    search_fields = ("name", "isin", "ticker")
    raw_id_fields = ("source_file", "updated_by_file")
    change_list_template = "admin/imports/instrument/change_list.html"

    def get_urls(self) -> list:
        own = [
            path(
                "reconcile/",
                self.admin_site.admin_view(self.reconcile_view),
                name="imports_instrument_reconcile",
            )
        ]
        return own + super().get_urls()

    def reconcile_view(self, request: HttpRequest) -> HttpResponse:
        """The reconciliation queue: order symbols no instrument was found for, grouped by value, with candidates and
        one decision per value (link, create, leave unlinked) for every format or the files of one."""
        if not request.user.has_perm(APPROVE_PERMISSION):
            raise PermissionDenied
        if request.method == "POST":
            value = request.POST.get("value") or ""
            try:
                # choice: "link:<instrument id>", "create" or "leave"; format: a format's id, or "" for every format
                action, _, instrument = (request.POST.get("choice") or "").partition(":")
                changed = reconcile_decide(
                    actor=request.user,
                    owner_id=int(request.POST.get("owner") or 0),
                    value=value,
                    action=action,
                    instrument_id=int(instrument) if instrument else None,
                    format_id=int(request.POST.get("format") or 0) or None,
                )
            except ValueError:
                messages.error(request, f"'{value}': choose a candidate, a new instrument or 'leave unlinked'.")
            except AppError as exc:
                messages.error(request, f"'{value}': {exc.message}")
            else:
                messages.success(request, f"'{value}': decision recorded, {changed} orders changed.")
            return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Reconciliation queue",
            "waiting": reconcile_queue(),
            "threshold": settings.AIRLOCK.get("RECONCILE_AUTO_SCORE", 0.92),
        }
        return TemplateResponse(request, "admin/imports/instrument/reconcile.html", context)


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens are made by `manage.py api_token` (the key is printed once, only its hash is stored); here they
    can be seen by their non-secret prefix and revoked (deleted)."""

    list_display = ("user", "prefix_shown", "created_at")
    fields = ("user", "prefix_shown", "created_at")
    readonly_fields = ("user", "prefix_shown", "created_at")
    search_fields = ("user__username", "prefix")

    @admin.display(description="token")
    def prefix_shown(self, obj: ApiToken) -> str:
        return f"{obj.prefix}…"


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    """Alert history (imports/monitoring/alerts.py): written by the evaluation only, never edited by hand."""

    list_display = ("rule", "state", "summary", "first_seen_at", "fired_at", "resolved_at", "fire_notified_at")
    list_filter = ("state", "rule")
    date_hierarchy = "first_seen_at"

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
