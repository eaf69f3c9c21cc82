"""What bench/throughput.py counts for a part, from its samples and its tables.

Figures only, nothing started or stopped here: database timestamps as Unix
seconds, finished jobs per minute over the whole run and the steady 10-90 %
stretch, wasted calls from the simulator's counters, requests per sliding
minute from the samples, and the end-of-part counts read from FlexDash's
tables (jobs_job, jobs_attempt) or the naive design's (bench_naive_job). A
helper module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from bench import _databases, common

FINISHED = ("succeeded", "failed", "cancelled")


def unix_seconds(value: Any) -> float | None:
    """A timestamp from the database as Unix seconds (SQLite: naive UTC text)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(str(value))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def rates(offsets: list[float], n: int) -> dict[str, Any]:
    """Whole-run and steady-state (10 % to 90 % of n finished) rates, per minute.

    `offsets` are finish times in seconds from the cluster's start."""
    times = sorted(offsets)
    out: dict[str, Any] = {"finished": len(times)}
    if not times:
        return out
    last = times[-1]
    out["last_finished_seconds"] = round(last, 1)
    out["whole_run_per_min"] = round(len(times) / last * 60, 1) if last > 0 else None
    i10, i90 = math.ceil(0.1 * n), math.ceil(0.9 * n)
    if len(times) >= i90 and i90 > i10:
        t10, t90 = times[i10 - 1], times[i90 - 1]
        out["t10_seconds"], out["t90_seconds"] = round(t10, 1), round(t90, 1)
        if t90 > t10:
            out["steady_per_min"] = round((i90 - i10) / (t90 - t10) * 60, 1)
    return out


def wasted(stats: dict[str, Any], finished: int) -> dict[str, Any]:
    by_status = stats.get("by_status", {})
    n503, n429 = int(by_status.get("503", 0)), int(by_status.get("429", 0))
    requests = int(stats.get("requests", 0))
    answered = sum(int(v) for v in by_status.values())
    return {
        "requests": requests,
        "http_200": int(by_status.get("200", 0)),
        "http_503": n503,
        "http_429": n429,
        "other_statuses": {k: v for k, v in by_status.items() if k not in ("200", "503", "429")},
        # Admitted by the simulator but never answered: cut off by a killed cluster.
        "cut_off": max(0, requests - answered - int(stats.get("in_flight", 0))),
        "wasted_per_finished": round((n503 + n429) / finished, 3) if finished else None,
        "requests_per_finished": round(requests / finished, 3) if finished else None,
    }


def per_minute(samples: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Requests in the trailing 60 s at each sample (the simulator's own window)."""
    xs, ys = [], []
    j = -1  # the last sample at least 60 s older than the current one
    for s in samples:
        while j + 1 < len(samples) and samples[j + 1]["t"] <= s["t"] - 60:
            j += 1
        xs.append(s["t"] / 60)
        ys.append(s["requests"] - (samples[j]["requests"] if j >= 0 else 0))
    return xs, ys


def flexdash_tables(
    db: _databases.BenchDatabase, n: int, started: float, sim: dict[str, Any]
) -> dict[str, Any]:
    """Everything counted from the tables at the end."""
    states = db.job_counts()
    rows = db.rows(
        "SELECT finished_at FROM jobs_job WHERE state IN ('succeeded', 'failed', 'cancelled')"
    )
    offsets = sorted(unix_seconds(r[0]) - started for r in rows if r[0] is not None)
    finished = sum(states.get(s, 0) for s in FINISHED)
    active = sum(states.get(s, 0) for s in ("queued", "running", "retrying"))
    attempts = db.rows(
        "SELECT http_status, outcome, COUNT(*) FROM jobs_attempt GROUP BY http_status, outcome"
    )
    duplicates = int(
        db.scalar(
            "SELECT COUNT(*) FROM (SELECT job_id FROM jobs_attempt WHERE outcome = 'succeeded' "
            "GROUP BY job_id HAVING COUNT(*) > 1) AS twice"
        )
        or 0
    )
    attempt_rows = sum(int(c) for *_, c in attempts)
    by_outcome: dict[str, int] = {}
    by_http: dict[str, int] = {}
    for status, outcome, count in attempts:
        by_outcome[outcome] = by_outcome.get(outcome, 0) + int(count)
        key = str(status) if status is not None else "none"
        by_http[key] = by_http.get(key, 0) + int(count)
    first_sent = unix_seconds(db.scalar("SELECT MIN(started_at) FROM jobs_attempt"))
    return {
        "states": states,
        "succeeded": states.get("succeeded", 0),
        "failed": states.get("failed", 0),
        "unfinished": active,
        # Submitted, yet neither finished nor still waiting or running.
        "lost": n - finished - active,
        "duplicates": duplicates,
        "attempt_rows": attempt_rows,
        "attempts_by_outcome": by_outcome,
        "attempts_by_http_status": by_http,
        "first_request_seconds": common.rounded(first_sent - started) if first_sent else None,
        "finish_offsets": [round(x, 2) for x in offsets],
        **rates(offsets, n),
        **wasted(sim, finished),
    }


def naive_tables(
    db: _databases.BenchDatabase, n: int, started: float, sim: dict[str, Any]
) -> dict[str, Any]:
    states = {
        s: int(c) for s, c in db.rows("SELECT state, COUNT(*) FROM bench_naive_job GROUP BY state")
    }
    rows = db.rows("SELECT finished_at FROM bench_naive_job WHERE finished_at IS NOT NULL")
    offsets = sorted(float(r[0]) - started for r in rows)
    finished = sum(states.get(s, 0) for s in FINISHED)
    # Still to run: its task waits in django-q2's queue, or a worker holds it.
    queued = int(db.scalar("SELECT COUNT(*) FROM django_q_ormq") or 0)
    running = states.get("running", 0)
    totals = db.rows(
        "SELECT SUM(attempts), SUM(http_503), SUM(http_429), SUM(other_errors), "
        "SUM(slept_seconds) FROM bench_naive_job"
    )[0]
    return {
        "states": states,
        "succeeded": states.get("succeeded", 0),
        "failed": states.get("failed", 0),
        "unfinished": n - finished,
        "lost": max(0, n - finished - running - min(queued, states.get("queued", 0))),
        "duplicates": 0,
        "table_attempts": int(totals[0] or 0),
        "table_503": int(totals[1] or 0),
        "table_429": int(totals[2] or 0),
        "table_other_errors": int(totals[3] or 0),
        "slept_seconds": round(float(totals[4] or 0), 1),
        "finish_offsets": [round(x, 2) for x in offsets],
        **rates(offsets, n),
        **wasted(sim, finished),
    }
