"""The web's statement timeout (jobs/web/statement_timeout.py), on PostgreSQL:
a GET whose statement runs too long is cut off and answered 503 with the
reason, by the pages and by the API; a POST, and anything outside a request,
runs without the limit.

The requests run outside a test transaction (transaction=True), as they do
in production: a cut-off statement must not leave the request's connection
unusable."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import include, path

from jobs.engine import submitting, tokens
from jobs.web.statement_timeout import is_statement_timeout
from tests.support import as_user

pytestmark = [
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="a statement timeout is PostgreSQL's; SQLite has none",
    ),
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls(__name__),
]

LIMIT_MS = 300


def sleep(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [float(request.GET.get("seconds", "5"))])
    return HttpResponse("slept")


def statement_timeout(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_show_statement_timeout())


def _show_statement_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


urlpatterns = [
    path("test/sleep", sleep),
    path("test/statement-timeout", statement_timeout),
    path("", include("flexdash.urls")),
]


@contextlib.contextmanager
def jobs_table_locked() -> Iterator[None]:
    """Another session holds jobs_job, so every statement on it waits (and a
    wait counts against the statement timeout)."""
    with psycopg.connect(**connection.get_connection_params()) as other:
        other.execute("LOCK TABLE jobs_job IN ACCESS EXCLUSIVE MODE")
        yield
        other.rollback()


@override_settings(FLEX_WEB_STATEMENT_TIMEOUT_MS=LIMIT_MS)
def test_a_get_that_runs_too_long_is_cut_off_with_a_503_saying_why(client, ada):
    response = as_user(client, ada).get("/test/sleep", {"seconds": 30})
    assert response.status_code == 503
    text = response.content.decode()
    assert "The database needed more than 0.3 s for this" in text
    assert "Narrow the search or the filters" in text
    # The connection is still good, and back to no limit.
    assert _show_statement_timeout() == "0"


@override_settings(FLEX_WEB_STATEMENT_TIMEOUT_MS=LIMIT_MS)
def test_the_jobs_page_waiting_on_the_database_is_cut_off(client, ada):
    as_user(client, ada)
    with jobs_table_locked():
        response = client.get("/jobs/", {"q": "otters"})
    assert response.status_code == 503
    assert "The database needed more than 0.3 s" in response.content.decode()
    assert client.get("/jobs/", {"q": "otters"}).status_code == 200


@override_settings(FLEX_WEB_STATEMENT_TIMEOUT_MS=LIMIT_MS)
def test_the_api_answers_a_cut_off_statement_with_a_503_in_json(ada):
    submitting.jobs_submit(
        owner=ada, prompts=["otters"], spec=submitting.JobSpec(model="gemini-2.5-flash")
    )
    _, token = tokens.api_token_create(user=ada, name="script")
    api = Client(headers={"Authorization": f"Bearer {token}"})
    with jobs_table_locked():
        response = api.get("/api/jobs", {"q": "otters"})
    assert response.status_code == 503
    assert response.json()["detail"].startswith("The database needed more than 0.3 s")
    assert api.get("/api/jobs", {"q": "otters"}).json()["total"] == 1


@override_settings(FLEX_WEB_STATEMENT_TIMEOUT_MS=LIMIT_MS)
def test_the_limit_holds_for_a_get_only_and_is_reset_after_it(client, ada):
    as_user(client, ada)
    assert client.get("/test/statement-timeout").content == b"300ms"
    assert _show_statement_timeout() == "0"  # what the engine or a command would meet next
    assert client.post("/test/statement-timeout").content == b"0"
    assert client.post("/test/sleep?seconds=0.6").content == b"slept"


@override_settings(FLEX_WEB_STATEMENT_TIMEOUT_MS=0)
def test_0_turns_the_limit_off(client, ada):
    assert as_user(client, ada).get("/test/statement-timeout").content == b"0"


def test_only_a_cancelled_statement_counts_as_a_timeout():
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 50")
        with pytest.raises(OperationalError) as cut_off:
            cursor.execute("SELECT pg_sleep(5)")
        cursor.execute("RESET statement_timeout")
    assert is_statement_timeout(cut_off.value)
    assert not is_statement_timeout(OperationalError("the server closed the connection"))
