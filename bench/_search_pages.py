"""Timing bench/search.py's pages through Django's test Client, and the plans of their statements.

Inside Django (common.django_call), on a database bench/_search_data.py built,
with DEBUG off: for a researcher (about a tenth of the jobs) and for staff
(every job), each page once as a warm-up, then REPEAT timed requests (the
median is the figure): the jobs list without and with a search (one word, two
words, a prefix, a common word), its htmx fragment (HX-Request, HX-Target
"job-table", as the table's own polling sends them) and GET /api/jobs with a
bearer token. Then one more request under an execute wrapper for each
page's statements and their times, and for each statement that reads
jobs_job or jobs_attempt its time run again to its last row (the SQLite driver
steps a streamed query as its rows are fetched, after execute() returned) and
its plan (EXPLAIN QUERY PLAN on SQLite; EXPLAIN (ANALYZE,
BUFFERS) on PostgreSQL, outside the request, so without its statement
timeout). `time_page` (one page: warm-up, timed requests, statements,
plans) is bench/_scale_pages.py's too. A helper module (bench/_*.py), not a
benchmark.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from bench._search_data import searches

FRAGMENT_HEADERS = {"HX-Request": "true", "HX-Target": "job-table", "HX-Trigger": "job-table"}


def pages(seed: int) -> list[dict[str, Any]]:
    """The pages timed, in table order: name, URL, headers kind, whether it searches."""
    words = searches(seed)

    def jobs(q: str | None) -> str:
        return "/jobs/" + (f"?{urlencode({'q': q})}" if q else "")

    def api(q: str | None) -> str:
        return "/api/jobs" + (f"?{urlencode({'q': q})}" if q else "")

    return [
        {"page": "jobs list, no search", "url": jobs(None), "kind": "page", "search": None},
        {"page": "jobs list, one word", "url": jobs(words["one"]), "kind": "page", "search": "one"},
        {
            "page": "jobs list, two words",
            "url": jobs(words["two"]),
            "kind": "page",
            "search": "two",
        },
        {
            "page": "jobs list, prefix",
            "url": jobs(words["prefix"]),
            "kind": "page",
            "search": "prefix",
        },
        {
            "page": "jobs list, common word",
            "url": jobs(words["common"]),
            "kind": "page",
            "search": "common",
        },
        {"page": "htmx fragment, no search", "url": jobs(None), "kind": "fragment", "search": None},
        {
            "page": "htmx fragment, one word",
            "url": jobs(words["one"]),
            "kind": "fragment",
            "search": "one",
        },
        {
            "page": "htmx fragment, two words",
            "url": jobs(words["two"]),
            "kind": "fragment",
            "search": "two",
        },
        {
            "page": "htmx fragment, prefix",
            "url": jobs(words["prefix"]),
            "kind": "fragment",
            "search": "prefix",
        },
        {"page": "API /api/jobs, no search", "url": api(None), "kind": "api", "search": None},
        {
            "page": "API /api/jobs?q=one word",
            "url": api(words["one"]),
            "kind": "api",
            "search": "one",
        },
    ]


class _Recorder:
    """An execute wrapper: each statement's SQL, parameters and time (perf_counter)."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any, float]] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.statements.append((sql, params, time.perf_counter() - started))


def _full_ms(sql: str, params: Any) -> float:
    """The statement run again outside the request, to its last row."""
    from django.db import connection

    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(sql, params)
        cursor.fetchall()
        return round((time.perf_counter() - started) * 1000, 2)


def _explain(sql: str, params: Any) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            return "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        rows = cursor.fetchall()
    # (id, parent, notused, detail): indent each step under its parent.
    depth = {0: -1}
    lines = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return "\n".join(lines)


def _literal(value: Any) -> str:
    if isinstance(value, str):  # TextChoices too: their value, not their repr
        return "'" + str.__str__(value).replace("'", "''") + "'"
    return repr(value)


def _shown(sql: str, params: Any) -> str:
    """The statement with its parameters in, to read (not to run)."""
    try:
        return sql % tuple(_literal(p) for p in params or ())
    except (TypeError, ValueError):
        return f"{sql} -- {params!r}"


def _reads_jobs(sql: str) -> bool:
    head = sql.lstrip().upper()
    return head.startswith("SELECT") and ('"JOBS_JOB"' in head or '"JOBS_ATTEMPT"' in head)


def time_page(
    request: Callable[[], Any],
    *,
    repeat: int,
    explain: bool,
    reads: Callable[[str], bool] = _reads_jobs,
    record: bool = True,
) -> dict[str, Any]:
    """One page: `request()` (a test Client's get) once as a warm-up, then
    `repeat` timed (the median is `ms`), then (unless not `record`) once more
    recording its statements; with `explain`, each statement `reads` picks run
    again to its last row and explained. `response` is the last timed request's."""
    from django.db import connection

    statuses: set[int] = set()

    def get() -> Any:
        response = request()
        statuses.add(response.status_code)
        return response

    get()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = get()
        times.append((time.perf_counter() - started) * 1000)
    recorder = _Recorder()
    if record:
        with connection.execute_wrapper(recorder):
            get()
    statements = []
    for sql, params, seconds in recorder.statements:
        item = {"ms": round(seconds * 1000, 2), "sql": _shown(sql, params)}
        if explain and reads(sql):
            item["full_ms"] = _full_ms(sql, params)
            item["plan"] = _explain(sql, params)
        statements.append(item)
    return {
        "ms": round(statistics.median(times), 2),
        "ms_all": [round(t, 2) for t in times],
        "status": sorted(statuses),
        "bytes": len(response.content),
        "statements": statements,
        "response": response,
    }


def measure(seed: int, repeat: int, explain: bool) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from jobs.engine.tokens import api_token_create

    users = get_user_model().objects
    viewers = {
        "researcher": users.get(username="researcher0"),
        "staff": users.get(username="staff"),
    }
    results = []
    for viewer, user in viewers.items():
        client = Client()
        client.force_login(user)
        _, token = api_token_create(user=user, name="bench")
        headers_for = {
            "page": {},
            "fragment": FRAGMENT_HEADERS,
            "api": {"Authorization": f"Bearer {token}"},
        }
        for spec in pages(seed):
            timed = time_page(
                functools.partial(client.get, spec["url"], headers=headers_for[spec["kind"]]),
                repeat=repeat,
                explain=explain,
            )
            response = timed.pop("response")
            total = (
                response.json()["total"]
                if spec["kind"] == "api" and response.status_code == 200
                else None
            )
            results.append({**spec, "viewer": viewer, **timed, "api_total": total})
            print(
                f"  {viewer:10} {spec['page']:28} {results[-1]['ms']:9.1f} ms "
                f"(status {','.join(map(str, timed['status']))}, "
                f"{len(timed['statements'])} statements)",
                flush=True,
            )
    return {"database": connection.vendor, "pages": results}
