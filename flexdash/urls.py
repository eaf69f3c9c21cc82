from django.contrib import admin
from django.urls import include, path

from jobs.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("account/", include("jobs.account_urls")),
    path("api/", include("jobs.api.urls")),
    path("", include("jobs.urls")),
]
