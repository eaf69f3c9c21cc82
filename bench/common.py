"""Shared helpers for the benchmarks in bench/ (not a benchmark itself).

What a benchmark needs around the engine, without importing Django in the
benchmark's own process (so one run can use several fresh databases):

- processes: start `manage.py ...` in its own process group (simulator,
  qcluster), stop it with SIGTERM to the group then SIGKILL, and make sure
  every process started here is stopped on error, Ctrl-C or SIGTERM;
- Django: migrations, and `django_call`, which runs one function inside
  Django (with the benchmark's environment) in a subprocess and gets its
  JSON result back;
- machine and version facts for the result files (`run_info`), the head of
  every result JSON (`write_results_json`), this process's own CPU seconds,
  and `end_run`, the end of every benchmark's main() (keep or remove the work
  directory, exit code);
- small figures for the reports: a value rounded or "-", samples thinned for
  a JSON file, a table cell.

What /proc says about those processes is in bench/_procfs.py; the fresh
databases and reading them with plain SQL, in bench/_databases.py.

`python bench/common.py call module:function '{"kwarg": 1}'` is that
subprocess; without arguments the script only says what it is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import math
import os
import platform
import re
import resource
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

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


def code_version() -> dict[str, Any]:
    """The commit measured, and the engine's files changed from it at the start."""

    def git(*command: str) -> str:
        try:
            return subprocess.run(
                ["git", *command], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = git("status", "--porcelain", "--", "jobs", "flexdash", "templates", "manage.py")
    return {
        "commit": git("rev-parse", "--short", "HEAD") or "?",
        "uncommitted": [line[3:] for line in changed.splitlines()],
    }


def production_env(workdir: Path) -> dict[str, Any]:
    """Settings for a bench's Django processes, as in production: DEBUG off (no
    query log), static files collected, local state in `workdir`."""
    return {
        "FLEXDASH_VAR_DIR": workdir / "var",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_hex(24),
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DJANGO_STATIC_ROOT": workdir / "static",
        "DJANGO_SECURE_COOKIES": "false",
        "FLEX_LOG_LEVEL": "WARNING",
    }


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


# --- Running Django: migrations, code inside Django ------------------------------------
def migrate(env: Mapping[str, str], log: Path) -> None:
    """`manage.py migrate` on the database of env's DATABASE_URL (a subprocess)."""
    run_checked(["migrate", "--no-input", "-v", "0"], env, log)


def migrate_here() -> None:
    """Inside a `django_call` target: migrate first, saving a second Django start-up."""
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


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


# --- Facts for the result files, the end of a run ---------------------------------------
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


def run_info() -> dict[str, Any]:
    """What every result file opens with: the command, the date (UTC), the machine."""
    return {
        "command": command_line(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": machine_info(),
    }


def write_results_json(
    directory: str | Path, benchmark: str, info: dict[str, Any], figures: dict, *, indent: int
) -> Path:
    """DIRECTORY/BENCHMARK.json (the directory made if missing): the benchmark's
    name, the command, date and machine of `info` (run_info), then `figures`.
    Returns the directory, for the Markdown file next to it."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    head = {"benchmark": benchmark, **{key: info[key] for key in ("command", "date", "machine")}}
    payload = {**head, **figures}
    (out / f"{benchmark}.json").write_text(json.dumps(payload, indent=indent, default=str) + "\n")
    return out


def own_cpu_seconds() -> float:
    """User + system CPU seconds this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_parts(
    kinds: list[str], run_part: Callable[[str], dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """Each part of a benchmark run in turn (`run_part(kind)` gives its figures), every
    process it started stopped on the way out: a part that raised is printed and kept
    as {"error": ...} while the others still run. Returns the parts and whether one
    raised; Ctrl-C and SIGTERM propagate as KeyboardInterrupt."""
    parts: dict[str, Any] = {}
    failed = False
    with stopping_on_exit():
        for kind in kinds:
            try:
                parts[kind] = run_part(kind)
            except Exception as exc:
                failed = True
                traceback.print_exc()
                parts[kind] = {"error": " ".join(f"{type(exc).__name__}: {exc}".split())[:300]}
    return parts, failed


def end_run(workdir: Path, *, keep: bool, failed: bool = False, interrupted: bool = False) -> int:
    """The end of a benchmark's main(): keep or remove its work directory (logs,
    databases), and return the exit code.

    After a run: kept, and said so, when it failed or `keep` (--keep) asks,
    removed otherwise; exit 1 if it failed, else 0. After Ctrl-C or SIGTERM
    (`interrupted`, with every process already stopped): said on stderr, kept
    only when `keep` asks, exit 130."""
    if interrupted:
        print("\ninterrupted: every process started here was stopped", file=sys.stderr)
    if failed or keep:
        where = sys.stderr if interrupted else sys.stdout
        print(f"logs and databases kept in {workdir}", file=where)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if interrupted:
        return 130
    return 1 if failed else 0


# --- Figures and table cells for the reports ---------------------------------------------
def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def thin(samples: list[dict[str, Any]], limit: int = 400) -> list[dict[str, Any]]:
    """At most about `limit` of the samples, evenly spaced, the last one kept."""
    if len(samples) <= limit:
        return samples
    step = math.ceil(len(samples) / limit)
    return samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])


def cell(value: Any, fmt: str) -> str:
    """A Markdown table cell: "-" for None or "", text as it is, a number in `fmt`."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return value
    return fmt.format(value)


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
