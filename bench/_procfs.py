"""What /proc says about the processes a benchmark started (not a benchmark itself).

Read-only, no process started or stopped here: the process tree under a pid,
its memory (VmRSS and smaps_rollup Pss, summed over the tree, with the peak
over repeated samples), CPU seconds (utime+stime, plus reaped children), open
files and their limit, and the whole machine's busy and total CPU seconds.
Starting and stopping processes is bench/common.py's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024.0  # KiB per MiB


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 (state) on; None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants (scans /proc once)."""
    return list(process_depths(root))


def process_depths(root: int) -> dict[int, int]:
    """{pid: depth below root} for `root` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    if _stat_fields(root) is None:
        return {}
    depths, todo = {}, [(root, 0)]
    while todo:
        pid, depth = todo.pop()
        depths[pid] = depth
        todo.extend((child, depth + 1) for child in children.get(pid, ()))
    return depths


def rss_kib(pid: int) -> int:
    """VmRSS of one process (KiB); 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def pss_kib(pid: int) -> int:
    """Pss of one process from smaps_rollup (KiB): shared pages divided among
    the processes sharing them, so forked workers are not counted twice."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def cpu_seconds(pid: int, *, with_children: bool = True) -> float:
    """utime+stime of one process; with cutime+cstime (its reaped children)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def process_name(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "?"
    parts = [p.decode("utf-8", "replace") for p in raw.split(b"\0") if p]
    if len(parts) == 1 and " " in parts[0]:  # setproctitle rewrote it
        return parts[0]
    return " ".join(Path(parts[0]).name if i == 0 else p for i, p in enumerate(parts))[:120]


@dataclass
class TreeSample:
    rss_kib: int
    pss_kib: int
    per_process: dict[int, tuple[int, int]]  # pid -> (rss, pss) KiB
    depths: dict[int, int]  # pid -> depth below the root


def tree_memory(root: int, *, pss: bool = True) -> TreeSample:
    """Memory of `root` and its descendants: summed VmRSS (counts pages shared
    by forked processes once per process) and summed Pss (counts them once)."""
    depths = process_depths(root)
    per = {pid: (rss_kib(pid), pss_kib(pid) if pss else 0) for pid in depths}
    return TreeSample(
        rss_kib=sum(r for r, _ in per.values()),
        pss_kib=sum(p for _, p in per.values()),
        per_process=per,
        depths=depths,
    )


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of a live tree: every member's utime+stime, plus what its
    already-reaped children used (cutime+cstime), so nothing counts twice."""
    return sum(cpu_seconds(pid) for pid in process_tree(root))


def system_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all CPUs
    (/proc/stat): the difference over a run shows what others used."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # guest time is already in user/nice
    idle = fields[3] + fields[4]  # idle + iowait
    return (total - idle) / CLK_TCK, total / CLK_TCK


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, PermissionError):
        return 0


def nofile_limit(pid: int) -> str:
    """The soft/hard open-file limit of a process, as /proc/PID/limits says."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return f"{soft}/{hard}"
    except (FileNotFoundError, PermissionError):
        pass
    return "?"


@dataclass
class PeakTracker:
    """Peak memory of a process tree over repeated samples, with the peak of
    each process (named) to see which one grew."""

    root: int
    pss: bool = True
    peak_rss_kib: int = 0
    peak_pss_kib: int = 0
    per_process: dict[int, dict[str, Any]] = field(default_factory=dict)

    def sample(self) -> TreeSample:
        sample = tree_memory(self.root, pss=self.pss)
        self.peak_rss_kib = max(self.peak_rss_kib, sample.rss_kib)
        self.peak_pss_kib = max(self.peak_pss_kib, sample.pss_kib)
        for pid, (rss, pss) in sample.per_process.items():
            entry = self.per_process.get(pid)
            if entry is None:
                entry = self.per_process[pid] = {
                    "pid": pid,
                    "depth": sample.depths.get(pid, 0),
                    "name": process_name(pid),
                    "peak_rss_mib": 0.0,
                    "peak_pss_mib": 0.0,
                    "peak_open_files": 0,
                }
            entry["peak_rss_mib"] = max(entry["peak_rss_mib"], round(rss / MIB, 1))
            entry["peak_pss_mib"] = max(entry["peak_pss_mib"], round(pss / MIB, 1))
        return sample

    def count_open_files(self) -> None:
        for pid, entry in self.per_process.items():
            entry["peak_open_files"] = max(entry["peak_open_files"], open_files(pid))
