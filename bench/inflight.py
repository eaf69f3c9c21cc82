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
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _databases, _procfs, common  # noqa: E402

ROUTES = ("interactions", "generate_content")
API_KEY = "bench-key"
USERNAME = "bench"
SAMPLE_SECONDS = 0.5
TARGET_IN_FLIGHT = 5000
TARGET_CLUSTER_MIB = 500
RESULTS = ROOT / "bench" / "results"


# --- Runs inside Django (through common.django_call) -----------------------------------
def prepare_and_submit(jobs: int, username: str) -> dict[str, Any]:
    """Migrate, create the user and submit `jobs` prompts in one `jobs_submit`
    call (only that call is timed)."""
    from django.contrib.auth import get_user_model

    common.migrate_here()

    from jobs.catalog import DEFAULT_MODEL
    from jobs.engine import submitting

    user, _ = get_user_model().objects.get_or_create(username=username)
    prompts = [f"Benchmark prompt {i}: say one short sentence about flex." for i in range(jobs)]
    spec = submitting.JobSpec(model=DEFAULT_MODEL)
    started = time.monotonic()
    created = submitting.jobs_submit(owner=user, prompts=prompts, spec=spec)
    finished = time.monotonic()
    return {
        "created": len(created),
        "model": DEFAULT_MODEL,
        "started": started,
        "finished": finished,
        "seconds": finished - started,
    }


