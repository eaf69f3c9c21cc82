"""Running the parts of bench/throughput.py: FlexDash (one cluster, or two) and the naive design.

What one part starts and watches: its fresh database, its simulator, its
qcluster(s), the jobs it submits (`prepare_*`, run inside Django through
common.django_call), and the loop that samples them every SAMPLE_SECONDS
until all jobs finished or time ran out. The kill itself is in
bench/_throughput_kill.py, the counting in bench/_throughput_count.py. A
helper module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import _databases, _procfs, common
from bench._throughput_count import FINISHED, flexdash_tables, naive_tables, per_minute
from bench._throughput_kill import Killer

API_KEY = "bench-key"
USERNAME = "bench"
DB_NAME = "flexdash_bench_throughput"
SAMPLE_SECONDS = 1.0
PROMPT = "Throughput prompt {i}: in one sentence, what does the flex tier trade for its discount?"
PACE_SHARE = 0.95  # what FlexDash paces to (jobs/pacing.py), for the notes only


# --- Small helpers ---------------------------------------------------------------------
def latency_range(text: str) -> tuple[float, float]:
    """--latency's MIN:MAX seconds as two numbers (ValueError if it is not)."""
    low, _, high = text.partition(":")
    return float(low), float(high)


# --- Runs inside Django (through common.django_call) -----------------------------------
def prepare_flexdash(jobs: int) -> dict[str, Any]:
    """Migrate, create the user and submit `jobs` prompts (one jobs_submit call)."""
    from django.contrib.auth import get_user_model

    common.migrate_here()
    from jobs.catalog import DEFAULT_MODEL
    from jobs.engine import submitting

    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    prompts = [PROMPT.format(i=i) for i in range(jobs)]
    started = time.time()
    created = submitting.jobs_submit(
        owner=user, prompts=prompts, spec=submitting.JobSpec(model=DEFAULT_MODEL)
    )
    return {"created": len(created), "model": DEFAULT_MODEL, "seconds": time.time() - started}


def prepare_naive(jobs: int) -> dict[str, Any]:
    """Migrate, make the naive table and enqueue one django-q2 task per prompt."""
    common.migrate_here()
    from django.db import connection
    from django_q.tasks import async_task

    from bench import _naive
    from jobs.catalog import DEFAULT_MODEL

    _naive.create_table()
    started = time.time()
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {_naive.TABLE} (id, prompt, submitted_at) VALUES (%s, %s, %s)",
            [(i + 1, PROMPT.format(i=i), started) for i in range(jobs)],
        )
    for i in range(jobs):
        async_task(
            "bench._naive.run_prompt", i + 1, PROMPT.format(i=i), DEFAULT_MODEL,
            task_name=f"naive-{i + 1}",
        )  # fmt: skip
    return {"created": jobs, "model": DEFAULT_MODEL, "seconds": time.time() - started}


