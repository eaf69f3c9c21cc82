"""Time every page and fragment that polls at 1,000 jobs and at 1,000,000.

The scale issue's budget ("A million jobs", issue 12): every page and fragment
that polls (the overview and its fragment, the capacity weather, the jobs
list and its fragment, the run list, a run page and its fragments, a job page
and its fragment) answers at 1,000,000 jobs / 2,000,000 attempts within 1.5x
of its time at 1,000 jobs, on SQLite and on PostgreSQL. For each database a
fresh database at each size is built by bench/_scale_data.py (a lab's month:
10 researchers, 30 days with more in the last one, ~2 attempts per job with
503s and 429s, runs, 2 % of the jobs active in one large run), then
bench/_scale_pages.py times the pages through Django's test Client for a
researcher and for staff, in turns (bench/_two_sizes.py, as bench/search.py
does): every page at 1,000, then every page at N, REPEAT times, each turn a
fresh process, the median being the figure. Both sizes are built around the
same moment (the anchor, the start of this run) and timed with Django's clock
held there. For a page over budget the report lists its slowest statements
and their plans.

    python bench/scale.py                            # 1k and 1M jobs, SQLite and PostgreSQL
    python bench/scale.py --jobs-large 20000         # smoke run: ~1-2 minutes
    python bench/scale.py --databases sqlite --repeat 5
    python bench/scale.py --from-json bench/results/scale.json   # rewrite .md, run nothing

Prints a Markdown table per database and writes bench/results/scale.json and
bench/results/scale.md. Not a test: never collected by pytest.

This script is the entry point: its flags, the order of the work, what is
printed and the exit code (1 when a page is over budget or a request did not
answer 200). The data is bench/_scale_data.py's, the timing
bench/_scale_pages.py's, the table and files bench/_scale_report.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _two_sizes, common  # noqa: E402
from bench._scale_report import builds, rows, table, write_results  # noqa: E402
from bench._search_report import over_budget  # noqa: E402

RESULTS = ROOT / "bench" / "results"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DATABASE_NAME = "flexdash_bench_scale"
LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
ALIASES = {"postgresql": "postgres"}
# What _scale_data.build is not told by a flag.
FIXED_SHAPE = {"last_day_share": 0.15, "run_share": 0.4, "large_run_share": 0.05}


def _build(args: argparse.Namespace, sdir: Path, env: dict, database: str, jobs: int) -> dict:
    print(f"[{database} {jobs:,}] migrate, insert, recount ...", flush=True)
    build = common.django_call(
        "bench._scale_data:build",
        env,
        sdir / "build.log",
        timeout=max(600.0, jobs / 250) * 4,
        jobs=jobs,
        seed=args.seed,
        anchor=args.anchor,
        **args.shape,
    )
    s = build["seconds"]
    counts = "stored counts matched" if build["recount"]["matched"] else "recount --fix was needed"
    print(
        f"[{database} {jobs:,}] {build['jobs']:,} jobs, {build['attempts']:,} attempts, "
        f"{build['runs']:,} runs built in {s['total']:.1f} s (insert {s['insert']:.1f} s, "
        f"recount {s['recount']:.1f} s, VACUUM ANALYZE {s['vacuum_analyze']:.1f} s); {counts}",
        flush=True,
    )
    return build


def _both_sizes(
    args: argparse.Namespace, workdir: Path, env_values: dict, database: str
) -> dict[str, Any]:
    def measure(sdir: Path, env: dict, round_: int | str, explain: bool, build: dict) -> dict:
        print(f"[{database} {build['jobs']:,}] turn {round_}", flush=True)
        return common.django_call(
            "bench._scale_pages:measure",
            env,
            sdir / f"measure-{round_}.log",
            timeout=3600,
            anchor=args.anchor,
            run_id=build["targets"]["run_id"],
            job_id=build["targets"]["job_id"],
            repeat=1,
            explain=explain,
        )

    return _two_sizes.both_sizes(
        workdir=workdir,
        env_values=env_values,
        database=database,
        sizes={"small": args.jobs_small, "large": args.jobs_large},
        postgres_url=args.postgres_url if database == "postgres" else None,
        database_name=DATABASE_NAME,
        build=lambda sdir, env, jobs: _build(args, sdir, env, database, jobs),
        measure=measure,
        repeat=args.repeat,
    )


def report(
    args: argparse.Namespace, info: dict[str, Any], commit: str, results: list[dict[str, Any]]
) -> None:
    """Print the sections (builds, table, over-budget details per database)
    and write scale.json and scale.md."""
    sections = []
    for entry in results:
        label = LABELS[entry["database"]]
        if server := entry["large"].get("server"):
            label += f" {server}"
        sections += [f"## {label}", "", builds(entry) + ".", "", table(entry), ""]
        if details := over_budget(entry):
            sections += ["### Over budget: the slowest statements and their plans", "", *details]
    text = "\n".join(sections)
    print(text)
    out = write_results(args, info, commit, results, text)
    print(f"wrote {out / 'scale.json'} and {out / 'scale.md'}")


def rerender(args: argparse.Namespace) -> int:
    """The report of an earlier run again (its own command, date and machine)."""
    payload = json.loads(Path(args.from_json).read_text())
    for key in ("jobs_small", "jobs_large", "repeat", "seed", "anchor", "shape"):
        setattr(args, key, payload[key])
    args.load_average_end = payload.get("load_average_end")
    info = {key: payload[key] for key in ("command", "date", "machine")}
    results = payload["databases"]
    for entry in results:
        entry["rows"] = rows(entry)
    report(args, info, payload["commit"], results)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs-small", type=int, default=1_000)
    parser.add_argument("--jobs-large", type=int, default=1_000_000)
    parser.add_argument("--databases", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="the server (trust auth)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="turns timing every page at each size (median)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--owners", type=int, default=10, help="researchers owning the jobs")
    parser.add_argument("--days", type=int, default=30, help="days the jobs are spread over")
    parser.add_argument(
        "--attempts", type=float, default=2.0, help="mean attempts per tried job (at most 8)"
    )
    parser.add_argument("--active-share", type=float, default=0.02, help="share of jobs active")
    parser.add_argument("--results", default=str(RESULTS), help="directory for the result files")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, SQLite files)"
    )
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="run nothing: rewrite scale.md (and .json) from an earlier run's scale.json",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        return rerender(args)
    names = [d.strip() for d in args.databases.split(",") if d.strip()]
    args.databases = [ALIASES.get(d, d) for d in names]
    if bad := [d for d in args.databases if d not in LABELS]:
        parser.error(f"unknown database(s) {bad}; choose from sqlite, postgres")
    if args.jobs_small < 100 or args.jobs_large <= args.jobs_small or args.repeat < 1:
        parser.error("need 100 <= --jobs-small < --jobs-large and --repeat >= 1")
    if args.owners < 1 or args.days < 2 or args.attempts < 1 or not 0 < args.active_share < 0.4:
        parser.error("need --owners >= 1, --days >= 2, --attempts >= 1, 0 < --active-share < 0.4")
    args.shape = {
        "owners": args.owners,
        "days": args.days,
        "attempts_mean": args.attempts,
        "active_share": args.active_share,
        **FIXED_SHAPE,
    }
    args.anchor = datetime.now(UTC).replace(microsecond=0).isoformat()
    info = common.run_info()
    code = common.code_version()
    commit = code["commit"] + (" (jobs/ modified)" if code["uncommitted"] else "")
    workdir = Path(tempfile.mkdtemp(prefix="flexdash-bench-scale-"))
    env_values = common.production_env(workdir)
    (workdir / "var").mkdir()
    results: list[dict[str, Any]] = []
    try:
        with common.stopping_on_exit():
            base_env = common.clean_env(
                DATABASE_URL=f"sqlite:///{workdir / 'unused.sqlite3'}", **env_values
            )
            print("collectstatic (DEBUG off needs the manifest) ...", flush=True)
            common.run_checked(
                ["collectstatic", "--no-input", "-v", "0"], base_env, workdir / "setup.log"
            )
            for database in args.databases:
                sizes = _both_sizes(args, workdir, env_values, database)
                entry = {
                    "database": database,
                    "jobs_small": args.jobs_small,
                    "jobs_large": args.jobs_large,
                    **sizes,
                }
                entry["rows"] = rows(entry)
                results.append(entry)
                print("\n" + table(entry) + "\n", flush=True)
    except KeyboardInterrupt:
        return common.end_run(workdir, keep=args.keep, interrupted=True)
    except Exception:
        traceback.print_exc()
        return common.end_run(workdir, keep=args.keep, failed=True)
    args.load_average_end = [round(x, 2) for x in os.getloadavg()]
    report(args, info, commit, results)
    over = any(not row["within"] for entry in results for row in entry["rows"])
    errors = any(row["status"] != [[200], [200]] for entry in results for row in entry["rows"])
    # A request that failed keeps the logs; a page over budget only sets the exit code.
    code = common.end_run(workdir, keep=args.keep, failed=errors)
    return code or int(over)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