# --- One route ---------------------------------------------------------------------------
def run_route(route: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rdir = workdir / route
    var_dir = rdir / "var"
    var_dir.mkdir(parents=True, exist_ok=True)
    logs = {name: rdir / f"{name}.log" for name in ("setup", "simulator", "qcluster")}
    n, hold = args.jobs, args.hold
    result: dict[str, Any] = {"route": route, "jobs": n}
    print(f"\n[{route}] fresh database ...", flush=True)
    with _databases.fresh_database(rdir, args.database_url) as db:
        result["database"] = db.engine
        base_env = common.clean_env(DATABASE_URL=db.url, FLEXDASH_VAR_DIR=var_dir)
        # The simulator boots while the database is migrated and the jobs submitted.
        simulator, _ = common.start_simulator(
            base_env, logs["simulator"], latency=f"{hold:g}:{hold:g}", api_key=API_KEY, wait=False
        )
        cluster = None
        finished = False
        try:
            env = common.clean_env(
                DATABASE_URL=db.url,
                FLEXDASH_VAR_DIR=var_dir,
                GEMINI_API_KEY=API_KEY,
                GEMINI_API=route,
                FLEX_MAX_IN_FLIGHT=n,
                FLEX_LAUNCH_RATE=args.launch_rate,
                FLEX_LOG_LEVEL="WARNING",
            )
            print(f"[{route}] migrate, then submit {n:,} jobs (jobs_submit) ...", flush=True)
            submitted = common.django_call(
                "bench.inflight:prepare_and_submit", env, logs["setup"], jobs=n, username=USERNAME
            )
            if submitted["created"] != n:
                raise RuntimeError(f"submitted {submitted['created']} jobs, expected {n}")
            result["submit_seconds"] = round(submitted["seconds"], 2)
            submit_started = submitted["started"]
            sim_url = common.simulator_url(simulator, logs["simulator"])
            env["GEMINI_BASE_URL"] = sim_url
            print(f"[{route}] simulator at {sim_url}, holding {hold:g} s; starting qcluster")

            cluster_started = time.monotonic()
            cluster = common.start_qcluster(env, logs["qcluster"])
            print(f"[{route}] qcluster pid {cluster.pid}; sampling every {SAMPLE_SECONDS} s ...")
            result.update(
                _observe(
                    route, args, db, cluster, simulator, sim_url, cluster_started, submit_started
                )
            )
            result["settings"] = {
                k: v for k, v in env.items() if k.startswith("FLEX_") or k == "GEMINI_API"
            }
            finished = not result.get("timed_out")
        finally:
            # After a clean run the dispatcher has nothing left and the cluster
            # stops in ~2 s. Interrupted, its worker would first drain every
            # request in flight (up to HOLD s): do not wait for that.
            grace = 20.0 if finished else 3.0
            if cluster is not None:
                result["qcluster_exit"] = common.stop_process(cluster, grace=grace)
            common.stop_process(simulator, grace=grace)
    return result


def _observe(
    route: str,
    args: argparse.Namespace,
    db: _databases.BenchDatabase,
    cluster: Any,
    simulator: Any,
    sim_url: str,
    cluster_started: float,
    submit_started: float,
) -> dict[str, Any]:
    n, hold = args.jobs, args.hold
    ideal_seconds = n / args.launch_rate + hold
    timeout = args.timeout or max(120.0, 4 * ideal_seconds + 60)
    cluster_mem = _procfs.PeakTracker(cluster.pid, pss=True)
    sim_mem = _procfs.PeakTracker(simulator.pid, pss=False)
    samples: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    stats_errors = 0
    first_request_at = peak_at = done_at = None
    idle_pss_mib = None
    peak = 0
    last_print = 0.0
    timed_out = False
    counts: dict[str, int] = {}
    machine_before = _procfs.system_cpu_seconds()
    next_tick = time.monotonic()
    while True:
        now = time.monotonic()
        if cluster.poll() is not None:
            raise RuntimeError(f"qcluster exited with {cluster.returncode} during the run")
        if simulator.poll() is not None:
            raise RuntimeError(f"simulator exited with {simulator.returncode} during the run")
        try:
            stats = common.sim_stats(sim_url, timeout=5)
        except OSError:
            stats_errors += 1
        mem = cluster_mem.sample()
        sim = sim_mem.sample()
        if len(samples) % 4 == 0:
            cluster_mem.count_open_files()
        counts = db.job_counts()
        t = now - cluster_started
        in_flight = stats.get("in_flight", 0)
        if first_request_at is None and stats.get("requests", 0) > 0:
            first_request_at = t
            # The booted cluster before the requests cost anything.
            idle_pss_mib = samples[-1]["cluster_pss_mib"] if samples else None
        if stats.get("peak_in_flight", 0) > peak:
            peak, peak_at = stats["peak_in_flight"], t
        samples.append(
            {
                "t": round(t, 2),
                "in_flight": in_flight,
                "requests": stats.get("requests", 0),
                "cluster_rss_mib": round(mem.rss_kib / _procfs.MIB, 1),
                "cluster_pss_mib": round(mem.pss_kib / _procfs.MIB, 1),
                "sim_rss_mib": round(sim.rss_kib / _procfs.MIB, 1),
                "succeeded": counts.get("succeeded", 0),
                "running": counts.get("running", 0),
            }
        )
        if now - last_print >= 10:
            last_print = now
            print(
                f"[{route}] t={t:6.1f}s in flight {in_flight:5d} (peak {peak:5d}) "
                f"requests {stats.get('requests', 0):5d} "
                f"succeeded {counts.get('succeeded', 0):5d} "
                f"cluster PSS {mem.pss_kib / _procfs.MIB:6.0f} MiB "
                f"RSS {mem.rss_kib / _procfs.MIB:6.0f} MiB "
                f"sim RSS {sim.rss_kib / _procfs.MIB:5.0f} MiB",
                flush=True,
            )
        terminal = sum(counts.get(s, 0) for s in ("succeeded", "failed", "cancelled"))
        if terminal >= n:
            done_at = time.monotonic()
            break
        if now - cluster_started > timeout:
            timed_out = True
            break
        next_tick += SAMPLE_SECONDS
        time.sleep(max(0.0, next_tick - time.monotonic()))

    # Measured while everything is still alive.
    cpu = _procfs.tree_cpu_seconds(cluster.pid)
    sim_cpu = _procfs.cpu_seconds(simulator.pid)
    busy, total = (a - b for a, b in zip(_procfs.system_cpu_seconds(), machine_before, strict=True))
    try:
        stats = common.sim_stats(sim_url, timeout=10)
    except OSError:
        stats_errors += 1
    check = _check(db, n)
    biggest = max(cluster_mem.per_process.values(), key=lambda p: p["peak_rss_mib"], default={})
    figures = {
        "hold_seconds": hold,
        "launch_rate": args.launch_rate,
        "timed_out": timed_out,
        "timeout_seconds": round(timeout),
        "peak_in_flight": stats.get("peak_in_flight", peak),
        "peak_in_flight_sampled": max((s["in_flight"] for s in samples), default=0),
        "first_request_seconds": _round(first_request_at),
        "peak_at_seconds": _round(peak_at),
        "ramp_seconds": _round(peak_at - first_request_at)
        if peak_at is not None and first_request_at is not None
        else None,
        "submit_to_done_seconds": _round(done_at - submit_started) if done_at else None,
        "cluster_start_to_done_seconds": _round(done_at - cluster_started) if done_at else None,
        "cluster_peak_rss_mib": round(cluster_mem.peak_rss_kib / _procfs.MIB, 1),
        "cluster_peak_pss_mib": round(cluster_mem.peak_pss_kib / _procfs.MIB, 1),
        "cluster_idle_pss_mib": idle_pss_mib,
        "cluster_cpu_seconds": round(cpu, 1),
        "cluster_processes": sorted(
            cluster_mem.per_process.values(), key=lambda p: -p["peak_rss_mib"]
        ),
        "dispatcher_worker": biggest,
        "sim_peak_rss_mib": round(sim_mem.peak_rss_kib / _procfs.MIB, 1),
        "sim_cpu_seconds": round(sim_cpu, 1),
        # Everything else on the machine meanwhile (this script included):
        # other people's work on a shared machine competes for the cores.
        "machine_busy_percent": round(100 * busy / total, 1) if total else None,
        "other_cpu_seconds": round(busy - cpu - sim_cpu, 1),
        "sim_stats": stats,
        "sim_stats_errors": stats_errors,
        "job_counts": counts,
        **check,
        "samples": _thin(samples, 400),
    }
    figures["ok"] = (
        not timed_out
        and figures["lost"] == 0
        and figures["jobs_with_extra_attempts"] == 0
        and figures["attempt_rows"] == n
        and stats.get("requests") == n
        and stats.get("successes") == n
    )
    return figures


def _check(db: _databases.BenchDatabase, n: int) -> dict[str, Any]:
    """Nothing lost, nothing run twice: straight from the tables."""
    succeeded = int(db.scalar("SELECT COUNT(*) FROM jobs_job WHERE state = 'succeeded'") or 0)
    latency = db.rows(
        "SELECT AVG(latency_seconds), MAX(latency_seconds), MIN(started_at), MAX(started_at) "
        "FROM jobs_attempt"
    )[0]
    first, last = (_as_datetime(v) for v in latency[2:4])
    return {
        "succeeded": succeeded,
        "lost": n - succeeded,
        "jobs_with_extra_attempts": int(
            db.scalar("SELECT COUNT(*) FROM jobs_job WHERE attempts > 1") or 0
        ),
        "attempt_rows": int(db.scalar("SELECT COUNT(*) FROM jobs_attempt") or 0),
        "attempt_outcomes": dict(
            db.rows("SELECT outcome, COUNT(*) FROM jobs_attempt GROUP BY outcome")
        ),
        "latency_mean_seconds": _round(latency[0]),
        "latency_max_seconds": _round(latency[1]),
        # First claim to last claim: how fast the dispatcher really launched.
        "launch_span_seconds": _round((last - first).total_seconds()) if first and last else None,
        **_claim_batches(db),
    }


def _claim_batches(db: _databases.BenchDatabase) -> dict[str, Any]:
    """The dispatcher's claims as the Attempt rows show them: one claim gives
    its attempts one started_at, so the gaps between distinct started_at
    values are the claim loop's real period."""
    rows = db.rows("SELECT started_at, COUNT(*) FROM jobs_attempt GROUP BY started_at")
    times = sorted((_as_datetime(at), n) for at, n in rows)
    gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(times)]
    if not gaps:
        return {"claim_batches": len(times)}
    return {
        "claim_batches": len(times),
        "claim_batch_mean": round(sum(n for _, n in times) / len(times), 1),
        "claim_period_mean_seconds": round(statistics.fmean(gaps), 3),
        "claim_period_median_seconds": round(statistics.median(gaps), 3),
        "claim_period_p90_seconds": round(statistics.quantiles(gaps, n=10)[-1], 3)
        if len(gaps) > 1
        else round(gaps[0], 3),
        "claim_period_max_seconds": round(max(gaps), 3),
    }


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _thin(samples: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    if len(samples) <= limit:
        return samples
    step = math.ceil(len(samples) / limit)
    return samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])


