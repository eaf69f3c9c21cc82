"""A 3-step pipeline against a rate limit: row by row, step by step, and the physical limit.

N rows (2,000) x 3 steps, each step's prompt built from the answer before it
(extract -> check -> summarise, small prompts), against the simulator
(`manage.py flexsim --latency 1:3 --rpm R --seed S`) and one `manage.py
qcluster` with FLEX_RPM_LIMIT=R, in one run, each part with its own fresh
database (a temporary SQLite file) and its own simulator:

- pipeline: the rows and the definition submitted as one pipeline run
  (`pipeline_runs.pipeline_read` + `pipeline_run_create`); every row moves
  through the steps on its own;
- step by step (a Batch-API workflow): three plain runs one after another
  (`runs.services.run_create`): all of step 1, wait for every job of it to
  finish, build step 2's prompts from step 1's answers, submit, wait, step 3;
- physical limit: total requests / RPM, and the latency floor (3 x latency
  for one row).

Both parts send the very same 3 x N prompts (the simulator answers
"Simulated answer to: " + the prompt, so the chain is deterministic); each
part checks that every row's final answer is the one built from its own
earlier answers (the stored prompts and answers, and every prompt the
simulator recorded on the wire), and the pipeline part that no job was sent
before its parent succeeded (its first Attempt.started_at against the
parent's finished_at).

    python bench/pipeline.py                     # 2,000 rows, RPM 1,000, latency 1:3 s: ~15 minutes
    python bench/pipeline.py --rows 100          # smoke run: ~1.5 minutes
    python bench/pipeline.py --rpm 600 --latency 1:3 --route generate_content

Prints a Markdown table and writes bench/results/pipeline.md (`--results DIR`
elsewhere). Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _databases, _procfs, common  # noqa: E402

RESULTS = ROOT / "bench" / "results"
API_KEY = "bench-key"
USERNAME = "bench"
SAMPLE_SECONDS = 1.0
POLL_SECONDS = 0.25  # how often the step-by-step client looks whether a step is done
PACE_SHARE = 0.95  # what the dispatcher paces to (jobs/engine/pacing.py), for the timeout only
FINISHED = ("succeeded", "failed", "cancelled", "skipped")
ACTIVE = ("waiting", "queued", "running", "retrying")

# The three steps: (name, the prompt before the earlier answer, the template's field).
STEPS = (
    ("extract", "Extract the facts from: ", "row.text"),
    ("check", "Check these facts: ", "steps.extract.output"),
    ("summary", "Summarise in one line: ", "steps.check.output"),
)


# --- The work: rows, the definition, the prompts each step must send -------------------
def table_rows(rows: int, seed: int) -> list[tuple[str, str]]:
    """(id, text) for each row; a nonce per row so a row's chain cannot pass for another's."""
    rng = random.Random(seed)
    return [
        (
            f"row-{i:05d}",
            f"row {i} nonce {rng.getrandbits(32):08x}: flex costs half and may shed load",
        )
        for i in range(1, rows + 1)
    ]


def definition() -> str:
    """The pipeline as YAML: each step's prompt is its prefix and the answer before it."""
    lines = ["name: bench-extract-check-summarise", "steps:"]
    for name, prefix, field in STEPS:
        lines += [f"  - name: {name}", f'    prompt: "{prefix}{{{{ {field} }}}}"']
    return "\n".join(lines) + "\n"


def expected_chain(text: str) -> list[tuple[str, str]]:
    """(prompt, answer) for each step of a row, as the simulator answers them."""
    from jobs.simulator.directives import answer_text

    chain, previous = [], text
    for _, prefix, _ in STEPS:
        prompt = prefix + previous
        previous = answer_text(prompt)
        chain.append((prompt, previous))
    return chain


def _jsonl(records: list[dict[str, Any]]) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(r) + "\n" for r in records).encode())


# --- Inside Django (through common.django_call) ----------------------------------------
def _user():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get_or_create(username=USERNAME)[0]


