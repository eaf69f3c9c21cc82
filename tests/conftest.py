"""Fixtures shared by every room's tests: the people tests act as, their
signed-in client, and the simulator (shared, or started with options of its own)."""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.db.models.signals import post_migrate

from tests.receiver import Receiver, start_receiver
from tests.support import PASSWORD, as_user, start_process, stop_process, wait_for

SIMULATOR_DEFAULTS: dict[str, Any] = {"latency": "0:0", "api_key": "test-key"}


@dataclass(frozen=True)
class RunningSimulator:
    """A `manage.py flexsim` subprocess on loopback."""

    url: str
    api_key: str | None
    process: subprocess.Popen

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_sim/stats", timeout=10) as response:
            return json.load(response)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/_sim/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change p503, p429, rpm or latency (a [low, high] pair) while it runs."""
        request = urllib.request.Request(
            f"{self.url}/_sim/config",
            data=json.dumps(changes).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)


@contextlib.contextmanager
def running_simulator(log: Path, **options: Any) -> Iterator[RunningSimulator]:
    """Start flexsim with `options` (named like its flags: latency="1:2", p503=0.5, rpm=3,
    api_key=None for any key) over SIMULATOR_DEFAULTS, and stop it on exit."""
    options = {**SIMULATOR_DEFAULTS, **options}
    args = ["flexsim", "--port", "0"]
    for name, value in options.items():
        flag = f"--{name.replace('_', '-')}"
        if value is True:
            args.append(flag)  # a switch (random_lengths=True)
        elif value is not None:
            args += [flag, str(value)]
    process = start_process(args, dict(os.environ), log)
    try:
        url = wait_for(lambda: _listening_url(process, log), timeout=60, what="flexsim to listen")
        yield RunningSimulator(str(url), options["api_key"], process)
    finally:
        stop_process(process)


def _listening_url(process: subprocess.Popen, log: Path) -> str | None:
    output = log.read_text()
    if match := re.search(r"listening on (http://\S+)", output):
        return match[1]
    if process.poll() is not None:
        raise RuntimeError(f"flexsim exited with {process.returncode}:\n{output}")
    return None


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    """The shared simulator: no latency, no random errors, api key "test-key". Tests share
    it, so each uses prompts of its own (planted directives are counted per prompt)."""
    with running_simulator(tmp_path_factory.mktemp("flexsim") / "flexsim.log") as running:
        yield running


@pytest.fixture
def start_simulator(tmp_path: Path) -> Iterator[Callable[..., RunningSimulator]]:
    """A factory for simulators with other options; each is stopped after the test."""
    numbers = itertools.count(1)
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> RunningSimulator:
            log = tmp_path / f"flexsim-{next(numbers)}.log"
            return stack.enter_context(running_simulator(log, **options))

        yield start


@pytest.fixture
def webhook_receiver(settings) -> Iterator[Receiver]:
    """A webhook receiver on loopback, and the operator setting that lets
    webhooks reach it (loopback is refused otherwise)."""
    settings.FLEX_WEBHOOK_ALLOW_PRIVATE = True
    receiver, server = start_receiver()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


# The people tests act as: two researchers and an operator. Ada is the one a
# test means unless it says otherwise ("--user ada" in the command tests).
@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("root", is_staff=True)


@pytest.fixture
def ada_password(ada) -> str:
    """Ada's password, set for the tests that log in through the login form
    (only they pay for hashing it)."""
    ada.set_password(PASSWORD)
    ada.save(update_fields=["password"])
    return PASSWORD


@pytest.fixture
def signed_in(client, ada):
    """The test client, logged in as Ada."""
    return as_user(client, ada)


@pytest.fixture
def uploads_in_tmp(settings, tmp_path: Path) -> None:
    """Staged uploads go to this test's own folder."""
    settings.VAR_DIR = tmp_path