# --- Report ------------------------------------------------------------------------------
def ideal_row(args: argparse.Namespace) -> dict[str, Any]:
    launch = args.jobs / args.launch_rate
    return {
        "route": "ideal",
        "peak_in_flight": min(args.jobs, math.floor(args.launch_rate * args.hold)),
        "ramp_seconds": round(launch, 1),
        "submit_to_done_seconds": round(launch + args.hold, 1),
        "launch_span_seconds": round(launch, 1),
        "latency_mean_seconds": args.hold,
    }


def _cell(value: Any, fmt: str = "{:,}") -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return value
    return fmt.format(value)


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    header = (
        "| run | peak in flight | ramp to peak s | launch span s | submit s | submit → all "
        "succeeded s | mean / max latency s | cluster peak PSS MiB | cluster peak RSS MiB | "
        "cluster CPU s | lost / run twice | sim peak RSS MiB |"
    )
    lines = [header, "| " + " | ".join(["---"] * (header.count("|") - 1)) + " |"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['route']} | failed: {r['error']} |" + " |" * 10)
            continue
        lines.append(
            "| "
            + " | ".join(
                [
                    r["route"] + ("" if r.get("ok") else " (NOT OK)"),
                    _cell(r.get("peak_in_flight")),
                    _cell(r.get("ramp_seconds"), "{:.1f}"),
                    _cell(r.get("launch_span_seconds"), "{:.1f}"),
                    _cell(r.get("submit_seconds"), "{:.2f}"),
                    _cell(r.get("submit_to_done_seconds"), "{:.1f}"),
                    f"{_cell(r.get('latency_mean_seconds'), '{:.1f}')} / "
                    f"{_cell(r.get('latency_max_seconds'), '{:.1f}')}",
                    _cell(r.get("cluster_peak_pss_mib"), "{:,.0f}"),
                    _cell(r.get("cluster_peak_rss_mib"), "{:,.0f}"),
                    _cell(r.get("cluster_cpu_seconds"), "{:.1f}"),
                    f"{r['lost']} / {r['jobs_with_extra_attempts']}",
                    _cell(r.get("sim_peak_rss_mib"), "{:,.0f}"),
                ]
            )
            + " |"
        )
    ideal = ideal_row(args)
    lines.append(
        f"| ideal ({args.jobs:,} at {args.launch_rate:g}/s, held {args.hold:g} s) "
        f"| {ideal['peak_in_flight']:,} | {ideal['ramp_seconds']:.1f} "
        f"| {ideal['launch_span_seconds']:.1f} | - | {ideal['submit_to_done_seconds']:.1f} "
        f"| {args.hold:.1f} / {args.hold:.1f} | - | - | - | 0 / 0 | - |"
    )
    lines.append(
        f"| target | {TARGET_IN_FLIGHT:,} | - | - | - | - | - | < {TARGET_CLUSTER_MIB} "
        f"| < {TARGET_CLUSTER_MIB} | - | 0 / 0 | - |"
    )
    return "\n".join(lines)


