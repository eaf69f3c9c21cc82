"""The API's URLconf, included under /api/ by flexdash/urls.py: the docs page
and its assets (jobs/api/docs.py), then the NinjaAPI's endpoints and document."""

from django.urls import path

from jobs.api import api
from jobs.api.docs import docs_asset, docs_page

urlpatterns = [
    path("docs", docs_page, name="api-docs"),
    path("docs/assets/<str:name>", docs_asset, name="api-docs-asset"),
    path("", api.urls),
]
