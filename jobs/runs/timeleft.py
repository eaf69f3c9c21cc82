"""How long a run has left, as pure arithmetic: no Django, no clock, no database.

The run's rate (answers a minute over the last minutes) says how long the
jobs that can be sent now will take. It says nothing about jobs waiting out
a backoff: at the tail of a run, two jobs waiting 8 s for their retry at a
rate of 120 a minute would read "about 1 s". When the waits are what is left,
the page counts them and says when the next is due instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

FINISHED = "finished"  # nothing is active
RATE = "rate"  # the rate's figure is the honest one
WAITING = "waiting"  # the retries' waits outlast what the rate says
UNKNOWN = "unknown"  # no rate yet, and nothing waits for a retry


@dataclass(frozen=True)
class TimeLeft:
    kind: str
    queued: int
    running: int
    retrying: int
    eta: timedelta | None = None  # at this rate (kind RATE)
    next_retry_in: timedelta | None = None  # the soonest retry, never negative

    @property
    def active(self) -> int:
        return self.queued + self.running + self.retrying


def time_left(
    *,
    queued: int,
    running: int,
    retrying: int,
    rate_per_minute: float | None,
    next_retry_in: float | None,
    last_retry_in: float | None,
) -> TimeLeft:
    """What the run's time left is made of. next_retry_in and last_retry_in are
    the seconds until the soonest and the latest waiting retry are due
    (negative when overdue; None when none waits)."""
    counts = {"queued": queued, "running": running, "retrying": retrying}
    active = queued + running + retrying
    if not active:
        return TimeLeft(FINISHED, **counts)
    eta_seconds = active * 60 / rate_per_minute if rate_per_minute else None
    soonest = None if next_retry_in is None else timedelta(seconds=max(0.0, next_retry_in))
    if retrying and (eta_seconds is None or eta_seconds <= max(0.0, last_retry_in or 0.0)):
        # The last retry is due later than the rate would finish everything:
        # the run ends no sooner than its waits do.
        return TimeLeft(WAITING, **counts, next_retry_in=soonest)
    if eta_seconds is None:
        return TimeLeft(UNKNOWN, **counts)
    return TimeLeft(RATE, **counts, eta=timedelta(seconds=eta_seconds), next_retry_in=soonest)
