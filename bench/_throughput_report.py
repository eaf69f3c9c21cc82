"""The report of bench/throughput.py: the limit, the table, verdicts, notes, result files.

From the parts' results (dicts, as in throughput.json) to text: the Markdown
table printed and written, the verdicts against the issue's targets, the
notes under them, and bench/results/throughput.md and .json. The chart is in
bench/_throughput_chart.py. A helper module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from bench import common
from bench._throughput_run import PACE_SHARE, SAMPLE_SECONDS, latency_range

TARGET_RATIO = 0.90
TARGET_VS_NAIVE = 10.0


def physical_limit(args: argparse.Namespace, in_flight_cap: int) -> dict[str, Any]:
    mean_latency = sum(latency_range(args.latency)) / 2
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
    """This report's cells: one decimal unless told otherwise."""
    return common.cell(value, fmt)


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


# --- Results -----------------------------------------------------------------------------
def write_results(
    parts: dict[str, Any],
    limit: dict[str, Any],
    args: argparse.Namespace,
    info: dict[str, Any],
    text: str,
    chart_note: str | None,
) -> None:
    figures = {
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
    out = common.write_results_json(args.results, "throughput", info, figures, indent=1)
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
