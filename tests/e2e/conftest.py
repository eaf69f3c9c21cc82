"""What every browser test needs: Debian's Chromium through Playwright and a
real qcluster on the shared simulator (Ada logs in with `ada_password`)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.e2e.browsing import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.support import engine_env, print_log_tail, start_process, stop_process


@pytest.fixture
def cluster(simulator, tmp_path: Path) -> Iterator[None]:
    """A real qcluster with quick retries, on the test database."""
    env = engine_env(simulator.url, FLEX_BACKOFF_BASE=0.5, FLEX_BACKOFF_CAP=2)
    log = tmp_path / "qcluster.log"
    process = start_process(["qcluster"], env, log)
    try:
        yield
    finally:
        print_log_tail(process, log)
        # Everything the tests check is already stored; a graceful stop would
        # wait out the dispatcher's idle horizon for nothing.
        stop_process(process, signal.SIGKILL)


@pytest.fixture
def browser(monkeypatch) -> Iterator[Browser]:
    # Playwright's sync API runs an event loop in this thread; the test's own
    # ORM calls are still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
