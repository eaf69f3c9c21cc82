"""Read-side aggregates behind the pages, checked on stored rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from jobs.models import Attempt, Job, Outcome, State
from jobs.web import queries
from tests.support import make_job

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 1, 12, 30, 40, tzinfo=UTC)


def attempt(job, number, *, started, finished=None, status=None, outcome=Outcome.WILL_RETRY):
    return Attempt.objects.create(
        job=job,
        number=number,
        started_at=started,
        finished_at=finished,
        http_status=status,
        tier_requested="flex",
        outcome=outcome,
    )


def test_a_scope_holds_one_owners_jobs_and_attempts_or_everyones(ada, bob):
    mine = make_job(ada)
    theirs = make_job(bob)
    attempt(mine, 1, started=NOW)
    attempt(theirs, 1, started=NOW)
    assert list(queries.Scope(owner_id=ada.pk).jobs()) == [mine]
    assert queries.Scope(owner_id=ada.pk).attempts().get().job == mine
    assert queries.Scope(owner_id=None).jobs().count() == 2
    assert queries.Scope(owner_id=None).attempts().count() == 2


def test_state_counts_count_active_jobs_and_find_the_soonest_retry(ada):
    make_job(ada, State.QUEUED)
    make_job(ada, State.RUNNING)
    make_job(ada, State.RETRYING, next_attempt_at=NOW + timedelta(seconds=30))
    make_job(ada, State.RETRYING, next_attempt_at=NOW + timedelta(seconds=5))
    make_job(ada, State.FAILED)
    counts = queries.state_counts(queries.Scope(owner_id=ada.pk))
    assert (counts.active, counts.total) == (4, 5)
    assert counts.soonest_retry_at == NOW + timedelta(seconds=5)
    assert [(row.state, row.count) for row in counts.rows] == [
        ("queued", 1),
        ("running", 1),
        ("retrying", 2),
        ("succeeded", 0),
        ("failed", 1),
        ("cancelled", 0),
    ]


def test_attempt_stats_average_and_bucket_tried_jobs(ada):
    for attempts in (0, 1, 1, 2, 3, 7):
        make_job(ada, attempts=attempts)
    stats = queries.attempt_stats(queries.Scope(owner_id=ada.pk))
    assert (stats.jobs, stats.attempts, stats.most) == (5, 14, 7)
    assert stats.average == pytest.approx(2.8)
    assert [(b.label, b.jobs) for b in stats.buckets] == [
        ("1", 2),
        ("2", 1),
        ("3", 1),
        ("4", 0),
        ("5+", 1),
    ]


def test_outcomes_are_counted_in_the_minute_they_finished(ada):
    job = make_job(ada)
    minute = NOW.replace(second=0, microsecond=0)
    # Started two minutes earlier, finished in the current minute: counted now.
    attempt(job, 1, started=minute - timedelta(minutes=2), finished=minute + timedelta(seconds=5),
            status=503)  # fmt: skip
    attempt(job, 2, started=minute, finished=minute + timedelta(seconds=6), status=429)
    attempt(job, 3, started=minute - timedelta(minutes=1), finished=minute - timedelta(seconds=1),
            status=200, outcome=Outcome.SUCCEEDED)  # fmt: skip
    # Outside the window, and still in flight: not counted.
    attempt(job, 4, started=minute - timedelta(hours=2), finished=minute - timedelta(hours=2),
            status=503)  # fmt: skip
    attempt(job, 5, started=minute)

    series = queries.outcomes_per_minute(queries.Scope(owner_id=ada.pk), now=NOW, minutes=60)

    assert len(series) == 60
    assert series[-1].minute == minute and series[0].minute == minute - timedelta(minutes=59)
    assert (series[-1].succeeded, series[-1].http_503, series[-1].http_429) == (0, 1, 1)
    assert (series[-2].succeeded, series[-2].http_503, series[-2].http_429) == (1, 0, 0)
    assert sum(m.succeeded + m.http_503 + m.http_429 for m in series) == 3


@pytest.mark.parametrize(
    ("minutes_ago", "window"),
    [(None, 60), (3, 15), (11, 15), (14, 30), (50, 60), (100, 180), (300, 360), (23 * 60, 1440)],
)
def test_the_chart_fits_its_window_to_the_last_days_work(ada, bob, minutes_ago, window):
    """The window holds every minute in which an attempt of the last day finished."""
    if minutes_ago is not None:
        at = NOW - timedelta(minutes=minutes_ago)
        attempt(make_job(ada), 1, started=at - timedelta(seconds=30), finished=at)
        attempt(make_job(ada), 1, started=NOW - timedelta(seconds=5), finished=NOW)
    bob_at = NOW - timedelta(hours=20)
    attempt(make_job(bob), 1, started=bob_at, finished=bob_at)  # not Ada's
    old = NOW - timedelta(days=2)
    attempt(make_job(ada), 1, started=old, finished=old)  # not of the last day
    attempt(make_job(ada), 1, started=NOW - timedelta(hours=3))  # still in flight

    assert queries.chart_minutes(queries.Scope(owner_id=ada.pk), now=NOW, hours=None) == window


def test_a_chosen_chart_window_is_kept_whatever_the_work(ada):
    attempt(make_job(ada), 1, started=NOW - timedelta(minutes=2), finished=NOW)
    assert queries.chart_minutes(queries.Scope(owner_id=ada.pk), now=NOW, hours=6) == 360


def test_error_totals_use_the_jobs_counters_and_the_last_hours_attempts(ada, bob):
    """The last hour: attempts that finished in the last 60 minutes, this one included."""
    job = make_job(ada, http_503=4, http_429=2)
    make_job(bob, http_503=100)
    for number, (minutes_ago, status) in enumerate([(61, 503), (59, 503), (1, 429), (0, 429)]):
        at = NOW - timedelta(minutes=minutes_ago)
        attempt(job, number + 1, started=at - timedelta(seconds=20), finished=at, status=status)
    attempt(job, 5, started=NOW - timedelta(minutes=2), status=503)  # no outcome yet
    totals = queries.error_totals(queries.Scope(owner_id=ada.pk), now=NOW)
    assert totals == queries.ErrorTotals(
        http_503=4, http_429=2, http_503_last_hour=1, http_429_last_hour=2
    )


def test_job_times_split_queued_in_flight_and_backing_off(ada):
    t0 = NOW - timedelta(minutes=10)
    job = make_job(
        ada,
        State.SUCCEEDED,
        submitted_at=t0,
        first_started_at=t0 + timedelta(seconds=3),
        finished_at=t0 + timedelta(seconds=40),
    )
    attempts = [
        attempt(job, 1, started=t0 + timedelta(seconds=3), finished=t0 + timedelta(seconds=5)),
        attempt(job, 2, started=t0 + timedelta(seconds=15), finished=t0 + timedelta(seconds=20)),
        attempt(job, 3, started=t0 + timedelta(seconds=30), finished=t0 + timedelta(seconds=40)),
    ]
    times = queries.job_times(job, attempts, now=NOW)
    assert times == queries.JobTimes(
        queued=timedelta(seconds=3),
        in_flight=timedelta(seconds=17),
        backing_off=timedelta(seconds=20),
    )


def test_job_times_run_to_now_while_the_job_waits_or_runs(ada):
    t0 = NOW - timedelta(seconds=60)
    waiting = make_job(ada, State.RETRYING, submitted_at=t0, first_started_at=t0)
    tries = [attempt(waiting, 1, started=t0, finished=t0 + timedelta(seconds=10))]
    assert queries.job_times(waiting, tries, now=NOW) == queries.JobTimes(
        queued=timedelta(0), in_flight=timedelta(seconds=10), backing_off=timedelta(seconds=50)
    )

    running = make_job(ada, State.RUNNING, submitted_at=t0, first_started_at=t0)
    tries = [attempt(running, 1, started=t0)]
    assert queries.job_times(running, tries, now=NOW) == queries.JobTimes(
        queued=timedelta(0), in_flight=timedelta(seconds=60), backing_off=timedelta(0)
    )

    queued = make_job(ada, State.QUEUED, submitted_at=t0)
    assert queries.job_times(queued, [], now=NOW).queued == timedelta(seconds=60)


def test_the_price_table_gives_every_tier_from_the_standard_price():
    rows = {row.model: row for row in queries.price_table()}
    flash = {
        t.tier: (t.input_per_million, t.output_per_million) for t in rows["gemini-2.5-flash"].tiers
    }
    assert flash == {
        "flex": (Decimal("0.15"), Decimal("1.25")),
        "standard": (Decimal("0.30"), Decimal("2.50")),
        "priority": (Decimal("0.60"), Decimal("5.00")),
    }


def test_the_job_list_carries_the_latest_latency_and_a_prompt_excerpt(ada):
    job = Job.objects.create(owner=ada, input_text="x" * 500)
    Attempt.objects.create(job=job, number=1, tier_requested="flex", latency_seconds=1.5)
    Attempt.objects.create(job=job, number=2, tier_requested="flex", latency_seconds=4.0)
    Attempt.objects.create(job=job, number=3, tier_requested="flex")
    row = queries.job_list(queries.Scope(owner_id=ada.pk)).get()
    assert row.latency == 4.0
    assert len(row.prompt_excerpt) == queries.PROMPT_EXCERPT_CHARS and row.prompt_chars == 500
