"""One job: its prompt, sanitised result, attempts, times and cost; live until finished."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from jobs.engine import actions
from jobs.models import Attempt, ErrorKind, Outcome, State
from tests.support import HTMX, as_user, make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def retried_job(ada):
    """Shed once with 503, then answered: the story the dashboard exists to tell."""
    start = timezone.now() - timedelta(seconds=60)
    job = make_job(
        ada,
        attempts=2,
        http_503=1,
        result_text="# Flex\n\nIt is **half** price.",
        tier_served="flex",
        input_tokens=1000,
        output_tokens=2000,
        cost_usd=Decimal("0.00265"),
        standard_cost_usd=Decimal("0.0053"),
        submitted_at=start,
        first_started_at=start + timedelta(seconds=10),
        finished_at=start + timedelta(seconds=30),
    )
    Attempt.objects.create(
        job=job,
        number=1,
        tier_requested="flex",
        started_at=start + timedelta(seconds=10),
        finished_at=start + timedelta(seconds=12),
        latency_seconds=2.0,
        http_status=503,
        google_status="UNAVAILABLE",
        retry_after_seconds=5.0,
        error_kind=ErrorKind.CAPACITY,
        error_message="Simulated 503 UNAVAILABLE.",
        outcome=Outcome.WILL_RETRY,
    )
    Attempt.objects.create(
        job=job,
        number=2,
        tier_requested="flex",
        tier_served="flex",
        started_at=start + timedelta(seconds=20),
        finished_at=start + timedelta(seconds=30),
        latency_seconds=10.0,
        http_status=200,
        outcome=Outcome.SUCCEEDED,
    )
    return job


def test_it_shows_prompt_result_attempts_times_and_cost(client, ada, retried_job):
    page = as_user(client, ada).get(f"/jobs/{retried_job.pk}/").content.decode()

    assert "Explain flex" in page
    assert "<h1>Flex</h1>" in page and "<strong>half</strong>" in page
    first = page[page.index('id="attempt-1"') : page.index('id="attempt-2"')]
    assert "503" in first and "UNAVAILABLE" in first and "5.0 s" in first
    assert "Capacity (503): Simulated 503 UNAVAILABLE." in first
    assert "Will retry" in first
    assert "Succeeded" in page[page.index('id="attempt-2"') :]
    assert "<dt>Queued</dt><dd>10.0 s</dd>" in page
    assert "<dt>In flight</dt><dd>12.0 s</dd>" in page
    assert "<dt>Backing off</dt><dd>8.0 s</dd>" in page
    assert "<dt>Cost</dt><dd>$0.00265</dd>" in page
    assert "$0.0053" in page and "saved $0.00265" in page


def test_a_result_with_script_is_rendered_inert(client, ada):
    job = make_job(
        ada,
        result_text='Hi <script>window.__xss=1</script> <img src=x onerror="window.__xss=2"> '
        "[click](javascript:alert(1))",
    )
    for headers in ({}, HTMX):
        page = as_user(client, ada).get(f"/jobs/{job.pk}/", headers=headers).content.decode()
        result = page[page.index('<div class="markdown result">') :]
        result = result[: result.index("</div>")]
        assert "<script" not in result and "<img" not in result
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in result
        assert 'href="javascript' not in result


def test_another_users_job_is_not_found_in_page_and_fragment(client, bob, retried_job):
    as_user(client, bob)
    assert client.get(f"/jobs/{retried_job.pk}/").status_code == 404
    assert client.get(f"/jobs/{retried_job.pk}/", headers=HTMX).status_code == 404


def test_staff_can_open_anyones_job(client, staff, retried_job):
    page = as_user(client, staff).get(f"/jobs/{retried_job.pk}/")
    assert page.status_code == 200
    assert b"by ada" in page.content


def test_the_live_fragment_renders_alone_and_inside_the_page(client, ada):
    job = make_job(ada, State.RUNNING, attempts=1)
    as_user(client, ada)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    fragment = client.get(f"/jobs/{job.pk}/", headers=HTMX).content.decode()

    assert '<div id="job-live"' in page and "Explain flex" in page
    assert fragment.strip().startswith('<div id="job-live"')
    assert "<html" not in fragment and "Explain flex" not in fragment


@pytest.mark.parametrize("state", [State.QUEUED, State.RUNNING, State.RETRYING])
def test_it_polls_while_the_job_is_active(client, ada, state):
    job = make_job(ada, state, next_attempt_at=timezone.now() + timedelta(seconds=5))
    fragment = as_user(client, ada).get(f"/jobs/{job.pk}/", headers=HTMX).content.decode()
    assert f'hx-get="/jobs/{job.pk}/" hx-trigger="every 2s"' in fragment


@pytest.mark.parametrize("state", [State.SUCCEEDED, State.FAILED, State.CANCELLED])
def test_it_stops_polling_once_the_job_is_finished(client, ada, state):
    job = make_job(ada, state)
    fragment = as_user(client, ada).get(f"/jobs/{job.pk}/", headers=HTMX).content.decode()
    assert "hx-trigger" not in fragment and "hx-get" not in fragment


def test_it_offers_only_the_actions_the_state_allows(client, ada):
    as_user(client, ada)
    buttons = {}
    for state in State.values:
        page = client.get(f"/jobs/{make_job(ada, state).pk}/").content.decode()
        buttons[state] = [
            label
            for label in ("Yes, cancel it", "Retry now", "Retry with 8 more attempts")
            if f">{label}</button>" in page
        ]
        assert ">Run again as a new job</button>" in page
    assert buttons == {
        "queued": ["Yes, cancel it"],
        "running": [],
        "retrying": ["Yes, cancel it", "Retry now"],
        "succeeded": [],
        "failed": ["Retry with 8 more attempts"],
        "cancelled": [],
    }


def test_cancel_asks_first_in_a_danger_button_that_outlives_the_poll(client, ada):
    job = make_job(ada, State.QUEUED)
    page = as_user(client, ada).get(f"/jobs/{job.pk}/", headers=HTMX).content.decode()

    # Without script too: the <details> opens on the first click, the form
    # inside posts on the second; a poll's swap keeps it as it was (hx-preserve).
    confirm = page[page.index('<details class="confirm"') : page.index("</details>")]
    assert 'id="cancel-job" hx-preserve="true"' in confirm
    assert '<summary class="button secondary danger">Cancel job…</summary>' in confirm
    assert "It will not be tried again" in confirm
    assert f'action="/jobs/{job.pk}/cancel/"' in confirm
    assert '<button type="submit" class="danger">Yes, cancel it</button>' in confirm


def _waiting_to_retry(owner, **fields):
    """Shed twice with 503, now waiting for its third attempt."""
    start = timezone.now() - timedelta(seconds=60)
    job = make_job(
        owner,
        State.RETRYING,
        attempts=2,
        http_503=2,
        next_attempt_at=timezone.now() + timedelta(minutes=5),
        submitted_at=start,
        **fields,
    )
    for number in (1, 2):
        Attempt.objects.create(
            job=job,
            number=number,
            tier_requested="flex",
            started_at=start + timedelta(seconds=10 * number),
            finished_at=start + timedelta(seconds=10 * number + 1),
            http_status=503,
            error_kind=ErrorKind.CAPACITY,
            outcome=Outcome.WILL_RETRY,
        )
    return job


def _outcome_cells(page: str) -> list[str]:
    return re.findall(r'<td data-label="Outcome">([^<]*)</td>', page)


def test_a_job_cancelled_while_waiting_to_retry_says_the_retry_never_came(client, ada):
    job = _waiting_to_retry(ada)
    as_user(client, ada).post(f"/jobs/{job.pk}/cancel/")
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    # The first attempt's retry did happen: only the last one's never came.
    assert _outcome_cells(page) == ["Will retry", "Cancelled before its retry"]
    # What was stored when the attempt ended is kept: its error was worth a retry.
    assert job.attempt_log.get(number=2).outcome == Outcome.WILL_RETRY


def test_a_job_cancelled_at_its_deadline_says_the_retry_never_came(client, ada):
    job = _waiting_to_retry(
        ada, deadline_at=timezone.now() - timedelta(seconds=1), deadline_policy="cancel"
    )
    actions.jobs_apply_deadlines()
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert _outcome_cells(page) == ["Will retry", "Cancelled before its retry"]


def test_a_job_still_waiting_to_retry_says_it_will(client, ada):
    job = _waiting_to_retry(ada)
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert _outcome_cells(page) == ["Will retry", "Will retry"]
