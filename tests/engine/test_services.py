"""State changes owned by jobs/engine/, checked on the stored rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from jobs.engine import actions, claiming, control, recording
from jobs.engine.gemini import GeminiError, GeminiResult
from jobs.models import Attempt, Job, Outcome, State
from tests.support import submit

pytestmark = pytest.mark.django_db


def test_submit_creates_queued_jobs_due_now(ada):
    jobs = submit(ada, "one", "two", max_attempts=4)
    assert [j.state for j in jobs] == [State.QUEUED, State.QUEUED]
    assert all(j.next_attempt_at <= timezone.now() and j.max_attempts == 4 for j in jobs)


@pytest.mark.parametrize(
    ("prompts", "spec", "field"),
    [
        ([""], {}, "prompt"),
        (["   "], {}, "prompt"),
        ([], {}, "prompt"),
        (["ok"], {"model": "gpt-4o"}, "model"),
        (["ok"], {"tier": "turbo"}, "tier"),
        (["ok"], {"max_attempts": 0}, "max_attempts"),
        (["ok"], {"temperature": 3.0}, "temperature"),
        (["ok"], {"max_output_tokens": 0}, "max_output_tokens"),
        (["a\x00b"], {}, "prompt"),
        (["ok"], {"system_instruction": "a\x00b"}, "system_instruction"),
        (["\ud800"], {}, "prompt"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(ada, prompts, spec, field):
    with pytest.raises(ValidationError) as caught:
        submit(ada, *prompts, **spec)
    assert field in caught.value.message_dict
    assert not Job.objects.exists()


def test_one_bad_prompt_among_many_creates_nothing_and_says_which(ada):
    with pytest.raises(ValidationError) as caught:
        submit(ada, "fine", "", "also fine")
    assert "Prompt 2" in caught.value.message_dict["prompt"][0]
    assert not Job.objects.exists()


@override_settings(FLEX_MAX_PROMPT_CHARS=10)
def test_prompt_size_limit_has_a_clear_message(ada):
    with pytest.raises(ValidationError) as caught:
        submit(ada, "x" * 11)
    assert "limit is 10" in caught.value.message_dict["prompt"][0]


def test_claim_takes_due_jobs_once(ada):
    jobs = submit(ada, "a", "b", "c")
    first = claiming.jobs_claim(owner="d1", limit=2, lease_seconds=60)
    second = claiming.jobs_claim(owner="d2", limit=10, lease_seconds=60)
    assert len(first) == 2 and len(second) == 1
    assert {c.job_id for c in first}.isdisjoint({c.job_id for c in second})
    assert claiming.jobs_claim(owner="d3", limit=10, lease_seconds=60) == []
    for job in jobs:
        job.refresh_from_db()
        assert job.state == State.RUNNING and job.attempts == 1
        assert Attempt.objects.get(job=job).outcome == Outcome.IN_FLIGHT


def test_jobs_waiting_for_a_later_retry_are_not_claimed(ada):
    job = submit(ada, "later")[0]
    Job.objects.filter(pk=job.pk).update(
        state=State.RETRYING, next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    assert claiming.jobs_claim(owner="d1", limit=10, lease_seconds=60) == []


def test_an_expired_lease_is_reclaimed_and_the_lost_try_recorded(ada):
    job = submit(ada, "crash me")[0]
    claiming.jobs_claim(owner="dead", limit=1, lease_seconds=60)
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    claims = claiming.jobs_claim(owner="alive", limit=1, lease_seconds=60)
    assert [c.attempt_number for c in claims] == [2]
    job.refresh_from_db()
    assert (job.lease_owner, job.attempts, job.budgeted_attempts) == ("alive", 2, 1)
    assert list(job.attempt_log.values_list("outcome", flat=True)) == [
        Outcome.LOST,
        Outcome.IN_FLIGHT,
    ]


def test_a_paused_queue_claims_nothing(ada):
    submit(ada, "x")
    control.dispatch_pause(reason="maintenance")
    assert claiming.jobs_claim(owner="d1", limit=10, lease_seconds=60) == []
    control.dispatch_resume()
    assert len(claiming.jobs_claim(owner="d1", limit=10, lease_seconds=60)) == 1


def _result(text="answer"):
    return GeminiResult(
        text=text,
        response_id="r1",
        input_tokens=10,
        output_tokens=20,
        thought_tokens=5,
        tier_served="flex",
    )


def test_success_stores_answer_usage_and_cost(ada):
    job = submit(ada, "q")[0]
    (claim,) = claiming.jobs_claim(owner="d1", limit=1, lease_seconds=60)
    assert (
        recording.attempt_succeeded(claim=claim, owner="d1", result=_result(), latency=1.5)
        == "succeeded"
    )
    job.refresh_from_db()
    assert (job.state, job.result_text, job.tier_served) == (State.SUCCEEDED, "answer", "flex")
    assert (job.input_tokens, job.output_tokens, job.thought_tokens) == (10, 20, 5)
    assert job.cost_usd is not None and job.cost_usd * 2 == job.standard_cost_usd
    assert job.lease_owner == "" and job.finished_at is not None
    attempt = job.attempt_log.get()
    assert (attempt.outcome, attempt.http_status, attempt.latency_seconds) == (
        Outcome.SUCCEEDED,
        200,
        1.5,
    )


def test_a_result_for_a_job_no_longer_ours_is_discarded(ada):
    job = submit(ada, "q")[0]
    (claim,) = claiming.jobs_claim(owner="slow", limit=1, lease_seconds=60)
    Job.objects.filter(pk=job.pk).update(lease_owner="someone-else")
    assert (
        recording.attempt_succeeded(claim=claim, owner="slow", result=_result(), latency=1)
        == "discarded"
    )
    job.refresh_from_db()
    assert job.state == State.RUNNING
    assert job.attempt_log.get().outcome == Outcome.DISCARDED


def test_a_503_schedules_a_retry_and_counts_it(ada):
    job = submit(ada, "q")[0]
    (claim,) = claiming.jobs_claim(owner="d1", limit=1, lease_seconds=60)
    error = GeminiError("capacity", "overloaded", http_status=503, google_status="UNAVAILABLE")
    assert recording.attempt_failed(claim=claim, owner="d1", error=error, latency=0.1) == "retry"
    job.refresh_from_db()
    assert (job.state, job.http_503, job.http_429) == (State.RETRYING, 1, 0)
    assert job.next_attempt_at is not None and "UNAVAILABLE" in job.last_error


def test_a_429_waits_at_least_retry_after(ada):
    job = submit(ada, "q")[0]
    (claim,) = claiming.jobs_claim(owner="d1", limit=1, lease_seconds=60)
    before = timezone.now()
    error = GeminiError("rate_limit", "slow down", http_status=429, retry_after=42)
    recording.attempt_failed(claim=claim, owner="d1", error=error, latency=0.1)
    job.refresh_from_db()
    assert job.http_429 == 1
    assert job.next_attempt_at >= before + timedelta(seconds=42)
    assert job.attempt_log.get().retry_after_seconds == 42


def test_auth_failure_pauses_dispatch_and_refunds_the_attempt(ada):
    job = submit(ada, "q")[0]
    (claim,) = claiming.jobs_claim(owner="d1", limit=1, lease_seconds=60)
    error = GeminiError("auth", "API key not valid", http_status=403)
    assert recording.attempt_failed(claim=claim, owner="d1", error=error, latency=0.1) == "pause"
    job.refresh_from_db()
    assert (job.state, job.budgeted_attempts) == (State.QUEUED, 0)
    assert control.dispatch_is_paused()
    assert "GEMINI_API_KEY" in control.dispatch_control().reason


def test_cancel_only_waiting_jobs(ada):
    queued, running = submit(ada, "a", "b")
    Job.objects.filter(pk=running.pk).update(state=State.RUNNING)
    assert actions.job_cancel(job=queued) and queued.state == State.CANCELLED
    assert not actions.job_cancel(job=running) and running.state == State.RUNNING


def test_retry_now_gives_a_failed_job_its_attempts_again(ada):
    job = submit(ada, "a", max_attempts=1)[0]
    (claim,) = claiming.jobs_claim(owner="d1", limit=1, lease_seconds=60)
    error = GeminiError("capacity", "overloaded", http_status=503)
    assert recording.attempt_failed(claim=claim, owner="d1", error=error, latency=0.1) == "fail"
    assert actions.job_retry_now(job=job)
    assert (job.state, job.max_attempts) == (State.QUEUED, 2)
    assert len(claiming.jobs_claim(owner="d1", limit=1, lease_seconds=60)) == 1


def test_each_retry_grants_the_budget_it_was_submitted_with_not_what_is_left(ada):
    job = submit(ada, "a", max_attempts=3)[0]
    # Failed on its first attempt (a refused prompt, say), then on its second.
    Job.objects.filter(pk=job.pk).update(state=State.FAILED, attempts=1)
    assert actions.retry_grants(Job.objects.filter(pk=job.pk)) == (3, 3)
    assert actions.job_retry_now(job=job)
    assert (job.attempts, job.max_attempts, job.attempt_budget) == (1, 4, 3)
    Job.objects.filter(pk=job.pk).update(state=State.FAILED, attempts=3, refunded_attempts=1)
    assert actions.retry_grants(Job.objects.filter(pk=job.pk)) == (3, 3)
    assert actions.job_retry_now(job=job)
    assert job.max_attempts == 2 + 3  # two charged attempts used, three more


def test_retry_now_brings_a_waiting_retry_forward(ada):
    job = submit(ada, "a")[0]
    later = timezone.now() + timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(state=State.RETRYING, next_attempt_at=later)
    assert actions.job_retry_now(job=job)
    assert job.next_attempt_at <= timezone.now()
    assert not actions.job_retry_now(job=submit(ada, "fresh")[0])


def test_a_job_that_keeps_losing_its_worker_ends_failed_not_sent_forever(ada):
    job = submit(ada, "poison pill")[0]
    Job.objects.filter(pk=job.pk).update(max_attempts=3)
    sent = 0
    for _ in range(10):
        claims = claiming.jobs_claim(owner=f"worker{sent}", limit=1, lease_seconds=60)
        if not claims:
            break
        sent += 1
        Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    job.refresh_from_db()
    # Two lost tries refunded, then three charged: five sent in all.
    assert sent == 5
    assert (job.state, job.attempts, job.refunded_attempts) == (State.FAILED, 5, 2)
    assert job.attempt_log.count() == 5
    assert set(job.attempt_log.values_list("outcome", flat=True)) == {Outcome.LOST}
    assert "lost 3 times or more" in job.last_error
    assert job.finished_at is not None and job.lease_owner == ""


def test_a_stopping_dispatcher_wakes_another_for_work_that_came_while_it_stopped(ada, monkeypatch):
    from jobs.engine import dispatch

    woken = []
    monkeypatch.setattr(control, "wake_dispatcher", lambda: woken.append(1))
    dispatch._wake_for_work_that_came_late()
    assert woken == []  # nothing to do

    submit(ada, "came late")
    control.dispatch_pause(reason="maintenance")
    dispatch._wake_for_work_that_came_late()
    assert woken == []  # paused: a new run would stop at once

    control.dispatch_resume()
    dispatch._wake_for_work_that_came_late()
    assert woken == [1]
