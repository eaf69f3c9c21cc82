"""Shared helpers for the benchmarks in bench/ (not a benchmark itself).

Everything a benchmark needs around the engine, without importing Django in
the benchmark's own process (so one run can use several fresh databases):

- processes: start `manage.py ...` in its own process group (simulator,
  qcluster), stop it with SIGTERM to the group then SIGKILL, and make sure
  every process started here is stopped on error, Ctrl-C or SIGTERM;
- /proc: the process tree under a pid, its memory (VmRSS and smaps_rollup
  Pss, summed) and CPU seconds (utime+stime, plus reaped children);
- databases: a fresh temporary SQLite file, or a PostgreSQL database created
  and dropped on the server of a given URL; migrations; job counts read with
  plain SQL (sqlite3 / psycopg), so polling does not need Django;
- `django_call`: run one function inside Django (with the benchmark's
  environment) in a subprocess and get its JSON result back;
- machine and version facts for the result files.

`python bench/common.py call module:function '{"kwarg": 1}'` is that
subprocess; without arguments the script only says what it is.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import re
import resource
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
MIB = 1024.0  # KiB per MiB

# Variables a benchmark sets itself; inherited values would make runs differ.
_OWNED_PREFIXES = ("FLEX_", "GEMINI_", "DATABASE_URL", "FLEXDASH_VAR_DIR", "DJANGO_")


# --- Processes ------------------------------------------------------------------------
_started: list[subprocess.Popen] = []


def start_process(
    args: list[str], env: Mapping[str, str], log: Path, *, manage: bool = True
) -> subprocess.Popen:
    """Start `manage.py ARGS` (or ARGS itself) in a new session, output to `log`.

    Its own process group means one signal reaches the process and all its
    children (a qcluster's sentinel and workers)."""
    command = [PYTHON, str(ROOT / "manage.py"), *args] if manage else list(args)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _started.append(process)
    return process


def stop_process(process: subprocess.Popen, *, grace: float = 15.0) -> int | None:
    """Stop a process started here and everything in its process group.

    SIGTERM goes to the leader first: a qcluster stops its sentinel and
    workers in order and exits in about 2 s. (SIGTERM to the whole group at
    once kills the workers under the sentinel, which then waits for them for
    its whole `timeout` - measured: still alive after 30 s.) Whatever is left
    of the group after `grace` seconds gets SIGTERM, then SIGKILL; the group is
    killed even when the leader already exited, so no orphan outlives us."""
    pgid = process.pid
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _group_alive(pgid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + (2.0 if sig == signal.SIGTERM else grace)
        while process.poll() is None or _group_alive(pgid):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ValueError):
        _started.remove(process)
    return process.returncode


def stop_all() -> None:
    """Stop every process started through this module, newest first."""
    for process in list(reversed(_started)):
        with contextlib.suppress(Exception):
            stop_process(process, grace=10.0)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def stopping_on_exit() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt (so `finally` blocks run)
    and stop every started process on the way out, whatever happened."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        # A second Ctrl-C while stopping must not leave processes behind.
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stop_all()
        finally:
            signal.signal(signal.SIGINT, old_int)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_checked(
    args: list[str],
    env: Mapping[str, str],
    log: Path,
    *,
    manage: bool = True,
    timeout: float = 600.0,
) -> str:
    """Run a short command to completion (in its own group, stopped on Ctrl-C);
    raise with the end of its output when it fails. Returns its output."""
    start = log.stat().st_size if log.exists() else 0
    process = start_process(args, env, log, manage=manage)
    try:
        process.wait(timeout=timeout)
    finally:
        stop_process(process, grace=5.0)
    with log.open("rb") as handle:
        handle.seek(start)
        output = handle.read().decode("utf-8", "replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited with {process.returncode}:\n{output[-3000:]}")
    return output


def wait_for_line(process: subprocess.Popen, log: Path, pattern: str, timeout: float) -> re.Match:
    """Wait until `log` has a line matching `pattern` (the process must stay alive)."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text("utf-8", "replace") if log.exists() else ""
        match = regex.search(text)
        if match:
            return match
        if process.poll() is not None:
            raise RuntimeError(f"process exited ({process.returncode}) before /{pattern}/:\n{text}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no /{pattern}/ in {log} after {timeout}s:\n{text[-2000:]}")
        time.sleep(0.1)


def clean_env(**values: object) -> dict[str, str]:
    """os.environ without inherited FlexDash/Gemini/Django settings, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWNED_PREFIXES)}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "flexdash.settings",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update({key: str(value) for key, value in values.items() if value is not None})
    return env


def start_simulator(
    env: Mapping[str, str],
    log: Path,
    *,
    latency: str = "0:0",
    api_key: str | None = None,
    extra: list[str] | tuple[str, ...] = (),
    wait: bool = True,
) -> tuple[subprocess.Popen, str]:
    """Start `manage.py flexsim --port 0`; return the process and its base URL.

    With wait=False the URL is "" and `simulator_url(process, log)` waits for
    it later, so the simulator can boot while something else runs."""
    args = ["flexsim", "--port", "0", "--latency", latency, *extra]
    if api_key:
        args += ["--api-key", api_key]
    process = start_process(args, env, log)
    return process, simulator_url(process, log) if wait else ""


def simulator_url(process: subprocess.Popen, log: Path, timeout: float = 60) -> str:
    return wait_for_line(process, log, r"listening on (http://\S+)", timeout=timeout).group(1)


