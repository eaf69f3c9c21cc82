"""The report of bench/ingest.py: the summary rows, the table, the notes, the result files.

From the steps' results (dicts, as in ingest.json) to text: a row per step
(seconds and RSS from the timed pass, Python peak from the traced one) and
per phase, the Markdown table printed and written, the notes comparing
FlexDash with the naive baseline, and bench/results/ingest.json and .md. A
helper module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench import common
from bench._ingest_meter import MIB

STEP_LABELS = {
    "flexdash_accept": "FlexDash accept: upload → preview → confirm (test Client)",
    "naive_accept": "naive accept: read whole file + json.loads + bulk_create",
    "flexdash_export": "FlexDash export: streamed results download (test Client)",
    "naive_export": "naive export: one list of lines joined to a string",
}


def summary(steps: dict[str, Any], lines: int) -> list[dict[str, Any]]:
    """One row per step (seconds and RSS from the timed pass, Python peak from
    the traced one), then one per phase."""
    rows = []
    for step, passes in steps.items():
        timed, traced = passes["timed"], passes["traced"]
        rows.append(
            {
                "step": step,
                "label": STEP_LABELS[step],
                "seconds": timed["seconds"],
                "python_peak_mib": traced["python_peak_mib"],
                "rss_peak_delta_mib": timed["rss_peak_delta_mib"],
                "rows": timed["rows"],
                "bytes": timed["bytes"],
                "ok": timed["rows"] == lines and traced["rows"] == lines,
            }
        )
        for t_phase, m_phase in zip(timed["phases"], traced["phases"], strict=True):
            rows.append(
                {
                    "step": step,
                    "label": "  · " + t_phase["phase"],
                    "seconds": t_phase["seconds"],
                    "python_peak_mib": m_phase["python_peak_mib"],
                    "rss_peak_delta_mib": t_phase["rss_peak_delta_mib"],
                    "rows": None,
                    "bytes": None,
                    "phase": True,
                }
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| step | seconds | peak Python MiB | peak RSS Δ MiB | rows | bytes |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        label = row["label"] if row.get("phase") else f"**{row['label']}**"
        if not row.get("phase") and not row.get("ok"):
            label += " (NOT OK: rows ≠ lines)"
        out.append(
            f"| {label} | {common.cell(row['seconds'], '{:.2f}')} "
            f"| {common.cell(row['python_peak_mib'], '{:,.1f}')} "
            f"| {common.cell(row['rss_peak_delta_mib'], '{:,.1f}')} "
            f"| {common.cell(row['rows'], '{:,}')} | {common.cell(row['bytes'], '{:,}')} |"
        )
    return "\n".join(out)


def notes(steps: dict[str, Any], file_facts: dict[str, Any]) -> list[str]:
    out = []
    pairs = (
        ("accept", "flexdash_accept", "naive_accept"),
        ("export", "flexdash_export", "naive_export"),
    )
    for what, ours, naive in pairs:
        if ours in steps and naive in steps:
            a, b = steps[ours]["timed"], steps[naive]["timed"]
            pa, pb = steps[ours]["traced"], steps[naive]["traced"]
            out.append(
                f"{what}: FlexDash {a['seconds']:.2f} s vs naive {b['seconds']:.2f} s "
                f"(naive takes {b['seconds'] / a['seconds']:.1f} x the time); peak Python "
                f"{pa['python_peak_mib']:,.1f} vs {pb['python_peak_mib']:,.1f} MiB; peak RSS "
                f"delta {a['rss_peak_delta_mib']:,.1f} vs {b['rss_peak_delta_mib']:,.1f} MiB "
                f"(the file is {file_facts['bytes'] / MIB:,.1f} MiB)."
            )
    spread = [
        f"{step} {min(p['timed_seconds_all']):.2f}-{max(p['timed_seconds_all']):.2f} s"
        for step, p in steps.items()
        if len(p["timed_seconds_all"]) > 1
    ]
    if spread:
        out.append(
            "seconds are the median of the timed passes (their RSS from that pass); "
            "the range over all of them: " + ", ".join(spread) + "."
        )
    exports = [steps[s]["timed"] for s in ("flexdash_export", "naive_export") if s in steps]
    if len(exports) == 2:
        same = exports[0]["sha256"] == exports[1]["sha256"]
        out.append(
            "export output: "
            + (
                "byte-identical (same SHA-256) from both ways"
                if same
                else "DIFFERS between FlexDash and the naive baseline"
            )
            + f"; first line keys {exports[0]['first_line_keys']}, key {exports[0]['first_key']!r}."
        )
        setup = exports[0]
        out.append(
            f"export setup (not measured): run_create {setup['setup_run_create_seconds']:.2f} s, "
            f"then {setup['setup_marked_jobs']:,} jobs marked succeeded in one UPDATE "
            f"{setup['setup_mark_succeeded_seconds']:.2f} s."
        )
    if "flexdash_accept" in steps:
        accept = steps["flexdash_accept"]["timed"]
        out.append(
            f"FlexDash accept: the preview page counted "
            f"{common.cell(accept.get('preview_prompt_count'), '{:,}')} prompts, "
            f"format {accept.get('format')!r}."
        )
    busy = []
    for step, passes in steps.items():
        timed = passes["timed"]
        busy.append(
            f"{step} {timed['other_cpu_seconds']:.1f} CPU-s "
            f"(machine {timed['machine_busy_percent']}% busy)"
        )
    out.append(
        "other processes during the timed passes (the database server included): "
        + ", ".join(busy)
        + "."
    )
    measured = [r for p in steps.values() for r in (*p["timed_runs"], p["traced"])]
    if not all(r["rss_peak_reset_per_phase"] for r in measured):
        out.append("VmHWM could not be reset: RSS peaks include the child's start-up and migrate.")
    return out


def write_results(
    args: argparse.Namespace,
    info: dict[str, Any],
    file_facts: dict[str, Any],
    steps: dict[str, Any],
    rows: list[dict[str, Any]],
    text: str,
    note_lines: list[str],
) -> Path:
    database = args.database_url or "SQLite (temporary file, WAL)"
    figures = {
        "database": database,
        "file": file_facts,
        "memory": "seconds and peak RSS from an untraced pass; peak Python from a pass "
        "under tracemalloc (tracemalloc slows allocation and adds its own memory). "
        "RSS: /proc/self/status VmHWM after resetting it (clear_refs 5) at each phase, "
        "minus VmRSS at the step's start. Each pass: a fresh database, a fresh process.",
        "summary": rows,
        "steps": steps,
        "notes": note_lines,
    }
    out = common.write_results_json(args.results, "ingest", info, figures, indent=2)
    machine = info["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    bullet_notes = "\n".join(f"- {line}" for line in note_lines)
    f = file_facts
    if args.repeat == 1:
        passes, median = "Each step ran twice (untraced, then under tracemalloc)", ""
    else:
        passes = f"Each step ran {args.repeat} times untraced and once under tracemalloc"
        median = " with the median time"
    md = f"""# bench/ingest.py results

