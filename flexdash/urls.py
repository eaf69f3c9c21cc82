"""The root URLs: health, admin, sign-in, the account page, the API and the dashboard."""

from django.contrib import admin
from django.urls import include, path

from jobs.web.health import healthz
from jobs.web.views import favicon

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("account/", include("jobs.web.account_urls")),
    path("api/", include("jobs.api.urls")),
    path("", include("jobs.web.urls")),
]
