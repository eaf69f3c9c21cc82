"""End to end through a real django-q2 cluster, the real SDK and the simulator:
what a researcher submits ends in a terminal state with every try recorded.

These run on the default route (GEMINI_API); the last test runs the same jobs
on both routes and compares the records (the door itself is tested on both in
test_gemini.py). Two clusters, and a killed one, are in test_scale_out.py."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from jobs.engine import control
from jobs.models import Attempt, Job, Outcome, State
from tests.support import engine_env, finished, qcluster, submit, tag, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

ROUTES = ["interactions", "generate_content"]


@pytest.fixture
def env(simulator):
    def make(**overrides):
        return engine_env(simulator.url, **overrides)

    return make


def test_planted_errors_are_retried_as_each_job_asked(env, ada, tmp_path):
    """One cluster runs every kind at once (a cluster costs seconds to start):
    503s and 429s retried to success, a 400 failed at once, Retry-After never
    undercut, attempts running out, and the fallback's last try on standard."""
    t = tag()
    jobs = submit(
        ada,
        f"plain {t}",
        f"shed twice {t} [sim:503x2]",
        f"rate limited {t} [sim:429x1][sim:503x1]",
        f"bad {t} [sim:400]",
        f"wait for it {t} [sim:429x1:retry-after=3]",
    )
    (always_shed,) = submit(ada, f"always shed {t} [sim:503x9]", max_attempts=3)
    (fallback,) = submit(ada, f"fallback {t} [sim:503x2]", max_attempts=3, fallback_standard=True)
    with qcluster(env(), tmp_path / "q.log"):
        wait_for(finished([*jobs, always_shed, fallback]), timeout=60, what="all jobs finished")
    plain, shed, limited, bad, waited = (Job.objects.get(pk=j.pk) for j in jobs)

    assert (plain.state, plain.attempts, plain.http_503, plain.http_429) == ("succeeded", 1, 0, 0)
    assert (shed.state, shed.attempts, shed.http_503) == ("succeeded", 3, 2)
    assert (limited.state, limited.attempts, limited.http_503, limited.http_429) == (
        "succeeded",
        3,
        1,
        1,
    )
    assert shed.result_text.startswith(f"Simulated answer to: shed twice {t}")
    assert shed.tier_served == "flex" and shed.input_tokens > 0 and shed.cost_usd > 0
    assert shed.cost_usd * 2 == shed.standard_cost_usd

    statuses = list(shed.attempt_log.values_list("http_status", "google_status", "outcome"))
    assert statuses == [
        (503, "UNAVAILABLE", Outcome.WILL_RETRY),
        (503, "UNAVAILABLE", Outcome.WILL_RETRY),
        (200, "", Outcome.SUCCEEDED),
    ]
    assert set(Attempt.objects.filter(job=shed).values_list("route", flat=True)) == {
        settings.GEMINI_API
    }

    assert (bad.state, bad.attempts, bad.other_errors) == ("failed", 1, 1)
    assert "INVALID_ARGUMENT" in bad.last_error

    # Retry-After is never undercut.
    first, second = Attempt.objects.filter(job=waited).order_by("number")
    assert first.retry_after_seconds == 3.0
    assert (second.started_at - first.finished_at).total_seconds() >= 3.0
    assert waited.state == State.SUCCEEDED

    # Attempts run out after max_attempts.
    always_shed.refresh_from_db()
    assert (always_shed.state, always_shed.attempts, always_shed.http_503) == ("failed", 3, 3)
    assert "503" in always_shed.last_error

    # The fallback runs the last attempt on standard.
    fallback.refresh_from_db()
    assert fallback.state == State.SUCCEEDED and fallback.tier_served == "standard"
    assert list(fallback.attempt_log.values_list("tier_requested", flat=True)) == [
        "flex",
        "flex",
        "standard",
    ]
    assert fallback.cost_usd == fallback.standard_cost_usd


def test_a_retry_due_after_the_dispatcher_went_idle_runs_on_time(env, ada, tmp_path):
    """The dispatcher stays up 1 s for work about to come due; the retry is due
    8 s on (Retry-After). The cluster's own watch starts a dispatcher for it
    then: it does not wait for the minute Schedule."""
    retry_after = 8
    (job,) = submit(ada, f"later {tag()} [sim:429x1:retry-after={retry_after}]")
    with qcluster(env(FLEX_DISPATCH_IDLE_SECONDS=1), tmp_path / "q.log"):
        # A ceiling: how late the retry ran is what is checked below.
        wait_for(finished([job]), timeout=90, what="the retry to run")
    first, second = Attempt.objects.filter(job=job).order_by("number")
    late = (second.started_at - first.finished_at).total_seconds() - retry_after
    print(f"\nthe retry ran {late:.1f} s after it was due")
    assert Job.objects.get(pk=job.pk).state == State.SUCCEEDED
    # Due at first.finished_at + 8 s; a minute Schedule would have come up to 60 s late.
    assert 0 <= late < 5


def test_bad_credentials_pause_dispatch_without_burning_attempts(env, ada, tmp_path):
    jobs = submit(ada, *(f"key check {tag()} {n}" for n in range(3)), max_attempts=2)
    wrong_key = env(GEMINI_API_KEY="a-wrong-key")
    with qcluster(wrong_key, tmp_path / "q.log"):
        wait_for(control.dispatch_is_paused, timeout=30, what="dispatch paused")
        wait_for(
            lambda: not Job.objects.filter(state=State.RUNNING).exists(),
            timeout=30,
            what="in-flight requests settled",
        )
    switch = control.dispatch_control()
    assert "API key" in switch.reason and "403" in switch.reason
    for job in Job.objects.filter(pk__in=[j.pk for j in jobs]):
        assert job.state == State.QUEUED
        assert job.budgeted_attempts == 0

    control.dispatch_resume()
    with qcluster(env(), tmp_path / "q2.log"):
        wait_for(finished(jobs), timeout=60, what="jobs finished after resume")
    assert set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("state", flat=True)) == {
        State.SUCCEEDED
    }


def test_both_routes_record_a_job_the_same_way(simulator, ada, tmp_path):
    """The same prompt shapes run on each route give the same job records in
    `manage.py jobs --json` (and so in the pages and API, which read the same
    rows), apart from ids and the echoed prompt."""
    from io import StringIO

    from django.core.management import call_command

    records = {}
    for route in ROUTES:
        t = tag()
        jobs = submit(ada, f"same {t} [sim:503x1][sim:429x1:retry-after=1]")
        jobs += submit(ada, f"same {t} [sim:400]")
        with qcluster(engine_env(simulator.url, GEMINI_API=route), tmp_path / f"{route}.log"):
            wait_for(finished(jobs), timeout=60, what=f"jobs on {route} finished")
        out = StringIO()
        call_command("jobs", "--json", stdout=out)
        by_id = {record["id"]: record for record in map(json.loads, out.getvalue().splitlines())}
        records[route] = [
            {k: v for k, v in by_id[job.pk].items() if k not in ("id", "output_text")}
            for job in jobs
        ]
        records[route].append(
            list(
                Attempt.objects.filter(job__in=jobs)
                .order_by("job_id", "number")
                .values_list("number", "http_status", "google_status", "outcome", "tier_served")
            )
        )
    assert records["interactions"] == records["generate_content"]
    succeeded = records["interactions"][0]
    assert (succeeded["status"], succeeded["attempts"]) == ("succeeded", 3)
    assert (succeeded["http_503"], succeeded["http_429"]) == (1, 1)
