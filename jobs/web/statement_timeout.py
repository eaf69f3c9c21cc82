"""The last guard against a page that asks too much of the database: on
PostgreSQL, each statement a GET or HEAD request runs is cut off after
FLEX_WEB_STATEMENT_TIMEOUT_MS, and the person is told so (503), instead of
the request holding a web worker for as long as the database takes.

Only reads are limited: a POST may rightly write for longer (a run's 100,000
lines are inserted by one request), and cutting it short would only make the
person send it again. Only web requests: the limit is set on the request's
connection when it starts and reset when the view returns, so the qcluster,
migrations and management commands, which serve no requests, never meet it;
nor does a streamed download, which runs after the view has returned.

SQLite has no statement timeout; there the search index and the length cap
on a search are the guard.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

GUARDED_METHODS = frozenset({"GET", "HEAD"})
# PostgreSQL's query_canceled, which a statement timeout raises.
QUERY_CANCELED = "57014"


def is_statement_timeout(error: BaseException) -> bool:
    return (
        isinstance(error, OperationalError)
        and getattr(error.__cause__, "sqlstate", None) == QUERY_CANCELED
    )


def too_slow_message() -> str:
    seconds = settings.FLEX_WEB_STATEMENT_TIMEOUT_MS / 1000
    return (
        f"The database needed more than {seconds:g} s for this (FLEX_WEB_STATEMENT_TIMEOUT_MS), "
        "so it was stopped. Narrow the search or the filters, or try again in a moment."
    )


class StatementTimeoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.FLEX_WEB_STATEMENT_TIMEOUT_MS
        if not limit or connection.vendor != "postgresql" or request.method not in GUARDED_METHODS:
            return self.get_response(request)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{limit}ms"])
        except DatabaseError:
            # No database to limit: the view meets the same error and answers
            # it its own way (/healthz says the database is down).
            return self.get_response(request)
        try:
            return self.get_response(request)
        finally:
            _reset_statement_timeout()

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_statement_timeout(exception):
            return None
        context = {"message": too_slow_message()}
        return render(request, "jobs/statement_timeout.html", context, status=503)


def _reset_statement_timeout() -> None:
    """Back to the server's default, so that a connection kept for another
    request (CONN_MAX_AGE) carries nothing over; a connection that cannot
    say so is closed, and the next one starts clean."""
    if connection.connection is None:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
    except DatabaseError:
        connection.close()
