"""Pure pacing arithmetic: how much a model may send now, and how what came
back (503s, 429s) changes that. No database, no clock: callers pass `now`.

- Per-minute limits are paced with GCRA (the "generic cell rate algorithm"):
  one timestamp per limit, the earliest time the next unit may go out. Sends
  are spaced evenly at PACE_SHARE of the limit with a small burst, so no
  sliding 60-second window at Google ever holds more than the limit.
- 429s step the rate down (`rate_factor`), at most once per
  RATE_STEP_SECONDS, and it climbs back slowly: 429s are a correction,
  not the pacing signal.
- A 503 storm (a high share of recent calls shed) halves `storm_factor`, which
  scales both concurrency and rate; it doubles back quickly once the share
  falls. Flex sheds some calls all the time, so a steady trickle of 503s is
  weather, not a storm.
- Requests per day reset at midnight Pacific, as Google's do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")

# Pace to this share of a per-minute limit, so clock skew, network jitter and
# the odd retried request never reach it.
PACE_SHARE = 0.95
# The burst allowed after an idle spell, as a share of the per-minute limit.
BURST_SHARE = 0.03
# The longest a dispatcher waits between claims. The schedule may lag `now` by
# this much, so any 60 s window holds at most
# (60 + CLAIM_LATENESS_SECONDS) / interval + burst sends:
# PACE_SHARE * 61/60 + BURST_SHARE = 0.996 of the limit.
CLAIM_LATENESS_SECONDS = 1.0

RATE_STEP_DOWN = 0.8
RATE_STEP_SECONDS = 10.0
RATE_RECOVERY_PER_MINUTE = 0.05
RATE_FACTOR_MIN = 0.1

# Recent outcomes fade with this half-life.
RECENT_HALF_LIFE_SECONDS = 10.0
STORM_MIN_CALLS = 10.0
STORM_ENTER_SHARE = 0.5
STORM_LEAVE_SHARE = 0.3
STORM_STEP_SECONDS = 2.0
STORM_FORGET_SECONDS = 60.0
STORM_FACTOR_MIN = 1 / 64
# In a storm at least this many requests may be in flight, to probe for its end.
STORM_MIN_IN_FLIGHT = 2


@dataclass(frozen=True)
class Limits:
    """A model's quota; 0 means no limit."""

    rpm: int = 0
    tpm: int = 0
    rpd: int = 0


@dataclass(frozen=True)
class Pace:
    """What the dispatchers have learned about a model, as stored on its row."""

    rate_factor: float = 1.0
    rate_factor_at: datetime | None = None
    storm_factor: float = 1.0
    storm_factor_at: datetime | None = None
    recent_at: datetime | None = None
    recent_calls: float = 0.0
    recent_503: float = 0.0
    recent_429: float = 0.0

    def share_503(self) -> float:
        return self.recent_503 / self.recent_calls if self.recent_calls >= 1 else 0.0

    def share_429(self) -> float:
        return self.recent_429 / self.recent_calls if self.recent_calls >= 1 else 0.0


def rate_factor_now(pace: Pace, now: datetime) -> float:
    """The 429 step-down, recovered by the time since it was last lowered."""
    if pace.rate_factor >= 1.0 or pace.rate_factor_at is None:
        return 1.0
    minutes = max(0.0, (now - pace.rate_factor_at).total_seconds()) / 60.0
    return min(1.0, pace.rate_factor + minutes * RATE_RECOVERY_PER_MINUTE)


def _decayed(pace: Pace, now: datetime) -> Pace:
    if pace.recent_at is None:
        return replace(pace, recent_at=now)
    elapsed = max(0.0, (now - pace.recent_at).total_seconds())
    keep = 0.5 ** (elapsed / RECENT_HALF_LIFE_SECONDS)
    return replace(
        pace,
        recent_at=now,
        recent_calls=pace.recent_calls * keep,
        recent_503=pace.recent_503 * keep,
        recent_429=pace.recent_429 * keep,
    )


