"""bench/eval.py's FlexDash parts: the eval as one run, on flex or on standard (not a
benchmark itself).

Each part: a fresh SQLite database, its own simulator, the eval created with
`eval_definitions.eval_read` + `eval_run_create` before one `manage.py qcluster`
starts (default settings, FLEX_RPM_LIMIT per model), sampled every second until
every job finished; then `analyse`, inside Django, counts what the tables say
and checks it (bench/eval.py prints the figures and the verdicts).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import _databases, _eval_work, _procfs, common

API_KEY = "bench-key"
USERNAME = "bench"
SAMPLE_SECONDS = 1.0
PACE_SHARE = 0.95  # what the dispatcher paces to (jobs/engine/pacing.py), for the timeout only
FINISHED = ("succeeded", "failed", "cancelled", "skipped")
_UNITS = Decimal("0.00000001")  # RunTally keeps dollars in units of 1e-8 USD


# --- Inside Django (through common.django_call) ----------------------------------------
def prepare(tier: str, rows: int, seed: int) -> dict[str, Any]:
    """Migrate, then the eval's run over `rows` rows on `tier`."""
    common.migrate_here()
    from django.contrib.auth import get_user_model

    from jobs.catalog import DEFAULT_MODEL
    from jobs.engine.submitting import JobSpec
    from jobs.models import Job
    from jobs.runs import eval_definitions

    spec = JobSpec(model=DEFAULT_MODEL)
    owner = get_user_model().objects.get_or_create(username=USERNAME)[0]
    started = time.time()
    compiled = eval_definitions.eval_read(_eval_work.definition(tier), spec=spec)
    table = "".join(json.dumps(row) + "\n" for row in _eval_work.table_rows(rows, seed))
    run = eval_definitions.eval_run_create(
        compiled=compiled,
        owner=owner,
        stream=io.BytesIO(table.encode()),
        filename="rows.jsonl",
        spec=spec,
    )
    seconds = time.time() - started
    states = Counter(Job.objects.filter(run=run).values_list("state", flat=True))
    return {
        "run": run.pk,
        "jobs": sum(states.values()),
        "states": dict(states),
        "seconds": round(seconds, 2),
        "estimated_cost_usd": str(run.estimated_cost_usd),
        "estimated_standard_cost_usd": str(run.estimated_standard_cost_usd),
    }