def start_qcluster(env: Mapping[str, str], log: Path) -> subprocess.Popen:
    return start_process(["qcluster"], env, log)


def http_json(url: str, *, timeout: float = 5.0, method: str = "GET") -> Any:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def sim_stats(base_url: str, *, timeout: float = 5.0) -> dict[str, Any]:
    """The simulator's counters: requests, successes, in_flight, peak_in_flight, ..."""
    return http_json(f"{base_url}/_sim/stats", timeout=timeout)


# --- /proc ---------------------------------------------------------------------------
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


# --- Databases -----------------------------------------------------------------------
@dataclass
class BenchDatabase:
    """A database made for one benchmark run, and a plain DB-API connection
    to read it (no Django in the benchmark process)."""

    url: str
    engine: str  # "sqlite" or "postgresql"
    _connection: Any = None

    def connect(self) -> Any:
        if self._connection is None:
            if self.engine == "sqlite":
                path = urlsplit(self.url).path
                self._connection = sqlite3.connect(path, timeout=30, isolation_level=None)
            else:
                import psycopg

                self._connection = psycopg.connect(self.url, autocommit=True)
        return self._connection

    def rows(self, sql: str) -> list[tuple]:
        cursor = self.connect().cursor()
        try:
            cursor.execute(sql)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def scalar(self, sql: str) -> Any:
        rows = self.rows(sql)
        return rows[0][0] if rows else None

    def job_counts(self) -> dict[str, int]:
        """Jobs by state (queued, running, retrying, succeeded, failed, cancelled)."""
        return {
            state: int(n)
            for state, n in self.rows("SELECT state, COUNT(*) FROM jobs_job GROUP BY state")
        }

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _pg_admin_connect(server_url: str, name: str) -> Any:
    import psycopg

    # Connect to the URL's own database, or to `postgres` if it names ours.
    current = urlsplit(server_url).path.lstrip("/")
    admin_url = _with_database(server_url, "postgres" if current in ("", name) else current)
    return psycopg.connect(admin_url, autocommit=True)


@contextlib.contextmanager
def fresh_database(
    workdir: Path, database_url: str | None = None, *, name: str = "flexdash_bench"
) -> Iterator[BenchDatabase]:
    """A new, empty database for one run, removed afterwards.

    Default: a SQLite file in `workdir`. With a postgres:// URL: database
    `name` is dropped (if left over), created on that server, and dropped at
    the end (WITH (FORCE), so a stray connection cannot keep it)."""
    if not database_url or database_url.startswith("sqlite"):
        path = workdir / f"{name}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        database = BenchDatabase(url=f"sqlite:///{path}", engine="sqlite")
        try:
            yield database
        finally:
            database.close()
        return
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise ValueError(f"unsupported database URL {database_url!r} (sqlite or postgres)")
    from psycopg import sql

    with _pg_admin_connect(database_url, name) as admin:
        admin.execute(_drop(name))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database = BenchDatabase(url=_with_database(database_url, name), engine="postgresql")
    try:
        yield database
    finally:
        database.close()
        with _pg_admin_connect(database_url, name) as admin:
            admin.execute(_drop(name))


def _drop(name: str) -> Any:
    from psycopg import sql

    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))


def migrate(env: Mapping[str, str], log: Path) -> None:
    """`manage.py migrate` on the database of env's DATABASE_URL (a subprocess)."""
    run_checked(["migrate", "--no-input", "-v", "0"], env, log)


def migrate_here() -> None:
    """Inside a `django_call` target: migrate first, saving a second Django start-up."""
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


# --- Running code inside Django -------------------------------------------------------
def django_call(
    target: str, env: Mapping[str, str], log: Path, timeout: float = 600.0, **kwargs: Any
) -> Any:
    """Run `module:function(**kwargs)` in a fresh Python with Django set up from
    `env` (its DATABASE_URL etc.); return the function's JSON-able result."""
    output = run_checked(
        [PYTHON, str(Path(__file__).resolve()), "call", target, json.dumps(kwargs)],
        env,
        log,
        manage=False,
        timeout=timeout,
    )
    for line in reversed(output.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    raise RuntimeError(f"{target} printed no result:\n{output[-2000:]}")


def _call(target: str, kwargs_json: str) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flexdash.settings")
    import django

    django.setup()
    module_name, _, function_name = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module_name), function_name)
    result = function(**json.loads(kwargs_json))
    print("RESULT " + json.dumps(result), flush=True)


# --- Waiting, facts ------------------------------------------------------------------
def wait_for(
    condition: Callable[[], Any], *, timeout: float, interval: float = 0.5, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what or condition}")
        time.sleep(interval)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def machine_info() -> dict[str, Any]:
    """Where and with what a figure was measured."""
    mem_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "nofile_limit": f"{soft}/{hard}",
        "python": platform.python_version(),
        "versions": {
            package: _version(package)
            for package in (
                "google-genai",
                "httpx2",
                "pydantic",
                "django",
                "django-q2",
                "aiohttp",
                "psycopg",
            )
        },
    }


def command_line() -> str:
    """How this benchmark was started, to paste into a shell from the project root."""
    return shlex.join(["python", *sys.argv])


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "call":
        _call(argv[1], argv[2])
        return 0
    if argv:
        print("usage: python bench/common.py call module:function '{json kwargs}'", file=sys.stderr)
        return 2
    print("bench/common.py holds helpers shared by the benchmarks; nothing to run.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
