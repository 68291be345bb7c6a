from django.urls import path

from imports.api import batches as api_batches
from imports.api import cron as cronapi
from imports.api import direct as api_direct
from imports.api import reports as api_reports
from imports.api import views as api
from imports.web import views

app_name = "imports"

urlpatterns = [
    path("", views.upload, name="upload"),
    path("imports/", views.import_list, name="list"),
    path("imports/<int:file_id>/", views.file_detail, name="detail"),
    path("imports/uploads/<int:batch_id>/", views.batch_detail, name="batch"),
    path("imports/<int:file_id>/retry", views.file_retry, name="retry"),
    path("imports/<int:file_id>/fix", views.file_fix_rows, name="fix-rows"),
    path("imports/<int:file_id>/errors.csv", views.file_errors_csv, name="errors-csv"),
    path("imports/<int:file_id>/errors.xlsx", views.file_errors_xlsx, name="errors-xlsx"),
    path("staged/", views.staged_rows, name="staged"),
    path("orders/", views.order_list, name="orders"),
    path("api/uploads", api_reports.uploads_collection, name="api-uploads"),
    path("api/uploads/<int:file_id>/errors", api_reports.upload_errors, name="api-upload-errors"),
    path("api/staging/status", api_reports.staging_status, name="api-staging-status"),
    path("api/staging/orders", api_reports.staging_orders, name="api-staging-orders"),
    path("api/admin/staging/stats", api_reports.admin_staging_stats, name="api-admin-staging-stats"),
    path("api/schema", api_reports.schema, name="api-schema"),
    path("api/uploads/direct", api_direct.direct_sign, name="api-uploads-direct"),
    path("api/uploads/direct/confirm", api_direct.direct_confirm, name="api-uploads-direct-confirm"),
    path("api/uploads/<int:file_id>", api.upload_detail, name="api-upload-detail"),
    path("api/uploads/<int:file_id>/retry", api.upload_retry, name="api-upload-retry"),
    path("api/uploads/<int:file_id>/rows", api.upload_fix_rows, name="api-upload-fix-rows"),
    path("api/batches/<int:batch_id>", api_batches.batch_detail, name="api-batch-detail"),
    path("api/orders", api.orders, name="api-orders"),
    path("api/cron/cleanup-staging", cronapi.cleanup_staging_view, name="api-cron-cleanup"),
    path("api/admin/formats/pending", api.pending_formats, name="api-pending-formats"),
    path("api/admin/formats/<int:format_id>/approve", api.format_review, name="api-format-review"),
]
