"""Pacing inside the claim: per-model limits kept in the database, the 429
step-down, the storm's concurrency cap and the daily cap, with the clock
held still so each figure is exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from jobs.engine import capacity, claiming, pacing, recording
from jobs.engine.gemini import GeminiError, GeminiResult
from jobs.models import Attempt, Job, ModelLimit, State
from tests.support import submit

pytestmark = pytest.mark.django_db

FLASH = "gemini-2.5-flash"
LITE = "gemini-2.5-flash-lite"
# 10:00 in Los Angeles (PDT, UTC-7) on a Tuesday.
T0 = datetime(2026, 6, 2, 17, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch):
    """timezone.now(), held still until moved: clock.now = ..., clock.tick(seconds)."""

    class Clock:
        now = T0

        def tick(self, seconds: float) -> None:
            self.now += timedelta(seconds=seconds)

    held = Clock()
    monkeypatch.setattr(timezone, "now", lambda: held.now)
    return held


def queue(owner, count: int, *, model: str = FLASH, prompt: str = "p") -> list[Job]:
    """`count` jobs of `model`, their prompts numbered."""
    return submit(owner, *(f"{prompt} {n}" for n in range(count)), model=model)


def claim(limit: int = 1000):
    return claiming.jobs_claim(owner="d1", limit=limit, lease_seconds=60)


def limit(model: str = FLASH, **limits) -> None:
    ModelLimit.objects.filter(model=model).update(**limits)


def test_every_flex_model_has_a_row_and_no_limit_by_default(ada, clock):
    assert set(ModelLimit.objects.values_list("model", flat=True)) >= {FLASH, LITE}
    queue(ada, 40)
    assert len(claim()) == 40


def test_rpm_paces_evenly_after_a_small_burst(ada, clock, settings):
    settings.FLEX_RPM_LIMIT = 600
    queue(ada, 100)
    burst = len(claim())
    assert burst == 18  # 3% of the limit at once
    assert claim() == []
    clock.tick(1)
    assert len(claim()) == 9  # 95% of 600 a minute is 9.5 a second
    clock.tick(59)
    # An idle minute earns the burst and a late claim's second, never a minute's worth.
    assert len(claim()) == 27


def test_a_row_limit_overrides_the_environment_and_zero_means_none(ada, clock, settings):
    settings.FLEX_RPM_LIMIT = 600
    limit(rpm_limit=0)
    queue(ada, 50)
    assert len(claim()) == 50


def test_a_model_at_its_limit_does_not_hold_up_another(ada, clock):
    limit(FLASH, rpm_limit=60)
    queue(ada, 5, model=FLASH)
    queue(ada, 5, model=LITE)
    claims = claim()
    assert sorted(c.model for c in claims) == [FLASH] + [LITE] * 5
    clock.tick(0.1)
    assert claim() == []


def test_tokens_per_minute_count_the_prompt_before_it_is_sent(ada, clock):
    limit(tpm_limit=40_000)  # burst: 1,200 tokens
    queue(ada, 10, prompt="x" * 1590)  # 398 tokens each
    assert len(claim()) == 3
    clock.tick(60)
    huge = queue(ada, 1, prompt="y" * 40_000)[0]  # 10,000 tokens, more than any burst
    Job.objects.exclude(pk=huge.pk).filter(state=State.QUEUED).update(
        next_attempt_at=T0 + timedelta(hours=1)
    )
    (alone,) = claim()
    assert alone.job_id == huge.pk  # an idle bucket lets one big prompt go alone


def test_the_weather_counts_the_minutes_requests_from_what_each_attempt_sent(ada, clock):
    queue(ada, 3, prompt="x" * 398)  # "x...x 0": 400 characters, 100 tokens each
    queue(ada, 2, model=LITE, prompt="y" * 798)
    claimed = claim()
    assert len(claimed) == 5
    recording.attempts_record(
        owner="d1", outcomes=[_outcome(c, _rate_limited()) for c in claimed[:1]]
    )
    sent = Attempt.objects.values_list("model", "prompt_chars").order_by("id")
    assert sorted(sent) == [(FLASH, 400)] * 3 + [(LITE, 800)] * 2
    # What the job says now does not rewrite what was sent (nor is it read).
    Job.objects.update(model="gemini-2.5-pro", input_text="z")
    weather = {w.model: w for w in capacity.weather()}
    assert (weather[FLASH].requests_last_minute, weather[FLASH].tokens_last_minute) == (3, 300)
    assert (weather[LITE].requests_last_minute, weather[LITE].tokens_last_minute) == (2, 400)
    assert weather[claimed[0].model].http_429_last_minute == 1
    (lite,) = capacity.weather(models=[LITE])
    assert lite.requests_last_minute == 2
    clock.tick(61)
    assert all(w.requests_last_minute == 0 for w in capacity.weather())


def test_the_daily_cap_waits_for_midnight_pacific(ada, clock):
    limit(rpd_limit=5)
    queue(ada, 8)
    first = claim()
    assert len(first) == 5
    recording.attempts_record(owner="d1", outcomes=[_outcome(c) for c in first])
    clock.tick(3600)
    assert claim() == []
    assert claiming.seconds_until_next_due() is None  # no dispatcher stays up for it
    (flash,) = [w for w in capacity.weather() if w.model == FLASH]
    assert flash.state == "paused" and "midnight Pacific" in flash.reason
    assert flash.resumes_at == datetime(2026, 6, 3, 7, 0, tzinfo=UTC)  # 00:00 PDT

    clock.now = datetime(2026, 6, 3, 7, 0, 1, tzinfo=UTC)
    assert len(claim()) == 3
    row = ModelLimit.objects.get(model=FLASH)
    assert (row.day.isoformat(), row.day_requests) == ("2026-06-03", 3)


def _outcome(job_claim, error: GeminiError | None = None):
    result = error or GeminiResult("ok", "r1", 10, 5, 0, "flex")
    return recording.AttemptOutcome(job_claim, result, 0.1)


def _rate_limited():
    return GeminiError("rate_limit", "Resource exhausted", http_status=429, retry_after=1)


def test_429s_step_the_rate_down_once_per_burst_and_it_recovers_slowly(ada, clock, settings):
    settings.FLEX_RPM_LIMIT = 600
    queue(ada, 200)
    first = claim()
    recording.attempts_record(
        owner="d1", outcomes=[_outcome(c, _rate_limited()) for c in first[:5]]
    )
    row = ModelLimit.objects.get(model=FLASH)
    assert row.rate_factor == pytest.approx(0.8)
    assert row.recent_429 == 5

    clock.tick(5)  # the rest of the same burst: no second step
    recording.attempts_record(
        owner="d1", outcomes=[_outcome(c, _rate_limited()) for c in first[5:]]
    )
    assert ModelLimit.objects.get(model=FLASH).rate_factor == pytest.approx(0.8)

    clock.tick(2)  # paced at ~80%: 7.6 a second, and a smaller burst (14)
    assert len(claim()) == 14 + 7  # the burst, and the second a late claim may make up
    clock.tick(1)
    assert len(claim()) == 8  # 7.6 a second, and the fraction left from the last claim

    clock.tick(3 * 60)  # +5% a minute: back to 95% of the limit
    row = ModelLimit.objects.get(model=FLASH)
    assert pacing.rate_factor_now(capacity.pace_of(row), clock.now) == pytest.approx(0.95, abs=0.01)
    (flash,) = [w for w in capacity.weather() if w.model == FLASH]
    assert flash.state == "throttled" and "429" in flash.reason


def test_a_storm_caps_how_many_are_in_flight(ada, clock, settings):
    settings.FLEX_MAX_IN_FLIGHT = 128
    settings.FLEX_LAUNCH_RATE = 1000  # so the storm's lowered rate is not what binds
    queue(ada, 20)
    limit(storm_factor=1 / 32, storm_factor_at=T0)
    assert len(claim()) == 4  # 128 / 32
    clock.tick(1)
    assert claim() == []  # four still in flight
    (flash,) = [w for w in capacity.weather() if w.model == FLASH]
    assert (flash.state, flash.in_flight, flash.concurrency_cap) == ("throttled", 4, 4)


def test_shed_calls_start_a_storm_and_answers_end_it(ada, clock):
    queue(ada, 60)
    claims = claim()
    shed = GeminiError("capacity", "overloaded", http_status=503)
    recording.attempts_record(owner="d1", outcomes=[_outcome(c, shed) for c in claims[:30]])
    assert ModelLimit.objects.get(model=FLASH).storm_factor == 0.5
    clock.tick(2)
    recording.attempts_record(owner="d1", outcomes=[_outcome(c) for c in claims[30:32]])
    assert ModelLimit.objects.get(model=FLASH).storm_factor == 1.0
    assert Attempt.objects.filter(http_status=503).count() == 30