def _spec():
    from jobs.catalog import DEFAULT_MODEL
    from jobs.engine.submitting import JobSpec

    return JobSpec(model=DEFAULT_MODEL)


def prepare_pipeline(rows: int, seed: int) -> dict[str, Any]:
    """Migrate, then one pipeline run of `rows` rows x 3 steps."""
    common.migrate_here()
    from jobs.models import Job
    from jobs.runs import pipeline_runs

    spec = _spec()
    started = time.time()
    pipeline = pipeline_runs.pipeline_read(definition(), spec=spec)
    stream = _jsonl([{"id": key, "text": text} for key, text in table_rows(rows, seed)])
    run = pipeline_runs.pipeline_run_create(
        owner=_user(), stream=stream, filename="rows.jsonl", pipeline=pipeline, spec=spec
    )
    seconds = time.time() - started
    by_state: dict[str, int] = {}
    for state in Job.objects.filter(run=run).values_list("state", flat=True):
        by_state[state] = by_state.get(state, 0) + 1
    return {"run": run.pk, "jobs": sum(by_state.values()), "states": by_state, "seconds": seconds}


def _submit_step(index: int, prompts: dict[str, str]) -> tuple[int, float]:
    """One plain run of this step's prompts (JSONL, the row id as each line's id)."""
    from jobs.runs import services

    name = STEPS[index][0]
    started = time.time()
    run = services.run_create(
        owner=_user(),
        stream=_jsonl([{"id": key, "prompt": prompt} for key, prompt in prompts.items()]),
        filename=f"{name}.jsonl",
        spec=_spec(),
        name=f"step {index + 1}: {name}",
    )
    return run.pk, time.time() - started


def prepare_steps(rows: int, seed: int) -> dict[str, Any]:
    """Migrate, then step 1 as a plain run (before the cluster starts, as the pipeline)."""
    common.migrate_here()
    prompts = {key: STEPS[0][1] + text for key, text in table_rows(rows, seed)}
    run_id, seconds = _submit_step(0, prompts)
    return {"run": run_id, "jobs": len(prompts), "seconds": seconds}


def drive_steps(first_run: int, timeout: float) -> dict[str, Any]:
    """The Batch-style client: wait for a step's run to finish, build the next step's
    prompts from its answers (rows whose answer failed go no further), submit, wait."""
    from django.db import close_old_connections

    from jobs.models import ACTIVE_STATES, Job, State

    deadline = time.time() + timeout
    steps: list[dict[str, Any]] = [{"run": first_run}]
    run_id = first_run
    for index in range(len(STEPS)):
        while Job.objects.filter(run_id=run_id, state__in=ACTIVE_STATES).exists():
            if time.time() > deadline:
                raise TimeoutError(f"step {index + 1} not finished after {timeout:.0f} s")
            time.sleep(POLL_SECONDS)
            close_old_connections()
        steps[index]["seen_done_at"] = time.time()
        if index + 1 == len(STEPS):
            break
        answers = dict(
            Job.objects.filter(run_id=run_id, state=State.SUCCEEDED).values_list(
                "custom_id", "result_text"
            )
        )
        prefix = STEPS[index + 1][1]
        run_id, seconds = _submit_step(index + 1, {k: prefix + a for k, a in answers.items()})
        steps.append({"run": run_id, "submit_seconds": seconds})
        steps[index + 1]["submitted_at"] = time.time() - seconds
    return {"steps": steps}


def _ts(value: Any) -> float | None:
    return None if value is None else value.timestamp()


def _wire_prompts(path: str) -> tuple[list[str], int]:
    """The prompts in the simulator's record of requests (any text that starts with a
    step's prefix, wherever the route puts it), and how many requests it holds."""
    recorded = json.loads(Path(path).read_text())
    prefixes = tuple(prefix for _, prefix, _ in STEPS)
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if value.startswith(prefixes):
                found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for request in recorded:
        walk(request.get("body"))
    return found, len(recorded)


