"""The API's URLconf, included under /api/ by flexdash/urls.py."""

from django.urls import path

from jobs.api import api

urlpatterns = [path("", api.urls)]