def details(results: list[dict[str, Any]]) -> str:
    out = []
    for r in results:
        if "error" in r:
            out.append(f"- **{r['route']}**: failed: {r['error']}")
            continue
        worker = r.get("dispatcher_worker") or {}
        in_flight_ok = r["peak_in_flight"] >= TARGET_IN_FLIGHT
        memory_ok = r["cluster_peak_pss_mib"] < TARGET_CLUSTER_MIB
        if r["jobs"] < TARGET_IN_FLIGHT:
            in_flight_ok = r["peak_in_flight"] >= r["jobs"]
            wanted = f"all {r['jobs']:,}; the {TARGET_IN_FLIGHT:,} target needs --jobs 5000"
        else:
            wanted = f"{TARGET_IN_FLIGHT:,}"
        out.append(
            f"- **{r['route']}** against the target: {r['peak_in_flight']:,} in flight at once "
            f"({'met' if in_flight_ok else 'MISSED'}: {wanted}), "
            f"{r['cluster_peak_pss_mib']:,.0f} MiB PSS for the whole cluster "
            f"({'met' if memory_ok else 'MISSED'}: < {TARGET_CLUSTER_MIB}); "
            f"{'nothing lost or run twice' if r.get('ok') else 'JOBS LOST OR RUN TWICE'}."
        )
        span = r.get("launch_span_seconds")
        if span:
            rate = r["jobs"] / span if span else 0.0
            late = span > r["hold_seconds"]
            out.append(
                f"- **{r['route']}** launched {rate:.1f} jobs/s on average "
                f"(FLEX_LAUNCH_RATE={r['launch_rate']:g})"
                + (
                    f": launching took {span:.1f} s, longer than the {r['hold_seconds']:g} s "
                    "hold, so the first requests were answered before the last were sent."
                    if late
                    else "."
                )
            )
        out.append(
            f"- **{r['route']}** ({r['database']}): {r['succeeded']:,}/{r['jobs']:,} succeeded, "
            f"{r['attempt_rows']:,} attempt rows {r['attempt_outcomes']}, simulator saw "
            f"{r['sim_stats'].get('requests', 0):,} requests; first request "
            f"{_cell(r['first_request_seconds'], '{:.1f}')} s after qcluster start, peak at "
            f"{_cell(r['peak_at_seconds'], '{:.1f}')} s; cluster PSS just before the first "
            f"request {_cell(r.get('cluster_idle_pss_mib'), '{:,.0f}')} MiB; biggest process "
            f"({_role(worker)}, pid {worker.get('pid')}) peaked at "
            f"{worker.get('peak_rss_mib', 0):,.0f} MiB RSS / "
            f"{worker.get('peak_pss_mib', 0):,.0f} MiB PSS with up to "
            f"{worker.get('peak_open_files', 0):,} open files; simulator CPU "
            f"{r['sim_cpu_seconds']:.1f} s; {r.get('claim_batches', 0):,} claims of "
            f"{r.get('claim_batch_mean', 0):g} jobs, one every "
            f"{r.get('claim_period_mean_seconds', 0):.3f} s on average (median "
            f"{r.get('claim_period_median_seconds', 0):.3f}, p90 "
            f"{r.get('claim_period_p90_seconds', 0):.3f}, max "
            f"{r.get('claim_period_max_seconds', 0):.3f}); machine "
            f"{r.get('machine_busy_percent')}% busy, {r.get('other_cpu_seconds')} CPU-s "
            "used by other processes."
        )
    return "\n".join(out)


