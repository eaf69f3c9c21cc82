"""Finished jobs per minute against a rate limit: FlexDash, the naive design and the physical limit.

In one run, each part with its own fresh database and its own simulator
(`manage.py flexsim --latency 2:10 --p503 0.2 --rpm 1000 --seed S`: a sliding
60 s window in which every request, 503s included, counts, as Google's quota
does):

- FlexDash: N jobs (2,000) submitted with `jobs.services.jobs_submit`, one
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
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402

API_KEY = "bench-key"
USERNAME = "bench"
RESULTS = ROOT / "bench" / "results"
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DB_NAME = "flexdash_bench_throughput"
SAMPLE_SECONDS = 1.0
PROMPT = "Throughput prompt {i}: in one sentence, what does the flex tier trade for its discount?"
PACE_SHARE = 0.95  # what FlexDash paces to (jobs/pacing.py), for the notes only
TARGET_RATIO = 0.90
TARGET_VS_NAIVE = 10.0
FINISHED = ("succeeded", "failed", "cancelled")


# --- Runs inside Django (through common.django_call) -----------------------------------
def prepare_flexdash(jobs: int) -> dict[str, Any]:
    """Migrate, create the user and submit `jobs` prompts (one jobs_submit call)."""
    from django.contrib.auth import get_user_model

    common.migrate_here()
    from jobs import services
    from jobs.catalog import DEFAULT_MODEL

    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    prompts = [PROMPT.format(i=i) for i in range(jobs)]
    started = time.time()
    created = services.jobs_submit(
        owner=user, prompts=prompts, spec=services.JobSpec(model=DEFAULT_MODEL)
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


# --- Small helpers ---------------------------------------------------------------------
def _epoch(value: Any) -> float | None:
    """A timestamp from the database as Unix seconds (SQLite: naive UTC text)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(str(value))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _thin(samples: list[dict[str, Any]], limit: int = 400) -> list[dict[str, Any]]:
    if len(samples) <= limit:
        return samples
    step = math.ceil(len(samples) / limit)
    return samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rates(offsets: list[float], n: int) -> dict[str, Any]:
    """Whole-run and steady-state (10 % to 90 % of n finished) rates, per minute.

    `offsets` are finish times in seconds from the cluster's start."""
    times = sorted(offsets)
    out: dict[str, Any] = {"finished": len(times)}
    if not times:
        return out
    last = times[-1]
    out["last_finished_seconds"] = round(last, 1)
    out["whole_run_per_min"] = round(len(times) / last * 60, 1) if last > 0 else None
    i10, i90 = math.ceil(0.1 * n), math.ceil(0.9 * n)
    if len(times) >= i90 and i90 > i10:
        t10, t90 = times[i10 - 1], times[i90 - 1]
        out["t10_seconds"], out["t90_seconds"] = round(t10, 1), round(t90, 1)
        if t90 > t10:
            out["steady_per_min"] = round((i90 - i10) / (t90 - t10) * 60, 1)
    return out