# --- One part: a database, a simulator, one or two clusters ---------------------------
class Part:
    """What one part of the run starts, and the observation loop they share."""

    def __init__(self, name: str, args: argparse.Namespace, workdir: Path) -> None:
        self.name = name
        self.args = args
        self.dir = workdir / name
        self.var = self.dir / "var"
        self.var.mkdir(parents=True, exist_ok=True)
        self.result: dict[str, Any] = {"part": name}

    def log(self, what: str) -> Path:
        return self.dir / f"{what}.log"

    def simulator_args(self) -> list[str]:
        a = self.args
        return ["--p503", f"{a.p503:g}", "--rpm", str(a.rpm), "--seed", str(a.seed)]

    def start_simulator(self, database_url: str) -> tuple[Any, Any]:
        """This part's simulator, with its own log, the run's latency, 503s, RPM and seed."""
        return common.start_simulator(
            common.clean_env(DATABASE_URL=database_url, FLEXDASH_VAR_DIR=self.var),
            self.log("simulator"),
            latency=self.args.latency,
            api_key=API_KEY,
            extra=self.simulator_args(),
            wait=False,
        )

    def observe(
        self,
        clusters: dict[str, Any],
        simulator: Any,
        sim_url: str,
        n: int,
        counts: Callable[[], dict[str, int]],
        timeout: float,
        started: float,
        on_tick: Callable[[float, int, dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Sample every SAMPLE_SECONDS until n jobs finished or `timeout`:
        the simulator's counters, job states, each cluster's memory."""
        trackers = {label: _procfs.PeakTracker(p.pid, pss=True) for label, p in clusters.items()}
        self.dead: set[str] = set()
        self.cpu_at_death: dict[str, float] = {}
        samples: list[dict[str, Any]] = []
        stats: dict[str, Any] = {}
        peak_pss = peak_rss = 0
        last_print = 0.0
        timed_out = False
        state: dict[str, int] = {}
        machine_before, own_before = _procfs.system_cpu_seconds(), common.own_cpu_seconds()
        next_tick = time.monotonic()
        while True:
            now = time.monotonic()
            t = time.time() - started
            for label, process in clusters.items():
                if label not in self.dead and process.poll() is not None:
                    raise RuntimeError(f"qcluster {label} exited with {process.returncode}")
            if simulator.poll() is not None:
                raise RuntimeError(f"simulator exited with {simulator.returncode}")
            with contextlib.suppress(OSError):
                stats = common.sim_stats(sim_url, timeout=5)
            pss = rss = 0
            for label, tracker in trackers.items():
                if label in self.dead:
                    continue
                sample = tracker.sample()
                pss, rss = pss + sample.pss_kib, rss + sample.rss_kib
            peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
            state = counts()
            finished = sum(state.get(s, 0) for s in FINISHED)
            samples.append(
                {
                    "t": round(t, 2),
                    "finished": finished,
                    "requests": stats.get("requests", 0),
                    "in_flight": stats.get("in_flight", 0),
                    "pss_mib": round(pss / _procfs.MIB, 1),
                    "rss_mib": round(rss / _procfs.MIB, 1),
                }
            )
            if now - last_print >= 10:
                last_print = now
                by = stats.get("by_status", {})
                print(
                    f"[{self.name}] t={t:6.1f}s finished {finished:5d}/{n} "
                    f"requests {stats.get('requests', 0):5d} (503 {by.get('503', 0)}, "
                    f"429 {by.get('429', 0)}) in flight {stats.get('in_flight', 0):4d} "
                    f"clusters PSS {pss / _procfs.MIB:5.0f} MiB RSS {rss / _procfs.MIB:5.0f} MiB",
                    flush=True,
                )
            if on_tick is not None:
                on_tick(t, finished, stats)
            if finished >= n:
                break
            if time.time() - started > timeout:
                timed_out = True
                print(f"[{self.name}] timed out after {timeout:.0f} s", flush=True)
                break
            next_tick += SAMPLE_SECONDS
            time.sleep(max(0.0, next_tick - time.monotonic()))

        sliding = per_minute(samples)[1]
        cpu = sum(
            _procfs.tree_cpu_seconds(p.pid)
            for label, p in clusters.items()
            if label not in self.dead
        ) + sum(self.cpu_at_death.values())
        sim_cpu = _procfs.cpu_seconds(simulator.pid)
        busy, total = (
            a - b for a, b in zip(_procfs.system_cpu_seconds(), machine_before, strict=True)
        )
        own = common.own_cpu_seconds() - own_before
        with contextlib.suppress(OSError):
            stats = common.sim_stats(sim_url, timeout=10)
        return {
            "timed_out": timed_out,
            "timeout_seconds": round(timeout),
            "states": state,
            "sim_stats": stats,
            "peak_pss_mib": round(peak_pss / _procfs.MIB, 1),
            "peak_rss_mib": round(peak_rss / _procfs.MIB, 1),
            "per_cluster_peak_mib": {
                label: {
                    "pss": round(tr.peak_pss_kib / _procfs.MIB, 1),
                    "rss": round(tr.peak_rss_kib / _procfs.MIB, 1),
                }
                for label, tr in trackers.items()
            },
            "cluster_cpu_seconds": round(cpu, 1),
            "sim_cpu_seconds": round(sim_cpu, 1),
            "sim_peak_in_flight": stats.get("peak_in_flight"),
            # The most requests in any 60 s (1 s samples): what the RPM window saw.
            "peak_requests_per_sliding_minute": max(sliding, default=0),
            "machine_busy_percent": round(100 * busy / total, 1) if total else None,
            "other_cpu_seconds": round(busy - cpu - sim_cpu - own, 1),
            "samples": common.thin(samples),
        }


def _db_url(args: argparse.Namespace) -> str | None:
    return args.database_url if args.database == "postgres" else None


def _flexdash_env(db: _databases.BenchDatabase, var: Path, args: argparse.Namespace, **extra: Any):
    return common.clean_env(
        DATABASE_URL=db.url,
        FLEXDASH_VAR_DIR=var,
        GEMINI_API_KEY=API_KEY,
        FLEX_RPM_LIMIT=args.rpm,
        FLEX_LOG_LEVEL="WARNING",
        **extra,
    )


# --- FlexDash (one cluster, or two with one killed) ------------------------------------
def run_flexdash(args: argparse.Namespace, workdir: Path, *, kill: bool) -> dict[str, Any]:
    name = "flexdash_kill" if kill else "flexdash"
    part = Part(name, args, workdir)
    n = args.jobs
    result = part.result
    result.update(jobs=n, design="flexdash")
    labels = ("A", "B") if kill else ("A",)
    print(f"\n[{name}] fresh {args.database} database ...", flush=True)
    with _databases.fresh_database(part.dir, _db_url(args), name=DB_NAME) as db:
        result["database"] = db.engine
        simulator, _ = part.start_simulator(db.url)
        clusters: dict[str, Any] = {}
        clean = False
        try:
            extra: dict[str, Any] = {}
            if kill:
                extra = {
                    "FLEX_DISPATCHERS": 2,
                    "FLEX_LEASE_SECONDS": args.lease_seconds,
                    # README, Scaling out: at least FLEX_DISPATCHERS + 1 workers.
                    "FLEX_Q_WORKERS": 3,
                }
            env = _flexdash_env(db, part.var, args, **extra)
            print(f"[{name}] migrate, then submit {n:,} jobs (jobs_submit) ...", flush=True)
            submitted = common.django_call(
                "bench._throughput_run:prepare_flexdash", env, part.log("setup"), jobs=n
            )
            if submitted["created"] != n:
                raise RuntimeError(f"submitted {submitted['created']} jobs, expected {n}")
            result["submit_seconds"] = round(submitted["seconds"], 2)
            env["GEMINI_BASE_URL"] = sim_url = common.simulator_url(
                simulator, part.log("simulator")
            )
            result["settings"] = {k: v for k, v in env.items() if k.startswith("FLEX_")}
            started = time.time()
            for label in labels:
                clusters[label] = common.start_qcluster(env, part.log(f"qcluster-{label}"))
            print(
                f"[{name}] simulator {sim_url}; qcluster(s) "
                + ", ".join(f"{k} pid {p.pid}" for k, p in clusters.items()),
                flush=True,
            )
            expected = n / (args.rpm * PACE_SHARE * (1 - args.p503)) * 60
            timeout = args.timeout or max(300.0, 2.5 * expected + 180 + (120 if kill else 0))
            killer = Killer(part, db, clusters, n, started) if kill else None
            observed = part.observe(
                clusters,
                simulator,
                sim_url,
                n,
                db.job_counts,
                timeout,
                started,
                on_tick=killer.tick if killer else None,
            )
            result.update(observed)
            result.update(flexdash_tables(db, n, started, observed["sim_stats"]))
            if killer:
                result["kill"] = killer.report(db)
            clean = not observed["timed_out"]
        finally:
            # A clean run's dispatcher has nothing left and stops in ~2 s; after a
            # timeout or Ctrl-C do not wait for requests in flight to drain.
            for process in clusters.values():
                common.stop_process(process, grace=20.0 if clean else 3.0)
            common.stop_process(simulator, grace=5.0)
    result["ok"] = (
        not result.get("timed_out")
        and result.get("lost") == 0
        and result.get("duplicates") == 0
        and (not kill or bool(result.get("kill", {}).get("killed")))
    )
    return result


# --- The naive design --------------------------------------------------------------------
def run_naive(args: argparse.Namespace, workdir: Path, workers: int) -> dict[str, Any]:
    name = f"naive_{workers}w"
    part = Part(name, args, workdir)
    n = args.naive_jobs
    result = part.result
    result.update(jobs=n, design="naive", workers=workers, full_jobs=args.jobs)
    print(f"\n[{name}] fresh {args.database} database ...", flush=True)
    with _databases.fresh_database(part.dir, _db_url(args), name=DB_NAME) as db:
        result["database"] = db.engine
        simulator, _ = part.start_simulator(db.url)
        cluster = None
        clean = False
        try:
            env = _flexdash_env(db, part.var, args, FLEX_Q_WORKERS=workers)
            print(f"[{name}] migrate, then enqueue {n:,} django-q2 tasks ...", flush=True)
            submitted = common.django_call(
                "bench._throughput_run:prepare_naive", env, part.log("setup"), jobs=n
            )
            result["submit_seconds"] = round(submitted["seconds"], 2)
            env["GEMINI_BASE_URL"] = sim_url = common.simulator_url(
                simulator, part.log("simulator")
            )
            started = time.time()
            cluster = common.start_qcluster(env, part.log("qcluster"))
            print(f"[{name}] simulator {sim_url}; qcluster pid {cluster.pid}, {workers} workers")
            mean_latency = sum(latency_range(args.latency)) / 2
            expected = n / (workers / (mean_latency + 2.5)) if workers else 0
            timeout = args.naive_timeout or max(300.0, 2 * expected + 240)

            def counts() -> dict[str, int]:
                return {
                    s: int(c)
                    for s, c in db.rows(
                        "SELECT state, COUNT(*) FROM bench_naive_job GROUP BY state"
                    )
                }

            observed = part.observe({"A": cluster}, simulator, sim_url, n, counts, timeout, started)
            result.update(observed)
            result.update(naive_tables(db, n, started, observed["sim_stats"]))
            clean = not observed["timed_out"]
        finally:
            # Interrupted workers sleep in their backoff: no point waiting for them.
            if cluster is not None:
                common.stop_process(cluster, grace=20.0 if clean else 3.0)
            common.stop_process(simulator, grace=5.0)
    rate = result.get("steady_per_min") or result.get("whole_run_per_min")
    # At its steady rate: labelled "extrapolated" wherever it is shown.
    result["extrapolated_seconds_for_all"] = common.rounded(args.jobs / rate * 60) if rate else None
    result["ok"] = not result.get("timed_out") and result.get("lost") == 0
    return result
