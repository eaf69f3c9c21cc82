"""A judge-graded eval on flex, on standard, and as a naive script: time and cost side by side.

N rows (1,000) x 3 candidates (gemini-2.5-flash, gemini-2.5-flash-lite,
gemini-3-flash-preview with thinking low), each answer graded by a judge
(gemini-2.5-pro, response_schema {score: integer 1..10, reason}), against the
simulator (`manage.py flexsim --latency 1:3 --p503 0.2 --seed S`: flex shed with
503s, standard never), in one run, each part with its own simulator:

- FlexDash flex: the eval (`eval_definitions.eval_read` + `eval_run_create`) as one
  run on a fresh SQLite database, one `manage.py qcluster` (FLEX_RPM_LIMIT per model);
- FlexDash standard: the same eval with `tier: standard`;
- naive script: a loop over rows x candidates, each answer then its grade, every
  call through the Flex spec's retry example (bench/_naive.py's loop, the spec's 3
  tries), in --naive-threads threads.

For each: wall time, requests sent, 503s / 429s, answers and grades obtained (rows
left ungraded), tokens and cost in USD from prices.json (FlexDash's the jobs' stored
cost, checked against the same tokens priced again; the script's priced the same
way). Each part checks every row's answers and grades against what the simulator
must have answered.

    python bench/eval.py                    # 1,000 rows: ~15 minutes
    python bench/eval.py --rows 100         # smoke run: ~2 minutes
    python bench/eval.py --parts flex,naive --p503 0.3

Prints a Markdown table and writes bench/results/eval.md and eval.json
(`--results DIR` elsewhere). Not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _eval_flexdash, _eval_naive, _eval_work, common  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PRICES = ROOT.parent / "shared" / "prices.json"
PARTS = ("flex", "standard", "naive")
NAMES = {
    "flex": "FlexDash eval on flex",
    "standard": "FlexDash eval on standard",
    "naive": "naive script on flex",
}


def run_part(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if kind == "naive":
        return _eval_naive.run_part(args, workdir)
    return _eval_flexdash.run_part(kind, args, workdir)


# --- Checks -----------------------------------------------------------------------------
def checks(kind: str, part: dict[str, Any], args: argparse.Namespace) -> list[tuple[bool, str]]:
    """(passed, what it says) for each of the part's checks."""
    n = len(_eval_work.CANDIDATES) * args.rows
    out: list[tuple[bool, str]] = []
    missing = sum(part["not_obtained"].values())
    out.append(
        (
            not part["timed_out"]
            and part["wrong_answers"] == 0
            and part.get("wrong_judge_prompts", 0) == 0
            and part["grades"] + missing == n,
            f"every row has {len(_eval_work.CANDIDATES)} answers and "
            f"{len(_eval_work.CANDIDATES)} grades or is counted ungraded: {part['answers']:,} of "
            f"{n:,} answers and {part['grades']:,} of {n:,} grades obtained, {missing} not "
            f"({_counts(part['not_obtained']) or 'none'}); {part['rows_graded']:,} of "
            f"{args.rows:,} rows fully graded; each answer is its own row's (wrong "
            f"{part['wrong_answers']})"
            + (
                f", each judge read exactly its own row's answer (wrong prompts "
                f"{part['wrong_judge_prompts']})"
                if kind != "naive"
                else ""
            )
            + f"; scores {_counts(part['scores']) or 'none'}",
        )
    )
    sim = part["sim_stats"]
    sim_503 = sim.get("by_status", {}).get("503", 0)
    if kind == "naive":
        out.append(
            (
                part["requests"] == sim.get("requests") and part["http_503"] == sim_503,
                f"requests the script counted {part['requests']:,} (503 {part['http_503']:,}) = "
                f"the simulator's {sim.get('requests', 0):,} (503 {sim_503:,})",
            )
        )
        return out
    cost = part["cost"]
    stored = Decimal(cost["stored_usd"])
    adds_up = (
        cost["jobs_priced_differently"] == 0
        and stored == Decimal(cost["recomputed_usd"])
        and stored == Decimal(cost["attempts_usd"])
        and stored == Decimal(cost["run_tally_usd"])
    )
    out.append(
        (
            adds_up,
            f"the costs add up: the jobs' stored cost ${stored:.6f} = the same tokens priced "
            f"from prices.json per job ${Decimal(cost['recomputed_usd']):.6f} "
            f"({cost['jobs_priced_differently']} jobs priced differently) = the attempts' "
            f"${Decimal(cost['attempts_usd']):.6f} = the run's tally "
            f"${Decimal(cost['run_tally_usd']):.6f}; estimated before it started "
            f"${Decimal(cost['estimated_usd']):.6f}",
        )
    )
    attempts_503 = part["attempts_by_status"].get("503", 0)
    out.append(
        (
            part["attempts"] == sim.get("requests") and attempts_503 == sim_503,
            f"attempts stored {part['attempts']:,} (503 {attempts_503:,}) = the simulator's "
            f"requests {sim.get('requests', 0):,} (503 {sim_503:,})",
        )
    )
    served = part["tiers_served"]
    out.append(
        (
            set(part["tiers_requested"]) == {kind} and set(served) <= {kind},
            f"every job asked for {kind} ({_counts(part['tiers_requested'])}) and was served "
            f"{_counts(served) or 'nothing'}",
        )
    )
    return out


