"""What every page of the dashboard shares, whichever room it lives in: the
size of a page of jobs, how a list of jobs is paged, and the word that tells
other tabs to refresh."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.web.search import NEWEST_KEY

JOBS_PER_PAGE = 25
# Tells other tabs (static/js/flexdash.js) to refresh fragments that stopped polling.
CHANGED = "jobs-changed"


def job_page(request: HttpRequest, jobs: QuerySet) -> Page:
    """The page of `jobs` the request asks for (?page=), the last one if past it:
    for a list bounded by something smaller than the table (a run's jobs)."""
    return Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))


@dataclass(frozen=True)
class NewestFirstPage:
    """A page of a newest-first list of jobs, found by its neighbour's id
    (?before=ID for older, ?after=ID for newer): the same few index reads on
    the first page and the forty-thousandth, and a page that stays put while
    new jobs arrive above it. Iterates like a Paginator's page."""

    object_list: list
    newer_than: int | None  # ?after= of the "Newer" link; None on the newest page
    older_than: int | None  # ?before= of the "Older" link; None on the oldest page
    total: int | None  # None: not counted, and more pages than this one
    by_keyset = True

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)

    def has_other_pages(self) -> bool:
        return self.newer_than is not None or self.older_than is not None


def _cursor(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() else None


def newest_first_page(
    request: HttpRequest,
    jobs: QuerySet,
    rows: Callable[[list[int]], list],
    total: int | None = None,
) -> NewestFirstPage:
    """The page ?before= or ?after= asks for, of `jobs` newest (highest id)
    first; the newest page when it asks for none, or for one past either end.
    The page's ids are chosen first and `rows(ids)` reads them, so what a row
    shows (an excerpt of its prompt) is worked out for 25 jobs, not for every
    match the database weighs. Without a `total`, a list that fits on one
    page is counted by its rows."""
    size = JOBS_PER_PAGE
    # A search is walked by its index's order (search.newest_matching); the
    # cursors are job ids either way.
    key = NEWEST_KEY if NEWEST_KEY in jobs.query.annotations else "pk"

    def ids(lookup: str, cursor: int, order: str) -> list[int]:
        chosen = jobs.filter(**{lookup: cursor}) if lookup else jobs
        return list(chosen.order_by(order).values_list("pk", flat=True)[: size + 1])

    before, after = _cursor(request, "before"), _cursor(request, "after")
    if after is not None and (found := ids(f"{key}__gt", after, key)):
        newer = found[size - 1] if len(found) > size else None
        found = found[:size][::-1]
        older = found[-1] if _any(jobs, f"-{key}", f"{key}__lt", found[-1]) else None
        return _page(rows(found), newer, older, total)
    found, newest = [], True
    if before is not None and (found := ids(f"{key}__lt", before, f"-{key}")):
        newest = not _any(jobs, key, f"{key}__gt", found[0])
    if not found:
        found = ids("", 0, f"-{key}")
    newer = None if newest else found[0]
    older = found[size - 1] if len(found) > size else None
    return _page(rows(found[:size]), newer, older, total)


def _any(jobs: QuerySet, order: str, lookup: str, value: int) -> bool:
    """Whether a job lies beyond `value`, asked in the list's own order: an
    unordered EXISTS lets SQLite probe the search index once per job."""
    return bool(jobs.filter(**{lookup: value}).order_by(order).values_list("pk")[:1])


def _page(rows: list, newer: int | None, older: int | None, total: int | None):
    if total is None and newer is None and older is None:
        total = len(rows)
    return NewestFirstPage(rows, newer_than=newer, older_than=older, total=total)
