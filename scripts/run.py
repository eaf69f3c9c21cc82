"""Run FlexDash locally: the Flex simulator (when no GEMINI_API_KEY is set), the
django-q2 cluster and Django's development server, as one supervised group.

`make run` calls this after installing, migrating and resetting the demo login.

* Each child runs in its own session (so its own process group): a terminal's
  Ctrl-C reaches only this supervisor, which then stops every group it started,
  children of children included (runserver's autoreloader, qcluster's workers).
* Stopping is SIGINT to each group (what Ctrl-C would have sent), then SIGTERM
  and SIGKILL for any group still alive after a grace period. A second Ctrl-C
  skips the grace period.
* If any child exits on its own, the others are stopped and this script exits
  non-zero, naming the one that died.
* Child output is prefixed with the child's name, one line at a time.
* The banner (URL and login) is printed again whenever the web server starts
  again (runserver's reload after a code change) and every BANNER_REPEAT
  seconds that printed something, so it never scrolls away for good.

Environment (see README.md, "Configuration"): PORT, FLEXSIM_PORT, FLEXSIM_ARGS,
GEMINI_API_KEY, GEMINI_BASE_URL, FLEXDASH_DEMO_PASSWORD.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANAGE = [sys.executable, str(ROOT / "manage.py")]

DEFAULT_PORT = 8000
DEFAULT_FLEXSIM_PORT = 8089
DEFAULT_FLEXSIM_ARGS = "--latency 2:8 --p503 0.2 --p429 0.05"
SIMULATOR_API_KEY = "flexsim-local-key"
DEMO_USER = "demo"
DEFAULT_DEMO_PASSWORD = "flexdash-demo"

STOP_GRACE = 10.0  # seconds between SIGINT and SIGTERM
TERM_GRACE = 3.0  # seconds between SIGTERM and SIGKILL
SIMULATOR_READY_TIMEOUT = 60.0
WEB_READY_TIMEOUT = 120.0
LISTENING = re.compile(r"listening on (https?://\S+)", re.IGNORECASE)
# runserver prints this each time it starts, its reloads included.
SERVER_STARTED = re.compile(r"^Starting development server at ")
BANNER_REPEAT = 600.0  # seconds

_print_lock = threading.RLock()  # re-entrant: the signal handler prints too


def emit(text: str) -> None:
    """Write to stdout, ignoring a closed one: when the reader of a pipe (say
    `make run | tee log`) died with the same Ctrl-C, stopping must go on."""
    with _print_lock, contextlib.suppress(OSError, ValueError):
        sys.stdout.write(text)
        sys.stdout.flush()


def say(message: str = "") -> None:
    """Print a supervisor line (children's lines are prefixed with their name)."""
    emit(message + "\n")


class Fatal(Exception):
    """A configuration or start-up problem: message printed, exit 1."""


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    ready_url: str | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None
    lines: int = 0  # relayed so far
    starts: int = 0  # times it said SERVER_STARTED
    restarted: threading.Event = field(default_factory=threading.Event)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, env: dict[str, str], width: int) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session and process group
            bufsize=0,
        )
        self.reader = threading.Thread(target=self._relay, args=(width,), daemon=True)
        self.reader.start()

    def _relay(self, width: int) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        prefix = f"{self.name:<{width}} | "
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            emit(prefix + line + "\n")  # keeps draining the pipe even if stdout is gone
            self.notice(line)

    def notice(self, line: str) -> None:
        """What a relayed line tells the supervisor: the child is listening, or
        (after its first start) started again."""
        self.lines += 1
        if not self.ready.is_set():
            match = LISTENING.search(line)
            if match:
                self.ready_url = match.group(1).rstrip("/.,;")
                self.ready.set()
        if SERVER_STARTED.search(line):
            self.starts += 1
            if self.starts > 1:
                self.restarted.set()

    def signal_group(self, signum: int) -> None:
        if self.proc is None:
            return
        # The group outlives its leader while grandchildren remain, so signal
        # the group even if the leader is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def group_alive(self) -> bool:
        if self.proc is None:
            return False
        self.proc.poll()  # reap the leader if it has exited
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class Supervisor:
    def __init__(self) -> None:
        self.children: list[Child] = []
        self.stop_requested = threading.Event()
        self.interrupts = 0
        self.width = 8

    # --- signals ---------------------------------------------------------
    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame) -> None:
        self.interrupts += 1
        name = signal.Signals(signum).name
        if self.interrupts == 1:
            say(f"\n{name} received: stopping FlexDash (press Ctrl-C again to force) ...")
        else:
            say(f"{name} received again: forcing the stop ...")
        self.stop_requested.set()

    # --- lifecycle -------------------------------------------------------
    def start(self, child: Child, env: dict[str, str]) -> None:
        self.children.append(child)
        try:
            child.start(env, self.width)
        except OSError as exc:
            raise Fatal(f"could not start {child.name} ({shlex.join(child.argv)}): {exc}") from exc

    def first_dead(self) -> Child | None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                return child
        return None

    def wait_until(self, predicate, timeout: float) -> str:
        """Wait for predicate(); returns 'ok', 'stop', 'dead' or 'timeout'."""
        deadline = time.monotonic() + timeout
        while True:
            if self.stop_requested.is_set():
                return "stop"
            if self.first_dead() is not None:
                return "dead"
            if predicate():
                return "ok"
            if time.monotonic() >= deadline:
                return "timeout"
            time.sleep(0.1)

    def stop_all(self) -> None:
        started = [c for c in self.children if c.proc is not None]
        if not started:
            return
        for child in started:
            # SIGINT is what a terminal's Ctrl-C sends: each program's own clean
            # stop. A group whose leader already died has nobody left to run
            # one (qcluster's workers ignore SIGINT), so it gets SIGTERM at once.
            child.signal_group(signal.SIGINT if child.alive else signal.SIGTERM)
        steps = ((STOP_GRACE, signal.SIGTERM), (TERM_GRACE, signal.SIGKILL), (5.0, None))
        for grace, next_signal in steps:
            deadline = time.monotonic() + grace
            seen = self.interrupts
            forced = False
            while time.monotonic() < deadline:
                if not any(c.group_alive() for c in started):
                    break
                if self.interrupts > seen:  # another Ctrl-C: skip ahead
                    forced = True
                    break
                time.sleep(0.1)
            lingering = [c for c in started if c.group_alive()]
            if not lingering:
                break
            if next_signal is None:
                names = ", ".join(f"{c.name} (pgid {c.proc.pid})" for c in lingering)
                say(f"warning: still running after SIGKILL: {names}")
                break
            why = "forced" if forced else f"still running after {grace:g}s"
            for child in lingering:
                say(f"{child.name} {why}: sending {next_signal.name}")
                child.signal_group(next_signal)
        for child in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=1)
            if child.reader is not None:
                child.reader.join(timeout=1)