def observe(pace: Pace, now: datetime, *, calls: int = 0, n503: int = 0, n429: int = 0) -> Pace:
    """Fold finished calls into the recent counts and adjust both factors.

    Also called with no calls when a claim looks at the model, so a storm's
    factor recovers even while almost nothing is being sent."""
    pace = _decayed(pace, now)
    pace = replace(
        pace,
        recent_calls=pace.recent_calls + calls,
        recent_503=pace.recent_503 + n503,
        recent_429=pace.recent_429 + n429,
    )
    if n429:
        pace = _step_rate_down(pace, now)
    elif pace.rate_factor < 1.0 and rate_factor_now(pace, now) >= 1.0:
        pace = replace(pace, rate_factor=1.0, rate_factor_at=None)
    return _steer_storm(pace, now, calls=calls, n503=n503)


def _step_rate_down(pace: Pace, now: datetime) -> Pace:
    # The 429s of one burst arrive together: step once per RATE_STEP_SECONDS.
    lowered_lately = pace.rate_factor < 1.0 and pace.rate_factor_at is not None
    if lowered_lately and (now - pace.rate_factor_at).total_seconds() < RATE_STEP_SECONDS:
        return pace
    lowered = max(RATE_FACTOR_MIN, rate_factor_now(pace, now) * RATE_STEP_DOWN)
    return replace(pace, rate_factor=lowered, rate_factor_at=now)


def in_storm(pace: Pace) -> bool:
    return pace.recent_calls >= STORM_MIN_CALLS and pace.share_503() >= STORM_ENTER_SHARE


def _steer_storm(pace: Pace, now: datetime, *, calls: int, n503: int) -> Pace:
    """Halve on a storm, double back on calm; at most once per STORM_STEP_SECONDS.

    Entering a storm takes the recent share (many calls, so a few unlucky
    ones do not start it); leaving takes the newest calls, so the rate climbs
    back as soon as answers return instead of waiting for the storm's 503s
    to fade from the recent share."""
    since = (
        math.inf if pace.storm_factor_at is None else (now - pace.storm_factor_at).total_seconds()
    )
    if since < STORM_STEP_SECONDS:
        return pace
    newest = n503 / calls if calls else None
    if newest is not None and newest >= STORM_ENTER_SHARE and in_storm(pace):
        if pace.storm_factor <= STORM_FACTOR_MIN:
            return pace
        return replace(
            pace, storm_factor=max(STORM_FACTOR_MIN, pace.storm_factor / 2), storm_factor_at=now
        )
    if pace.storm_factor >= 1.0:
        return pace
    if since >= STORM_FORGET_SECONDS and not calls:
        # Nothing sent for a while: the storm is old news.
        return replace(pace, storm_factor=1.0, storm_factor_at=now)
    calm = (newest is not None and newest < STORM_LEAVE_SHARE) or (
        not calls and pace.recent_calls < STORM_MIN_CALLS
    )
    if calm:
        return replace(pace, storm_factor=min(1.0, pace.storm_factor * 2), storm_factor_at=now)
    return pace


# --- GCRA -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Bucket:
    """One per-minute limit, paced: `per_minute` units, `next_at` the earliest
    time the next unit may go out (None: idle)."""

    per_minute: float
    next_at: datetime | None

    @property
    def interval(self) -> float:
        return 60.0 / (self.per_minute * PACE_SHARE)

    @property
    def burst(self) -> float:
        return max(1.0, math.floor(self.per_minute * BURST_SHARE))

    def _start(self, now: datetime) -> datetime:
        # A claim comes up to CLAIM_LATENESS_SECONDS after a unit fell due;
        # counting from the schedule rather than from `now` keeps that delay
        # from being lost at every claim (at 60 RPM it would halve the rate).
        if self.next_at is None:
            return now
        return max(self.next_at, now - timedelta(seconds=CLAIM_LATENESS_SECONDS))

    def available(self, now: datetime) -> float:
        """Units that may go out at `now`."""
        ahead = (self._start(now) - now).total_seconds()
        return max(0.0, self.burst - ahead / self.interval)

    def take(self, units: float, now: datetime) -> Bucket:
        start = self._start(now)
        return replace(self, next_at=start + timedelta(seconds=units * self.interval))

    def wait(self, now: datetime, units: float = 1.0) -> float:
        """Seconds until `units` may go out."""
        missing = units - self.available(now)
        return max(0.0, missing * self.interval)