def analyse(run_id: int, rows: int, seed: int, started: float, prices_path: str) -> dict:
    """What the tables say once every job finished: per row its answers and grades,
    checked against what the simulator must have answered; tokens; the stored costs
    against the same tokens priced from prices.json; attempts by status."""
    from django.db.models import Count, Max, Min, Sum

    from jobs.models import Attempt, Job, Run, RunTally, State

    run = Run.objects.get(pk=run_id)
    evaluation = run.evaluation
    judge = next(g for g in evaluation["graders"] if g["kind"] == "judge")
    step_of = {}
    for candidate in evaluation["candidates"]:
        step_of[candidate["step"]] = ("answer", candidate["key"])
        step_of[judge["steps"][candidate["key"]]] = ("judge", candidate["key"])
    keys = [c["key"] for c in evaluation["candidates"]]
    fields = ("custom_id", "step", "model", "state", "input_text", "result_text",
              "output_json", "tier_requested", "tier_served", "input_tokens", "output_tokens",
              "thought_tokens", "cost_usd", "standard_cost_usd", "attempts", "bad_outputs",
              "http_503", "http_429", "finished_at")  # fmt: skip
    jobs = list(Job.objects.filter(run=run).values(*fields))
    by_row: dict[str, dict[tuple[str, str], dict]] = {}
    for job in jobs:
        by_row.setdefault(job["custom_id"], {})[step_of[job["step"]]] = job

    # Every row: each candidate's answer is the one the simulator gives its question, and
    # each judge read that answer (its prompt exactly) and gave a score in the range.
    answers = grades = rows_graded = wrong_answers = wrong_judge_prompts = 0
    failed: Counter[str] = Counter()
    scores: Counter[int] = Counter()
    table = _eval_work.table_rows(rows, seed)
    for row in table:
        have = by_row.get(row["id"], {})
        expected = _eval_work.expected_answer(row["question"])
        graded = 0
        for key in keys:
            answer = have.get(("answer", key))
            if answer is None or answer["state"] != State.SUCCEEDED:
                failed[f"answer {answer['state'] if answer else 'missing'}"] += 1
                continue
            if answer["result_text"] != expected:
                wrong_answers += 1
                continue
            answers += 1
            grade = have.get(("judge", key))
            if grade is None or grade["state"] != State.SUCCEEDED:
                failed[f"judge {grade['state'] if grade else 'missing'}"] += 1
                continue
            if grade["input_text"] != _eval_work.judge_prompt(row, expected):
                wrong_judge_prompts += 1
                continue
            score = _eval_work.score_of(grade["output_json"])
            if score is None:
                failed["judge answer without a score"] += 1
                continue
            scores[score] += 1
            graded += 1
        grades += graded
        rows_graded += graded == len(keys)

    # Costs: each job's stored cost against its tokens priced from prices.json at the tier
    # that served it; their sum against the attempts' and the run's tally.
    prices = _eval_work.load_prices(prices_path)
    recomputed = recomputed_standard = stored = stored_standard = Decimal(0)
    priced_wrong = 0
    tokens = Counter()
    tiers_served: Counter[str] = Counter()
    for job in jobs:
        tokens["input"] += job["input_tokens"]
        tokens["output"] += job["output_tokens"]
        tokens["thought"] += job["thought_tokens"]
        if job["cost_usd"] is None:
            continue
        tiers_served[job["tier_served"]] += 1
        cost, standard = _eval_work.answer_cost(
            prices,
            model=job["model"],
            tier=job["tier_served"],
            input_tokens=job["input_tokens"],
            output_tokens=job["output_tokens"] + job["thought_tokens"],
        )
        priced_wrong += cost != job["cost_usd"] or standard != job["standard_cost_usd"]
        recomputed += cost
        recomputed_standard += standard
        stored += job["cost_usd"]
        stored_standard += job["standard_cost_usd"]
    # Summed here, in Decimal: SQLite's SUM of a decimal column is a float.
    attempts_cost = sum(
        Attempt.objects.filter(job__run=run, cost_usd__isnull=False).values_list(
            "cost_usd", flat=True
        ),
        Decimal(0),
    )
    tally_units = RunTally.objects.filter(run_id=run.pk).aggregate(c=Sum("cost_units"))["c"]
    tally = Decimal(tally_units or 0) * _UNITS

    attempts = Attempt.objects.filter(job__run=run)
    by_status = dict(
        attempts.values_list("http_status").annotate(n=Count("id")).values_list("http_status", "n")
    )
    times = attempts.aggregate(first=Min("started_at"), last=Max("finished_at"))
    last = Job.objects.filter(run=run).aggregate(last=Max("finished_at"))["last"]
    ends = sorted(_offset(job["finished_at"], started) for job in jobs if job["finished_at"])
    return {
        "jobs": len(jobs),
        "states": dict(Counter(job["state"] for job in jobs)),
        "tiers_requested": dict(Counter(job["tier_requested"] for job in jobs)),
        "tiers_served": dict(tiers_served),
        "attempts": attempts.count(),
        "attempts_by_status": {str(k): v for k, v in by_status.items()},
        "most_attempts": max((job["attempts"] for job in jobs), default=0),
        "bad_outputs": sum(job["bad_outputs"] for job in jobs),
        "first_sent_s": _offset(times["first"], started),
        "last_finished_s": _offset(last, started),
        # The retry tail: when 99 % of the jobs had finished.
        "p99_finished_s": ends[max(0, math.ceil(0.99 * len(ends)) - 1)] if ends else None,
        "rows": rows,
        "answers": answers,
        "grades": grades,
        "rows_graded": rows_graded,
        "scores": {str(k): v for k, v in sorted(scores.items())},
        "not_obtained": dict(failed),
        "wrong_answers": wrong_answers,
        "wrong_judge_prompts": wrong_judge_prompts,
        "tokens": dict(tokens),
        "cost": {
            "stored_usd": str(stored),
            "stored_standard_usd": str(stored_standard),
            "recomputed_usd": str(recomputed),
            "recomputed_standard_usd": str(recomputed_standard),
            "jobs_priced_differently": priced_wrong,
            "attempts_usd": str(attempts_cost),
            "run_tally_usd": str(tally),
            "estimated_usd": str(run.estimated_cost_usd),
            "estimated_standard_usd": str(run.estimated_standard_cost_usd),
        },
    }


def _offset(when: Any, started: float) -> float | None:
    return None if when is None else round(when.timestamp() - started, 2)


# --- One part: a database, a simulator, a cluster --------------------------------------
def longest_backoffs() -> float:
    """Seconds an answer and then its judge may wait between tries at most, with
    FlexDash's default backoff (5 s base, 600 s cap, full jitter): 8 tries for an
    answer, and 8 for its judge (a judge step has the run's attempts)."""
    from jobs.engine.backoff import backoff_delay

    def most(attempts: int) -> float:
        return sum(
            backoff_delay(n, base=5.0, cap=600.0, rand=lambda: 1.0) for n in range(1, attempts)
        )

    return 2 * most(8)


def simulator_args(args: argparse.Namespace) -> list[str]:
    """The simulator's options for every part (the same 503 shedding, latency and seed)."""
    return ["--p503", f"{args.p503:g}", "--p429", "0", "--rpm", "0", "--seed", str(args.seed)]


