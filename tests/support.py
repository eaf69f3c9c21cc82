"""Helpers every room's tests share: jobs and runs made the way the product
makes them, API and command calls, and the real engine (a qcluster subprocess
talking to the simulator over loopback, sharing the test database)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client

from jobs.engine import claiming, recording, submitting, tokens
from jobs.engine.gemini import GeminiError, GeminiGateway, GeminiRequest
from jobs.models import FINISHED_STATES, Attempt, Job, Outcome, Run, State
from jobs.notices.choices import RunNotify
from jobs.runs import services as runs
from tests.run_files import prompt_file

ROOT = Path(__file__).resolve().parent.parent
MODEL = "gemini-2.5-flash"
HTMX = {"HX-Request": "true"}
# Ada's password, for the tests that log in through the login form (the
# `ada_password` fixture sets it).
PASSWORD = "correct horse battery staple"


# --- Jobs and runs, made as the product makes them ----------------------------------
def submit(owner, *prompts: str, **spec) -> list[Job]:
    """Queue one job per prompt through the engine's one way in; the model is
    gemini-2.5-flash unless `spec` names another."""
    spec.setdefault("model", MODEL)
    return submitting.jobs_submit(
        owner=owner, prompts=list(prompts), spec=submitting.JobSpec(**spec)
    )


def make_job(owner, state: str = State.SUCCEEDED, *, prompt: str = "Explain flex", **fields) -> Job:
    """A stored job row in any state, with whatever counters and times `fields`
    give it (for the pages and queries that only read jobs)."""
    return Job.objects.create(owner=owner, input_text=prompt, state=state, **fields)


def send_due_jobs(simulator_url: str, route: str, *, limit: int = 100) -> list[str]:
    """One turn of the dispatcher's path in this process, without a cluster: claim
    the due jobs, send each through the real gateway (google-genai over loopback),
    record what came back. Returns each job's decision, in claim order."""
    claims = claiming.jobs_claim(owner="test", limit=limit, lease_seconds=60)
    return send_claims(simulator_url, route, claims)


def send_claims(simulator_url: str, route: str, claims: list[claiming.Claim]) -> list[str]:
    """Send claimed tries through the real gateway and record what came back."""

    async def send() -> list[recording.AttemptOutcome]:
        gateway = GeminiGateway(api_key="test-key", base_url=simulator_url, route=route)
        outcomes = []
        try:
            for claim in claims:
                request = GeminiRequest(
                    claim.model,
                    claim.request,
                    claim.tier,
                    claim.route,
                    previous_interaction_id=claim.previous_interaction_id,
                )
                try:
                    outcome = await gateway.generate(request)
                except GeminiError as error:
                    outcome = error
                outcomes.append(recording.AttemptOutcome(claim, outcome, 0.1))
        finally:
            await gateway.aclose()
        return outcomes

    return recording.attempts_record(owner="test", outcomes=asyncio.run(send()))


def wire_requests(simulator_url: str, last: int = 200) -> list[dict]:
    """What reached the simulator, newest last: {"route", "model", "body"} each."""
    with urllib.request.urlopen(f"{simulator_url}/_sim/requests?last={last}", timeout=10) as reply:
        return json.load(reply)


def run_from_file(
    owner,
    content: bytes,
    filename: str = "prompts.jsonl",
    *,
    name: str = "",
    notify: RunNotify | None = None,
    **spec,
) -> Run:
    """A run created by the run service from a file's bytes; `spec` as for
    `submit`; `notify`: what it asks to be told (the account's defaults if None)."""
    spec.setdefault("model", MODEL)
    return runs.run_create(
        owner=owner,
        stream=io.BytesIO(content),
        filename=filename,
        spec=submitting.JobSpec(**spec),
        name=name,
        notify=notify,
    )


def make_run(
    owner,
    lines: Iterable[tuple[str, str]] = (("a", "first prompt"), ("b", "second prompt")),
    *,
    fmt: str = "jsonl",
    name: str = "",
    notify: RunNotify | None = None,
    **spec,
) -> Run:
    """A run of the (id, prompt) `lines`, uploaded as a file in format `fmt`."""
    filename, content = prompt_file(fmt, list(lines))
    return run_from_file(owner, content, filename, name=name, notify=notify, **spec)


def answered(jobs, *, at: datetime, started: datetime | None = None) -> None:
    """The jobs answered at `at` by one attempt each, as the engine records
    an answer (the run page counts its answers from their attempts)."""
    jobs = list(jobs)
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(
        state=State.SUCCEEDED, finished_at=at
    )
    Attempt.objects.bulk_create(
        Attempt(job=job, number=1, tier_requested="flex", outcome=Outcome.SUCCEEDED,
                started_at=started or at, finished_at=at)
        for job in jobs
    )  # fmt: skip


def tag() -> str:
    """A fresh word for a test's prompts: the shared simulator counts planted
    directives per prompt, so each test's prompts must be its own."""
    return uuid.uuid4().hex[:8]


def finished(jobs: list[Job]) -> Callable[[], bool]:
    """For `wait_for`: true once every one of `jobs` is in a finished state."""
    ids = [job.pk for job in jobs]
    return lambda: not Job.objects.filter(pk__in=ids).exclude(state__in=FINISHED_STATES).exists()


# --- The ways in: the web, the API, the commands ----------------------------------
def as_user(client, user):
    """The test client, logged in as `user`."""
    client.force_login(user)
    return client


def api_client(user) -> Client:
    """A client that sends a new API token of `user` with every request."""
    _, token = tokens.api_token_create(user=user, name="script")
    return Client(headers={"Authorization": f"Bearer {token}"})


def post_json(client: Client, url: str, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def streamed(response) -> bytes:
    """The whole body of a streamed download, which must have succeeded."""
    assert response.status_code == 200, response
    return b"".join(response.streaming_content)


def submit_command(*args: str) -> dict:
    """`manage.py submit --user ada ARGS`, and the JSON it prints."""
    out = io.StringIO()
    call_command("submit", "--user", "ada", *args, stdout=out)
    return json.loads(out.getvalue())


def start_up(**env: str) -> subprocess.CompletedProcess:
    """Load the settings in a fresh interpreter with `env` added to the environment."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "flexdash.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- The real engine ------------------------------------------------------------------


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
        # What a failing test prints of a cluster's log (print_log_tail): its dispatchers' runs.
        "FLEX_LOG_LEVEL": "INFO",
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
        print_log_tail(process, log)
        stop_process(process)


def print_log_tail(process: subprocess.Popen, log: Path, lines: int = 60) -> None:
    """The end of a process's log, on stdout: pytest shows it when the test
    failed (a cluster that died, or logged why it did not do the work)."""
    state = "running" if process.poll() is None else f"exited with {process.returncode}"
    tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
    print(f"--- the last {len(tail)} lines of {log.name} (the process is {state}) ---")
    print("\n".join(tail))


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


def busiest_minute(starts: list[datetime]) -> int:
    """The most requests started in any 60-second window (how Google and the
    simulator count a per-minute limit)."""
    starts = sorted(starts)
    return max(
        (bisect_left(starts, start + timedelta(seconds=60)) - i for i, start in enumerate(starts)),
        default=0,
    )
