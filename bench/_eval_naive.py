"""bench/eval.py's naive part: the eval as a researcher's script, without FlexDash (not a
benchmark itself).

The script: for each row, for each candidate, ask for its answer, then ask the judge
to grade it, every request through the Flex spec's retry example
(bench/_naive.py's `call_with_retry`: the synchronous google-genai client,
`service_tier="flex"`, sleep `5 s x 2^attempt` after a failure, the spec's 3
tries, no fallback to standard). A judge answer is parsed as JSON and its score
read; a call whose tries all failed leaves its row without that answer or grade.
A plain loop of 6,000 calls would take hours, so the loop runs over the rows in
`threads` threads (a ThreadPoolExecutor, the usual first speed-up); the serial
time, every row's own time summed, is reported too.

The script keeps nothing but what it got back; what its answers cost is the
benchmark's accounting (`_tally`), with the prices FlexDash's are checked against.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import _eval_flexdash, _eval_work, _procfs, common

SPEC_ATTEMPTS = 3  # the spec's example: call_with_retry(max_retries=3, base_delay=5)


# --- Inside Django (through common.django_call): the script, then the accounting ----------
def run_script(rows: int, seed: int, threads: int, max_attempts: int, out: str) -> dict:
    """Run the naive script over the rows; write one JSON line per call to `out`."""
    from bench import _naive

    client = _naive.sdk_client()
    schema_format = {
        "type": "text",
        "mime_type": "application/json",
        "schema": _eval_work.JUDGE_SCHEMA,
    }

    def ask(model: str, prompt: str, **extra: Any) -> tuple[Any, Any, float]:
        began = time.monotonic()
        interaction, tries = _naive.call_with_retry(
            lambda: client.interactions.create(
                model=model, input=prompt, service_tier="flex", **extra
            ),
            max_attempts=max_attempts,
        )
        return interaction, tries, time.monotonic() - began

    def call_record(kind: str, model: str, interaction: Any, tries: Any, seconds: float) -> dict:
        usage = getattr(interaction, "usage", None)
        return {
            "kind": kind,
            "model": model,
            "ok": interaction is not None,
            "attempts": tries.attempts,
            "http_503": tries.http_503,
            "http_429": tries.http_429,
            "other_errors": tries.other_errors,
            "slept_seconds": tries.slept_seconds,
            "seconds": round(seconds, 3),
            "input_tokens": getattr(usage, "total_input_tokens", 0) or 0,
            "output_tokens": getattr(usage, "total_output_tokens", 0) or 0,
            "thought_tokens": getattr(usage, "total_thought_tokens", 0) or 0,
            "last_error": "" if interaction is not None else tries.last_error,
        }

    def one_row(row: dict[str, str]) -> dict[str, Any]:
        began = time.monotonic()
        calls = []
        for model, config in _eval_work.CANDIDATES:
            extra = {"generation_config": config} if config else {}
            interaction, tries, seconds = ask(model, row["question"], **extra)
            calls.append(call_record("answer", model, interaction, tries, seconds))
            if interaction is None:
                continue
            answer = interaction.steps[-1].content[0].text or ""
            calls[-1]["text"] = answer
            judged, tries, seconds = ask(
                _eval_work.JUDGE_MODEL,
                _eval_work.judge_prompt(row, answer),
                response_format=schema_format,
            )
            calls.append(call_record("judge", model, judged, tries, seconds))
            if judged is not None:
                text = judged.steps[-1].content[0].text or ""
                with contextlib.suppress(ValueError):
                    calls[-1]["score"] = _eval_work.score_of(json.loads(text))
        return {"id": row["id"], "seconds": round(time.monotonic() - began, 3), "calls": calls}

    table = _eval_work.table_rows(rows, seed)
    started = time.time()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        done = list(pool.map(one_row, table))
    wall = time.time() - started
    with Path(out).open("w") as handle:
        for record in done:
            handle.write(json.dumps(record) + "\n")
    return {"started": started, "wall_s": round(wall, 2)}


def tally(rows: int, seed: int, out: str, prices_path: str) -> dict[str, Any]:
    """The script's figures from its record: answers and grades checked against what
    the simulator must have answered, tokens, and their cost at flex (the tier it
    asked for) with prices.json."""
    prices = _eval_work.load_prices(prices_path)
    records = {r["id"]: r for r in map(json.loads, Path(out).read_text().splitlines())}
    counts: Counter[str] = Counter()
    tokens: Counter[str] = Counter()
    scores: Counter[int] = Counter()
    cost = standard = Decimal(0)
    answers = grades = rows_graded = wrong_answers = 0
    serial = 0.0
    for row in _eval_work.table_rows(rows, seed):
        record = records.get(row["id"], {"calls": [], "seconds": 0})
        serial += record["seconds"]
        expected = _eval_work.expected_answer(row["question"])
        graded = 0
        for call in record["calls"]:
            for key in ("attempts", "http_503", "http_429", "other_errors"):
                counts[key] += call[key]
            counts["slept_seconds"] += call["slept_seconds"]
            if not call["ok"]:
                counts[f"{call['kind']} gave up"] += 1
                continue
            for key in ("input", "output", "thought"):
                tokens[key] += call[f"{key}_tokens"]
            model = call["model"] if call["kind"] == "answer" else _eval_work.JUDGE_MODEL
            paid, paid_standard = _eval_work.answer_cost(
                prices,
                model=model,
                tier="flex",
                input_tokens=call["input_tokens"],
                output_tokens=call["output_tokens"] + call["thought_tokens"],
            )
            cost += paid
            standard += paid_standard
            if call["kind"] == "answer":
                answers += call["text"] == expected
                wrong_answers += call["text"] != expected
            elif call.get("score") is None:
                counts["judge answer without a score"] += 1
            else:
                scores[call["score"]] += 1
                graded += 1
        grades += graded
        rows_graded += graded == len(_eval_work.CANDIDATES)
    return {
        "rows": rows,
        "answers": answers,
        "grades": grades,
        "rows_graded": rows_graded,
        "wrong_answers": wrong_answers,
        "scores": {str(k): v for k, v in sorted(scores.items())},
        "not_obtained": {k: v for k, v in counts.items() if k.endswith(("gave up", "score"))},
        "requests": counts["attempts"],
        "http_503": counts["http_503"],
        "http_429": counts["http_429"],
        "other_errors": counts["other_errors"],
        "slept_seconds": round(counts["slept_seconds"], 1),
        "serial_s": round(serial, 1),
        "tokens": dict(tokens),
        "cost": {"usd": str(cost), "standard_usd": str(standard)},
    }


# --- The part: a simulator and the script ------------------------------------------------
def run_part(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    label = f"naive script ({args.naive_threads} threads)"
    part_dir = workdir / "naive"
    part_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"part": "naive", "tier": "flex", "threads": args.naive_threads}
    print(f"\n[{label}] simulator and the script ...", flush=True)
    # Django needs a database to start; the script never opens it.
    env = common.clean_env(
        DATABASE_URL=f"sqlite:///{part_dir / 'unused.sqlite3'}",
        FLEXDASH_VAR_DIR=part_dir / "var",
        GEMINI_API_KEY=_eval_flexdash.API_KEY,
        FLEX_LOG_LEVEL="WARNING",
    )
    simulator, sim_url = common.start_simulator(
        env,
        part_dir / "simulator.log",
        latency=args.latency,
        api_key=_eval_flexdash.API_KEY,
        extra=_eval_flexdash.simulator_args(args),
    )
    env["GEMINI_BASE_URL"] = sim_url
    out = part_dir / "calls.jsonl"
    try:
        machine_before = _procfs.system_cpu_seconds()
        script = common.django_call(
            "bench._eval_naive:run_script",
            env,
            part_dir / "script.log",
            timeout=args.naive_timeout or 3600.0,
            rows=args.rows,
            seed=args.seed,
            threads=args.naive_threads,
            max_attempts=args.naive_attempts,
            out=str(out),
        )
        busy, total = (
            a - b for a, b in zip(_procfs.system_cpu_seconds(), machine_before, strict=True)
        )
        result["wall_s"] = script["wall_s"]
        result["machine_busy_percent"] = round(100 * busy / total, 1) if total else None
        result["sim_stats"] = common.sim_stats(sim_url, timeout=10)
    finally:
        common.stop_process(simulator, grace=5.0)
    result.update(
        common.django_call(
            "bench._eval_naive:tally",
            env,
            part_dir / "tally.log",
            rows=args.rows,
            seed=args.seed,
            out=str(out),
            prices_path=str(args.prices),
        )
    )
    result["timed_out"] = False
    return result