def analyse(
    kind: str, rows: int, seed: int, started: float, wire_path: str, sent: int
) -> dict[str, Any]:
    """What the tables (and the simulator's record) say once a part is done: times,
    attempts, and the checks (answers built from the row's own answers, no job sent
    before its parent succeeded)."""
    from django.db.models import Count, Max, Min

    from jobs.models import Attempt, Job, State

    names = [name for name, _, _ in STEPS]
    expected = {key: expected_chain(text) for key, text in table_rows(rows, seed)}
    fields = ("id", "run_id", "custom_id", "step", "state", "input_text", "result_text")
    jobs = list(
        Job.objects.values(*fields, "finished_at", "attempts").annotate(
            first_try=Min("attempt_log__started_at")
        )
    )
    run_steps: dict[int, int] = {}
    if kind == "steps":
        for run_id in sorted({job["run_id"] for job in jobs}):
            run_steps[run_id] = len(run_steps)
    by_row: dict[str, dict[int, dict[str, Any]]] = {}
    for job in jobs:
        index = names.index(job["step"]) if kind == "pipeline" else run_steps[job["run_id"]]
        by_row.setdefault(job["custom_id"], {})[index] = job
    states: dict[str, int] = {}
    for job in jobs:
        states[job["state"]] = states.get(job["state"], 0) + 1

    # Every row: each step's stored prompt and answer are the ones its own chain gives.
    wrong_prompt = wrong_answer = missing = rows_ok = 0
    examples: list[str] = []
    for key, chain in expected.items():
        have = by_row.get(key, {})
        ok = True
        for index, (prompt, answer) in enumerate(chain):
            job = have.get(index)
            if job is None or job["state"] != State.SUCCEEDED:
                missing += 1
                ok = False
                break
            if job["input_text"] != prompt:
                wrong_prompt += 1
                ok = False
                if len(examples) < 3:
                    examples.append(f"{key} step {names[index]}: sent {job['input_text'][:120]!r}")
            elif job["result_text"] != answer:
                wrong_answer += 1
                ok = False
        rows_ok += ok

    # The wire: every prompt the simulator saw is one of the expected ones, each once
    # per request; every expected prompt was seen.
    wire, recorded = _wire_prompts(wire_path)
    wanted = {prompt for chain in expected.values() for prompt, _ in chain}
    seen = set(wire)
    wire_check = {
        "requests_recorded": recorded,
        "requests_sent": sent,
        "prompts_on_wire": len(wire),
        "expected_prompts": len(wanted),
        "expected_seen": len(wanted & seen),
        "unexpected": len(seen - wanted),
        "complete": recorded >= sent,
    }

    # No job sent before its parent succeeded (pipeline: the previous step of its row).
    order: dict[str, Any] = {}
    if kind == "pipeline":
        margins, early, unsent = [], 0, 0
        for have in by_row.values():
            for index in range(1, len(names)):
                child, parent = have.get(index), have.get(index - 1)
                if child is None or parent is None:
                    continue
                if child["first_try"] is None:
                    unsent += 1
                    continue
                if parent["state"] != State.SUCCEEDED or parent["finished_at"] is None:
                    early += 1
                    continue
                margin = _ts(child["first_try"]) - _ts(parent["finished_at"])
                margins.append(margin)
                early += margin < 0
        order = {
            "pairs": len(margins),
            "sent_before_parent_succeeded": early,
            "children_never_sent": unsent,
            "margin_min_s": round(min(margins), 4) if margins else None,
            "margin_median_s": round(statistics.median(margins), 3) if margins else None,
            "margin_max_s": round(max(margins), 3) if margins else None,
        }

    # Times, from the cluster's start.
    def offsets(index: int, field: str) -> list[float]:
        return sorted(
            _ts(have[index][field]) - started
            for have in by_row.values()
            if index in have and have[index][field] is not None
        )

    per_step = []
    for index, name in enumerate(names):
        starts, ends = offsets(index, "first_try"), offsets(index, "finished_at")
        per_step.append(
            {
                "step": name,
                "jobs": sum(index in have for have in by_row.values()),
                "first_sent_s": round(starts[0], 2) if starts else None,
                "last_finished_s": round(ends[-1], 2) if ends else None,
            }
        )
    rows_done = offsets(len(names) - 1, "finished_at")
    attempts = Attempt.objects.aggregate(n=Count("id"), last=Max("finished_at"))
    by_status = dict(
        Attempt.objects.values_list("http_status")
        .annotate(n=Count("id"))
        .values_list("http_status", "n")
    )
    last = Job.objects.aggregate(last=Max("finished_at"))["last"]
    return {
        "states": states,
        "jobs": len(jobs),
        "attempts": attempts["n"],
        "attempts_by_status": {str(k): v for k, v in by_status.items()},
        "most_attempts": max((job["attempts"] for job in jobs), default=0),
        "first_sent_s": round(min(s["first_sent_s"] for s in per_step if s["first_sent_s"]), 2)
        if any(s["first_sent_s"] for s in per_step)
        else None,
        "last_finished_s": round(_ts(last) - started, 2) if last else None,
        "per_step": per_step,
        "rows_finished": len(rows_done),
        "row_first_s": round(rows_done[0], 2) if rows_done else None,
        "row_median_s": round(statistics.median(rows_done), 2) if rows_done else None,
        # Rows with every step done by half the time to finish all (from the cluster's start).
        "rows_done_by_half": _done_by_half(rows_done),
        "chain": {
            "rows": rows,
            "rows_ok": rows_ok,
            "wrong_prompt": wrong_prompt,
            "wrong_answer": wrong_answer,
            "missing_or_failed": missing,
            "examples": examples,
        },
        "wire": wire_check,
        "order": order,
    }