def run_part(tier: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The eval as one FlexDash run on `tier`: its own database, simulator and qcluster."""
    label = f"FlexDash {tier}"
    part_dir = workdir / f"flexdash-{tier}"
    var = part_dir / "var"
    var.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"part": f"flexdash-{tier}", "tier": tier}
    print(f"\n[{label}] fresh sqlite database, simulator, migrate and submit ...", flush=True)
    with _databases.fresh_database(part_dir, None, name=f"flexdash_bench_eval_{tier}") as db:
        env = common.clean_env(
            DATABASE_URL=db.url,
            FLEXDASH_VAR_DIR=var,
            GEMINI_API_KEY=API_KEY,
            FLEX_RPM_LIMIT=args.rpm,
            FLEX_LOG_LEVEL="WARNING",
        )
        simulator, _ = common.start_simulator(
            env,
            part_dir / "simulator.log",
            latency=args.latency,
            api_key=API_KEY,
            extra=simulator_args(args),
            wait=False,
        )
        cluster = None
        clean = False
        try:
            submitted = common.django_call(
                "bench._eval_flexdash:prepare",
                env,
                part_dir / "setup.log",
                tier=tier,
                rows=args.rows,
                seed=args.seed,
            )
            result["submit"] = submitted
            n_jobs = submitted["jobs"]
            if n_jobs != 2 * len(_eval_work.CANDIDATES) * args.rows:
                raise RuntimeError(f"the eval run has {n_jobs} jobs, not 6 x {args.rows}")
            env["GEMINI_BASE_URL"] = sim_url = common.simulator_url(
                simulator, part_dir / "simulator.log"
            )
            # The judge's model carries half the requests, paced to FLEX_RPM_LIMIT alone;
            # then the unlucky row whose answer and judge draw every backoff at its ceiling.
            judge_requests = n_jobs / 2 / (1 - (args.p503 if tier == "flex" else 0))
            paced = judge_requests / (args.rpm * PACE_SHARE) * 60
            timeout = args.timeout or 2 * paced + longest_backoffs() + 300
            started = time.time()
            cluster = common.start_qcluster(env, part_dir / "qcluster.log")
            print(f"[{label}] simulator {sim_url}; qcluster pid {cluster.pid}", flush=True)
            result.update(
                _observe(label, db, cluster, simulator, sim_url, n_jobs, started, timeout)
            )
            result.update(
                common.django_call(
                    "bench._eval_flexdash:analyse",
                    env,
                    part_dir / "analyse.log",
                    run_id=submitted["run"],
                    rows=args.rows,
                    seed=args.seed,
                    started=started,
                    prices_path=str(args.prices),
                )
            )
            clean = not result["timed_out"]
        finally:
            if cluster is not None:
                common.stop_process(cluster, grace=20.0 if clean else 3.0)
            common.stop_process(simulator, grace=5.0)
    result["wall_s"] = result.get("last_finished_s")
    return result


def _observe(
    label: str,
    db: _databases.BenchDatabase,
    cluster: Any,
    simulator: Any,
    sim_url: str,
    n_jobs: int,
    started: float,
    timeout: float,
) -> dict[str, Any]:
    """Every second until every job finished (or `timeout`): job states and the
    simulator's counters; progress every 10 s."""
    stats: dict[str, Any] = {}
    last_print = 0.0
    timed_out = False
    machine_before = _procfs.system_cpu_seconds()
    next_tick = time.monotonic()
    while True:
        t = time.time() - started
        if cluster.poll() is not None:
            raise RuntimeError(f"qcluster exited with {cluster.returncode}")
        if simulator.poll() is not None:
            raise RuntimeError(f"simulator exited with {simulator.returncode}")
        with contextlib.suppress(OSError):
            stats = common.sim_stats(sim_url, timeout=5)
        counts = db.job_counts()
        finished = sum(counts.get(s, 0) for s in FINISHED)
        if time.monotonic() - last_print >= 10:
            last_print = time.monotonic()
            by_status = stats.get("by_status", {})
            print(
                f"[{label}] t={t:6.1f}s finished {finished:5d}/{n_jobs} requests "
                f"{stats.get('requests', 0):5d} (503 {by_status.get('503', 0)}, 429 "
                f"{by_status.get('429', 0)}) in flight {stats.get('in_flight', 0):3d}",
                flush=True,
            )
        if finished >= n_jobs:
            break
        if t > timeout:
            timed_out = True
            print(f"[{label}] timed out after {timeout:.0f} s", flush=True)
            break
        next_tick += SAMPLE_SECONDS
        time.sleep(max(0.0, next_tick - time.monotonic()))
    busy, total = (a - b for a, b in zip(_procfs.system_cpu_seconds(), machine_before, strict=True))
    with contextlib.suppress(OSError):
        stats = common.sim_stats(sim_url, timeout=10)
    return {
        "timed_out": timed_out,
        "sim_stats": stats,
        "machine_busy_percent": round(100 * busy / total, 1) if total else None,
        "cluster_cpu_seconds": round(_procfs.tree_cpu_seconds(cluster.pid), 1),
    }
