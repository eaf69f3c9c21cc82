"""The development server's request log keeps what a person did: a successful
htmx poll of a fragment goes to DEBUG (so out of `make run`'s terminal), every
other request line stays as runserver wrote it."""

from __future__ import annotations

import logging

import pytest
from django.test import RequestFactory

from jobs.web.server_log import HtmxPollsToDebugFilter, MarkHtmxPollMiddleware
from tests.support import HTMX, as_user

SERVER = logging.getLogger("django.server")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log():
    """What django.server's handlers are given, with the settings' filter on the logger."""
    lines = Lines()
    SERVER.addHandler(lines)
    yield lines
    SERVER.removeHandler(lines)


def answered(method: str = "GET", status: int = 200, **headers) -> None:
    """A request through the middleware, then runserver's line for it."""
    request = getattr(RequestFactory(), method.lower())("/runs/1/", headers=headers)
    MarkHtmxPollMiddleware(lambda request: None)(request)
    line = f"{method} /runs/1/ HTTP/1.1"
    # As django.core.servers.basehttp logs it: the socket as `request`, the status.
    extra = {"request": object(), "status_code": status, "server_time": "now"}
    SERVER.info('"%s" %s %s', line, str(status), "123", extra=extra)


def test_a_poll_of_a_fragment_is_not_in_the_request_log(server_log):
    answered(**HTMX)
    assert server_log.records == []


def test_what_a_person_did_stays_in_the_request_log(server_log):
    answered()
    answered("POST", 302, **HTMX)
    answered("GET", 200, **HTMX, HX_Boosted="true")
    assert [(r.levelname, r.getMessage()) for r in server_log.records] == [
        ("INFO", '"GET /runs/1/ HTTP/1.1" 200 123'),
        ("INFO", '"POST /runs/1/ HTTP/1.1" 302 123'),
        ("INFO", '"GET /runs/1/ HTTP/1.1" 200 123'),
    ]


def test_a_failed_poll_stays_at_its_level(server_log):
    answered("GET", 500, **HTMX)
    assert [r.status_code for r in server_log.records] == [500]


def test_polls_are_shown_at_debug_when_the_log_asks_for_debug(server_log):
    SERVER.setLevel(logging.DEBUG)
    try:
        answered(**HTMX)
    finally:
        SERVER.setLevel(logging.INFO)
    assert [(r.levelname, r.levelno) for r in server_log.records] == [("DEBUG", logging.DEBUG)]


def test_the_next_request_on_the_same_thread_is_not_taken_for_a_poll(server_log):
    answered(**HTMX)
    # A static file is answered before the middleware, so nothing notes it.
    SERVER.info('"%s" %s %s', "GET /static/x.css HTTP/1.1", "200", "9", extra={"status_code": 200})
    assert [r.getMessage() for r in server_log.records] == ['"GET /static/x.css HTTP/1.1" 200 9']


def test_lines_without_a_status_pass_unchanged():
    record = logging.LogRecord("django.server", logging.WARNING, "", 0, "Broken pipe", (), None)
    assert HtmxPollsToDebugFilter().filter(record)
    assert record.levelname == "WARNING"


@pytest.mark.django_db
def test_the_live_pages_polls_are_marked_through_the_real_middleware(client, ada, server_log):
    as_user(client, ada).get("/", headers=HTMX)
    SERVER.info('"%s" %s %s', "GET / HTTP/1.1", "200", "1", extra={"status_code": 200})
    client.get("/")
    SERVER.info('"%s" %s %s', "GET / HTTP/1.1", "200", "2", extra={"status_code": 200})
    assert [r.getMessage() for r in server_log.records] == ['"GET / HTTP/1.1" 200 2']
