"""The report of bench/scale.py: the table per database, the over-budget details, the files.

From the builds' and the measurements' results (dicts, as in scale.json) to
text: a row per page and viewer with its time at the small and at the large
size, the ratio, the verdict against the scale issue's budget (within 1.5x of
the small size's time), the time in SQL and the statements at each size;
then, for each page over budget, its slowest statements and their plans
(bench/_search_report.py's over_budget); and bench/results/scale.json and
.md. A helper module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench import common
from bench._search_report import BUDGET, TIMES, size_label, statement_ms

BUILD_STEPS = (
    ("migrate", "migrate"),
    ("insert", "runs, jobs and attempts with their search index and stored counts"),
    ("recount", "recount"),
    ("vacuum_analyze", "VACUUM ANALYZE"),
)


def rows(database: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per page and viewer: the small and the large figures side by side."""
    out = []
    for a, b in zip(database["small"]["pages"], database["large"]["pages"], strict=True):
        ratio = b["ms"] / a["ms"] if a["ms"] else None
        ok_status = a["status"] == [200] and b["status"] == [200]
        out.append(
            {
                "page": a["page"],
                "viewer": a["viewer"],
                "url": a["url"],
                "target": a["target"],
                "small_ms": a["ms"],
                "large_ms": b["ms"],
                "ratio": ratio,
                "small_db_ms": sum(statement_ms(q) for q in a["statements"]),
                "large_db_ms": sum(statement_ms(q) for q in b["statements"]),
                "statements": [len(a["statements"]), len(b["statements"])],
                "status": [a["status"], b["status"]],
                "within": ok_status and ratio is not None and ratio <= BUDGET,
            }
        )
    return out


def _what(row: dict[str, Any]) -> str:
    if row["url"] is None:
        return "(drawn in #overview-live)"
    return f"`{row['url']}`" + (f" #{row['target']}" if row["target"] else "")


def table(database: dict[str, Any]) -> str:
    small, large = size_label(database["jobs_small"]), size_label(database["jobs_large"])
    out = [
        f"| page | viewer | request | {small} ms | {large} ms | ratio | within {BUDGET}{TIMES}? "
        f"| SQL ms {small} / {large} | statements {small} / {large} |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for row in database["rows"]:
        verdict = "yes" if row["within"] else "**NO**"
        if row["status"] != [[200], [200]]:
            verdict += f" (HTTP {row['status'][0]} / {row['status'][1]})"
        out.append(
            f"| {row['page']} | {row['viewer']} | {_what(row)} | {row['small_ms']:.1f} "
            f"| {row['large_ms']:.1f} | {common.cell(row['ratio'], '{:.2f}')} | {verdict} "
            f"| {row['small_db_ms']:.1f} / {row['large_db_ms']:.1f} "
            f"| {row['statements'][0]} / {row['statements'][1]} |"
        )
    return "\n".join(out)


def builds(database: dict[str, Any]) -> str:
    parts = []
    for which in ("small", "large"):
        b = database[which]["build"]
        s = b["seconds"]
        steps = ", ".join(f"{label} {s[key]:.1f}" for key, label in BUILD_STEPS)
        states = ", ".join(f"{n:,} {state}" for state, n in sorted(b["states"].items()))
        counts = (
            "the stored counts matched a recount"
            if b["recount"]["matched"]
            else "the stored counts differed and `recount --fix` rewrote them"
        )
        if visible := b.get("pg_visibility"):
            counts += (
                f"; jobs_job pages all-visible after VACUUM: {visible['relallvisible']:,} "
                f"of {visible['relpages']:,}"
            )
        if size := b.get("database_bytes"):
            counts += f"; the database {size / 2**20:,.0f} MiB on disk"
        parts.append(
            f"{b['jobs']:,} jobs ({states}) + {b['attempts']:,} attempts + {b['runs']:,} runs "
            f"(the timed run {b['targets']['run_jobs']:,} jobs, run {b['targets']['run_id']}; "
            f"job page: job {b['targets']['job_id']}) built in {s['total']:.1f} s ({steps}); "
            f"{counts}"
        )
    return ";\n".join(parts)


def write_results(
    args: argparse.Namespace,
    info: dict[str, Any],
    commit: str,
    databases: list[dict[str, Any]],
    text: str,
) -> Path:
    figures = {
        "commit": commit,
        "jobs_small": args.jobs_small,
        "jobs_large": args.jobs_large,
        "repeat": args.repeat,
        "seed": args.seed,
        "anchor": args.anchor,
        "shape": args.shape,
        "budget_ratio": BUDGET,
        "load_average_end": args.load_average_end,
        "databases": databases,
    }
    out = common.write_results_json(args.results, "scale", info, figures, indent=1)
    machine = info["machine"]
    shape = args.shape
    head = [
        "# bench/scale.py: the polled pages at two sizes",
        "",
        f"- command: `{info['command']}`",
        f"- date: {info['date']}; commit {commit}",
        f"- machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"Linux {machine['kernel']}, Python {machine['python']}, Django "
        f"{machine['versions']['django']}, psycopg {machine['versions']['psycopg']}; load "
        f"average at the start {machine['load_average']}, at the end {args.load_average_end}",
        f"- data: {shape['owners']} researchers over {shape['days']} days "
        f"({shape['last_day_share']:.0%} of the jobs in the last day), "
        f"{shape['attempts_mean']:g} attempts per tried job on average, "
        f"{shape['active_share']:.0%} of the jobs active (in one large run of researcher0), "
        f"{shape['run_share']:.0%} in other runs; the pages timed with Django's clock "
        f"at {args.anchor}",
        f"- median of {args.repeat} turns (each a fresh process: one warm-up and one timed "
        "request per page) through Django's test Client with DEBUG off; the budget: "
        f"every page within {BUDGET}{TIMES} of its time at {args.jobs_small:,} jobs",
        "",
    ]
    (out / "scale.md").write_text("\n".join(head) + "\n" + text + "\n")
    return out
