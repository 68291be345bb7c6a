from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import user_passes_test
from django.urls import URLPattern, URLResolver, include, path
from django_rq import urls as rq_urls

from imports.monitoring.health import healthz, livez, readyz
from imports.monitoring.views import metrics, ops_dashboard

# The django-rq dashboard shows every job's arguments: superusers only.
superuser_required = user_passes_test(lambda u: u.is_active and u.is_superuser, login_url="/admin/login/")


def _superuser_only(patterns: list) -> list:
    wrapped: list = []
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = superuser_required(pattern.callback)
        elif isinstance(pattern, URLResolver):
            _superuser_only(pattern.url_patterns)
        wrapped.append(pattern)
    return wrapped


urlpatterns = [
    path("admin/rq/", include((_superuser_only(list(rq_urls.urlpatterns)), "django_rq"))),
    path("admin/ops/", ops_dashboard, name="ops-dashboard"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    path("livez", livez, name="livez"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("", include("imports.urls")),
]

# The admin's lists are wide (the format list has eleven columns): no side navigation taking a third of the
# width; the breadcrumbs and the index lead everywhere.
admin.site.enable_nav_sidebar = False

# The JSON API answers unknown URLs and crashes in its own error shape.
handler404 = "imports.api.reports.json_not_found"
handler500 = "imports.api.reports.json_server_error"
handler403 = "imports.api.reports.json_permission_denied"
handler400 = "imports.api.reports.json_bad_request"
