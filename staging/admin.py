from django.contrib import admin
from django.http import HttpRequest

from staging.models import StagedRow


@admin.register(StagedRow)
class StagedRowAdmin(admin.ModelAdmin):
    list_display = ("id", "file", "format", "line", "status")
    list_filter = ("status",)
    raw_id_fields = ("file", "format")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
