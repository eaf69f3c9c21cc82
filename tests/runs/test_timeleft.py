"""jobs/runs/timeleft.py: the rate's figure only when it is the honest one; at
the tail of a run, the jobs waiting out a backoff and when the next is due."""

from __future__ import annotations

from datetime import timedelta

from jobs.runs.timeleft import FINISHED, RATE, UNKNOWN, WAITING, time_left


def left(**given):
    figures = {
        "queued": 0,
        "running": 0,
        "retrying": 0,
        "rate_per_minute": None,
        "next_retry_in": None,
        "last_retry_in": None,
    }
    return time_left(**(figures | given))


def test_nothing_active_is_finished_whatever_the_rate():
    assert left(rate_per_minute=30.0).kind == FINISHED


def test_a_rate_divides_the_active_jobs_when_nothing_waits_for_a_retry():
    result = left(queued=50, running=10, rate_per_minute=30.0)
    assert (result.kind, result.eta) == (RATE, timedelta(minutes=2))


def test_two_jobs_waiting_8_s_at_120_a_minute_say_they_wait_not_about_1_s():
    result = left(retrying=2, rate_per_minute=120.0, next_retry_in=8.0, last_retry_in=11.0)
    assert result.kind == WAITING
    assert (result.retrying, result.next_retry_in, result.eta) == (2, timedelta(seconds=8), None)


def test_the_waits_decide_when_the_last_retry_is_due_after_the_rate_would_finish():
    # 3 active at 60 a minute: 3 s by the rate, but the last retry is due in 5 s.
    result = left(queued=1, running=1, retrying=1, rate_per_minute=60.0, last_retry_in=5.0)
    assert (result.kind, result.queued, result.running) == (WAITING, 1, 1)


def test_the_rate_stays_when_the_work_ahead_outlasts_the_waits():
    # 500 active at 100 a minute: 5 min; two retries due within 20 s change nothing.
    result = left(
        queued=498, retrying=2, rate_per_minute=100.0, next_retry_in=8.0, last_retry_in=20.0
    )
    assert (result.kind, result.eta, result.retrying) == (RATE, timedelta(minutes=5), 2)


def test_retries_with_no_rate_yet_are_counted_not_unknown():
    result = left(retrying=3, next_retry_in=4.0, last_retry_in=9.0)
    assert (result.kind, result.next_retry_in) == (WAITING, timedelta(seconds=4))


def test_an_overdue_retry_is_due_now_not_in_the_past():
    result = left(retrying=1, next_retry_in=-3.0, last_retry_in=-3.0)
    assert (result.kind, result.next_retry_in) == (WAITING, timedelta(0))


def test_queued_jobs_without_a_rate_are_unknown_until_jobs_finish():
    result = left(queued=7)
    assert (result.kind, result.eta, result.active) == (UNKNOWN, None, 7)


def test_a_rate_of_zero_is_no_rate():
    assert left(queued=7, rate_per_minute=0.0).kind == UNKNOWN
