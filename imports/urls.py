from django.urls import path

from imports import api, views

app_name = "imports"

urlpatterns = [
    path("", views.upload, name="upload"),
    path("imports/", views.import_list, name="list"),
    path("imports/<int:file_id>/", views.file_detail, name="detail"),
    path("orders/", views.order_list, name="orders"),
    path("api/uploads", api.uploads, name="api-uploads"),
    path("api/uploads/<int:file_id>", api.upload_detail, name="api-upload-detail"),
    path("api/orders", api.orders, name="api-orders"),
    path("api/admin/formats/pending", api.pending_formats, name="api-pending-formats"),
    path("api/admin/formats/<int:format_id>/approve", api.format_review, name="api-format-review"),
]
