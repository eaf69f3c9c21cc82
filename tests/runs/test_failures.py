"""A run's failed jobs told apart by their last error, as the real engine records
it (the simulator over loopback, the real SDK): a retry requeues those a retry
may answer and leaves the permanent failures to a choice of their own."""

from __future__ import annotations

import pytest
from django.utils import timezone

from jobs.models import Attempt, ErrorKind, Job, Outcome, State
from jobs.runs import failures
from jobs.runs import services as runs
from tests.support import make_run, send_due_jobs, tag

pytestmark = pytest.mark.django_db


def states(run) -> dict[str, str]:
    return dict(run.jobs.values_list("custom_id", "state"))


def test_retry_failed_leaves_a_400_and_a_safety_block_alone_and_resend_sends_them(
    ada, simulator, settings
):
    settings.GEMINI_API = "generate_content"
    word = tag()
    run = make_run(
        ada,
        lines=[
            ("ok", f"answer {word}"),
            ("shed", f"shed once {word} [sim:503x1]"),
            ("bad", f"refused {word} [sim:400]"),
            ("blocked", f"unsafe {word} [sim:safety]"),
        ],
        max_attempts=1,
    )
    send_due_jobs(simulator.url, "generate_content")
    assert states(run) == {
        "ok": "succeeded",
        "shed": "failed",
        "bad": "failed",
        "blocked": "failed",
    }

    split = failures.failed_split(run)
    assert (split.retryable, split.permanent) == (1, 2)
    assert split.permanent_words == "1 bad request, 1 blocked or refused answer"
    assert (split.retryable_grant, split.permanent_grant) == ((1, 1), (1, 1))

    assert runs.run_retry_failed(run=run) == 1
    assert states(run)["shed"] == State.QUEUED
    assert (states(run)["bad"], states(run)["blocked"]) == (State.FAILED, State.FAILED)
    send_due_jobs(simulator.url, "generate_content")
    assert states(run)["shed"] == State.SUCCEEDED  # its one 503 was spent
    assert runs.run_retry_failed(run=run) == 0

    assert runs.run_resend_permanent(run=run) == 2
    assert (states(run)["bad"], states(run)["blocked"]) == (State.QUEUED, State.QUEUED)
    assert run.jobs.get(custom_id="bad").max_attempts == 2  # one used, one granted
    assert runs.run_resend_permanent(run=run) == 0


def test_only_the_last_attempt_counts(ada):
    """A job refused once (400) whose next attempt was shed (503) may pass on a retry."""
    run = make_run(ada, lines=[("a", "one")])
    job = run.jobs.get()
    now = timezone.now()
    for number, kind in ((1, ErrorKind.BAD_REQUEST), (2, ErrorKind.CAPACITY)):
        Attempt.objects.create(
            job=job, number=number, tier_requested="flex", error_kind=kind,
            outcome=Outcome.FAILED, finished_at=now,
        )  # fmt: skip
    Job.objects.filter(pk=job.pk).update(state=State.FAILED, attempts=2, finished_at=now)
    assert (failures.failed_split(run).retryable, failures.failed_split(run).permanent) == (1, 0)
    Job.objects.filter(pk=job.pk).update(attempts=1)
    assert failures.failed_split(run).permanent == 1


def test_a_failed_job_never_tried_is_worth_a_retry(ada):
    run = make_run(ada, lines=[("a", "one")])
    run.jobs.update(state=State.FAILED)
    split = failures.failed_split(run)
    assert (split.retryable, split.permanent, split.permanent_kinds) == (1, 0, [])
    assert runs.run_retry_failed(run=run) == 1