# --- One part: a database, a simulator, a cluster --------------------------------------
def _done_by_half(rows_done: list[float]) -> dict[str, Any] | None:
    if not rows_done:
        return None
    return {
        "at_s": round(rows_done[-1] / 2, 2),
        "rows": sum(t <= rows_done[-1] / 2 for t in rows_done),
    }


def latency_range(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    return float(low), float(high)


def run_part(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """`kind` "pipeline" or "steps": its own database, simulator and qcluster."""
    label = "pipeline" if kind == "pipeline" else "step by step"
    part_dir = workdir / kind
    var = part_dir / "var"
    var.mkdir(parents=True, exist_ok=True)
    n_jobs = len(STEPS) * args.rows
    result: dict[str, Any] = {"part": kind}
    print(f"\n[{label}] fresh sqlite database, simulator, migrate and submit ...", flush=True)
    with _databases.fresh_database(part_dir, None, name=f"flexdash_bench_{kind}") as db:
        env = common.clean_env(
            DATABASE_URL=db.url,
            FLEXDASH_VAR_DIR=var,
            GEMINI_API_KEY=API_KEY,
            GEMINI_API=args.route,
            FLEX_RPM_LIMIT=args.rpm,
            FLEX_LOG_LEVEL="WARNING",
        )
        simulator, _ = common.start_simulator(
            env,
            part_dir / "simulator.log",
            latency=args.latency,
            api_key=API_KEY,
            extra=["--rpm", str(args.rpm), "--p503", f"{args.p503:g}", "--seed", str(args.seed)],
            wait=False,
        )
        cluster = driver = None
        clean = False
        try:
            prepare = prepare_pipeline if kind == "pipeline" else prepare_steps
            submitted = common.django_call(
                f"bench.pipeline:{prepare.__name__}",
                env,
                part_dir / "setup.log",
                rows=args.rows,
                seed=args.seed,
            )
            result["submit_seconds"] = round(submitted["seconds"], 2)
            result["submitted_jobs"] = submitted["jobs"]
            if kind == "pipeline" and submitted["jobs"] != n_jobs:
                raise RuntimeError(f"the pipeline run has {submitted['jobs']} jobs, not {n_jobs}")
            env["GEMINI_BASE_URL"] = sim_url = common.simulator_url(
                simulator, part_dir / "simulator.log"
            )
            expected = n_jobs / (args.rpm * PACE_SHARE * (1 - args.p503)) * 60
            timeout = args.timeout or max(300.0, 2.5 * expected + 300)
            started = time.time()
            cluster = common.start_qcluster(env, part_dir / "qcluster.log")
            if kind == "steps":
                driver = common.start_process(
                    [
                        common.PYTHON,
                        str(ROOT / "bench" / "common.py"),
                        "call",
                        "bench.pipeline:drive_steps",
                        json.dumps({"first_run": submitted["run"], "timeout": timeout}),
                    ],
                    env,
                    part_dir / "driver.log",
                    manage=False,
                )
            print(f"[{label}] simulator {sim_url}; qcluster pid {cluster.pid}", flush=True)
            observed = _observe(
                label, db, cluster, simulator, driver, sim_url, n_jobs, started, timeout
            )
            result.update(observed)
            wire_path = part_dir / "sim-requests.json"
            wire_path.write_bytes(_fetch(f"{sim_url}/_sim/requests"))
            if driver is not None:
                result["client"] = _driver_result(driver, part_dir / "driver.log", started)
            result.update(
                common.django_call(
                    "bench.pipeline:analyse",
                    env,
                    part_dir / "analyse.log",
                    kind=kind,
                    rows=args.rows,
                    seed=args.seed,
                    started=started,
                    wire_path=str(wire_path),
                    sent=observed["sim_stats"].get("requests", 0),
                )
            )
            clean = not observed["timed_out"]
        finally:
            if driver is not None:
                common.stop_process(driver, grace=5.0)
            if cluster is not None:
                common.stop_process(cluster, grace=20.0 if clean else 3.0)
            common.stop_process(simulator, grace=5.0)
    chain, order = result.get("chain", {}), result.get("order", {})
    result["ok"] = bool(
        not result.get("timed_out")
        and chain.get("rows_ok") == args.rows
        and result["wire"]["expected_seen"] == result["wire"]["expected_prompts"]
        and result["wire"]["unexpected"] == 0
        and (kind != "pipeline" or order.get("sent_before_parent_succeeded") == 0)
    )
    return result


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def _driver_result(driver: Any, log: Path, started: float) -> dict[str, Any]:
    driver.wait(timeout=60)
    text = log.read_text("utf-8", "replace")
    if driver.returncode != 0:
        raise RuntimeError(
            f"the step-by-step client exited with {driver.returncode}:\n{text[-2000:]}"
        )
    line = next(x for x in reversed(text.splitlines()) if x.startswith("RESULT "))
    steps = json.loads(line.removeprefix("RESULT "))["steps"]
    for step in steps:
        for key in ("seen_done_at", "submitted_at"):
            if key in step:
                step[key.replace("_at", "_s")] = round(step.pop(key) - started, 2)
    return {"steps": steps}


def _observe(
    label: str,
    db: _databases.BenchDatabase,
    cluster: Any,
    simulator: Any,
    driver: Any,
    sim_url: str,
    n_jobs: int,
    started: float,
    timeout: float,
) -> dict[str, Any]:
    """Sample every second until all the part's jobs finished (or `timeout`): job
    states and the simulator's counters; progress every 10 s."""
    samples: list[dict[str, Any]] = []
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
        if driver is not None and driver.poll() not in (None, 0):
            raise RuntimeError(f"the step-by-step client exited with {driver.returncode}")
        with contextlib.suppress(OSError):
            stats = common.sim_stats(sim_url, timeout=5)
        counts = db.job_counts()
        finished = sum(counts.get(s, 0) for s in FINISHED)
        samples.append(
            {"t": round(t, 2), "finished": finished, "requests": stats.get("requests", 0)}
        )
        if time.monotonic() - last_print >= 10:
            last_print = time.monotonic()
            active = ", ".join(f"{s} {counts[s]}" for s in ACTIVE if counts.get(s))
            print(
                f"[{label}] t={t:6.1f}s finished {finished:5d}/{n_jobs} "
                f"requests {stats.get('requests', 0):5d} (429 "
                f"{stats.get('by_status', {}).get('429', 0)}) in flight "
                f"{stats.get('in_flight', 0):3d}; {active or 'nothing active'}",
                flush=True,
            )
        if finished >= n_jobs and (driver is None or driver.poll() is not None):
            break
        if t > timeout:
            timed_out = True
            print(f"[{label}] timed out after {timeout:.0f} s", flush=True)
            break
        next_tick += SAMPLE_SECONDS
        time.sleep(max(0.0, next_tick - time.monotonic()))
    machine_after = _procfs.system_cpu_seconds()
    busy, total = (a - b for a, b in zip(machine_after, machine_before, strict=True))
    with contextlib.suppress(OSError):
        stats = common.sim_stats(sim_url, timeout=10)
    return {
        "timed_out": timed_out,
        "sim_stats": stats,
        "peak_requests_per_sliding_minute": _peak_sliding_minute(samples),
        "machine_busy_percent": round(100 * busy / total, 1) if total else None,
        "cluster_cpu_seconds": round(_procfs.tree_cpu_seconds(cluster.pid), 1),
    }


def _peak_sliding_minute(samples: list[dict[str, Any]]) -> int:
    """The most requests the simulator admitted in any 60 s (from 1 s samples)."""
    peak, j = 0, 0
    for s in samples:
        while samples[j]["t"] < s["t"] - 60:
            j += 1
        peak = max(peak, s["requests"] - samples[j]["requests"])
    return peak


# --- The report ----------------------------------------------------------------------------
def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:,.1f} s ({seconds / 60:.2f} min)"


def report(parts: dict[str, Any], args: argparse.Namespace) -> tuple[str, list[str]]:
    """The table and the notes under it."""
    low, high = latency_range(args.latency)
    total = len(STEPS) * args.rows
    limit_s = total / args.rpm * 60
    floor_s = len(STEPS) * (low + high) / 2
    pipe, steps = parts.get("pipeline", {}), parts.get("steps", {})

    def row(name: str, part: dict[str, Any], ratio: str) -> str:
        seconds, first = part.get("last_finished_s"), part.get("first_sent_s")
        span = seconds - first if seconds is not None and first is not None else None
        sent = part.get("sim_stats", {}).get("requests")
        rate = sent / span * 60 if span and sent else None
        return (
            f"| {name} | {_minutes(seconds)} | {common.cell(span, '{:,.1f} s')} | "
            f"{common.cell(sent, '{:,}')} | {common.cell(rate, '{:,.0f}')} | "
            f"{common.cell(rate and 100 * rate / args.rpm, '{:.0f} %')} | {ratio} |"
        )

    p_s, s_s = pipe.get("last_finished_s"), steps.get("last_finished_s")
    ratio = f"**{p_s / s_s:.3f}**" if p_s and s_s else "-"
    p_first = pipe.get("first_sent_s")
    p_span = p_s - p_first if p_s is not None and p_first is not None else None
    lines = [
        f"| {args.rows:,} rows x {len(STEPS)} steps, RPM {args.rpm:,}, latency {args.latency} s"
        " | time to finish all (from the cluster's start) | from the first request"
        " | requests sent | achieved requests/min (from the first request) | of RPM"
        " | ratio (pipeline / step by step, from the cluster's start) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("pipeline (one pipeline run, rows move on their own)", pipe, ratio),
        row("step by step (3 plain runs, Batch-style)", steps, "1"),
        f"| physical limit: {total:,} requests / {args.rpm:,} RPM | - | {_minutes(limit_s)} | "
        f"{total:,} | {args.rpm:,} | 100 % | "
        f"pipeline / limit {common.cell(p_span and p_span / limit_s, '{:.3f}')} |",
        f"| latency floor: {len(STEPS)} x {(low + high) / 2:g} s mean latency, one row | - | "
        f"{floor_s:.1f} s | {len(STEPS)} | - | - | - |",
    ]
    notes = []
    for key, name in (("pipeline", "pipeline"), ("steps", "step by step")):
        part = parts.get(key, {})
        if "error" in part:
            notes.append(f"- **{name}: FAILED**: {part['error']}")
            continue
        if not part:
            continue
        chain, wire, order = part["chain"], part["wire"], part.get("order") or {}
        sim = part["sim_stats"].get("by_status", {})
        notes.append(
            f"- **{name}**: {part['jobs']:,} jobs ({_states(part['states'])}), "
            f"{part['attempts']:,} attempts (HTTP {_states(part['attempts_by_status'])}; "
            f"simulator: {_states(sim)}), at most {part['most_attempts']} attempts for a job; "
            f"first request {part['first_sent_s']} s after the cluster started; "
            f"the first row done at {part['row_first_s']} s, half of them at "
            f"{part['row_median_s']} s ({_half(part)}); peak "
            f"{part['peak_requests_per_sliding_minute']:,} requests in a sliding minute; "
            f"submit {part['submit_seconds']} s"
            + (" (step 1)" if key == "steps" else "")
            + f"; cluster CPU {part['cluster_cpu_seconds']} s; machine "
            f"{part['machine_busy_percent']} % busy meanwhile."
        )
        per = "; ".join(
            f"{s['step']} {s['first_sent_s']}-{s['last_finished_s']} s" for s in part["per_step"]
        )
        notes.append(f"  - each step, first sent - last finished: {per}.")
        if key == "steps" and part.get("client"):
            gaps = []
            client = part["client"]["steps"]
            for index in range(1, len(client)):
                before = part["per_step"][index - 1]["last_finished_s"]
                gaps.append(
                    f"{STEPS[index][0]} submitted {client[index]['submitted_s'] - before:.2f} s "
                    f"after the last {STEPS[index - 1][0]} answer (run_create "
                    f"{client[index]['submit_seconds']:.2f} s), first sent "
                    f"{part['per_step'][index]['first_sent_s'] - before:.2f} s after it"
                )
            notes.append("  - between steps: " + "; ".join(gaps) + ".")
        verdict = "OK" if chain["rows_ok"] == chain["rows"] else "NOT OK"
        notes.append(
            f"  - answers built from the row's own answers: {verdict}: "
            f"{chain['rows_ok']:,} of {chain['rows']:,} rows have every step's stored prompt "
            f"and answer exactly as their own chain gives them (wrong prompt "
            f"{chain['wrong_prompt']}, wrong answer {chain['wrong_answer']}, a step missing or "
            f"not succeeded {chain['missing_or_failed']})"
            + (f"; e.g. {'; '.join(chain['examples'])}" if chain["examples"] else "")
            + "."
        )
        wire_ok = wire["expected_seen"] == wire["expected_prompts"] and not wire["unexpected"]
        notes.append(
            f"  - on the wire (the simulator's record of {wire['requests_recorded']:,} of the "
            f"{wire['requests_sent']:,} requests"
            + ("" if wire["complete"] else ", the oldest dropped: it keeps 10,000")
            + f"): {'OK' if wire_ok else 'NOT OK'}: {wire['expected_seen']:,} of the "
            f"{wire['expected_prompts']:,} expected prompts seen, {wire['unexpected']} prompts "
            "that are no row's own."
        )
        if order:
            order_ok = order["sent_before_parent_succeeded"] == 0
            notes.append(
                f"  - no job sent before its parent succeeded: {'OK' if order_ok else 'NOT OK'}: "
                f"{order['pairs']:,} (parent, child) pairs, {order['sent_before_parent_succeeded']}"
                f" sent early; a child's first attempt started {order['margin_min_s']} s "
                f"(least), {order['margin_median_s']} s (median), {order['margin_max_s']} s "
                "(most) after its parent's finished_at."
            )
    return "\n".join(lines), notes


def _half(part: dict[str, Any]) -> str:
    half = part.get("rows_done_by_half")
    if not half:
        return "no row done"
    share = 100 * half["rows"] / max(1, part["chain"]["rows"])
    return (
        f"{half['rows']:,} rows, {share:.0f} %, done by {half['at_s']} s, "
        "half the time to finish all"
    )


def _states(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def write_markdown(
    path: Path, info: dict[str, Any], args: argparse.Namespace, text: str, notes: list[str]
) -> None:
    m = info["machine"]
    code = info["code"]
    lines = [
        "# bench/pipeline.py: a 3-step pipeline against a rate limit",
        "",
        f"Command (from the project root): `{info['command']}`  ",
        f"Date: {info['date']}; commit {code['commit']}"
        + (f" (changed: {', '.join(code['uncommitted'])})" if code["uncommitted"] else "")
        + "  ",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"load average at the start {m['load_average']}, Python {m['python']}, "
        f"Django {m['versions']['django']}, django-q2 {m['versions']['django-q2']}, "
        f"google-genai {m['versions']['google-genai']}  ",
        f"Each part: a fresh SQLite database, `manage.py flexsim --latency {args.latency} "
        f"--rpm {args.rpm} --p503 {args.p503:g} --seed {args.seed}`, one `manage.py qcluster` "
        f"(default workers, one dispatcher) with FLEX_RPM_LIMIT={args.rpm}, "
        f"GEMINI_API={args.route}. Times from the qcluster's start to the last job's "
        "finished_at.",
        "",
        "Steps (each prompt is its prefix and the answer before it; the simulator answers "
        '"Simulated answer to: " + the prompt):',
        "",
        "```yaml",
        definition().rstrip(),
        "```",
        "",
        text,
        "",
        *notes,
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument(
        "--rpm", type=int, default=1000, help="the simulator's limit and FLEX_RPM_LIMIT"
    )
    parser.add_argument("--latency", default="1:3", help="MIN:MAX seconds")
    parser.add_argument("--p503", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--route", choices=("interactions", "generate_content"), default="interactions"
    )
    parser.add_argument("--parts", default="pipeline,steps", help="pipeline, steps or both")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per part")
    parser.add_argument("--results", default=str(RESULTS), help="directory for pipeline.md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    try:
        low, high = latency_range(args.latency)
        if not 0 <= low <= high:
            raise ValueError
    except ValueError:
        parser.error(f"--latency must be MIN:MAX seconds, got {args.latency!r}")
    if args.rows < 1 or args.rpm < 1 or not 0 <= args.p503 < 1:
        parser.error("--rows and --rpm at least 1, 0 <= --p503 < 1")
    kinds = [k.strip() for k in args.parts.split(",") if k.strip()]
    if not kinds or set(kinds) - {"pipeline", "steps"}:
        parser.error("--parts takes pipeline, steps or pipeline,steps")
    info = {**common.run_info(), "code": common.code_version()}
    total = len(STEPS) * args.rows
    print(
        f"pipeline: {args.rows:,} rows x {len(STEPS)} steps = {total:,} requests, RPM "
        f"{args.rpm:,} (limit {total / args.rpm:.1f} min), latency {args.latency} s, "
        f"route {args.route}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="flexdash-bench-pipeline-"))
    try:
        parts, failed = common.run_parts(kinds, lambda kind: run_part(kind, args, workdir))
    except KeyboardInterrupt:
        return common.end_run(workdir, keep=args.keep, interrupted=True)
    text, notes = report(parts, args)
    print("\n" + text + "\n\n" + "\n".join(notes))
    out = Path(args.results) / "pipeline.md"
    write_markdown(out, info, args, text, notes)
    print(f"\nwrote {out}")
    failed = failed or not all(part.get("ok") for part in parts.values())
    return common.end_run(workdir, keep=args.keep, failed=failed)


if __name__ == "__main__":
    sys.exit(main())
