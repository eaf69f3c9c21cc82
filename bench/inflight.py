"""How many slow flex requests one qcluster keeps in flight, and at what cost.

For each API route (Interactions, generateContent), in one run:
fresh database + migrations + a user; the simulator holding every request
HOLD seconds; N jobs submitted through `jobs.engine.submitting.jobs_submit` (timed);
one `manage.py qcluster`; every 0.5 s the simulator's requests in flight,
the cluster's memory (summed over the qcluster process and all its
descendants: VmRSS, and smaps_rollup Pss which counts pages shared by the
forked workers once) and the simulator's own memory; at the end the
cluster's CPU seconds and a check that nothing was lost or run twice.

    python bench/inflight.py                      # 5,000 jobs x 60 s, both routes (minutes)
    python bench/inflight.py --jobs 200 --hold 5  # smoke run, well under a minute
    python bench/inflight.py --database-url postgres://postgres@127.0.0.1:5432/postgres

Prints a Markdown table (both routes, the physical ideal, the target) and
writes bench/results/inflight.json and bench/results/inflight.md.
Not a test: never collected by pytest.

This script is the entry point: its flags, the routes in turn, what is
printed at the end and the exit code. A route runs in bench/_inflight_run.py
(what its tables say at the end, in bench/_inflight_count.py); the table,
details and result files are bench/_inflight_report.py's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from bench._inflight_report import details, table, write_results  # noqa: E402
from bench._inflight_run import run_route  # noqa: E402

ROUTES = ("interactions", "generate_content")
RESULTS = ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds the simulator holds")
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--database-url", default=None, help="postgres://… (default: SQLite)")
    parser.add_argument("--launch-rate", type=float, default=100.0, help="FLEX_LAUNCH_RATE")
    parser.add_argument("--timeout", type=float, default=None, help="per route, seconds")
    parser.add_argument("--results", default=str(RESULTS), help="directory for the result files")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    if bad := [r for r in routes if r not in ROUTES]:
        parser.error(f"unknown route(s) {bad}; choose from {', '.join(ROUTES)}")
    if args.jobs < 1 or args.hold < 0:
        parser.error("--jobs must be at least 1 and --hold not negative")
    if args.jobs / args.launch_rate >= args.hold:
        print(
            f"note: {args.jobs} jobs at {args.launch_rate:g}/s take "
            f"{args.jobs / args.launch_rate:g} s to launch, longer than the {args.hold:g} s hold: "
            "they cannot all be in flight.",
            flush=True,
        )
    info = common.run_info()
    print(
        f"inflight: {args.jobs:,} jobs, hold {args.hold:g} s, FLEX_LAUNCH_RATE="
        f"{args.launch_rate:g}/s, routes {', '.join(routes)}, "
        f"database {args.database_url or 'SQLite (temporary)'}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="flexdash-bench-inflight-"))
    results: list[dict[str, Any]] = []
    failed = False
    try:
        with common.stopping_on_exit():
            for route in routes:
                try:
                    results.append(run_route(route, args, workdir))
                except Exception as exc:
                    failed = True
                    traceback.print_exc()
                    error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                    results.append({"route": route, "error": error})
    except KeyboardInterrupt:
        # No result files from a partial run: they would replace a whole one.
        return common.end_run(workdir, keep=args.keep, interrupted=True)
    failed = failed or not all(r.get("ok") for r in results)
    text = table(results, args)
    print("\n" + text + "\n")
    print(details(results))
    write_results(results, args, info, text)
    out = Path(args.results)
    print(f"\nwrote {out / 'inflight.json'} and {out / 'inflight.md'}")
    return common.end_run(workdir, keep=args.keep, failed=failed)


if __name__ == "__main__":
    sys.exit(main())
