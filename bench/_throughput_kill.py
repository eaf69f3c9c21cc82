"""The SIGKILL in bench/throughput.py's kill run, and what it cost.

Once half the jobs finished, one of the two qclusters (the one running the
most dispatchers) gets SIGKILL on its whole process group; at the end, the
database says how the survivors took over: attempts marked lost, the first
retry and claim after the kill, the longest stretch without a finished job.
A helper module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from bench import _databases, _procfs
from bench._throughput_count import unix_seconds

if TYPE_CHECKING:
    from bench._throughput_run import Part


class Killer:
    """SIGKILLs one cluster's whole process group once half the jobs finished."""

    def __init__(
        self,
        part: Part,
        db: _databases.BenchDatabase,
        clusters: dict[str, Any],
        n: int,
        started: float,
    ) -> None:
        self.part, self.db, self.clusters, self.n, self.started = part, db, clusters, n, started
        self.done: dict[str, Any] = {}
        self.victim_jobs: list[int] = []

    def _dispatchers(self) -> dict[str, list[dict[str, Any]]]:
        """Live dispatcher slots per cluster: the slot owner names its worker's pid."""
        trees = {label: set(_procfs.process_tree(p.pid)) for label, p in self.clusters.items()}
        held: dict[str, list[dict[str, Any]]] = {label: [] for label in self.clusters}
        for owner, in_flight in self.db.rows(
            "SELECT owner, in_flight FROM jobs_dispatcherslot WHERE owner <> ''"
        ):
            try:
                pid = int(owner.rsplit(":", 2)[1])
            except (IndexError, ValueError):
                continue
            for label, pids in trees.items():
                if pid in pids:
                    held[label].append({"owner": owner, "in_flight": int(in_flight or 0)})
        return held

    def tick(self, t: float, finished: int, stats: dict[str, Any]) -> None:
        if self.done or finished < self.n / 2:
            return
        held = self._dispatchers()
        # The cluster running the most dispatchers (then the most requests) dies:
        # the worst case, all of its requests in flight are cut off.
        victim = max(
            held, key=lambda k: (len(held[k]), sum(d["in_flight"] for d in held[k]), k == "A")
        )
        process = self.clusters[victim]
        owners = [d["owner"] for d in held[victim]]
        if owners:
            marks = ", ".join("%s" for _ in owners)
            self.victim_jobs = [
                int(r[0])
                for r in self._rows(
                    f"SELECT id FROM jobs_job WHERE state = 'running' AND lease_owner IN ({marks})",
                    owners,
                )
            ]
        cpu = _procfs.tree_cpu_seconds(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        killed_at = time.time()
        process.wait(timeout=30)
        self.part.dead.add(victim)
        self.part.cpu_at_death[victim] = cpu
        self.done = {
            "killed": victim,
            "killed_at_seconds": round(killed_at - self.started, 1),
            "killed_at_epoch": killed_at,
            "finished_at_kill": finished,
            "sim_in_flight_at_kill": stats.get("in_flight"),
            "dispatchers_per_cluster": {k: len(v) for k, v in held.items()},
            "dispatchers": held,
            "victim_running_jobs": len(self.victim_jobs),
        }
        print(
            f"[{self.part.name}] t={killed_at - self.started:.1f}s SIGKILL to cluster {victim}'s "
            f"process group (pgid {process.pid}): dispatchers per cluster "
            f"{self.done['dispatchers_per_cluster']}, {len(self.victim_jobs)} of its jobs running, "
            f"{stats.get('in_flight')} requests in flight at the simulator",
            flush=True,
        )

    def _rows(self, sql: str, params: list[Any]) -> list[tuple]:
        connection = self.db.connect()
        if self.db.engine == "sqlite":
            sql = sql.replace("%s", "?")
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _db_time(self, epoch: float) -> Any:
        """A Unix time as the database compares it (SQLite: Django's naive UTC text)."""
        moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
        if self.db.engine == "sqlite":
            return moment.replace(tzinfo=None).isoformat(sep=" ")
        return moment

    def report(self, db: _databases.BenchDatabase) -> dict[str, Any]:
        out = {k: v for k, v in self.done.items() if k != "killed_at_epoch"}
        if not self.done:
            return {"killed": None}
        killed_at = self.done["killed_at_epoch"]
        if self.victim_jobs:
            marks = ", ".join("%s" for _ in self.victim_jobs)
            retried = self._rows(
                f"SELECT MIN(started_at) FROM jobs_attempt WHERE job_id IN ({marks}) "
                "AND started_at > %s",
                [*self.victim_jobs, self._db_time(killed_at)],
            )
            first = unix_seconds(retried[0][0]) if retried else None
            if first is not None:
                out["first_retry_after_kill_seconds"] = round(first - killed_at, 1)
            done = self._rows(
                f"SELECT COUNT(*), MAX(finished_at) FROM jobs_job WHERE id IN ({marks}) "
                "AND state IN ('succeeded', 'failed', 'cancelled')",
                self.victim_jobs,
            )
            out["victim_jobs_finished"] = int(done[0][0])
            last = unix_seconds(done[0][1])
            if last is not None:
                out["victim_jobs_all_finished_after_kill_seconds"] = round(last - killed_at, 1)
        first_claim = unix_seconds(
            self._rows(
                "SELECT MIN(started_at) FROM jobs_attempt WHERE started_at > %s",
                [self._db_time(killed_at)],
            )[0][0]
        )
        if first_claim is not None:
            out["first_claim_after_kill_seconds"] = round(first_claim - killed_at, 1)
        finishes = sorted(
            t
            for (value,) in db.rows(
                "SELECT finished_at FROM jobs_job WHERE finished_at IS NOT NULL"
            )
            if (t := unix_seconds(value)) is not None and t >= killed_at
        )
        # How long nothing finished once the kill landed (a job recorded in the
        # instant of the kill does not count), and the longest such gap later
        # on, the tail of last retries included.
        resumed = [t for t in finishes if t > killed_at + 1.0]
        if resumed:
            out["first_finish_after_kill_seconds"] = round(resumed[0] - killed_at, 1)
        gaps = [b - a for a, b in itertools.pairwise(resumed)]
        out["longest_gap_later_seconds"] = round(max(gaps), 1) if gaps else None
        out["lost_attempts"] = int(
            db.scalar("SELECT COUNT(*) FROM jobs_attempt WHERE outcome = 'lost'") or 0
        )
        out["discarded_answers"] = int(
            db.scalar("SELECT COUNT(*) FROM jobs_attempt WHERE outcome = 'discarded'") or 0
        )
        return out
