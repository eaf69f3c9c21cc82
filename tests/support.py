"""Helpers for tests that run the real engine: a qcluster subprocess talking
to the simulator over loopback, sharing the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """DATABASE_URL of the database this test run uses (the test copy)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{db['NAME']}"


def engine_env(simulator_url: str, **overrides: object) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flexdash.settings",
        "DATABASE_URL": test_database_url(),
        "FLEXDASH_VAR_DIR": str(settings.VAR_DIR),
        "GEMINI_BASE_URL": simulator_url,
        "GEMINI_API_KEY": "test-key",
        "FLEX_BACKOFF_BASE": "0.2",
        "FLEX_BACKOFF_CAP": "1",
        "FLEX_LEASE_SECONDS": "10",
        "FLEX_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start `manage.py ARGS` in its own process group (so a kill reaches its children)."""
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 15) -> None:
    """Signal the main process (SIGKILL: the whole group, like a crash).

    A graceful signal goes to the main process only: qcluster stops its own
    workers, and signalling them all at once leaves it waiting for them.
    Whatever is left of the group afterwards is killed."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=wait)


@contextlib.contextmanager
def qcluster(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    process = start_process(["qcluster"], env, log)
    try:
        yield process
    finally:
        stop_process(process)


def wait_for(
    condition: Callable[[], object], *, timeout: float, interval: float = 0.2, what: str = ""
) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def as_user(client, user):
    """The test client, logged in as `user`."""
    client.force_login(user)
    return client


def busiest_minute(starts: list[datetime]) -> int:
    """The most requests started in any 60-second window (how Google and the
    simulator count a per-minute limit)."""
    starts = sorted(starts)
    return max(
        (bisect_left(starts, start + timedelta(seconds=60)) - i for i, start in enumerate(starts)),
        default=0,
    )
