"""What every page of the dashboard shares, whichever room it lives in: the
size of a page of jobs, and the word that tells other tabs to refresh."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest

JOBS_PER_PAGE = 25
# Tells other tabs (static/js/flexdash.js) to refresh fragments that stopped polling.
CHANGED = "jobs-changed"


def job_page(request: HttpRequest, jobs: QuerySet) -> Page:
    """The page of `jobs` the request asks for (?page=), the last one if past it."""
    return Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