def _role(process: dict[str, Any]) -> str:
    depth = process.get("depth")
    return {0: "qcluster main", 1: "sentinel"}.get(depth, "worker or helper of the sentinel")


def write_results(
    results: list[dict[str, Any]], args: argparse.Namespace, info: dict[str, Any], text: str
) -> None:
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "inflight",
        "command": info["command"],
        "date": info["date"],
        "machine": info["machine"],
        "parameters": {
            "jobs": args.jobs,
            "hold_seconds": args.hold,
            "launch_rate": args.launch_rate,
            "routes": [r["route"] for r in results],
            "database": args.database_url or "sqlite (temporary file)",
            "memory": "cluster = qcluster process + all descendants; RSS = summed VmRSS "
            "(/proc/PID/status), PSS = summed Pss (/proc/PID/smaps_rollup)",
        },
        "ideal": ideal_row(args),
        "target": {"peak_in_flight": TARGET_IN_FLIGHT, "cluster_mib_below": TARGET_CLUSTER_MIB},
        "routes": results,
    }
    (out / "inflight.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    machine = info["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    md = f"""# bench/inflight.py results

Requests held in flight by one qcluster against the bundled simulator, which
holds every request {args.hold:g} s; {args.jobs:,} jobs per route,
`FLEX_LAUNCH_RATE={args.launch_rate:g}`, `FLEX_MAX_IN_FLIGHT={args.jobs}`.

- Command: `{info["command"]}`
- Date: {info["date"]}
- Machine: {machine["nproc"]} CPUs ({machine["cpu"]}), {machine["memory_gib"]} GiB,
  Linux {machine["kernel"]}, open files {machine["nofile_limit"]}, load average at start
  {machine["load_average"]}
- Python {machine["python"]}; {versions}
- Database: {args.database_url or "SQLite (temporary file, WAL)"}

{text}

Cluster memory is the qcluster process and every descendant (sentinel, monitor,
pusher, workers): PSS sums `/proc/PID/smaps_rollup` Pss (pages shared by the
forked workers counted once), RSS sums `VmRSS` (shared pages counted once per
process). "Launch span" is first to last claim (Attempt.started_at); "ramp" is
first request seen by the simulator to its peak in flight (0.5 s samples).
"Lost / run twice": jobs not succeeded / jobs with more than one attempt.

{details(results)}
"""
    (out / "inflight.md").write_text(md)


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
    info = {
        "command": common.command_line(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": common.machine_info(),
    }
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
