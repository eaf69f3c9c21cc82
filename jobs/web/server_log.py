"""The development server's request log (django.server) keeps what a person
did: the htmx polls of the live pages, a line every 2 seconds per open tab,
go to DEBUG, so after a minute `make run`'s terminal is not all polls.

runserver logs a request after answering it, in the thread that answered it,
and the record carries the socket (`record.request`), not the HttpRequest: its
headers are gone by then. So MarkHtmxPollMiddleware notes, in that thread's
context, whether the request is a poll, and HtmxPollsToDebugFilter (on the
django.server logger, settings.LOGGING) reads the note and clears it. Polls
that fail (4xx, 5xx) keep their level: those a person wants to see.

No Django import: the settings' logging loads the filter before the apps.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

_answering_a_poll: ContextVar[bool] = ContextVar("answering_a_poll", default=False)


def is_htmx_poll(request) -> bool:
    """A GET of a fragment by htmx: HX-Request, and not a boosted page load."""
    headers = request.headers
    return (
        request.method in ("GET", "HEAD")
        and headers.get("HX-Request") == "true"
        and headers.get("HX-Boosted") != "true"
    )


class MarkHtmxPollMiddleware:
    """Notes for the request log whether this request is an htmx poll."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        _answering_a_poll.set(is_htmx_poll(request))
        return self.get_response(request)


class HtmxPollsToDebugFilter(logging.Filter):
    """Lowers a successful poll's request line to DEBUG, and drops it unless the
    logger is set to show DEBUG. Every other line passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        poll = _answering_a_poll.get()
        # Cleared on reading: a keep-alive connection's next request (a static
        # file, answered before the middleware) must not inherit the note.
        _answering_a_poll.set(False)
        status = getattr(record, "status_code", None)
        if not poll or status is None or status >= 400:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
