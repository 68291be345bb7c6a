from django.contrib import admin
from django.http import HttpRequest

from imports.models import ApiToken, ImportBatch, ImportFile, Order


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
    list_display = ("id", "original_name", "owner", "status", "format", "rows_total", "rows_imported",
                    "rows_failed", "rows_skipped", "rows_duplicate", "progress", "created_at")
    list_filter = ("status",)
    search_fields = ("original_name", "sha256", "owner__username")
    raw_id_fields = ("batch", "format")


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("executed_at", "owner", "account", "symbol", "side", "quantity", "price", "commission",
                    "currency", "broker_trade_id", "source_file", "source_line")
    list_filter = ("side", "currency")
    search_fields = ("symbol", "broker_trade_id", "account")
    raw_id_fields = ("source_file",)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "created_at")
    raw_id_fields = ("user",)
    readonly_fields = ("key",)
