"""Running bench/ingest.py's steps: each pass in a fresh database and a fresh process.

The benchmark's side (`run_steps`): the environment (DEBUG off, static files
collected, the run limits raised only when --lines needs it), then for each
step its timed pass(es) and its traced pass, each with its own database,
migrated by one process and measured in another through common.django_call.
The measured process's side (`measure`): the user, then the step itself, from
bench/_ingest_flexdash.py or bench/_ingest_naive.py. A helper module
(bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import _databases, common
from bench._ingest_flexdash import flexdash_accept, flexdash_export
from bench._ingest_meter import Meter
from bench._ingest_naive import naive_accept, naive_export

USERNAME = "bench"
# Settings limits (jobs' defaults) raised only when --lines needs it.
DEFAULT_MAX_LINES = 100_000
DEFAULT_MAX_BYTES = 200 * 1024 * 1024

STEPS = ("flexdash_accept", "naive_accept", "flexdash_export", "naive_export")
_STEP_FUNCTIONS: dict[str, Callable[[Meter, Any, Path], dict[str, Any]]] = {
    "flexdash_accept": flexdash_accept,
    "naive_accept": naive_accept,
    "flexdash_export": flexdash_export,
    "naive_export": naive_export,
}


def measure(step: str, traced: bool, source: str) -> dict[str, Any]:
    """Inside Django (common.django_call), on a migrated database: make the
    user and measure one step, untraced or under tracemalloc. (Migrating in
    another process keeps what migrate allocated and freed out of this one,
    where the allocator would reuse it unseen by the RSS figures.)"""
    from django.contrib.auth import get_user_model
    from django.db import connection

    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    result = _STEP_FUNCTIONS[step](Meter(traced), user, Path(source))
    result["database"] = connection.vendor
    return result


def run_steps(args: argparse.Namespace, workdir: Path, source: Path) -> dict[str, Any]:
    env_values = common.production_env(workdir)
    size = source.stat().st_size
    if args.lines > DEFAULT_MAX_LINES:
        env_values["FLEX_RUN_MAX_LINES"] = args.lines
    if size > DEFAULT_MAX_BYTES:
        env_values["FLEX_RUN_MAX_BYTES"] = size
    (workdir / "var").mkdir(exist_ok=True)
    base_env = common.clean_env(
        DATABASE_URL=f"sqlite:///{workdir / 'unused.sqlite3'}", **env_values
    )
    print("collectstatic (DEBUG off needs the manifest) ...", flush=True)
    common.run_checked(["collectstatic", "--no-input", "-v", "0"], base_env, workdir / "setup.log")
    timeout = max(600.0, args.lines / 50)
    steps: dict[str, Any] = {}
    for step in args.steps:
        timed_runs = []
        passes = [(False, n) for n in range(1, args.repeat + 1)] + [(True, 1)]
        for traced, number in passes:
            kind = "traced" if traced else "timed"
            name = kind if traced or args.repeat == 1 else f"{kind} {number}/{args.repeat}"
            sdir = workdir / f"{step}-{kind}-{number}"
            sdir.mkdir()
            print(f"[{step}] {name}: fresh database, migrate, measure ...", flush=True)
            with _databases.fresh_database(sdir, args.database_url) as db:
                env = common.clean_env(DATABASE_URL=db.url, **env_values)
                common.migrate(env, sdir / "step.log")
                result = common.django_call(
                    "bench._ingest_run:measure",
                    env,
                    sdir / "step.log",
                    timeout=timeout,
                    step=step,
                    traced=traced,
                    source=str(source),
                )
            print(
                f"[{step}] {name}: {result['seconds']:.2f} s, RSS +"
                f"{result['rss_peak_delta_mib']:.1f} MiB"
                + (f", Python peak {result['python_peak_mib']:.1f} MiB" if traced else "")
                + f", {result['rows']:,} rows",
                flush=True,
            )
            if traced:
                steps[step]["traced"] = result
            else:
                timed_runs.append(result)
                # The timed pass reported is the one with the median time.
                ranked = sorted(timed_runs, key=lambda r: r["seconds"])
                steps[step] = {
                    "timed": ranked[(len(ranked) - 1) // 2],
                    "timed_seconds_all": [round(r["seconds"], 3) for r in timed_runs],
                    "timed_runs": timed_runs,
                }
    return steps