def cross_checks(parts: dict[str, Any]) -> list[tuple[bool, str]]:
    """Between parts: the same work costs half on flex, and the same tokens."""
    flex, standard = parts.get("flex"), parts.get("standard")
    out: list[tuple[bool, str]] = []
    if _ok_figures(flex) and _ok_figures(standard):
        f_cost, s_cost = (
            Decimal(flex["cost"]["stored_usd"]),
            Decimal(standard["cost"]["stored_usd"]),
        )
        f_std = Decimal(flex["cost"]["stored_standard_usd"])
        same_tokens = flex["tokens"] == standard["tokens"] and flex["grades"] == standard["grades"]
        half = abs(2 * f_cost - f_std) <= Decimal("0.00000001") * flex["jobs"]
        out.append(
            (
                half and (not same_tokens or f_std == s_cost),
                f"flex costs half: ${f_cost:.6f} on flex against ${f_std:.6f} for the same "
                f"tokens on standard (ratio {f_cost / f_std:.4f}); the standard run's "
                f"${s_cost:.6f} "
                + (
                    "for the very same tokens"
                    if same_tokens
                    else f"for its own tokens ({_tokens(standard)} against {_tokens(flex)}: "
                    "flex left some rows ungraded)"
                ),
            )
        )
    return out


def _ok_figures(part: dict[str, Any] | None) -> bool:
    return bool(part) and "error" not in part and "cost" in part


# --- The report ---------------------------------------------------------------------------
def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def _tokens(part: dict[str, Any]) -> str:
    t = part["tokens"]
    return f"{t['input']:,} in / {t['output'] + t['thought']:,} out"


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:,.1f} s ({seconds / 60:.2f} min)"


