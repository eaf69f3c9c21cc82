"""Running one route of bench/inflight.py: its database, simulator, jobs and qcluster, sampled.

What one route starts and watches: a fresh database, the simulator holding
every request HOLD seconds, N jobs submitted through `jobs_submit`
(`prepare_and_submit`, run inside Django through common.django_call), one
qcluster allowed N in flight, and the loop that samples the simulator's
requests in flight, the cluster's memory and the simulator's every
SAMPLE_SECONDS until all jobs finished or time ran out. What the tables say
at the end is bench/_inflight_count.py's. A helper module (bench/_*.py), not
a benchmark.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench import _databases, _procfs, common
from bench._inflight_count import check

API_KEY = "bench-key"
USERNAME = "bench"
SAMPLE_SECONDS = 0.5


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
                "bench._inflight_run:prepare_and_submit",
                env,
                logs["setup"],
                jobs=n,
                username=USERNAME,
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
    table_check = check(db, n)
    biggest = max(cluster_mem.per_process.values(), key=lambda p: p["peak_rss_mib"], default={})
    figures = {
        "hold_seconds": hold,
        "launch_rate": args.launch_rate,
        "timed_out": timed_out,
        "timeout_seconds": round(timeout),
        "peak_in_flight": stats.get("peak_in_flight", peak),
        "peak_in_flight_sampled": max((s["in_flight"] for s in samples), default=0),
        "first_request_seconds": common.rounded(first_request_at),
        "peak_at_seconds": common.rounded(peak_at),
        "ramp_seconds": common.rounded(peak_at - first_request_at)
        if peak_at is not None and first_request_at is not None
        else None,
        "submit_to_done_seconds": common.rounded(done_at - submit_started) if done_at else None,
        "cluster_start_to_done_seconds": common.rounded(done_at - cluster_started)
        if done_at
        else None,
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
        **table_check,
        "samples": common.thin(samples),
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