# --- configuration ----------------------------------------------------------


def env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise Fatal(f"{name} must be a port number, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise Fatal(f"{name} must be between 1 and 65535, got {port}")
    return port


def check_port_free(port: int, name: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Fatal(
                    f"port {port} on 127.0.0.1 is already in use (another `make run`?); "
                    f"stop that or choose another with {name}=..."
                ) from None
            raise Fatal(f"cannot use port {port} ({name}): {exc}") from None


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def banner(lines: list[str]) -> None:
    width = max(len(line) for line in lines)
    rule = "=" * (width + 4)
    say()
    say(rule)
    for line in lines:
        say(f"  {line}")
    say(rule)
    say()


# --- main -------------------------------------------------------------------


def run() -> int:
    port = env_port("PORT", DEFAULT_PORT)
    use_simulator = not os.environ.get("GEMINI_API_KEY", "").strip()
    sim_port = env_port("FLEXSIM_PORT", DEFAULT_FLEXSIM_PORT)
    raw_sim_args = os.environ.get("FLEXSIM_ARGS")
    if raw_sim_args is None:
        raw_sim_args = DEFAULT_FLEXSIM_ARGS
    try:
        sim_args = shlex.split(raw_sim_args)
    except ValueError as exc:
        raise Fatal(f"FLEXSIM_ARGS is not a valid argument list: {exc}") from None

    check_port_free(port, "PORT")
    if use_simulator:
        if sim_port == port:
            raise Fatal(f"PORT and FLEXSIM_PORT must differ (both are {port})")
        check_port_free(sim_port, "FLEXSIM_PORT")

    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # children's lines appear as they happen

    sup = Supervisor()
    sup.install_signal_handlers()
    sup.width = len("flexsim") if use_simulator else len("qcluster")
    try:
        if use_simulator:
            sim = Child(
                "flexsim",
                [
                    *MANAGE,
                    "flexsim",
                    "--port",
                    str(sim_port),
                    "--api-key",
                    SIMULATOR_API_KEY,
                    *sim_args,
                ],
            )
            say(f"Starting the Flex simulator: manage.py {shlex.join(sim.argv[2:])}")
            sup.start(sim, env)
            outcome = sup.wait_until(
                lambda: sim.ready.is_set() or port_open(sim_port), SIMULATOR_READY_TIMEOUT
            )
            if outcome != "ok":
                return finish(sup, outcome, "the Flex simulator", SIMULATOR_READY_TIMEOUT)
            sim_url = sim.ready_url or f"http://127.0.0.1:{sim_port}"
            previous = os.environ.get("GEMINI_BASE_URL", "").strip()
            env["GEMINI_BASE_URL"] = sim_url
            env["GEMINI_API_KEY"] = SIMULATOR_API_KEY
            say()
            say(f"No GEMINI_API_KEY set: using the bundled Flex simulator at {sim_url}")
            say(f"  simulator options: {shlex.join(sim_args) or '(none)'}  (FLEXSIM_ARGS)")
            if previous and previous != sim_url:
                say(f"  (GEMINI_BASE_URL={previous} ignored: it needs a GEMINI_API_KEY)")
            say()
        else:
            target = os.environ.get("GEMINI_BASE_URL", "").strip() or "Google's Gemini API"
            say(f"GEMINI_API_KEY is set: jobs go to {target} (the simulator is not started)")

        sup.start(Child("qcluster", [*MANAGE, "qcluster"]), env)
        web = Child("web", [*MANAGE, "runserver", f"127.0.0.1:{port}"])
        sup.start(web, env)

        outcome = sup.wait_until(lambda: port_open(port), WEB_READY_TIMEOUT)
        if outcome != "ok":
            return finish(sup, outcome, "the web server", WEB_READY_TIMEOUT)

        password = os.environ.get("FLEXDASH_DEMO_PASSWORD", "").strip() or DEFAULT_DEMO_PASSWORD
        lines = [
            f"FlexDash is running: open http://127.0.0.1:{port}/",
            f"Admin:               http://127.0.0.1:{port}/admin/",
            f"Log in as:           {DEMO_USER} / {password}",
        ]
        if use_simulator:
            lines.append(f"Gemini:              Flex simulator at {env['GEMINI_BASE_URL']}")
        lines.append("Press Ctrl-C to stop everything.")
        banner(lines)
        return finish(sup, keep_banner_in_sight(sup, web, lines), "", 0)
    except BaseException:
        sup.stop_all()
        raise


def keep_banner_in_sight(sup: Supervisor, web: Child, lines: list[str]) -> str:
    """Print the banner again when the web server starts again, and every
    BANNER_REPEAT seconds in which the children printed something; returns
    how the wait ended ('stop' or 'dead')."""
    printed = sum(child.lines for child in sup.children)
    while True:
        outcome = sup.wait_until(web.restarted.is_set, BANNER_REPEAT)
        now_printed = sum(child.lines for child in sup.children)
        if outcome == "ok" or (outcome == "timeout" and now_printed > printed):
            web.restarted.clear()
            banner(lines)
            printed = now_printed
        elif outcome != "timeout":
            return outcome


def finish(sup: Supervisor, outcome: str, waiting_for: str, timeout: float) -> int:
    """Stop everything and turn how the wait ended into an exit status."""
    dead = sup.first_dead() if outcome == "dead" else None
    if dead is not None:
        code = dead.proc.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited ({code})"
        say(f"\nerror: {dead.name} {how}; stopping the others.")
    elif outcome == "timeout":
        say(f"\nerror: {waiting_for} was not ready after {timeout:.0f}s; stopping.")
    sup.stop_all()
    if outcome == "stop":
        say("FlexDash stopped.")
        return 0
    if dead is not None:
        say(f"FlexDash stopped because {dead.name} died (see its output above).")
    return 1


def main() -> int:
    try:
        return run()
    except Fatal as exc:
        say(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
