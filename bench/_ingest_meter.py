"""What bench/ingest.py measures inside a step's own process: time, memory, the output.

`Meter` times each phase of a step and records its peak RSS (VmHWM, reset
through /proc/self/clear_refs at each phase, minus VmRSS at the step's start)
and, when traced, tracemalloc's peak of Python allocations, plus the CPU the
process and the rest of the machine used meanwhile; `OutputCounter` counts an
export's lines and bytes and hashes them without keeping them. A helper
module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import _procfs, common

MIB = 1024 * 1024


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_hwm() -> bool:
    """Set VmHWM back to the current RSS (Linux >= 4.0): a peak per phase."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Meter:
    """Seconds, peak RSS and (when traced) peak Python allocations of a step's
    phases, all relative to the start of the step."""

    def __init__(self, traced: bool) -> None:
        self.traced = traced
        self.phases: list[dict[str, Any]] = []
        self.hwm_reset = True
        self.rss_before_kib = 0

    def start(self) -> None:
        gc.collect()
        self.peak_before_kib = _status_kib("VmHWM")
        self.hwm_reset = _reset_hwm()
        self.rss_before_kib = _status_kib("VmRSS")
        self.cpu_before = common.own_cpu_seconds()
        self.machine_before = _procfs.system_cpu_seconds()
        if self.traced:
            tracemalloc.start()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.hwm_reset = _reset_hwm() and self.hwm_reset
        if self.traced:
            tracemalloc.reset_peak()
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        hwm = _status_kib("VmHWM")
        self.phases.append(
            {
                "phase": name,
                "seconds": seconds,
                "rss_peak_delta_mib": (hwm - self.rss_before_kib) / 1024,
                "python_peak_mib": tracemalloc.get_traced_memory()[1] / MIB
                if self.traced
                else None,
            }
        )

    def stop(self) -> dict[str, Any]:
        if self.traced:
            tracemalloc.stop()
        own = common.own_cpu_seconds() - self.cpu_before
        busy_after, total_after = _procfs.system_cpu_seconds()
        busy = busy_after - self.machine_before[0]
        total = total_after - self.machine_before[1]
        pythons = [p["python_peak_mib"] for p in self.phases if p["python_peak_mib"] is not None]
        return {
            "traced": self.traced,
            "seconds": sum(p["seconds"] for p in self.phases),
            "rss_before_mib": self.rss_before_kib / 1024,
            # The process's own peak before the step (Django start-up, setup).
            "rss_peak_before_step_mib": self.peak_before_kib / 1024,
            "rss_peak_delta_mib": max(p["rss_peak_delta_mib"] for p in self.phases),
            "rss_peak_reset_per_phase": self.hwm_reset,
            "python_peak_mib": max(pythons) if pythons else None,
            "phases": self.phases,
            "own_cpu_seconds": round(own, 2),
            # Everything else the machine did meanwhile (a PostgreSQL server included).
            "other_cpu_seconds": round(max(busy - own, 0.0), 2),
            "machine_busy_percent": round(100 * busy / total, 1) if total else None,
        }


class OutputCounter:
    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0
        self.digest = hashlib.sha256()
        self.head = b""

    def add(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        self.lines += chunk.count(b"\n")
        self.digest.update(chunk)
        if len(self.head) < 65536:
            self.head += chunk[:65536]

    def facts(self) -> dict[str, Any]:
        first = json.loads(self.head.split(b"\n", 1)[0]) if self.head else {}
        return {
            "rows": self.lines,
            "bytes": self.bytes,
            "sha256": self.digest.hexdigest(),
            "first_line_keys": sorted(first),
            "first_key": first.get("key"),
            "first_has_answer": bool(
                first.get("response", {}).get("candidates", [{}])[0].get("content")
            ),
        }