# --- The day ----------------------------------------------------------------------------
def pacific_day(now: datetime) -> date:
    return now.astimezone(PACIFIC).date()


def next_pacific_midnight(now: datetime) -> datetime:
    tomorrow = pacific_day(now) + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), tzinfo=PACIFIC)


def day_used(day: date | None, used: int, now: datetime) -> int:
    """Requests already sent today (Pacific); a stored count from an earlier day is 0."""
    return used if day == pacific_day(now) else 0


# --- How much may go now ---------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """What one claim may take for one model, and why it may not take more."""

    requests: int
    state: str  # "normal", "throttled" or "paused"
    reason: str


def effective_rpm(limits: Limits, pace: Pace, now: datetime, fallback_rpm: float) -> float:
    """Requests per minute to pace to; 0 when nothing limits the rate.

    Without a configured limit a throttled model is paced from `fallback_rpm`
    (what the dispatchers could launch at most)."""
    factor = rate_factor_now(pace, now) * pace.storm_factor
    if limits.rpm:
        return limits.rpm * factor
    return fallback_rpm * factor if factor < 1.0 else 0.0


def concurrency_cap(pace: Pace, full: int) -> int | None:
    """How many requests may be in flight for the model; None: no cap beyond the dispatchers'."""
    if pace.storm_factor >= 1.0:
        return None
    return max(STORM_MIN_IN_FLIGHT, math.ceil(full * pace.storm_factor))


def state_label(state: str, limits: Limits) -> str:
    """A state's word for people: without a per-minute limit a model is
    slowed, not throttled to a limit."""
    if state == "throttled" and not (limits.rpm or limits.tpm):
        return "Slowed"
    return state.capitalize()


def describe(
    limits: Limits,
    pace: Pace,
    now: datetime,
    *,
    day_requests: int,
    http_429_last_minute: int = 0,
    rpm_pacing: float = 0.0,
) -> tuple[str, str]:
    """The pacing state ("normal", "throttled" or "paused") and why, in plain
    words with rounded figures. `http_429_last_minute` and `rpm_pacing` (what
    effective_rpm gives) say what a slowed model without a rate limit does:
    there is no limit to give a share of."""
    if limits.rpd and day_requests >= limits.rpd:
        resume = next_pacific_midnight(now)
        hours, rest = divmod(int((resume - now).total_seconds()) // 60, 60)
        return "paused", (
            f"Daily cap of {limits.rpd:,} requests reached; work waits until midnight "
            f"Pacific (in {hours} h {rest} min)."
        )
    reasons = []
    if pace.storm_factor < 1.0:
        reasons.append(
            f"503 storm: {pace.share_503():.0%} of recent calls shed, so it sends at "
            f"{pace.storm_factor:.0%} of its usual rate and concurrency"
        )
    rate = rate_factor_now(pace, now)
    climbing = f"climbing back {RATE_RECOVERY_PER_MINUTE:.0%} a minute"
    if rate < 1.0 and (limits.rpm or limits.tpm):
        reasons.append(f"429s: pacing to {rate:.0%} of the limit, {climbing}")
    elif rate < 1.0:
        seen = (
            f"429s: {http_429_last_minute:,} in the last minute, so"
            if http_429_last_minute
            else "429s earlier, none in the last minute:"
        )
        reasons.append(f"{seen} it sends at most {rpm_pacing:,.0f} requests a minute, {climbing}")
    if reasons:
        return "throttled", "; ".join(reasons) + "."
    if limits.rpm or limits.tpm or limits.rpd:
        return "normal", "Pacing to the configured limits."
    return "normal", "No limits set: sending as fast as the dispatchers allow."
