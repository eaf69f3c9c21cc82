"""The report of bench/inflight.py: the table, the ideal and target rows, details, result files.

From the routes' results (dicts, as in inflight.json) to text: the Markdown
table (a row per route, the physical ideal, the target) printed and written,
the details under it (the target met or missed, launch rate, claims,
processes), and bench/results/inflight.json and .md. A helper module
(bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from bench import common

TARGET_IN_FLIGHT = 5000
TARGET_CLUSTER_MIB = 500


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
                    common.cell(r.get("peak_in_flight"), "{:,}"),
                    common.cell(r.get("ramp_seconds"), "{:.1f}"),
                    common.cell(r.get("launch_span_seconds"), "{:.1f}"),
                    common.cell(r.get("submit_seconds"), "{:.2f}"),
                    common.cell(r.get("submit_to_done_seconds"), "{:.1f}"),
                    f"{common.cell(r.get('latency_mean_seconds'), '{:.1f}')} / "
                    f"{common.cell(r.get('latency_max_seconds'), '{:.1f}')}",
                    common.cell(r.get("cluster_peak_pss_mib"), "{:,.0f}"),
                    common.cell(r.get("cluster_peak_rss_mib"), "{:,.0f}"),
                    common.cell(r.get("cluster_cpu_seconds"), "{:.1f}"),
                    f"{r['lost']} / {r['jobs_with_extra_attempts']}",
                    common.cell(r.get("sim_peak_rss_mib"), "{:,.0f}"),
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
            f"{common.cell(r['first_request_seconds'], '{:.1f}')} s after qcluster start, peak at "
            f"{common.cell(r['peak_at_seconds'], '{:.1f}')} s; cluster PSS just before the first "
            f"request {common.cell(r.get('cluster_idle_pss_mib'), '{:,.0f}')} MiB; biggest process "
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
    figures = {
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
    out = common.write_results_json(args.results, "inflight", info, figures, indent=2)
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
