"""The chart of bench/throughput.py (throughput.png), the one place that uses matplotlib.

matplotlib is optional (the `bench` extra): it is imported inside `chart`,
which says so in a note instead of drawing when it is missing. A helper
module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench._throughput_count import per_minute
from bench._throughput_run import PACE_SHARE


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
        xs, ys = per_minute(r["samples"])
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
