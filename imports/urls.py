from django.urls import include, path

from imports.api.app import api_urlpatterns
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
    # The JSON API (imports/api/app.py): its routes, names (imports:api-...) and generated document.
    path("api/", include(api_urlpatterns())),
]