def _wasted(stats: dict[str, Any], finished: int) -> dict[str, Any]:
    by_status = stats.get("by_status", {})
    n503, n429 = int(by_status.get("503", 0)), int(by_status.get("429", 0))
    requests = int(stats.get("requests", 0))
    answered = sum(int(v) for v in by_status.values())
    return {
        "requests": requests,
        "http_200": int(by_status.get("200", 0)),
        "http_503": n503,
        "http_429": n429,
        "other_statuses": {k: v for k, v in by_status.items() if k not in ("200", "503", "429")},
        # Admitted by the simulator but never answered: cut off by a killed cluster.
        "cut_off": max(0, requests - answered - int(stats.get("in_flight", 0))),
        "wasted_per_finished": round((n503 + n429) / finished, 3) if finished else None,
        "requests_per_finished": round(requests / finished, 3) if finished else None,
    }


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
        trackers = {label: common.PeakTracker(p.pid, pss=True) for label, p in clusters.items()}
        self.dead: set[str] = set()
        self.cpu_at_death: dict[str, float] = {}
        samples: list[dict[str, Any]] = []
        stats: dict[str, Any] = {}
        peak_pss = peak_rss = 0
        last_print = 0.0
        timed_out = False
        state: dict[str, int] = {}
        machine_before, own_before = common.system_cpu_seconds(), _own_cpu()
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
                    "pss_mib": round(pss / common.MIB, 1),
                    "rss_mib": round(rss / common.MIB, 1),
                }
            )
            if now - last_print >= 10:
                last_print = now
                by = stats.get("by_status", {})
                print(
                    f"[{self.name}] t={t:6.1f}s finished {finished:5d}/{n} "
                    f"requests {stats.get('requests', 0):5d} (503 {by.get('503', 0)}, "
                    f"429 {by.get('429', 0)}) in flight {stats.get('in_flight', 0):4d} "
                    f"clusters PSS {pss / common.MIB:5.0f} MiB RSS {rss / common.MIB:5.0f} MiB",
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

        sliding = _per_minute(samples)[1]
        cpu = sum(
            common.tree_cpu_seconds(p.pid)
            for label, p in clusters.items()
            if label not in self.dead
        ) + sum(self.cpu_at_death.values())
        sim_cpu = common.cpu_seconds(simulator.pid)
        busy, total = (
            a - b for a, b in zip(common.system_cpu_seconds(), machine_before, strict=True)
        )
        own = _own_cpu() - own_before
        with contextlib.suppress(OSError):
            stats = common.sim_stats(sim_url, timeout=10)
        return {
            "timed_out": timed_out,
            "timeout_seconds": round(timeout),
            "states": state,
            "sim_stats": stats,
            "peak_pss_mib": round(peak_pss / common.MIB, 1),
            "peak_rss_mib": round(peak_rss / common.MIB, 1),
            "per_cluster_peak_mib": {
                label: {
                    "pss": round(tr.peak_pss_kib / common.MIB, 1),
                    "rss": round(tr.peak_rss_kib / common.MIB, 1),
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
            "samples": _thin(samples),
        }


def _db_url(args: argparse.Namespace) -> str | None:
    return args.database_url if args.database == "postgres" else None


def _flexdash_env(db: common.BenchDatabase, var: Path, args: argparse.Namespace, **extra: Any):
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
    with common.fresh_database(part.dir, _db_url(args), name=DB_NAME) as db:
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
                "bench.throughput:prepare_flexdash", env, part.log("setup"), jobs=n
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
            killer = _Killer(part, db, clusters, n, started) if kill else None
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
            result.update(_flexdash_tables(db, n, started, observed["sim_stats"]))
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


def _flexdash_tables(
    db: common.BenchDatabase, n: int, started: float, sim: dict[str, Any]
) -> dict[str, Any]:
    """Everything counted from the tables at the end."""
    states = db.job_counts()
    rows = db.rows(
        "SELECT finished_at FROM jobs_job WHERE state IN ('succeeded', 'failed', 'cancelled')"
    )
    offsets = sorted(_epoch(r[0]) - started for r in rows if r[0] is not None)
    finished = sum(states.get(s, 0) for s in FINISHED)
    active = sum(states.get(s, 0) for s in ("queued", "running", "retrying"))
    attempts = db.rows(
        "SELECT http_status, outcome, COUNT(*) FROM jobs_attempt GROUP BY http_status, outcome"
    )
    duplicates = int(
        db.scalar(
            "SELECT COUNT(*) FROM (SELECT job_id FROM jobs_attempt WHERE outcome = 'succeeded' "
            "GROUP BY job_id HAVING COUNT(*) > 1) AS twice"
        )
        or 0
    )
    attempt_rows = sum(int(c) for *_, c in attempts)
    by_outcome: dict[str, int] = {}
    by_http: dict[str, int] = {}
    for status, outcome, count in attempts:
        by_outcome[outcome] = by_outcome.get(outcome, 0) + int(count)
        key = str(status) if status is not None else "none"
        by_http[key] = by_http.get(key, 0) + int(count)
    first_sent = _epoch(db.scalar("SELECT MIN(started_at) FROM jobs_attempt"))
    return {
        "states": states,
        "succeeded": states.get("succeeded", 0),
        "failed": states.get("failed", 0),
        "unfinished": active,
        # Submitted, yet neither finished nor still waiting or running.
        "lost": n - finished - active,
        "duplicates": duplicates,
        "attempt_rows": attempt_rows,
        "attempts_by_outcome": by_outcome,
        "attempts_by_http_status": by_http,
        "first_request_seconds": _round(first_sent - started) if first_sent else None,
        "finish_offsets": [round(x, 2) for x in offsets],
        **_rates(offsets, n),
        **_wasted(sim, finished),
    }


class _Killer:
    """SIGKILLs one cluster's whole process group once half the jobs finished."""

    def __init__(
        self, part: Part, db: common.BenchDatabase, clusters: dict[str, Any], n: int, started: float
    ) -> None:
        self.part, self.db, self.clusters, self.n, self.started = part, db, clusters, n, started
        self.done: dict[str, Any] = {}
        self.victim_jobs: list[int] = []

    def _dispatchers(self) -> dict[str, list[dict[str, Any]]]:
        """Live dispatcher slots per cluster: the slot owner names its worker's pid."""
        trees = {label: set(common.process_tree(p.pid)) for label, p in self.clusters.items()}
        held: dict[str, list[dict[str, Any]]] = {label: [] for label in self.clusters}
        for owner, in_flight in self.db.rows(
            "SELECT owner, in_flight FROM jobs_dispatcherslot WHERE owner <> ''"
        ):
            try:
                pid = int(owner.rsplit(":", 2)[1])
            except (IndexError, ValueError):
                continue
            for label, pids in trees.items():
                if pid in pids:
                    held[label].append({"owner": owner, "in_flight": int(in_flight or 0)})
        return held

    def tick(self, t: float, finished: int, stats: dict[str, Any]) -> None:
        if self.done or finished < self.n / 2:
            return
        held = self._dispatchers()
        # The cluster running the most dispatchers (then the most requests) dies:
        # the worst case, all of its requests in flight are cut off.
        victim = max(
            held, key=lambda k: (len(held[k]), sum(d["in_flight"] for d in held[k]), k == "A")
        )
        process = self.clusters[victim]
        owners = [d["owner"] for d in held[victim]]
        if owners:
            marks = ", ".join("%s" for _ in owners)
            self.victim_jobs = [
                int(r[0])
                for r in self._rows(
                    f"SELECT id FROM jobs_job WHERE state = 'running' AND lease_owner IN ({marks})",
                    owners,
                )
            ]
        cpu = common.tree_cpu_seconds(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        killed_at = time.time()
        process.wait(timeout=30)
        self.part.dead.add(victim)
        self.part.cpu_at_death[victim] = cpu
        self.done = {
            "killed": victim,
            "killed_at_seconds": round(killed_at - self.started, 1),
            "killed_at_epoch": killed_at,
            "finished_at_kill": finished,
            "sim_in_flight_at_kill": stats.get("in_flight"),
            "dispatchers_per_cluster": {k: len(v) for k, v in held.items()},
            "dispatchers": held,
            "victim_running_jobs": len(self.victim_jobs),
        }
        print(
            f"[{self.part.name}] t={killed_at - self.started:.1f}s SIGKILL to cluster {victim}'s "
            f"process group (pgid {process.pid}): dispatchers per cluster "
            f"{self.done['dispatchers_per_cluster']}, {len(self.victim_jobs)} of its jobs running, "
            f"{stats.get('in_flight')} requests in flight at the simulator",
            flush=True,
        )

    def _rows(self, sql: str, params: list[Any]) -> list[tuple]:
        connection = self.db.connect()
        if self.db.engine == "sqlite":
            sql = sql.replace("%s", "?")
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _db_time(self, epoch: float) -> Any:
        """A Unix time as the database compares it (SQLite: Django's naive UTC text)."""
        moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
        if self.db.engine == "sqlite":
            return moment.replace(tzinfo=None).isoformat(sep=" ")
        return moment

    def report(self, db: common.BenchDatabase) -> dict[str, Any]:
        out = {k: v for k, v in self.done.items() if k != "killed_at_epoch"}
        if not self.done:
            return {"killed": None}
        killed_at = self.done["killed_at_epoch"]
        if self.victim_jobs:
            marks = ", ".join("%s" for _ in self.victim_jobs)
            retried = self._rows(
                f"SELECT MIN(started_at) FROM jobs_attempt WHERE job_id IN ({marks}) "
                "AND started_at > %s",
                [*self.victim_jobs, self._db_time(killed_at)],
            )
            first = _epoch(retried[0][0]) if retried else None
            if first is not None:
                out["first_retry_after_kill_seconds"] = round(first - killed_at, 1)
            done = self._rows(
                f"SELECT COUNT(*), MAX(finished_at) FROM jobs_job WHERE id IN ({marks}) "
                "AND state IN ('succeeded', 'failed', 'cancelled')",
                self.victim_jobs,
            )
            out["victim_jobs_finished"] = int(done[0][0])
            last = _epoch(done[0][1])
            if last is not None:
                out["victim_jobs_all_finished_after_kill_seconds"] = round(last - killed_at, 1)
        first_claim = _epoch(
            self._rows(
                "SELECT MIN(started_at) FROM jobs_attempt WHERE started_at > %s",
                [self._db_time(killed_at)],
            )[0][0]
        )
        if first_claim is not None:
            out["first_claim_after_kill_seconds"] = round(first_claim - killed_at, 1)
        finishes = sorted(
            t
            for (value,) in db.rows(
                "SELECT finished_at FROM jobs_job WHERE finished_at IS NOT NULL"
            )
            if (t := _epoch(value)) is not None and t >= killed_at
        )
        # How long nothing finished once the kill landed (a job recorded in the
        # instant of the kill does not count), and the longest such gap later
        # on, the tail of last retries included.
        resumed = [t for t in finishes if t > killed_at + 1.0]
        if resumed:
            out["first_finish_after_kill_seconds"] = round(resumed[0] - killed_at, 1)
        gaps = [b - a for a, b in itertools.pairwise(resumed)]
        out["longest_gap_later_seconds"] = round(max(gaps), 1) if gaps else None
        out["lost_attempts"] = int(
            db.scalar("SELECT COUNT(*) FROM jobs_attempt WHERE outcome = 'lost'") or 0
        )
        out["discarded_answers"] = int(
            db.scalar("SELECT COUNT(*) FROM jobs_attempt WHERE outcome = 'discarded'") or 0
        )
        return out


# --- The naive design --------------------------------------------------------------------
def run_naive(args: argparse.Namespace, workdir: Path, workers: int) -> dict[str, Any]:
    name = f"naive_{workers}w"
    part = Part(name, args, workdir)
    n = args.naive_jobs
    result = part.result
    result.update(jobs=n, design="naive", workers=workers, full_jobs=args.jobs)
    print(f"\n[{name}] fresh {args.database} database ...", flush=True)
    with common.fresh_database(part.dir, _db_url(args), name=DB_NAME) as db:
        result["database"] = db.engine
        simulator, _ = part.start_simulator(db.url)
        cluster = None
        clean = False
        try:
            env = _flexdash_env(db, part.var, args, FLEX_Q_WORKERS=workers)
            print(f"[{name}] migrate, then enqueue {n:,} django-q2 tasks ...", flush=True)
            submitted = common.django_call(
                "bench.throughput:prepare_naive", env, part.log("setup"), jobs=n
            )
            result["submit_seconds"] = round(submitted["seconds"], 2)
            env["GEMINI_BASE_URL"] = sim_url = common.simulator_url(
                simulator, part.log("simulator")
            )
            started = time.time()
            cluster = common.start_qcluster(env, part.log("qcluster"))
            print(f"[{name}] simulator {sim_url}; qcluster pid {cluster.pid}, {workers} workers")
            mean_latency = sum(_latency(args.latency)) / 2
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
            result.update(_naive_tables(db, n, started, observed["sim_stats"]))
            clean = not observed["timed_out"]
        finally:
            # Interrupted workers sleep in their backoff: no point waiting for them.
            if cluster is not None:
                common.stop_process(cluster, grace=20.0 if clean else 3.0)
            common.stop_process(simulator, grace=5.0)
    rate = result.get("steady_per_min") or result.get("whole_run_per_min")
    # At its steady rate: labelled "extrapolated" wherever it is shown.
    result["extrapolated_seconds_for_all"] = _round(args.jobs / rate * 60) if rate else None
    result["ok"] = not result.get("timed_out") and result.get("lost") == 0
    return result


def _naive_tables(
    db: common.BenchDatabase, n: int, started: float, sim: dict[str, Any]
) -> dict[str, Any]:
    states = {
        s: int(c) for s, c in db.rows("SELECT state, COUNT(*) FROM bench_naive_job GROUP BY state")
    }
    rows = db.rows("SELECT finished_at FROM bench_naive_job WHERE finished_at IS NOT NULL")
    offsets = sorted(float(r[0]) - started for r in rows)
    finished = sum(states.get(s, 0) for s in FINISHED)
    # Still to run: its task waits in django-q2's queue, or a worker holds it.
    queued = int(db.scalar("SELECT COUNT(*) FROM django_q_ormq") or 0)
    running = states.get("running", 0)
    totals = db.rows(
        "SELECT SUM(attempts), SUM(http_503), SUM(http_429), SUM(other_errors), "
        "SUM(slept_seconds) FROM bench_naive_job"
    )[0]
    return {
        "states": states,
        "succeeded": states.get("succeeded", 0),
        "failed": states.get("failed", 0),
        "unfinished": n - finished,
        "lost": max(0, n - finished - running - min(queued, states.get("queued", 0))),
        "duplicates": 0,
        "table_attempts": int(totals[0] or 0),
        "table_503": int(totals[1] or 0),
        "table_429": int(totals[2] or 0),
        "table_other_errors": int(totals[3] or 0),
        "slept_seconds": round(float(totals[4] or 0), 1),
        "finish_offsets": [round(x, 2) for x in offsets],
        **_rates(offsets, n),
        **_wasted(sim, finished),
    }


# --- The limit, the table, the chart -------------------------------------------------------
def _latency(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    return float(low), float(high)


def physical_limit(args: argparse.Namespace, in_flight_cap: int) -> dict[str, Any]:
    mean_latency = sum(_latency(args.latency)) / 2
    by_flight = in_flight_cap / mean_latency * 60 if mean_latency > 0 else math.inf
    requests = min(float(args.rpm), by_flight) if args.rpm else by_flight
    finished = requests * (1 - args.p503)
    return {
        "requests_per_min": round(requests, 1),
        "bound_by": "rpm" if args.rpm and args.rpm <= by_flight else "in-flight cap / latency",
        "in_flight_cap": in_flight_cap,
        "in_flight_cap_per_min": round(by_flight, 1),
        "mean_latency_seconds": mean_latency,
        "finished_per_min": round(finished, 1),
        "wasted_per_finished": round(args.p503 / (1 - args.p503), 3),
        "seconds_for_all": round(args.jobs / finished * 60, 1) if finished else None,
    }


def _cell(value: Any, fmt: str = "{:,.1f}") -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return value
    return fmt.format(value)


def _ratio(value: float | None, limit: float) -> float | None:
    return None if value is None or not limit else value / limit


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:,.0f} s ({seconds / 60:.1f} min)"


def table(parts: dict[str, Any], limit: dict[str, Any], args: argparse.Namespace) -> str:
    lim = limit["finished_per_min"]
    header = (
        "| design | jobs | finished jobs/min, whole run | finished jobs/min, steady (10→90 %) "
        "| ratio to limit, whole / steady | wasted calls (503 + 429) per finished job "
        "| time to finish all | peak memory PSS / RSS MiB | CPU s | jobs lost |"
    )
    lines = [header, "| " + " | ".join(["---"] * 10) + " |"]

    def row(label: str, r: dict[str, Any], time_text: str, lost: str) -> None:
        if "error" in r:
            lines.append(f"| {label} | failed: {r['error']} |" + " |" * 8)
            return
        whole, steady = r.get("whole_run_per_min"), r.get("steady_per_min")
        rw, rs = _ratio(whole, lim), _ratio(steady, lim)
        lines.append(
            f"| {label} | {r['jobs']:,} | {_cell(whole)} | {_cell(steady)} "
            f"| {_cell(rw, '{:.2f}')} / {_cell(rs, '{:.2f}')} "
            f"| {_cell(r.get('wasted_per_finished'), '{:.3f}')} "
            f"({r.get('http_503', 0)} + {r.get('http_429', 0)}) "
            f"| {time_text} | {_cell(r.get('peak_pss_mib'), '{:,.0f}')} / "
            f"{_cell(r.get('peak_rss_mib'), '{:,.0f}')} | {_cell(r.get('cluster_cpu_seconds'))} "
            f"| {lost} |"
        )

    fd = parts.get("flexdash")
    if fd:
        row(
            "FlexDash (1 qcluster, 2 workers, one dispatcher)",
            fd,
            _minutes(fd.get("last_finished_seconds")),
            _lost(fd),
        )
    for naive in parts.get("naive", []):
        time_text = "-"
        if "error" not in naive:
            extrapolated = naive.get("extrapolated_seconds_for_all")
            time_text = (
                f"{naive['jobs']:,} in {_minutes(naive.get('last_finished_seconds'))}; "
                f"{args.jobs:,}: **~{_minutes(extrapolated)}, extrapolated**"
            )
        row(
            f"naive ({naive['workers']} workers, one task per prompt, sample of {naive['jobs']:,})",
            naive,
            time_text,
            _lost(naive),
        )
    lines.append(
        f"| physical limit ({limit['requests_per_min']:,.0f} requests/min "
        f"{'= the RPM limit' if limit['bound_by'] == 'rpm' else '= in-flight cap / latency'}, "
        f"x (1 - p503 {args.p503:g})) | {args.jobs:,} | {lim:,.1f} | {lim:,.1f} | 1.00 / 1.00 "
        f"| {limit['wasted_per_finished']:.3f} (503s alone, p503/(1 - p503); no 429) "
        f"| {_minutes(limit['seconds_for_all'])} | - | - | 0 |"
    )
    kill = parts.get("flexdash_kill")
    if kill:
        row(
            "FlexDash, 2 qclusters, one SIGKILLed at 50 %",
            kill,
            _minutes(kill.get("last_finished_seconds")),
            _lost(kill),
        )
    naive_rates = [r.get("steady_per_min") for r in parts.get("naive", []) if "error" not in r]
    best_naive = max([x for x in naive_rates if x], default=None)
    lines.append(
        f"| target (FlexDash) | {args.jobs:,} | | ≥ {TARGET_RATIO * lim:,.0f} "
        f"({TARGET_RATIO:.0%} of the limit) and ≥ {TARGET_VS_NAIVE:g} x naive"
        + (f" (≥ {TARGET_VS_NAIVE * best_naive:,.0f})" if best_naive else "")
        + f" | ≥ {TARGET_RATIO:.2f} | fewer than naive | | | | 0 |"
    )
    return "\n".join(lines)


def _lost(r: dict[str, Any]) -> str:
    if "error" in r:
        return "-"
    text = f"{r.get('lost', '?')}"
    if r.get("unfinished"):
        text += f" ({r['unfinished']} unfinished at the timeout)"
    if r.get("design") == "flexdash":
        text += f", {r.get('duplicates', '?')} recorded twice"
    return text


def _wasted_interval(r: dict[str, Any]) -> str:
    """A 95 % interval for wasted calls per finished job (a Poisson count)."""
    finished = r.get("finished") or 0
    wasted = r.get("http_503", 0) + r.get("http_429", 0)
    if not finished:
        return "-"
    half = 1.96 * math.sqrt(max(wasted, 1)) / finished
    return f"{wasted / finished:.3f} ± {half:.3f}"


def verdicts(parts: dict[str, Any], limit: dict[str, Any]) -> list[str]:
    fd = parts.get("flexdash")
    out: list[str] = []
    if not fd or "error" in fd:
        return ["- FlexDash did not run to the end: no verdict."]
    lim = limit["finished_per_min"]
    steady, whole = fd.get("steady_per_min"), fd.get("whole_run_per_min")
    if steady:
        met = steady >= TARGET_RATIO * lim
        out.append(
            f"- **≥ {TARGET_RATIO:.0%} of the limit: {'met' if met else 'MISSED'}** at the steady "
            f"rate, {steady:,.1f} of {lim:,.1f} finished jobs/min ({steady / lim:.1%}); over the "
            f"whole run (cluster start → last job, the tail of last retries included) "
            f"{whole:,.1f} ({whole / lim:.1%}, "
            f"{'met' if whole >= TARGET_RATIO * lim else 'missed'} on that stricter reading). "
            f"FlexDash paces at {PACE_SHARE:.0%} of FLEX_RPM_LIMIT by design, so "
            f"{PACE_SHARE * lim:,.0f}/min is its own ceiling here."
        )
    for naive in parts.get("naive", []):
        if "error" in naive or not naive.get("steady_per_min"):
            continue
        ns, nw = naive["steady_per_min"], naive.get("whole_run_per_min")
        x_steady = steady / ns if steady else None
        x_whole = whole / nw if whole and nw else None
        out.append(
            f"- **≥ {TARGET_VS_NAIVE:g} x naive ({naive['workers']} workers): "
            f"{'met' if x_steady and x_steady >= TARGET_VS_NAIVE else 'MISSED'}**: "
            f"{_cell(x_steady, '{:.1f}')} x at the steady rates ({steady:,.1f} vs {ns:,.1f}), "
            f"{_cell(x_whole, '{:.1f}')} x over the whole runs ({whole:,.1f} vs {_cell(nw)})."
        )
        fw, nwst = fd.get("wasted_per_finished"), naive.get("wasted_per_finished")
        if fw is not None and nwst is not None:
            out.append(
                f"- **Fewer wasted calls per finished job than naive ({naive['workers']} workers): "
                f"{'met' if fw < nwst else 'MISSED'}**: FlexDash {_wasted_interval(fd)} "
                f"({fd.get('http_503', 0)} 503s + {fd.get('http_429', 0)} 429s for "
                f"{fd.get('finished', 0):,} jobs), naive {_wasted_interval(naive)} "
                f"({naive.get('http_503', 0)} + {naive.get('http_429', 0)} for "
                f"{naive.get('finished', 0):,}); ± is a 95 % interval. The simulator sheds each "
                f"flex request with probability p503 whatever the load, so "
                f"{limit['wasted_per_finished']:.3f} 503s per finished job is a floor that no "
                f"client can go below here: the designs can differ only by 429s (and jobs given "
                f"up). Each simulator decides its 503s from one seeded random stream (--seed), "
                f"request by request in arrival order, so the first k requests hold the same "
                f"503s whichever design sends them: compare 429s, or run other seeds."
            )
    for key in ("flexdash", "flexdash_kill"):
        r = parts.get(key)
        if r and "error" not in r:
            out.append(
                f"- **Jobs lost, {key}: {r.get('lost')}** ({r.get('succeeded', 0):,} succeeded, "
                f"{r.get('failed', 0)} failed after 8 attempts, {r.get('unfinished', 0)} "
                f"unfinished); answers recorded twice: {r.get('duplicates')}."
            )
    return out


def notes(parts: dict[str, Any], limit: dict[str, Any], args: argparse.Namespace) -> list[str]:
    out = []
    fd = parts.get("flexdash")
    if fd and "error" not in fd:
        out.append(
            f"- FlexDash: {fd['requests']:,} requests for {fd['finished']:,} finished jobs "
            f"({fd['requests_per_finished']:.3f} per job); attempt rows by HTTP status "
            f"{fd.get('attempts_by_http_status')}; first request "
            f"{_cell(fd.get('first_request_seconds'))} s after the cluster started; 10 % / 90 % "
            f"finished at {_cell(fd.get('t10_seconds'))} / {_cell(fd.get('t90_seconds'))} s; "
            f"at most {fd.get('peak_requests_per_sliding_minute', 0):,} requests in any 60 s "
            f"(limit {args.rpm:,}); simulator peak in flight {fd.get('sim_peak_in_flight')}; "
            f"machine {fd.get('machine_busy_percent')} % busy, "
            f"{fd.get('other_cpu_seconds')} CPU-s used by other processes meanwhile."
        )
    for naive in parts.get("naive", []):
        if "error" in naive:
            out.append(f"- naive: failed: {naive['error']}")
            continue
        ceiling = naive["workers"] / limit["mean_latency_seconds"] * 60 * (1 - args.p503)
        out.append(
            f"- naive, {naive['workers']} workers: {naive['requests']:,} requests for "
            f"{naive['finished']:,} finished jobs; workers slept "
            f"{naive['slept_seconds']:,.0f} s in backoff in total; its own ceiling is about "
            f"workers / mean latency x (1 - p503) = "
            f"{ceiling:,.0f} jobs/min before any sleeping; {naive.get('failed', 0)} gave up after "
            f"8 attempts; machine {naive.get('machine_busy_percent')} % busy, "
            f"{naive.get('other_cpu_seconds')} CPU-s used by other processes meanwhile."
        )
    kill = parts.get("flexdash_kill")
    if kill and "error" not in kill:
        k = kill.get("kill", {})
        out.append(
            f"- SIGKILL run: cluster {k.get('killed')} (dispatchers per cluster at the kill: "
            f"{k.get('dispatchers_per_cluster')}) was killed at "
            f"{_cell(k.get('killed_at_seconds'))} s with {k.get('finished_at_kill'):,} jobs "
            f"finished, {k.get('victim_running_jobs')} of its jobs running and "
            f"{k.get('sim_in_flight_at_kill')} requests in flight at the simulator; "
            f"{kill.get('cut_off', 0)} requests were cut off unanswered; "
            f"{k.get('lost_attempts', 0)} attempts marked lost (their leases of "
            f"{args.lease_seconds} s lapsed) and retried, the first "
            f"{_cell(k.get('first_retry_after_kill_seconds'))} s after the kill, the last of them "
            f"finished {_cell(k.get('victim_jobs_all_finished_after_kill_seconds'))} s after it; "
            f"{k.get('discarded_answers', 0)} late answers discarded. The first claim by a "
            f"surviving dispatcher came {_cell(k.get('first_claim_after_kill_seconds'))} s after "
            f"the kill, and no job finished until "
            f"{_cell(k.get('first_finish_after_kill_seconds'))} s after it (a cluster without a "
            "dispatcher starts one from its minute Schedule, or when a job is submitted); later "
            f"the longest gap between two finished jobs was "
            f"{_cell(k.get('longest_gap_later_seconds'))} s; machine "
            f"{kill.get('machine_busy_percent')} % busy."
        )
    return out


def chart(parts: dict[str, Any], limit: dict[str, Any], args: argparse.Namespace, path: Path):
    """Finished jobs over time, requests per minute against the limit, the SIGKILL run."""
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    n, lim = args.jobs, limit["finished_per_min"]

    def steps(offsets: list[float]) -> tuple[list[float], list[int]]:
        xs = [0.0] + [x / 60 for x in offsets]
        return xs, list(range(len(xs)))

    fd, kill = parts.get("flexdash"), parts.get("flexdash_kill")
    naives = [r for r in parts.get("naive", []) if "error" not in r]
    ends = [
        r.get("last_finished_seconds") or 0 for r in (fd, kill, *naives) if r and "error" not in r
    ]
    xmax = max([*ends, n / lim * 60]) / 60 * 1.08

    ax = axes[0]
    ax.plot([0, n / lim], [0, n], color="grey", ls=":", label=f"physical limit ({lim:,.0f}/min)")
    if fd and "error" not in fd:
        ax.plot(*steps(fd["finish_offsets"]), color="C0", lw=2, label="FlexDash")
    for i, naive in enumerate(naives):
        color = f"C{1 + i}"
        ax.plot(
            *steps(naive["finish_offsets"]),
            color=color,
            lw=2,
            label=f"naive, {naive['workers']} workers ({naive['jobs']} sampled)",
        )
        rate = naive.get("steady_per_min")
        if rate and naive["finish_offsets"]:
            x0, y0 = naive["finish_offsets"][-1] / 60, len(naive["finish_offsets"])
            x1 = min(xmax, x0 + (n - y0) / rate)
            ax.plot([x0, x1], [y0, y0 + (x1 - x0) * rate], color=color, ls="--", lw=1)
            full = (naive.get("extrapolated_seconds_for_all") or n / rate * 60) / 60
            ax.annotate(
                f"naive: {n:,} at ~{full:.0f} min (extrapolated)",
                (x1, y0 + (x1 - x0) * rate),
                textcoords="offset points",
                xytext=(-5, 8),
                ha="right",
                color=color,
                fontsize=8,
            )
    ax.set(
        xlim=(0, xmax),
        ylim=(0, n * 1.05),
        xlabel="minutes since the cluster started",
        ylabel="jobs finished",
        title=f"{n:,} jobs, latency {args.latency} s, {args.p503:.0%} 503s, RPM {args.rpm:,}",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)

    ax = axes[1]
    for r, label, color in [(fd, "FlexDash", "C0"), (kill, "FlexDash, SIGKILL run", "C3")] + [
        (r, f"naive, {r['workers']} workers", f"C{1 + i}") for i, r in enumerate(naives)
    ]:
        if not r or "error" in r:
            continue
        xs, ys = _per_minute(r["samples"])
        ax.plot(xs, ys, color=color, lw=1.5, label=label)
    ax.axhline(args.rpm, color="black", lw=1, label=f"RPM limit {args.rpm:,}")
    ax.axhline(PACE_SHARE * args.rpm, color="grey", lw=1, ls="--", label=f"{PACE_SHARE:.0%} of it")
    ax.set(
        xlim=(0, xmax),
        ylim=(0, args.rpm * 1.4),
        xlabel="minutes since the cluster started",
        ylabel="requests in the last 60 s (simulator)",
        title="Requests per sliding minute, every one counted",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", fontsize=8, ncol=3)

    ax = axes[2]
    if fd and "error" not in fd:
        ax.plot(
            *steps(fd["finish_offsets"]), color="C0", lw=1, alpha=0.5, label="FlexDash, no kill"
        )
    if kill and "error" not in kill:
        ax.plot(*steps(kill["finish_offsets"]), color="C3", lw=2, label="FlexDash, 2 clusters")
        k = kill.get("kill", {})
        if k.get("killed_at_seconds") is not None:
            ax.axvline(k["killed_at_seconds"] / 60, color="black", ls="--", lw=1)
            ax.annotate(
                f"SIGKILL cluster {k['killed']}\nlost {kill.get('lost')}, "
                f"recorded twice {kill.get('duplicates')}",
                (k["killed_at_seconds"] / 60, n * 0.1),
                textcoords="offset points",
                xytext=(6, 0),
                fontsize=8,
            )
    ax.plot([0, n / lim], [0, n], color="grey", ls=":", label="physical limit")
    ax.set(
        xlim=(0, xmax),
        ylim=(0, n * 1.05),
        xlabel="minutes since the clusters started",
        ylabel="jobs finished",
        title=f"One of two clusters killed at 50 % (lease {args.lease_seconds} s)",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def _per_minute(samples: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Requests in the trailing 60 s at each sample (the simulator's own window)."""
    xs, ys = [], []
    j = -1  # the last sample at least 60 s older than the current one
    for s in samples:
        while j + 1 < len(samples) and samples[j + 1]["t"] <= s["t"] - 60:
            j += 1
        xs.append(s["t"] / 60)
        ys.append(s["requests"] - (samples[j]["requests"] if j >= 0 else 0))
    return xs, ys


# --- Results -----------------------------------------------------------------------------
def write_results(
    parts: dict[str, Any],
    limit: dict[str, Any],
    args: argparse.Namespace,
    info: dict[str, Any],
    text: str,
    chart_note: str | None,
) -> None:
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "throughput",
        "command": info["command"],
        "date": info["date"],
        "machine": info["machine"],
        "code": info.get("code"),
        "parameters": {
            "jobs": args.jobs,
            "rpm": args.rpm,
            "p503": args.p503,
            "latency": args.latency,
            "seed": args.seed,
            "naive_jobs": args.naive_jobs,
            "naive_workers": args.naive_workers,
            "lease_seconds_in_kill_run": args.lease_seconds,
            "database": args.database,
            "sample_seconds": SAMPLE_SECONDS,
        },
        "physical_limit": limit,
        "parts": parts,
    }
    (out / "throughput.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    machine = info["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    database = (
        f"PostgreSQL ({args.database_url}, a database per part)"
        if args.database == "postgres"
        else "SQLite (a temporary file per part, WAL)"
    )
    code = info.get("code") or {}
    code_text = f"commit {code.get('commit', '?')}" if code else "not recorded"
    if code.get("uncommitted"):
        code_text += ", with uncommitted changes in " + ", ".join(code["uncommitted"])
    elif code:
        code_text += ", no uncommitted changes to the engine at the start"
    chart_line = chart_note or "![finished jobs over time](throughput.png)"
    md = f"""# bench/throughput.py results

{args.jobs:,} jobs against the bundled simulator: latency {args.latency} s (uniform),
{args.p503:.0%} of flex requests shed with 503 (at once, before any latency), an RPM
limit of {args.rpm:,} over a sliding 60 s window counting every request, seed
{args.seed}. Each part had its own fresh database and simulator. FlexDash ran with
`FLEX_RPM_LIMIT={args.rpm}` and otherwise default settings (2 workers, one dispatcher,
`FLEX_MAX_IN_FLIGHT=5000`, backoff 5 s base with full jitter, 600 s cap, 8 attempts);
the naive design (bench/_naive.py) is one django-q2 task per prompt that sleeps
`5 s x 2^attempt` in its worker (the spec's example), 8 attempts, SDK retries off, on
a sample of {args.naive_jobs:,} prompts: its time for all {args.jobs:,} is extrapolated
at its steady rate and says so.

- Command: `{info["command"]}`
- Date: {info["date"]}
- Machine: {machine["nproc"]} CPUs ({machine["cpu"]}), {machine["memory_gib"]} GiB,
  Linux {machine["kernel"]}, load average at start {machine["load_average"]}
- Python {machine["python"]}; {versions}
- Database: {database}
- Code: {code_text}

{text}

The physical limit is {limit["requests_per_min"]:,.0f} requests/min (bound by
{"the RPM limit" if limit["bound_by"] == "rpm" else "the in-flight cap over the mean latency"};
the in-flight cap {limit["in_flight_cap"]:,} over the mean latency
{limit["mean_latency_seconds"]:g} s would allow {limit["in_flight_cap_per_min"]:,.0f}). Every 503
spends a request, so at most {limit["finished_per_min"]:,.1f} **finished jobs**/min: the ratios are
against that figure. "Whole run" is the cluster's start to the last job finished (start-up and
the tail of last retries included); "steady" is the rate between 10 % and 90 % of the jobs
finished. Wasted calls are the simulator's own 503 and 429 counts over the jobs finished.
Memory is the qcluster process tree(s), summed (PSS counts pages shared by forked workers once;
RSS once per process), sampled every {SAMPLE_SECONDS:g} s. A job is lost when it was submitted
and is neither finished nor still waiting or running; "recorded twice" counts jobs with more than
one succeeded Attempt row.

{chr(10).join(verdicts(parts, limit))}

{chr(10).join(notes(parts, limit, args))}

{chart_line}
"""
    (out / "throughput.md").write_text(md)


def code_version() -> dict[str, Any]:
    """The commit measured, and the engine's files changed from it at the start."""
    import subprocess

    def git(*command: str) -> str:
        try:
            return subprocess.run(
                ["git", *command], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--", "jobs", "flexdash", "manage.py")
    return {
        "commit": git("rev-parse", "--short", "HEAD") or "?",
        "uncommitted": [line[3:] for line in changed.splitlines()],
    }


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
        low, high = _latency(args.latency)
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
    info = {
        "command": common.command_line(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": common.machine_info(),
        "code": code_version(),
    }
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
        print("\ninterrupted: every process started here was stopped", file=sys.stderr)
        if args.keep:
            print(f"logs and databases kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        return 130
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
    if failed or args.keep:
        print(f"logs and databases kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
