"""Retry policy as pure functions: no Django, no clock, no SDK.

Exponential backoff with full jitter (AWS Architecture Blog, "Exponential
Backoff And Jitter"), capped, with Retry-After from the server as a floor that
is never undercut, and a maximum number of attempts.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Kinds of failure worth another try: the request may well succeed later.
# A JSON answer that broke its schema is tried again only for jobs that asked for it.
RETRYABLE_KINDS = frozenset(
    {"capacity", "rate_limit", "transient", "timeout", "connection", "bad_output"}
)
# Kinds that say the credentials are wrong: retrying job after job would only
# burn every job's attempts, so the engine pauses dispatch instead.
PAUSING_KINDS = frozenset({"auth"})


@dataclass(frozen=True)
class Policy:
    base: float
    cap: float
    max_attempts: int


@dataclass(frozen=True)
class Decision:
    action: str  # "retry", "fail" or "pause"
    delay: float = 0.0


def backoff_delay(
    attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))] for attempt >= 1."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    ceiling = min(cap, base * 2 ** min(attempt - 1, 62))
    return rand() * ceiling


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """The wait before the next try: jittered backoff, but never less than
    what the server asked for (Retry-After is a floor, even above the cap)."""
    delay = backoff_delay(attempt, base=base, cap=cap, rand=rand)
    if retry_after is not None and retry_after > delay:
        return retry_after
    return delay


def decide(
    kind: str,
    *,
    attempts_used: int,
    policy: Policy,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """What to do after a failed attempt; attempts_used counts that attempt."""
    if kind in PAUSING_KINDS:
        return Decision("pause")
    if kind not in RETRYABLE_KINDS or attempts_used >= policy.max_attempts:
        return Decision("fail")
    delay = retry_delay(
        attempts_used, base=policy.base, cap=policy.cap, retry_after=retry_after, rand=rand
    )
    return Decision("retry", delay)


def tier_for_attempt(
    *, requested: str, fallback_standard: bool, attempt_number: int, max_attempts: int
) -> str:
    """The tier to send: the requested one, except that a flex job which opted
    in runs its last allowed attempt on standard."""
    if fallback_standard and requested == "flex" and attempt_number >= max_attempts:
        return "standard"
    return requested


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def parse_retry_delay(value: object) -> float | None:
    """google.rpc.RetryInfo.retryDelay is a protobuf Duration in JSON: "7s", "0.5s"."""
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    return float(match.group(1)) if match else None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(seconds, 0.0)