def pytest_configure(config: pytest.Config) -> None:
    """Each test process (each pytest-xdist worker) keeps its local state, the
    file cache django-q2's statistics live in above all, in a folder of its
    own, and the clusters its tests start are told the same folder
    (support.engine_env): workers never read each other's clusters."""
    from django.conf import settings

    var_dir = Path(tempfile.mkdtemp(prefix="flexdash-test-var-"))
    config.add_cleanup(lambda: shutil.rmtree(var_dir, ignore_errors=True))
    settings.VAR_DIR = var_dir
    if settings.CACHES["default"]["BACKEND"].endswith("FileBasedCache"):
        settings.CACHES = {
            "default": {**settings.CACHES["default"], "LOCATION": str(var_dir / "cache")}
        }
    # Hashing a password the production way (PBKDF2) costs a second of CPU on
    # this machine, and every admin_client / admin_user fixture makes one:
    # tests hash with MD5, as Django's testing docs advise. Passwords only
    # ever meet the pages in this process (live_server is a thread of it).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# A test that uses real transactions ends with a flush, which also empties what
# the data migrations seeded (prices, model limits, the minute Schedule), and so
# would change the world of whichever test that worker runs next. A flush sends
# post_migrate: seed it again then, with the migrations' own functions.
_SEEDS = (
    ("jobs.migrations.0002_seed_prices", "seed"),
    ("jobs.migrations.0003_dispatch_schedule", "schedule"),
    ("jobs.migrations.0006_capacity_and_deadlines", "seed_limits"),
)


def _seed_again(sender, **kwargs) -> None:
    for module, function in _SEEDS:
        getattr(importlib.import_module(module), function)(apps, None)


post_migrate.connect(_seed_again, sender=apps.get_app_config("jobs"))


# The PostgreSQL pass of CI (FLEXDASH_DB_TESTS_ONLY=1) runs only the tests that
# touch a database: the others would check the same thing twice.
_DB_FIXTURES = {"db", "transactional_db", "django_db_setup", "live_server"}


def _in_group(item: pytest.Item, name: str) -> bool:
    group = item.get_closest_marker("xdist_group")
    return group is not None and group.args == (name,)


def _start_order(item: pytest.Item) -> int:
    """Long tests first, so pytest-xdist's workers share out the short ones
    while they run instead of waiting on a long one at the end: the rate
    measurements (one xdist_group), then the other real clusters, then the rest."""
    if _in_group(item, "rates"):
        return 0
    return 1 if item.get_closest_marker("engine") else 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("FLEXDASH_DB_TESTS_ONLY") == "1":
        kept, skipped = [], []
        for item in items:
            uses_db = item.get_closest_marker("django_db") or _DB_FIXTURES & set(item.fixturenames)
            # The browser tests ran on SQLite; the pages' queries run on PostgreSQL
            # through the test client (tests/web, tests/runs), and CI's ten minutes
            # have no room for six browser scenarios twice.
            browser = item.get_closest_marker("e2e") is not None
            # The two rate measurements (pacing near the RPM limit, a 503 storm)
            # are three minutes of a clock, one after the other; what they prove is
            # arithmetic over time. The claim's row locks that share a limit on
            # PostgreSQL are proven here by the two-cluster scale-out test.
            rates = _in_group(item, "rates")
            # A scenario with one cluster checks what the engine does, which
            # the database does not change; the claim and the record on
            # PostgreSQL are the DB tests' and the two-cluster scenarios'.
            # (A one-cluster scenario marked both_databases runs here too: its figures
            # are counted by SQL that each database plans its own way.)
            one_cluster = item.get_closest_marker("engine") and not (
                item.get_closest_marker("two_clusters") or item.get_closest_marker("both_databases")
            )
            once = browser or rates or one_cluster
            (kept if uses_db and not once else skipped).append(item)
        if skipped:
            config.hook.pytest_deselected(items=skipped)
            items[:] = kept
    items.sort(key=_start_order)
