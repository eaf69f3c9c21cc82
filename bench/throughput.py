"""Finished jobs per minute against a rate limit: FlexDash, the naive design and the physical limit.

In one run, each part with its own fresh database and its own simulator
(`manage.py flexsim --latency 2:10 --p503 0.2 --rpm 1000 --seed S`: a sliding
60 s window in which every request, 503s included, counts, as Google's quota
does):

- FlexDash: N jobs (2,000) submitted with `jobs.engine.submitting.jobs_submit`, one
  `manage.py qcluster` (2 workers, one dispatcher) with FLEX_RPM_LIMIT set to
  the simulator's limit, so the dispatcher paces to it;
- the naive design (bench/_naive.py): one django-q2 task per prompt, the
  spec's retry loop sleeping in the worker, a qcluster of W workers (8), on a
  sample of the prompts (300) because it is slow; its time for all N is
  extrapolated and labelled so;
- the physical limit: the RPM limit, or the in-flight cap over the mean
  latency when that is lower, in requests per minute; since every 503 spends
  a request, at most RPM x (1 - p503) finished jobs per minute: ratios are
  taken against that;
- FlexDash again with two qclusters (FLEX_DISPATCHERS=2, FLEX_LEASE_SECONDS
  15) sharing the database, one of them killed with SIGKILL (its whole process
  group) once half the jobs finished: jobs lost and answers recorded twice.

    python bench/throughput.py                              # the full run: ~15 minutes
    python bench/throughput.py --jobs 300 --naive-jobs 40   # smoke run: ~4 minutes
    python bench/throughput.py --database postgres --skip-naive

Prints a Markdown table; writes bench/results/throughput.md, .json and .png
(the chart needs matplotlib: `pip install -e '.[bench]'`). Not a test.

This script is the entry point: its flags, the order of the parts, what is
printed at the end and the exit code. The parts run in bench/_throughput_run.py
(the SIGKILL in _throughput_kill.py, the counting in _throughput_count.py); the
table, verdicts and result files are bench/_throughput_report.py's, the chart
bench/_throughput_chart.py's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from bench._throughput_chart import chart  # noqa: E402
from bench._throughput_report import (  # noqa: E402
    notes,
    physical_limit,
    table,
    verdicts,
    write_results,
)
from bench._throughput_run import latency_range, run_flexdash, run_naive  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def rerender(args: argparse.Namespace) -> int:
    """The report of an earlier run again (its own command, date and machine)."""
    payload = json.loads(Path(args.from_json).read_text())
    p = payload["parameters"]
    args.jobs, args.rpm, args.p503, args.latency = p["jobs"], p["rpm"], p["p503"], p["latency"]
    args.seed, args.naive_jobs, args.naive_workers = p["seed"], p["naive_jobs"], p["naive_workers"]
    args.lease_seconds, args.database = p["lease_seconds_in_kill_run"], p["database"]
    parts, limit = payload["parts"], payload["physical_limit"]
    info = {key: payload.get(key) for key in ("command", "date", "machine", "code")}
    text = table(parts, limit, args)
    print(text + "\n\n" + "\n".join(verdicts(parts, limit)))
    out = Path(args.results)
    chart_note = chart(parts, limit, args, out / "throughput.png")
    write_results(parts, limit, args, info, text, chart_note)
    print(f"\nrewrote the results in {out} from {args.from_json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument(
        "--rpm", type=int, default=1000, help="the simulator's limit and FLEX_RPM_LIMIT"
    )
    parser.add_argument("--p503", type=float, default=0.2)
    parser.add_argument("--latency", default="2:10", help="MIN:MAX seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--naive-jobs", type=int, default=300, help="the naive design's sample")
    parser.add_argument(
        "--naive-workers", default="8", help="qcluster workers for the naive design; 8,2 runs both"
    )
    parser.add_argument("--naive-timeout", type=float, default=None, help="seconds per naive run")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", default=DEFAULT_PG_URL, help="the PostgreSQL server")
    parser.add_argument(
        "--lease-seconds", type=int, default=15, help="FLEX_LEASE_SECONDS, kill run"
    )
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per FlexDash run")
    parser.add_argument("--results", default=str(RESULTS), help="directory for the result files")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="run nothing: rewrite the table, .md and .png from an earlier run's throughput.json",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        return rerender(args)
    try:
        low, high = latency_range(args.latency)
        if not 0 <= low <= high:
            raise ValueError
    except ValueError:
        parser.error(f"--latency must be MIN:MAX seconds, got {args.latency!r}")
    try:
        args.naive_workers = [int(w) for w in str(args.naive_workers).split(",") if w.strip()]
    except ValueError:
        parser.error("--naive-workers takes numbers, e.g. 8 or 8,2")
    if args.jobs < 10 or args.naive_jobs < 10 or not 0 <= args.p503 < 1 or args.rpm < 0:
        parser.error("--jobs and --naive-jobs at least 10, 0 <= --p503 < 1, --rpm >= 0")
    if args.lease_seconds < 5:
        parser.error("--lease-seconds must be at least 5 (FLEX_LEASE_SECONDS' minimum)")
    info = {**common.run_info(), "code": common.code_version()}
    limit = physical_limit(args, 5000)
    print(
        f"throughput: {args.jobs:,} jobs, latency {args.latency} s, p503 {args.p503:g}, "
        f"RPM {args.rpm:,} (limit {limit['finished_per_min']:,.0f} finished jobs/min), "
        f"naive sample {args.naive_jobs:,} with {args.naive_workers} workers, "
        f"database {args.database}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="flexdash-bench-throughput-"))
    parts: dict[str, Any] = {}
    failed = False

    def attempt(key: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        nonlocal failed
        try:
            return run()
        except Exception as exc:
            failed = True
            traceback.print_exc()
            return {"part": key, "error": " ".join(f"{type(exc).__name__}: {exc}".split())[:300]}

    try:
        with common.stopping_on_exit():
            parts["flexdash"] = attempt("flexdash", lambda: run_flexdash(args, workdir, kill=False))
            if not args.skip_naive:
                parts["naive"] = [
                    attempt("naive", lambda w=w: run_naive(args, workdir, w))
                    for w in args.naive_workers
                ]
            if not args.skip_kill:
                parts["flexdash_kill"] = attempt(
                    "flexdash_kill", lambda: run_flexdash(args, workdir, kill=True)
                )
    except KeyboardInterrupt:
        return common.end_run(workdir, keep=args.keep, interrupted=True)
    text = table(parts, limit, args)
    print("\n" + text + "\n")
    print("\n".join(verdicts(parts, limit)))
    print("\n".join(notes(parts, limit, args)))
    out = Path(args.results)
    chart_note = chart(parts, limit, args, out / "throughput.png")
    if chart_note:
        print(f"note: {chart_note}")
    write_results(parts, limit, args, info, text, chart_note)
    print(f"\nwrote {out / 'throughput.md'}, {out / 'throughput.json'}" + (
        "" if chart_note else f" and {out / 'throughput.png'}"
    ))  # fmt: skip
    every = [parts.get("flexdash"), *parts.get("naive", []), parts.get("flexdash_kill")]
    failed = failed or not all(r.get("ok") for r in every if r)
    return common.end_run(workdir, keep=args.keep, failed=failed)


if __name__ == "__main__":
    sys.exit(main())
