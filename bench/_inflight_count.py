"""What bench/inflight.py reads from a route's tables at the end: nothing lost, nothing run twice.

Plain SQL on the route's database (jobs_job, jobs_attempt), no process
started or stopped here: jobs succeeded and lost, jobs with more than one
attempt, latency, the launch span from first to last claim, and the claim
loop's real period from the distinct Attempt.started_at values. A helper
module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
from typing import Any

from bench import _databases, common


def check(db: _databases.BenchDatabase, n: int) -> dict[str, Any]:
    """Nothing lost, nothing run twice: straight from the tables."""
    succeeded = int(db.scalar("SELECT COUNT(*) FROM jobs_job WHERE state = 'succeeded'") or 0)
    latency = db.rows(
        "SELECT AVG(latency_seconds), MAX(latency_seconds), MIN(started_at), MAX(started_at) "
        "FROM jobs_attempt"
    )[0]
    first, last = (_as_datetime(v) for v in latency[2:4])
    return {
        "succeeded": succeeded,
        "lost": n - succeeded,
        "jobs_with_extra_attempts": int(
            db.scalar("SELECT COUNT(*) FROM jobs_job WHERE attempts > 1") or 0
        ),
        "attempt_rows": int(db.scalar("SELECT COUNT(*) FROM jobs_attempt") or 0),
        "attempt_outcomes": dict(
            db.rows("SELECT outcome, COUNT(*) FROM jobs_attempt GROUP BY outcome")
        ),
        "latency_mean_seconds": common.rounded(latency[0]),
        "latency_max_seconds": common.rounded(latency[1]),
        # First claim to last claim: how fast the dispatcher really launched.
        "launch_span_seconds": common.rounded((last - first).total_seconds())
        if first and last
        else None,
        **_claim_batches(db),
    }


def _claim_batches(db: _databases.BenchDatabase) -> dict[str, Any]:
    """The dispatcher's claims as the Attempt rows show them: one claim gives
    its attempts one started_at, so the gaps between distinct started_at
    values are the claim loop's real period."""
    rows = db.rows("SELECT started_at, COUNT(*) FROM jobs_attempt GROUP BY started_at")
    times = sorted((_as_datetime(at), n) for at, n in rows)
    gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(times)]
    if not gaps:
        return {"claim_batches": len(times)}
    return {
        "claim_batches": len(times),
        "claim_batch_mean": round(sum(n for _, n in times) / len(times), 1),
        "claim_period_mean_seconds": round(statistics.fmean(gaps), 3),
        "claim_period_median_seconds": round(statistics.median(gaps), 3),
        "claim_period_p90_seconds": round(statistics.quantiles(gaps, n=10)[-1], 3)
        if len(gaps) > 1
        else round(gaps[0], 3),
        "claim_period_max_seconds": round(max(gaps), 3),
    }


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))
