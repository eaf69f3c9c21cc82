"""jobs/engine/pacing.py, the pure arithmetic: GCRA never lets a 60-second window
exceed a limit, a 503 storm halves the pace and ends quickly, 429s step it
down once per burst and it climbs back slowly, and the day turns at midnight
Pacific whatever daylight saving does."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from jobs.engine import pacing
from jobs.engine.pacing import Bucket, Limits, Pace

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- GCRA -------------------------------------------------------------------------
def busiest_window(sends: list[tuple[float, float]], window: float = 60.0) -> float:
    """The most units sent within any `window` seconds, over (time, units) in
    time order. The busiest window always ends at a send, so only those are checked."""
    most = total = 0.0
    start = 0
    for time, units in sends:
        total += units
        while sends[start][0] <= time - window:
            total -= sends[start][1]
            start += 1
        most = max(most, total)
    return most


def greedy_sends(per_minute: float, seconds: float, seed: int) -> list[tuple[float, float]]:
    """A sender that takes all it may whenever it looks, at irregular moments,
    with idle spells (so bursts recur), as the claims do: whole units only."""
    rng = random.Random(seed)
    bucket = Bucket(per_minute, None)
    sends: list[tuple[float, float]] = []
    clock = 0.0
    while clock < seconds:
        now = at(clock)
        may = math.floor(bucket.available(now))
        if may:
            bucket = bucket.take(may, now)
            sends.append((clock, may))
        clock += rng.choice([0.05, 0.3, 1.0, 2.5]) if rng.random() > 0.01 else rng.uniform(5, 90)
    return sends


@pytest.mark.parametrize("per_minute", [1, 7, 60, 1000, 30_000])
def test_no_60_second_window_ever_holds_more_than_the_limit(per_minute):
    sends = greedy_sends(per_minute, seconds=3 * 3600, seed=per_minute)
    assert len(sends) > 100
    assert busiest_window(sends) <= per_minute


@pytest.mark.parametrize("per_minute", [300, 1000, 30_000])
def test_a_saturated_sender_gets_close_to_the_limit(per_minute):
    bucket = Bucket(per_minute, None)
    sent = 0
    for tick in range(10 * 60 * 5):  # ten minutes, looking every 0.2 s as the dispatcher does
        now = at(tick / 5)
        may = math.floor(bucket.available(now))
        bucket = bucket.take(may, now)
        sent += may
    assert per_minute * (pacing.PACE_SHARE - 0.01) <= sent / 10 <= per_minute


def test_tokens_of_varied_sizes_stay_under_the_limit():
    rng = random.Random(7)
    bucket = Bucket(100_000, None)
    sends = []
    clock = 0.0
    while clock < 3600:
        now = at(clock)
        prompt = rng.choice([50, 400, 2000, 2900])
        if bucket.available(now) >= prompt:
            bucket = bucket.take(prompt, now)
            sends.append((clock, prompt))
        clock += rng.uniform(0, 0.5)
    assert busiest_window(sends) <= 100_000


def test_wait_says_when_the_next_unit_may_go():
    bucket = Bucket(60, None).take(Bucket(60, None).burst, at(0))
    wait = bucket.wait(at(0))
    assert wait == pytest.approx(bucket.interval)
    assert bucket.available(at(wait)) >= 1
    assert bucket.available(at(wait - 0.01)) < 1


# --- 503 storms -----------------------------------------------------------------------
def storm_batch(pace: Pace, seconds: float) -> Pace:
    return pacing.observe(pace, at(seconds), calls=20, n503=16)


def test_a_storm_halves_the_factor_at_most_once_per_step():
    pace = storm_batch(Pace(), 0)
    assert pace.storm_factor == 0.5
    assert pacing.concurrency_cap(pace, 1000) == 500

    pace = storm_batch(pace, pacing.STORM_STEP_SECONDS / 2)
    assert pace.storm_factor == 0.5

    pace = storm_batch(pace, pacing.STORM_STEP_SECONDS)
    assert pace.storm_factor == 0.25


def test_a_long_storm_bottoms_out_and_still_probes():
    pace = Pace()
    for step in range(40):
        pace = storm_batch(pace, step * pacing.STORM_STEP_SECONDS)
    assert pace.storm_factor == pacing.STORM_FACTOR_MIN
    assert pacing.concurrency_cap(pace, 10) == pacing.STORM_MIN_IN_FLIGHT
    limits = Limits(rpm=640)
    assert pacing.effective_rpm(limits, pace, at(0), 0) == pytest.approx(10)
    state, reason = pacing.describe(
        limits, pace, at(40 * pacing.STORM_STEP_SECONDS), day_requests=0
    )
    assert state == "throttled"
    assert reason.startswith("503 storm: ")


def test_the_factor_climbs_back_to_full_within_a_minute_of_answers():
    pace = Pace()
    clock = 0.0
    while pace.storm_factor > pacing.STORM_FACTOR_MIN:
        pace = storm_batch(pace, clock)
        clock += pacing.STORM_STEP_SECONDS
    storm_ended = clock
    previous = pace.storm_factor
    while pace.storm_factor < 1.0:
        assert clock - storm_ended <= 60, f"still at {pace.storm_factor:.0%} after a calm minute"
        pace = pacing.observe(pace, at(clock), calls=10)
        assert pace.storm_factor >= previous
        previous = pace.storm_factor
        clock += 1.0
    assert pacing.concurrency_cap(pace, 1000) is None
    assert pacing.describe(Limits(), pace, at(clock), day_requests=0)[0] == "normal"


def test_a_steady_trickle_of_503s_is_weather_not_a_storm():
    pace = Pace()
    for second in range(600):
        pace = pacing.observe(pace, at(second), calls=5, n503=1)
    assert pace.storm_factor == 1.0
    assert pace.share_503() == pytest.approx(0.2)


def test_a_few_unlucky_calls_do_not_start_a_storm():
    pace = pacing.observe(Pace(), at(0), calls=4, n503=4)
    assert pace.storm_factor == 1.0


# --- 429s -------------------------------------------------------------------------
def test_429s_step_the_rate_down_once_per_step_interval():
    pace = pacing.observe(Pace(), at(0), calls=5, n429=3)
    assert pace.rate_factor == pacing.RATE_STEP_DOWN
    assert pacing.effective_rpm(Limits(rpm=1000), pace, at(0), 0) == pytest.approx(800)

    # The rest of the same burst: no further step.
    for second in range(1, int(pacing.RATE_STEP_SECONDS)):
        pace = pacing.observe(pace, at(second), calls=5, n429=2)
    assert pace.rate_factor == pacing.RATE_STEP_DOWN
    assert pace.rate_factor_at == at(0)

    later = at(pacing.RATE_STEP_SECONDS)
    pace = pacing.observe(pace, later, calls=5, n429=1)
    recovered = (
        pacing.RATE_STEP_DOWN + pacing.RATE_STEP_SECONDS / 60 * pacing.RATE_RECOVERY_PER_MINUTE
    )
    assert pace.rate_factor == pytest.approx(recovered * pacing.RATE_STEP_DOWN)
    assert pace.rate_factor_at == later


def test_429s_for_minutes_on_end_step_down_to_the_floor_and_no_further():
    pace = Pace()
    steps = set()
    for second in range(600):
        pace = pacing.observe(pace, at(second), calls=2, n429=1)
        steps.add(pace.rate_factor_at)
    assert len(steps) == math.ceil(600 / pacing.RATE_STEP_SECONDS)
    assert pace.rate_factor == pytest.approx(pacing.RATE_FACTOR_MIN)


def test_the_rate_climbs_back_slowly_and_then_forgets_the_429s():
    pace = pacing.observe(Pace(), at(0), calls=1, n429=1)
    pace = pacing.observe(pace, at(pacing.RATE_STEP_SECONDS), calls=1, n429=1)
    lowest = pace.rate_factor
    since = pace.rate_factor_at

    one_minute = since + timedelta(minutes=1)
    assert pacing.rate_factor_now(pace, one_minute) == pytest.approx(
        lowest + pacing.RATE_RECOVERY_PER_MINUTE
    )
    state, reason = pacing.describe(Limits(rpm=100), pace, one_minute, day_requests=0)
    assert state == "throttled" and reason.startswith("429s: pacing to ")

    minutes_to_full = (1 - lowest) / pacing.RATE_RECOVERY_PER_MINUTE
    assert minutes_to_full > 5  # slowly: 429s are a correction, not the pacing signal
    almost = since + timedelta(minutes=minutes_to_full - 0.5)
    assert pacing.rate_factor_now(pace, almost) < 1.0
    full = since + timedelta(minutes=minutes_to_full + 0.01)
    assert pacing.rate_factor_now(pace, full) == 1.0

    pace = pacing.observe(pace, full, calls=1)
    assert (pace.rate_factor, pace.rate_factor_at) == (1.0, None)


# --- The Pacific day -----------------------------------------------------------------
def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "day", "next_midnight"),
    [
        # Spring forward (Sunday 8 March 2026, 02:00 PST becomes 03:00 PDT): a 23-hour day.
        (utc(2026, 3, 8, 7, 59, 59), date(2026, 3, 7), utc(2026, 3, 8, 8)),
        (utc(2026, 3, 8, 8), date(2026, 3, 8), utc(2026, 3, 9, 7)),
        (utc(2026, 3, 8, 10, 30), date(2026, 3, 8), utc(2026, 3, 9, 7)),
        # Fall back (Sunday 1 November 2026, 02:00 PDT becomes 01:00 PST): a 25-hour day.
        (utc(2026, 11, 1, 6, 59), date(2026, 10, 31), utc(2026, 11, 1, 7)),
        (utc(2026, 11, 1, 7), date(2026, 11, 1), utc(2026, 11, 2, 8)),
        (utc(2026, 11, 1, 8, 30), date(2026, 11, 1), utc(2026, 11, 2, 8)),  # 01:30 PDT
        (utc(2026, 11, 1, 9, 30), date(2026, 11, 1), utc(2026, 11, 2, 8)),  # 01:30 PST
        # An ordinary summer evening in Pacific is already tomorrow in UTC.
        (utc(2026, 7, 1, 3), date(2026, 6, 30), utc(2026, 7, 1, 7)),
    ],
)
def test_the_day_turns_at_midnight_pacific(now, day, next_midnight):
    assert pacing.pacific_day(now) == day
    resume = pacing.next_pacific_midnight(now)
    assert resume == next_midnight
    local = resume.astimezone(pacing.PACIFIC)
    assert (local.hour, local.minute) == (0, 0)
    assert pacing.pacific_day(resume) == day + timedelta(days=1)


def test_yesterdays_count_does_not_use_todays_cap():
    just_after = utc(2026, 3, 8, 8)
    assert pacing.day_used(date(2026, 3, 7), 500, just_after) == 0
    assert pacing.day_used(date(2026, 3, 8), 500, just_after) == 500
    assert pacing.day_used(None, 500, just_after) == 0


def test_a_spent_cap_pauses_until_midnight_pacific_across_a_short_day():
    state, reason = pacing.describe(Limits(rpd=500), Pace(), utc(2026, 3, 8, 8), day_requests=500)
    assert state == "paused"
    assert reason == (
        "Daily cap of 500 requests reached; work waits until midnight Pacific (in 23 h 0 min)."
    )
    state, _ = pacing.describe(Limits(rpd=500), Pace(), utc(2026, 3, 8, 8), day_requests=499)
    assert state == "normal"
