"""The naive designs bench/throughput.py and bench/eval.py compare FlexDash with (not a
benchmark itself).

One django-q2 task per prompt, written the way the Flex spec's example does it
(shared/seed/flex-inference.md, "Implement retries"): the synchronous
google-genai client, `service_tier="flex"`, a 900 s timeout, and a loop that
sleeps `base_delay * 2**attempt` in the worker after a failed try. So a
worker process is held for the whole life of its prompt, sleeps included.

Kept fair on purpose:
- the same attempt budget as FlexDash (8, FLEX_MAX_ATTEMPTS' default) and the
  same base delay and cap (5 s, 600 s); no automatic fallback to the standard
  tier (optional in the spec; FlexDash never does it either);
- the SDK's own retries are off (`HttpRetryOptions(attempts=1)`), so every
  try is this loop's and is counted; the spec catches every exception;
- the SDK's per-call pydantic model cache from jobs/engine/gemini.py is applied, so
  the memory figure is the design's, not google-genai 3.3.0's leak.

`call_with_retry` is that loop alone, for any call: bench/_eval_naive.py's script
runs every request of an eval through it (with the spec's own 3 tries).

Rows live in a table of their own, `bench_naive_job`, created by
`create_table` in the benchmark's fresh database (never FlexDash's Job table,
which the dispatcher would pick up). Times are Unix seconds (time.time()).
The worker imports this module as `bench._naive` (the cluster runs from the
project root with it on PYTHONPATH); the leading underscore keeps `make
bench` from running it as a benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

TABLE = "bench_naive_job"
MAX_ATTEMPTS = 8
BASE_DELAY = 5.0
MAX_DELAY = 600.0
TIMEOUT_MS = 900_000

_client: Any = None


def create_table() -> None:
    """The naive design's own job table (SQLite and PostgreSQL alike)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            " id INTEGER PRIMARY KEY,"
            " prompt TEXT NOT NULL,"
            " state VARCHAR(16) NOT NULL DEFAULT 'queued',"
            " attempts INTEGER NOT NULL DEFAULT 0,"
            " http_503 INTEGER NOT NULL DEFAULT 0,"
            " http_429 INTEGER NOT NULL DEFAULT 0,"
            " other_errors INTEGER NOT NULL DEFAULT 0,"
            " slept_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,"
            " result_text TEXT NOT NULL DEFAULT '',"
            " last_error TEXT NOT NULL DEFAULT '',"
            " submitted_at DOUBLE PRECISION,"
            " started_at DOUBLE PRECISION,"
            " finished_at DOUBLE PRECISION)"
        )


def sdk_client() -> Any:
    """One synchronous client per worker process, as the spec's example has."""
    global _client
    if _client is None:
        from google import genai
        from google.genai import types

        import jobs.engine.gemini  # noqa: F401  (applies the SDK's model-class cache)

        _client = genai.Client(
            api_key=settings.GEMINI_API_KEY,
            http_options=types.HttpOptions(
                base_url=settings.GEMINI_BASE_URL or None,
                api_version=settings.GEMINI_API_VERSION,
                timeout=TIMEOUT_MS,
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
    return _client


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    return status if isinstance(status, int) else None


def _update(row_id: int, **values: Any) -> None:
    columns = ", ".join(f"{name} = %s" for name in values)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET {columns} WHERE id = %s", [*values.values(), row_id])


@dataclass
class Tries:
    """What one call's retry loop went through: its tries by outcome, its sleeps."""

    attempts: int = 0
    http_503: int = 0
    http_429: int = 0
    other_errors: int = 0
    slept_seconds: float = 0.0
    last_error: str = ""


def call_with_retry(
    send: Callable[[], Any], *, max_attempts: int = MAX_ATTEMPTS, base_delay: float = BASE_DELAY
) -> tuple[Any, Tries]:
    """The spec's retry example: call `send()` up to `max_attempts` times, sleeping
    `base_delay * 2**attempt` (at most MAX_DELAY) after each failure but the last,
    whatever the exception. Returns (its answer, or None when every try failed;
    the tries)."""
    tries = Tries()
    for attempt in range(max_attempts):
        tries.attempts = attempt + 1
        try:
            return send(), tries
        except Exception as exc:  # the spec's example catches everything
            status = _status(exc)
            if status == 503:
                tries.http_503 += 1
            elif status == 429:
                tries.http_429 += 1
            else:
                tries.other_errors += 1
            tries.last_error = f"{type(exc).__name__} {status}: {exc}"[:500]
            if attempt < max_attempts - 1:
                delay = min(MAX_DELAY, base_delay * (2**attempt))  # exponential backoff
                time.sleep(delay)
                tries.slept_seconds += delay
    return None, tries


def run_prompt(row_id: int, prompt: str, model: str) -> str:
    """The django-q2 task: one prompt, retried by sleeping in this worker."""
    client = sdk_client()
    _update(row_id, state="running", started_at=time.time())
    interaction, tries = call_with_retry(
        lambda: client.interactions.create(model=model, input=prompt, service_tier="flex")
    )
    counts = {
        "http_503": tries.http_503,
        "http_429": tries.http_429,
        "other_errors": tries.other_errors,
        "slept_seconds": tries.slept_seconds,
        "attempts": tries.attempts,
        "finished_at": time.time(),
    }
    if interaction is None:
        _update(row_id, state="failed", last_error=tries.last_error, **counts)
        return "failed"
    text = interaction.steps[-1].content[0].text
    _update(row_id, state="succeeded", result_text=text or "", **counts)
    return "succeeded"
