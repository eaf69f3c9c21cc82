"""The overview (home page): counts, errors, chart and engine, polled while
anything is active."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jobs.engine import control
from jobs.models import Attempt, DispatcherSlot, Outcome, State
from tests.support import HTMX, as_user, make_job

pytestmark = pytest.mark.django_db


def test_it_counts_my_jobs_by_state(client, ada, bob):
    make_job(ada, State.QUEUED)
    make_job(ada, State.SUCCEEDED)
    make_job(ada, State.SUCCEEDED)
    retrying = make_job(ada, State.RETRYING, next_attempt_at=timezone.now() + timedelta(seconds=42))
    make_job(bob, State.FAILED)

    response = as_user(client, ada).get("/")

    counts = response.context["summary"].counts
    assert counts.by_state == {"queued": 1, "succeeded": 2, "retrying": 1}
    assert counts.soonest_retry_at == retrying.next_attempt_at
    page = response.content.decode()
    assert "Waiting to retry" in page
    assert "next retry" in page
    assert "in 42 s" in page or "in 41 s" in page


def test_staff_see_everyone_and_can_filter_by_user(client, ada, bob, staff):
    make_job(ada, State.QUEUED)
    make_job(bob, State.FAILED)
    as_user(client, staff)

    everyone = client.get("/").context["summary"].counts.by_state
    only_bob = client.get("/?user=bob").context["summary"].counts.by_state

    assert everyone == {"queued": 1, "failed": 1}
    assert only_bob == {"failed": 1}


def test_a_researcher_cannot_filter_by_another_user(client, ada, bob):
    make_job(bob, State.FAILED)
    response = as_user(client, ada).get("/?user=bob")
    assert response.context["summary"].counts.by_state == {}
    assert b'name="user"' not in response.content


def test_it_shows_503_and_429_totals_and_the_last_hour(client, ada):
    now = timezone.now()
    job = make_job(ada, http_503=3, http_429=1, attempts=5)
    for number, (status, age) in enumerate([(503, 10), (503, 90), (429, 5), (200, 1)], start=1):
        Attempt.objects.create(
            job=job,
            number=number,
            started_at=now - timedelta(minutes=age),
            finished_at=now - timedelta(minutes=age),
            http_status=status,
            tier_requested="flex",
            outcome=Outcome.SUCCEEDED if status == 200 else Outcome.WILL_RETRY,
        )

    errors = as_user(client, ada).get("/").context["summary"].errors

    assert (errors.http_503, errors.http_429) == (3, 1)
    assert (errors.http_503_last_hour, errors.http_429_last_hour) == (1, 1)


def test_it_draws_the_outcomes_chart_as_inline_svg(client, ada):
    now = timezone.now()
    job = make_job(ada)
    Attempt.objects.create(
        job=job,
        number=1,
        started_at=now,
        finished_at=now,
        http_status=503,
        tier_requested="flex",
        outcome=Outcome.WILL_RETRY,
    )
    page = as_user(client, ada).get("/?hours=1").content.decode()
    assert "<svg" in page and page.count('class="series series-') >= 3
    assert "503 capacity: <strong>1</strong>" in page
    assert "1 minute with activity" in page


def test_the_chart_fits_its_window_to_the_work_unless_one_is_chosen(client, ada):
    now = timezone.now()
    Attempt.objects.create(
        job=make_job(ada),
        number=1,
        started_at=now - timedelta(minutes=4),
        finished_at=now - timedelta(minutes=4),
        http_status=200,
        tier_requested="flex",
        outcome=Outcome.SUCCEEDED,
    )
    as_user(client, ada)

    fitted = client.get("/")
    chosen = client.get("/?hours=3")

    assert len(fitted.context["summary"].outcomes) == 15
    assert "(the last 15 minutes, fitted to recent work)" in fitted.content.decode()
    assert '<option value="fit" selected>fitted to recent work</option>' in fitted.content.decode()
    assert len(chosen.context["summary"].outcomes) == 180
    assert "(the last 3 hours)" in chosen.content.decode()
    assert "over the last 3 hours</title>" in chosen.content.decode()


def test_the_engine_heartbeat_is_a_time_that_keeps_counting(client, ada):
    now = timezone.now()
    DispatcherSlot.objects.create(
        number=0, expires_at=now + timedelta(seconds=30), heartbeat_at=now - timedelta(seconds=20)
    )
    page = as_user(client, ada).get("/").content.decode()
    assert re.search(
        r'last heartbeat <time [^>]*data-relative="ago"[^>]*>2\d seconds ago</time>', page
    )


def test_it_says_dispatch_is_paused_and_why(client, ada):
    control.dispatch_pause(reason="Gemini refused the API key.")
    page = as_user(client, ada).get("/").content.decode()
    assert "Dispatch is paused" in page
    assert "Gemini refused the API key." in page


def test_it_shows_requests_in_flight_from_live_dispatchers(client, ada):
    now = timezone.now()
    DispatcherSlot.objects.create(number=0, expires_at=now + timedelta(seconds=30), in_flight=7)
    DispatcherSlot.objects.create(number=1, expires_at=now - timedelta(seconds=30), in_flight=99)
    engine = as_user(client, ada).get("/").context["summary"].engine
    assert (engine.dispatchers, engine.in_flight) == (1, 7)


def test_the_fragment_renders_alone_and_inside_the_page(client, ada):
    make_job(ada, State.RUNNING)
    as_user(client, ada)

    page = client.get("/")
    fragment = client.get("/", headers=HTMX)

    assert page.templates[0].name == "jobs/overview.html"
    assert b"<html" in page.content and b'id="overview-live"' in page.content
    assert b"<html" not in fragment.content
    assert fragment.content.strip().startswith(b'<div id="overview-live"')
    assert "HX-Request" in fragment["Vary"]


def test_it_polls_while_a_job_is_active(client, ada):
    make_job(ada, State.RETRYING, next_attempt_at=timezone.now())
    fragment = as_user(client, ada).get("/", headers=HTMX).content.decode()
    assert 'hx-trigger="every 2s, jobs-changed from:body"' in fragment


def test_it_stops_polling_when_nothing_is_active_but_wakes_on_a_submission(client, ada):
    make_job(ada, State.SUCCEEDED)
    make_job(ada, State.CANCELLED)
    fragment = as_user(client, ada).get("/", headers=HTMX).content.decode()
    assert "every 2s" not in fragment
    assert 'hx-trigger="jobs-changed from:body"' in fragment


def test_a_submission_marks_the_next_page_so_idle_pages_wake_up(client, ada):
    as_user(client, ada)
    client.post("/jobs/new/", {"prompt": "hi", "model": "gemini-2.5-flash", "tier": "flex"})
    page = client.get("/jobs/").content.decode()
    assert "data-jobs-changed" in page
    assert "data-jobs-changed" not in client.get("/jobs/").content.decode()


@override_settings(GEMINI_API_KEY="AIzaSy-very-secret-test-key")
def test_no_page_or_fragment_shows_the_gemini_key(client, ada, staff):
    job = make_job(ada, State.FAILED, last_error="HTTP 401 UNAUTHENTICATED: bad key")
    for user in (ada, staff):
        as_user(client, user)
        for path in ("/", "/jobs/", "/jobs/new/", f"/jobs/{job.pk}/"):
            for headers in ({}, HTMX):
                response = client.get(path, headers=headers)
                assert response.status_code == 200
                assert b"very-secret" not in response.content


@pytest.mark.parametrize(
    ("route", "shown"),
    [("interactions", "Interactions (beta)"), ("generate_content", "generateContent (stable)")],
)
def test_it_names_the_gemini_route_in_use(client, ada, route, shown):
    with override_settings(GEMINI_API=route, GEMINI_BASE_URL="http://127.0.0.1:8089"):
        page = as_user(client, ada).get("/").content.decode()
    assert shown in page
    assert "via http://127.0.0.1:8089" in page
