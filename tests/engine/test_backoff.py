"""The retry policy is pure: tested without Django, clocks or the network."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs.engine.backoff import (
    Policy,
    backoff_delay,
    decide,
    parse_retry_after,
    parse_retry_delay,
    retry_delay,
    tier_for_attempt,
)

POLICY = Policy(base=5.0, cap=60.0, max_attempts=4)


def test_backoff_ceiling_doubles_from_base_and_stops_at_cap():
    ceilings = [backoff_delay(n, base=5, cap=60, rand=lambda: 1.0) for n in range(1, 7)]
    assert ceilings == [5, 10, 20, 40, 60, 60]


def test_full_jitter_spans_zero_to_the_ceiling():
    assert backoff_delay(3, base=5, cap=60, rand=lambda: 0.0) == 0.0
    assert backoff_delay(3, base=5, cap=60, rand=lambda: 0.5) == 10.0


def test_jitter_with_the_real_random_source_stays_in_range():
    delays = [backoff_delay(4, base=5, cap=60) for _ in range(2000)]
    assert all(0.0 <= d <= 40.0 for d in delays)
    assert min(delays) < 5 and max(delays) > 35  # spread across the range, not a constant


def test_huge_attempt_numbers_do_not_overflow():
    assert backoff_delay(10_000, base=5, cap=60, rand=lambda: 1.0) == 60


def test_attempt_numbers_start_at_one():
    with pytest.raises(ValueError):
        backoff_delay(0, base=5, cap=60)


def test_429_waits_at_least_retry_after():
    assert retry_delay(1, base=5, cap=60, retry_after=30, rand=lambda: 0.1) == 30


def test_retry_after_is_a_floor_even_above_the_cap():
    assert retry_delay(2, base=5, cap=60, retry_after=90, rand=lambda: 1.0) == 90


def test_backoff_longer_than_retry_after_is_kept():
    assert retry_delay(4, base=5, cap=60, retry_after=3, rand=lambda: 1.0) == 40


@pytest.mark.parametrize("kind", ["capacity", "rate_limit", "transient", "timeout", "connection"])
def test_transient_kinds_retry_until_max_attempts(kind):
    assert decide(kind, attempts_used=3, policy=POLICY, rand=lambda: 1.0).action == "retry"
    assert decide(kind, attempts_used=4, policy=POLICY).action == "fail"


@pytest.mark.parametrize("kind", ["bad_request", "not_found", "failed_in_body"])
def test_permanent_kinds_fail_at_once(kind):
    assert decide(kind, attempts_used=1, policy=POLICY).action == "fail"


def test_auth_errors_pause_instead_of_burning_attempts():
    assert decide("auth", attempts_used=1, policy=POLICY).action == "pause"
    assert decide("auth", attempts_used=99, policy=POLICY).action == "pause"


def test_decision_carries_the_delay_with_retry_after_floor():
    decision = decide("rate_limit", attempts_used=1, policy=POLICY, retry_after=12, rand=lambda: 0)
    assert decision.delay == 12


def test_fallback_runs_only_the_last_allowed_attempt_on_standard():
    tiers = [
        tier_for_attempt(requested="flex", fallback_standard=True, attempt_number=n, max_attempts=3)
        for n in (1, 2, 3)
    ]
    assert tiers == ["flex", "flex", "standard"]


def test_no_fallback_without_opt_in_or_off_flex():
    def tier(requested, fallback):
        return tier_for_attempt(
            requested=requested, fallback_standard=fallback, attempt_number=3, max_attempts=3
        )

    assert tier("flex", False) == "flex"
    assert tier("priority", True) == "priority"


@pytest.mark.parametrize(
    ("value", "expected"), [("7s", 7.0), ("0.5s", 0.5), (" 3s ", 3.0), ("7", None), (7, None)]
)
def test_retry_info_durations(value, expected):
    assert parse_retry_delay(value) == expected


def test_retry_after_seconds_and_http_dates():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0.0
