"""The naive design bench/throughput.py compares FlexDash with (not a benchmark itself).

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

Rows live in a table of their own, `bench_naive_job`, created by
`create_table` in the benchmark's fresh database (never FlexDash's Job table,
which the dispatcher would pick up). Times are Unix seconds (time.time()).
The worker imports this module as `bench._naive` (the cluster runs from the
project root with it on PYTHONPATH); the leading underscore keeps `make
bench` from running it as a benchmark.
"""

from __future__ import annotations

import time
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


def _sdk_client() -> Any:
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


def run_prompt(row_id: int, prompt: str, model: str) -> str:
    """The django-q2 task: one prompt, retried by sleeping in this worker."""
    client = _sdk_client()
    _update(row_id, state="running", started_at=time.time())
    counts = {"http_503": 0, "http_429": 0, "other_errors": 0}
    slept = 0.0
    last_error = ""
    for attempt in range(MAX_ATTEMPTS):
        try:
            interaction = client.interactions.create(model=model, input=prompt, service_tier="flex")
            text = interaction.steps[-1].content[0].text
        except Exception as exc:  # the spec's example catches everything
            status = _status(exc)
            key = {503: "http_503", 429: "http_429"}.get(status, "other_errors")
            counts[key] += 1
            last_error = f"{type(exc).__name__} {status}: {exc}"[:500]
            if attempt < MAX_ATTEMPTS - 1:
                delay = min(MAX_DELAY, BASE_DELAY * (2**attempt))  # exponential backoff
                time.sleep(delay)
                slept += delay
            continue
        _update(
            row_id,
            state="succeeded",
            attempts=attempt + 1,
            result_text=text or "",
            slept_seconds=slept,
            finished_at=time.time(),
            **counts,
        )
        return "succeeded"
    _update(
        row_id,
        state="failed",
        attempts=MAX_ATTEMPTS,
        last_error=last_error,
        slept_seconds=slept,
        finished_at=time.time(),
        **counts,
    )
    return "failed"
