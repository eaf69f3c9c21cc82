"""Pacing and storms end to end: a real qcluster, the real SDK and the
simulator over loopback, with the limits kept in the database."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from django.db import connection

from jobs.models import Attempt, Job, ModelLimit, State
from tests.support import (
    MODEL,
    busiest_minute,
    engine_env,
    finished,
    qcluster,
    submit,
    tag,
    wait_for,
)

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def numbered(count: int, label: str) -> list[str]:
    """`count` prompts of this test's own, numbered."""
    word = tag()
    return [f"{label} {word} {n}" for n in range(count)]


# Measures a rate: under `-n N --dist loadgroup` the "rates" group shares one worker.
@pytest.mark.xdist_group("rates")
def test_pacing_keeps_below_the_rpm_limit_and_near_it(start_simulator, ada, tmp_path):
    rpm = 240
    sim = start_simulator(rpm=rpm, latency="0.2:0.6")
    jobs = submit(ada, *numbered(300, "paced"))
    env = engine_env(sim.url, FLEX_RPM_LIMIT=rpm)
    with qcluster(env, tmp_path / "q.log"):
        wait_for(finished(jobs), timeout=150, what="300 paced jobs finished")

    stats = sim.stats()
    calls = stats["requests"]
    throttled = stats["by_status"].get("429", 0)
    assert Job.objects.filter(state=State.SUCCEEDED).count() == 300
    assert throttled <= 0.02 * calls, f"{throttled} of {calls} calls got 429"

    starts = sorted(Attempt.objects.values_list("started_at", flat=True))
    assert len(starts) == calls
    assert busiest_minute(starts) <= rpm
    # Near the limit: after the first burst, it sends at ~95% of it.
    steady = starts[20:]
    achieved = (len(steady) - 1) / (steady[-1] - steady[0]).total_seconds() * 60
    assert achieved >= 0.85 * rpm, f"sent {achieved:.0f}/min against {rpm}"


# Measures a rate: under `-n N --dist loadgroup` the "rates" group shares one worker.
@pytest.mark.xdist_group("rates")
def test_a_503_storm_lowers_the_rate_and_every_job_still_finishes(start_simulator, ada, tmp_path):
    sim = start_simulator(latency="0.3:0.8")
    jobs = submit(ada, *numbered(400, "storm"), max_attempts=30)
    env = engine_env(
        sim.url,
        FLEX_LAUNCH_RATE=40,
        FLEX_BACKOFF_BASE=0.5,
        FLEX_BACKOFF_CAP=2,
    )
    seen = {"lowest": 1.0, "recovered_at": None}
    watching = threading.Event()

    def look():
        factor = ModelLimit.objects.get(model=MODEL).storm_factor
        seen["lowest"] = min(seen["lowest"], factor)
        if factor == 1.0 and seen["lowest"] < 1.0 and seen["recovered_at"] is None:
            seen["recovered_at"] = time.monotonic()

    def watch():
        with contextlib.closing(connection):  # this thread's own connection
            while not watching.is_set():
                look()
                time.sleep(0.2)

    with qcluster(env, tmp_path / "q.log"):
        wait_for(
            lambda: Job.objects.filter(state=State.SUCCEEDED).count() >= 50,
            timeout=60,
            what="work under way",
        )
        sim.configure(p503=1.0)
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            time.sleep(15)
            in_storm = sim.stats()["by_status"].get("503", 0)
            sim.configure(p503=0.0)
            storm_over = time.monotonic()
            wait_for(finished(jobs), timeout=120, what="all jobs finished after the storm")
            finished_in = time.monotonic() - storm_over
            wait_for(lambda: seen["recovered_at"], timeout=30, what="the factor back at 1")
        finally:
            watching.set()
            watcher.join()

    assert seen["lowest"] <= 1 / 8, "the storm did not lower concurrency and rate"
    assert Job.objects.filter(state=State.SUCCEEDED).count() == 400
    # Unthrottled, 40 launches a second for 15 s would waste ~600 calls.
    assert in_storm <= 250, f"{in_storm} calls were shed during the storm"
    assert seen["recovered_at"] - storm_over < 30, "the rate came back slowly"
    assert finished_in < 45, f"took {finished_in:.0f}s to finish after the storm"
