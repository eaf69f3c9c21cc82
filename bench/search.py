"""Time the jobs search (list, htmx fragment, API) at 1,000 and at 1,000,000 jobs.

The Hardening issue's budget: every search answers within 1.5x of its time at
1,000 jobs when there are 1,000,000. For each database (SQLite, PostgreSQL),
a fresh database at each size is built by bench/_search_data.py (migrated
first, so the database fills migration 0007's search index as the jobs are
inserted: FTS5 triggers on SQLite, a generated tsvector column and its GIN
index on PostgreSQL), then bench/_search_pages.py times, through Django's test
Client for a researcher and for staff, the jobs list with a one-word, a
two-word, a prefix and a common-word search, its htmx fragment, and
GET /api/jobs?q= with a bearer token, in turns: every page at 1,000, then
every page at 1,000,000, REPEAT times (each turn a fresh process, one
warm-up and one timed request per page), the median of the turns being the
figure, so whatever else the machine does weighs on both sizes alike. The
same pages without a search are timed as a reference (the scale issue's,
reported, not judged). For a search page over budget the statements it ran
and their plans are in the report.

    python bench/search.py                          # 1k and 1M jobs, SQLite and PostgreSQL
    python bench/search.py --jobs-large 20000       # smoke run: ~1 minute
    python bench/search.py --databases sqlite --repeat 5
    python bench/search.py --from-json bench/results/search.json   # rewrite .md, run nothing

Prints a Markdown table per database and writes bench/results/search.json
and bench/results/search.md. Not a test: never collected by pytest.

This script is the entry point: its flags, the order of the work, what is
printed and the exit code (1 when a search page is over budget or a request
failed). The data is bench/_search_data.py's, the timing
bench/_search_pages.py's, the table and files bench/_search_report.py's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _two_sizes, common  # noqa: E402
from bench._search_data import searches  # noqa: E402
from bench._search_report import builds, over_budget, rows, table, write_results  # noqa: E402

RESULTS = ROOT / "bench" / "results"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DATABASE_NAME = "flexdash_bench_search"
LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def _build(args: argparse.Namespace, sdir: Path, env: dict, database: str, jobs: int) -> dict:
    print(f"[{database} {jobs:,}] migrate, insert, index ...", flush=True)
    build = common.django_call(
        "bench._search_data:build",
        env,
        sdir / "build.log",
        timeout=max(600.0, jobs / 500) * 4,
        jobs=jobs,
        seed=args.seed,
    )
    s = build["seconds"]
    print(
        f"[{database} {jobs:,}] built in {s['total']:.1f} s (jobs + index "
        f"{s['insert_jobs_and_index']:.1f} s, attempts {s['insert_attempts']:.1f} s, "
        f"VACUUM ANALYZE {s['vacuum_analyze']:.1f} s); matches {build['matches_all']}",
        flush=True,
    )
    return build


def _both_sizes(
    args: argparse.Namespace, workdir: Path, env_values: dict, database: str
) -> dict[str, Any]:
    """Both databases built first, then timed in turns (small, large, small, ...):
    whatever else the machine does meanwhile weighs on both sizes alike."""

    def measure(sdir: Path, env: dict, round_: int | str, explain: bool, build: dict) -> dict:
        return common.django_call(
            "bench._search_pages:measure",
            env,
            sdir / f"measure-{round_}.log",
            timeout=1200,
            seed=args.seed,
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
    and write search.json and search.md."""
    sections = []
    for entry in results:
        label = LABELS[entry["database"]]
        if server := entry["large"].get("server"):
            label += f" {server}"
        sections += [f"## {label}", "", builds(entry) + ".", "", table(entry), ""]
        if details := over_budget(entry):
            sections += ["### Over budget: the statements and the plan", "", *details]
    text = "\n".join(sections)
    print(text)
    out = write_results(args, info, commit, searches(args.seed), results, text)
    print(f"wrote {out / 'search.json'} and {out / 'search.md'}")


def rerender(args: argparse.Namespace) -> int:
    """The report of an earlier run again (its own command, date and machine)."""
    payload = json.loads(Path(args.from_json).read_text())
    for key in ("jobs_small", "jobs_large", "repeat", "seed"):
        setattr(args, key, payload[key])
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
        "--repeat", type=int, default=5, help="turns timing every page at each size (median)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--results", default=str(RESULTS), help="directory for the result files")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, SQLite files)"
    )
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="run nothing: rewrite search.md (and .json) from an earlier run's search.json",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        return rerender(args)
    args.databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    if bad := [d for d in args.databases if d not in LABELS]:
        parser.error(f"unknown database(s) {bad}; choose from sqlite, postgres")
    if args.jobs_small < 1 or args.jobs_large <= args.jobs_small or args.repeat < 1:
        parser.error("need 1 <= --jobs-small < --jobs-large and --repeat >= 1")
    info = common.run_info()
    code = common.code_version()
    commit = code["commit"] + (" (jobs/ modified)" if code["uncommitted"] else "")
    workdir = Path(tempfile.mkdtemp(prefix="flexdash-bench-search-"))
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
    report(args, info, commit, results)
    over = any(row["within"] is False for entry in results for row in entry["rows"])
    errors = any(row["status"] != [[200], [200]] for entry in results for row in entry["rows"])
    # A request that failed keeps the logs; a page over budget only sets the exit code.
    code = common.end_run(workdir, keep=args.keep, failed=errors)
    return code or int(over)


if __name__ == "__main__":
    sys.exit(main())