def report(parts: dict[str, Any], args: argparse.Namespace) -> tuple[str, list[str], bool]:
    """The table, the notes under it and whether every check passed."""
    n = len(_eval_work.CANDIDATES) * args.rows
    base = parts.get("flex") if _ok_figures(parts.get("flex")) else None
    lines = [
        f"| {args.rows:,} rows x {len(_eval_work.CANDIDATES)} candidates + judge, latency "
        f"{args.latency} s, p503 {args.p503:g} | wall time | requests sent | 503s / 429s"
        f" | answers (of {n:,}) | grades (of {n:,}) | rows left ungraded"
        " | tokens in / out (thinking incl.) | cost USD | cost / FlexDash flex |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ok = True
    notes: list[str] = []
    for kind in PARTS:
        if kind not in parts:
            continue
        part = parts[kind]
        name = NAMES[kind] + (f" ({args.naive_threads} threads)" if kind == "naive" else "")
        if "error" in part:
            ok = False
            lines.append(f"| {name} | FAILED | | | | | | | | |")
            notes.append(f"- **{name}: FAILED**: {part['error']}")
            continue
        sim = part["sim_stats"].get("by_status", {})
        cost = Decimal(part["cost"]["stored_usd" if kind != "naive" else "usd"])
        ratio = "1" if kind == "flex" else "-"
        if base and kind != "flex":
            ratio = f"{cost / Decimal(base['cost']['stored_usd']):.3f}"
        lines.append(
            f"| {name} | {_minutes(part['wall_s'])} | {part['sim_stats'].get('requests', 0):,} "
            f"| {sim.get('503', 0):,} / {sim.get('429', 0):,} | {part['answers']:,} "
            f"| {part['grades']:,} | {args.rows - part['rows_graded']:,} | {_tokens(part)} "
            f"| ${cost:.4f} | {ratio} |"
        )
        notes.append(f"- **{name}**: " + _part_note(kind, part))
        for passed, text in checks(kind, part, args):
            ok = ok and passed
            notes.append(f"  - {'OK' if passed else 'NOT OK'}: {text}.")
    for passed, text in cross_checks(parts):
        ok = ok and passed
        notes.append(f"- {'OK' if passed else 'NOT OK'}: {text}.")
    return "\n".join(lines), notes, ok


def _part_note(kind: str, part: dict[str, Any]) -> str:
    if kind == "naive":
        return (
            f"{part['requests']:,} calls ({part['other_errors']} other errors), "
            f"{part['slept_seconds']:,.0f} s slept in retries; its rows' own times summed (a "
            f"one-thread loop) {_minutes(part['serial_s'])}; machine "
            f"{part['machine_busy_percent']} % busy meanwhile."
        )
    return (
        f"{part['jobs']:,} jobs ({_counts(part['states'])}), {part['attempts']:,} attempts "
        f"(HTTP {_counts(part['attempts_by_status'])}), at most {part['most_attempts']} for a "
        f"job; first request {part['first_sent_s']} s after the cluster started, 99 % of the "
        f"jobs finished by {part['p99_finished_s']} s, the last at {part['last_finished_s']} s; "
        f"submit {part['submit']['seconds']} s; "
        f"cluster CPU {part['cluster_cpu_seconds']} s; machine {part['machine_busy_percent']} "
        "% busy meanwhile."
    )


def write_markdown(
    path: Path, info: dict[str, Any], args: argparse.Namespace, text: str, notes: list[str]
) -> None:
    m, code = info["machine"], info["code"]
    lines = [
        "# bench/eval.py: a judge-graded eval on flex, on standard and as a naive script",
        "",
        f"Command (from the project root): `{info['command']}`  ",
        f"Date: {info['date']}; commit {code['commit']}"
        + (f" (changed: {', '.join(code['uncommitted'])})" if code["uncommitted"] else "")
        + "  ",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"load average at the start {m['load_average']}, Python {m['python']}, "
        f"Django {m['versions']['django']}, django-q2 {m['versions']['django-q2']}, "
        f"google-genai {m['versions']['google-genai']}  ",
        f"Each part: its own `manage.py flexsim --latency {args.latency} "
        f"{' '.join(_eval_flexdash.simulator_args(args))}` (flex shed with 503s, at once; "
        "standard never). FlexDash: a fresh SQLite database, one `manage.py qcluster` "
        f"(default workers, one dispatcher), FLEX_RPM_LIMIT={args.rpm} per model; its wall "
        "time runs from the qcluster's start to the last job's finished_at. Naive: "
        f"{args.naive_threads} threads, {args.naive_attempts} tries a call "
        "(bench/_naive.py's `call_with_retry`), no fallback; its wall time is the loop's. "
        f"Costs: prices.json ({args.prices}) through jobs/engine/pricing.py.",
        "",
        "The eval (the standard part's says `tier: standard`):",
        "",
        "```yaml",
        _eval_work.definition("flex").rstrip(),
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
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rpm", type=int, default=1000, help="FLEX_RPM_LIMIT, per model")
    parser.add_argument("--latency", default="1:3", help="MIN:MAX seconds")
    parser.add_argument("--p503", type=float, default=0.2, help="flex requests shed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--naive-threads", type=int, default=64)
    parser.add_argument(
        "--naive-attempts", type=int, default=_eval_naive.SPEC_ATTEMPTS, help="tries a call"
    )
    parser.add_argument("--naive-timeout", type=float, default=None, help="seconds")
    parser.add_argument("--parts", default=",".join(PARTS), help="flex, standard, naive")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per FlexDash part")
    parser.add_argument("--prices", default=str(PRICES), help="prices.json")
    parser.add_argument("--results", default=str(RESULTS), help="directory for eval.md/json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    low, _, high = args.latency.partition(":")
    try:
        if not 0 <= float(low) <= float(high):
            raise ValueError
    except ValueError:
        parser.error(f"--latency must be MIN:MAX seconds, got {args.latency!r}")
    if args.rows < 1 or args.rpm < 1 or not 0 <= args.p503 < 1:
        parser.error("--rows and --rpm at least 1, 0 <= --p503 < 1")
    if args.naive_threads < 1 or args.naive_attempts < 1:
        parser.error("--naive-threads and --naive-attempts at least 1")
    if not Path(args.prices).is_file():
        parser.error(f"no prices file at {args.prices} (--prices)")
    kinds = [k.strip() for k in args.parts.split(",") if k.strip()]
    if not kinds or set(kinds) - set(PARTS):
        parser.error(f"--parts takes {', '.join(PARTS)}")
    info = {**common.run_info(), "code": common.code_version()}
    n = len(_eval_work.CANDIDATES) * args.rows
    print(
        f"eval: {args.rows:,} rows x {len(_eval_work.CANDIDATES)} candidates + a judge = "
        f"{2 * n:,} requests a part before retries; latency {args.latency} s, p503 "
        f"{args.p503:g}, FLEX_RPM_LIMIT {args.rpm:,} per model; parts {', '.join(kinds)}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="flexdash-bench-eval-"))
    try:
        parts, failed = common.run_parts(kinds, lambda kind: run_part(kind, args, workdir))
    except KeyboardInterrupt:
        return common.end_run(workdir, keep=args.keep, interrupted=True)
    text, notes, ok = report(parts, args)
    print("\n" + text + "\n\n" + "\n".join(notes))
    out = common.write_results_json(
        args.results,
        "eval",
        info,
        {"code": info["code"], "args": vars(args), "parts": parts},
        indent=1,
    )
    write_markdown(out / "eval.md", info, args, text, notes)
    print(f"\nwrote {out / 'eval.md'} and {out / 'eval.json'}")
    return common.end_run(workdir, keep=args.keep, failed=failed or not ok)


if __name__ == "__main__":
    sys.exit(main())
