"""How fast a stopped cluster lets go of its requests in flight, beside
django-q2's own stop.

For each cluster in turn, in one run: fresh database + migrations + N jobs;
the simulator holding every request HOLD seconds; one cluster allowed N in
flight; once the simulator holds all N, SIGTERM to the cluster's main
process, and the time until it has exited. Then what the tables say: the
tries recorded as handed on, the jobs due again, and anything lost.

- baseline: django-q2's Cluster as its own `qcluster` command starts it,
  which lets each worker finish its task: the dispatcher waits for every
  answer (up to HOLD s here, FLEX_REQUEST_TIMEOUT in general);
- FlexDash: `manage.py qcluster` (jobs/management/commands/qcluster.py),
  whose dispatcher hands its requests on and exits.

    python bench/handoff.py                       # 5,000 in flight, held 60 s
    python bench/handoff.py --jobs 300 --hold 20  # a smoke run
    python bench/handoff.py --database-url postgres://postgres@127.0.0.1:5432/postgres

Prints a Markdown table. Not a test: never collected by pytest.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _databases, common  # noqa: E402
from bench._inflight_run import API_KEY, USERNAME  # noqa: E402

# django-q2's cluster exactly as its own `qcluster` command starts it.
STOCK_CLUSTER = (
    "import django; django.setup(); from django_q.cluster import Cluster; Cluster().start()"
)
CLUSTERS = [
    ("stock", "django-q2's own stop (baseline)", [common.PYTHON, "-c", STOCK_CLUSTER]),
    (
        "flexdash",
        "FlexDash qcluster (hands on)",
        [common.PYTHON, str(ROOT / "manage.py"), "qcluster"],
    ),
]


def run_one(key: str, name: str, argv: list[str], args: argparse.Namespace, workdir: Path) -> dict:
    rdir = workdir / key
    var_dir = rdir / "var"
    var_dir.mkdir(parents=True, exist_ok=True)
    n, hold = args.jobs, args.hold
    result: dict[str, Any] = {"cluster": name, "jobs": n}
    with _databases.fresh_database(rdir, args.database_url) as db:
        env = common.clean_env(
            DATABASE_URL=db.url,
            FLEXDASH_VAR_DIR=var_dir,
            GEMINI_API_KEY=API_KEY,
            FLEX_MAX_IN_FLIGHT=n,
            FLEX_LAUNCH_RATE=args.launch_rate,
            FLEX_LOG_LEVEL="WARNING",
            DJANGO_SETTINGS_MODULE="flexdash.settings",
        )
        simulator, _ = common.start_simulator(
            env, rdir / "simulator.log", latency=f"{hold:g}:{hold:g}", api_key=API_KEY, wait=False
        )
        common.django_call(
            "bench._inflight_run:prepare_and_submit",
            env,
            rdir / "setup.log",
            jobs=n,
            username=USERNAME,
        )
        url = common.simulator_url(simulator, rdir / "simulator.log")
        env["GEMINI_BASE_URL"] = url
        cluster = common.start_process(argv, env, rdir / "cluster.log", manage=False)
        try:
            deadline = time.monotonic() + n / args.launch_rate + 120
            while common.sim_stats(url).get("in_flight", 0) < n:
                if time.monotonic() > deadline or cluster.poll() is not None:
                    raise RuntimeError(f"{name}: never had {n} in flight")
                time.sleep(0.5)
            print(f"[{name}] {n:,} in flight; SIGTERM", flush=True)
            stopping = time.monotonic()
            cluster.terminate()
            cluster.wait(timeout=hold + 120)
            result["stop_seconds"] = round(time.monotonic() - stopping, 1)
        finally:
            common.stop_process(cluster, grace=3.0)
            common.stop_process(simulator, grace=3.0)
        counts = db.job_counts()
        outcomes = dict(db.rows("SELECT outcome, COUNT(*) FROM jobs_attempt GROUP BY outcome"))
        result["handed_on"] = int(outcomes.get("interrupted", 0))
        result["answered"] = int(outcomes.get("succeeded", 0))
        result["lost"] = n - sum(counts.get(s, 0) for s in ("queued", "succeeded"))
        result["queued"] = counts.get("queued", 0)
        result["running"] = counts.get("running", 0)
    print(f"[{name}] {result}", flush=True)
    return result


def table(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"{args.jobs:,} requests in flight, each answered after {args.hold:g} s; "
        "SIGTERM to the cluster's main process:",
        "",
        "| cluster | exited after | answers waited for | tries handed on | jobs due again | "
        "jobs left running (leased) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['cluster']} | {r['stop_seconds']:.1f} s | {r['answered']:,} | "
            f"{r['handed_on']:,} | {r['queued']:,} | {r['running']:,} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds the simulator holds")
    parser.add_argument("--launch-rate", type=float, default=200.0, help="FLEX_LAUNCH_RATE")
    parser.add_argument("--database-url", default=None, help="postgres://… (default: SQLite)")
    parser.add_argument(
        "--clusters", default="stock,flexdash", help="which to run: stock, flexdash or both"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    chosen = {name.strip() for name in args.clusters.split(",")}
    workdir = Path(tempfile.mkdtemp(prefix="flexdash-handoff-"))
    results, failed = [], False
    with common.stopping_on_exit():
        try:
            for key, name, command in CLUSTERS:
                if key not in chosen:
                    continue
                results.append(run_one(key, name, command, args, workdir))
        except Exception as error:  # say what failed, keep the logs
            print(f"failed: {error}", file=sys.stderr)
            failed = True
    if results:
        print()
        print(table(results, args))
    return common.end_run(workdir, keep=args.keep, failed=failed)


if __name__ == "__main__":
    sys.exit(main())