Accepting a {f["lines"]:,}-line Gemini Batch JSONL file and streaming its
{f["lines"]:,}-line results export, against the naive way, in one run.

- Command: `{info["command"]}`
- Date: {info["date"]}
- File: {f["bytes"]:,} bytes ({f["bytes"] / MIB:,.1f} MiB); prompts of \
{f["prompt_chars_min"]}-{f["prompt_chars_max"]} characters (mean {f["prompt_chars_mean"]:g}); \
{f["with_system_instruction"]:,} lines with a system instruction, \
{f["with_generation_config"]:,} with a generation config
- Machine: {machine["nproc"]} CPUs ({machine["cpu"]}), {machine["memory_gib"]} GiB, \
Linux {machine["kernel"]}, load average at start {machine["load_average"]}
- Python {machine["python"]}; {versions}
- Database: {database}; Django with DEBUG off

{text}

{passes}, each in a fresh database and a fresh Python process
(migrated by another one): seconds and peak RSS come from the untraced
pass{median}, peak Python from the pass under tracemalloc. Peak RSS Δ is
VmHWM (reset at each phase through `/proc/self/clear_refs`) minus VmRSS when
the step started: memory the process had to take from the system. Peak Python
is tracemalloc's peak of the allocations made during the step; it counts bytes
requested even where no page is ever touched (`str.encode` asks for 3 bytes a
character when the text is not all Latin-1, then shrinks), so it can exceed
RSS. Phase rows are relative to the start of their step too. FlexDash accept
goes through Django's test Client with CSRF checks on: the upload page's form
(the file streamed as the request body, spooled by Django to a temporary
file), the preview page, the confirmation; its bytes column is the uploaded
file. The naive baseline reads the file from disk (no request), validates
nothing and estimates nothing. Export rows count the output's lines and bytes.

{bullet_notes}
"""
    (out / "ingest.md").write_text(md)
    return out
