"""The outbox's writing side (jobs/engine/notices.py): a run is settled where
its last job ends and its owner's notice written once, however often or by
however many processes the end is seen; failures past a threshold, a pause
and a budget stop are noted once each, for those who asked."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import OrmQ

from jobs.engine import actions, control, notices
from jobs.models import ChannelState, DeadlinePolicy, Job, Notice, NoticeKind, NoticeSettings, Run
from jobs.notices.choices import RunNotify
from jobs.runs import services as runs
from tests.support import make_run, send_due_jobs, submit, tag

pytestmark = pytest.mark.django_db

ROUTE = "interactions"


def _run(owner, prompts, **notify):
    lines = [(f"line-{n}", prompt) for n, prompt in enumerate(prompts, 1)]
    return make_run(owner, lines, notify=RunNotify(**notify))


def test_a_run_is_settled_and_its_owner_told_when_its_last_job_ends(
    simulator, ada, django_capture_on_commit_callbacks
):
    ada.email = "ada@example.org"
    ada.save()
    word = tag()
    run = _run(ada, [f"{word} one", f"{word} two"], finished=True)

    with django_capture_on_commit_callbacks(execute=True):
        assert send_due_jobs(simulator.url, ROUTE) == ["succeeded", "succeeded"]

    run.refresh_from_db()
    assert run.finished_at is not None
    notice = Notice.objects.get(run=run)
    assert notice.kind == NoticeKind.RUN_FINISHED
    assert notice.subject == f"Run “{run.name}” finished: 2 succeeded, 0 failed"
    assert notice.detail["counts"]["succeeded"] == 2
    assert notice.detail["jobs"] == 2
    assert notice.detail["run"]["path"] == f"/runs/{run.pk}/"
    # E-mail to the account's address (no settings saved), no webhook.
    assert (notice.email_state, notice.webhook_state) == (ChannelState.PENDING, ChannelState.OFF)
    # Its delivery was handed to django-q2 once the batch committed.
    queued = [task.func() for task in OrmQ.objects.all()]
    assert queued.count("jobs.tasks.deliver_notice") == 1


def test_a_run_not_asking_is_settled_but_no_one_told(simulator, ada):
    run = _run(ada, [f"{tag()} quiet"])
    send_due_jobs(simulator.url, ROUTE)
    run.refresh_from_db()
    assert run.finished_at is not None
    assert not Notice.objects.exists()


def test_the_end_seen_twice_is_told_once(simulator, ada):
    run = _run(ada, [f"{tag()} once"], finished=True)
    send_due_jobs(simulator.url, ROUTE)
    assert notices.runs_settle(run_ids=[run.pk]) == []
    assert runs.run_settle(run=Run.objects.get(pk=run.pk)) is False
    assert runs.run_settle(run=Run.objects.get(pk=run.pk, finished_at__isnull=False)) is False
    assert Notice.objects.filter(kind=NoticeKind.RUN_FINISHED).count() == 1


def test_a_run_retried_and_finished_again_is_told_again(simulator, ada):
    word = tag()
    run = _run(ada, [f"{word} fails [sim:400]"], finished=True)
    send_due_jobs(simulator.url, ROUTE)
    assert runs.run_resend_permanent(run=run) == 1
    send_due_jobs(simulator.url, ROUTE)
    assert Notice.objects.filter(kind=NoticeKind.RUN_FINISHED, run=run).count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_transactions_that_see_the_end_at_once_tell_it_once(ada):
    """The second sees the run unsettled, then waits on the first's row lock
    (PostgreSQL) or its write lock (SQLite), and finds it settled."""
    run = _run(ada, ["a", "b"], finished=True)
    Job.objects.filter(run=run).update(state="succeeded", finished_at=timezone.now())
    first_settled, results = threading.Event(), {}

    def settle(name: str, hold: float) -> None:
        try:
            with transaction.atomic():
                results[name] = notices.runs_settle(run_ids=[run.pk])
                first_settled.set()
                time.sleep(hold)
        finally:
            connection.close()

    first = threading.Thread(target=settle, args=("first", 0.5))
    first.start()
    assert first_settled.wait(10)
    second = threading.Thread(target=settle, args=("second", 0))
    second.start()
    first.join(10)
    second.join(10)
    assert results == {"first": [run.pk], "second": []}
    assert Notice.objects.filter(run=run).count() == 1


def test_failures_past_a_count_are_told_once(simulator, ada):
    word = tag()
    run = _run(
        ada,
        [f"{word} a [sim:400]", f"{word} b [sim:400]", f"{word} c [sim:400]", f"{word} d"],
        failed_jobs=2,
    )
    send_due_jobs(simulator.url, ROUTE, limit=2)
    send_due_jobs(simulator.url, ROUTE)
    told = Notice.objects.get(kind=NoticeKind.RUN_FAILURES)
    assert told.run == run
    assert "jobs failed (your threshold: 2 jobs)" in told.subject
    assert told.detail["threshold"] == {"failed_jobs": 2, "failed_percent": None}
    run.refresh_from_db()
    assert run.failures_noticed_at is not None
    assert not Notice.objects.filter(kind=NoticeKind.RUN_FINISHED).exists()


@pytest.mark.parametrize(("percent", "told"), [(25, True), (50, False)])
def test_failures_past_a_share_of_the_run(simulator, ada, percent, told):
    word = tag()
    prompts = [f"{word} bad [sim:400]", f"{word} x", f"{word} y", f"{word} z"]
    _run(ada, prompts, failed_percent=percent)
    send_due_jobs(simulator.url, ROUTE)
    assert Notice.objects.filter(kind=NoticeKind.RUN_FAILURES).exists() is told


def test_a_cancelled_run_and_one_cut_at_its_deadline_are_settled(ada, django_user_model):
    cancelled = _run(ada, ["a", "b"], finished=True)
    assert runs.run_cancel(run=cancelled) == 2
    notice = Notice.objects.get(run=cancelled)
    assert notice.subject.endswith("0 succeeded, 0 failed, 2 cancelled")

    soon = timezone.now() + timedelta(hours=1)
    cut = make_run(
        ada,
        [("a", "late")],
        deadline_at=soon,
        deadline_policy=DeadlinePolicy.CANCEL,
        notify=RunNotify(finished=True),
    )
    actions.jobs_apply_deadlines(now=soon + timedelta(seconds=1))
    cut.refresh_from_db()
    assert cut.finished_at is not None
    assert Notice.objects.filter(run=cut, kind=NoticeKind.RUN_FINISHED).count() == 1


def test_the_last_job_cancelled_alone_settles_its_run(ada):
    run = _run(ada, ["a"], finished=True)
    assert actions.job_cancel(job=run.jobs.get())
    assert Notice.objects.filter(run=run).count() == 1


def test_the_sweep_settles_runs_whose_end_nothing_reported(ada):
    run = _run(ada, ["a", "b"], finished=True)
    busy = _run(ada, ["c"], finished=True)
    # Ended by a path that does not report (an operator's SQL, an old version).
    Job.objects.filter(run=run).update(state="failed", finished_at=timezone.now())
    assert notices.runs_settle_sweep() == [run.pk]
    assert notices.runs_settle_sweep() == []
    busy.refresh_from_db()
    assert busy.finished_at is None
    assert Notice.objects.get().subject.endswith("0 succeeded, 2 failed")


def test_a_pause_tells_everyone_with_waiting_work_who_asked(ada, bob, staff):
    _run(ada, ["waiting"], paused=True)
    NoticeSettings.objects.create(user=bob, on_paused=True)
    submit(bob, "a single job")
    NoticeSettings.objects.create(user=staff, on_paused=True)  # nothing waiting
    assert control.dispatch_pause(reason="Gemini refused the API key (HTTP 401)")
    assert not control.dispatch_pause(reason="again")

    told = Notice.objects.filter(kind=NoticeKind.DISPATCH_PAUSED)
    assert sorted(told.values_list("user__username", flat=True)) == ["ada", "bob"]
    assert told.first().detail["reason"] == "Gemini refused the API key (HTTP 401)"
    control.dispatch_resume()
    control.dispatch_pause(reason="a second pause")
    assert told.count() == 4


def test_a_budget_stop_is_told_once_per_budget_to_those_who_asked(ada, bob):
    run = _run(ada, ["a"], budget=True)
    quiet = _run(bob, ["b"])
    reason = "budget for run nightly reached: $12.48 of $12.50 spent or reserved"
    assert notices.note_budget_stop(user=ada, run=run, budget="run:1:12.50", reason=reason)
    assert not notices.note_budget_stop(user=ada, run=run, budget="run:1:12.50", reason=reason)
    # The limit raised, and reached again: told again.
    assert notices.note_budget_stop(user=ada, run=run, budget="run:1:20.00", reason=reason)
    assert not notices.note_budget_stop(user=bob, run=quiet, budget="run:2:1.00", reason=reason)
    # Outside a run, the account's choice counts.
    assert not notices.note_budget_stop(user=bob, budget="user:2:2026-12:5.00", reason=reason)
    NoticeSettings.objects.create(user=bob, on_budget=True)
    assert notices.note_budget_stop(user=bob, budget="user:2:2026-12:5.00", reason=reason)

    notice = Notice.objects.filter(user=ada).first()
    assert notice.kind == NoticeKind.BUDGET_STOPPED
    assert notice.subject == f"Run “{run.name}” is waiting: {reason}"
    assert Notice.objects.filter(kind=NoticeKind.BUDGET_STOPPED).count() == 3


def test_channels_are_the_persons_own(ada):
    NoticeSettings.objects.create(
        user=ada, email_enabled=False, webhook_url="https://example.org/hook", webhook_secret="s"
    )
    run = _run(ada, ["a"], finished=True)
    runs.run_cancel(run=run)
    notice = Notice.objects.get()
    assert (notice.email_state, notice.webhook_state) == (ChannelState.OFF, ChannelState.PENDING)
    assert notice.due_at is not None


def test_a_failure_to_note_never_stops_the_batch_being_recorded(simulator, ada, monkeypatch):
    run = _run(ada, [f"{tag()} recorded anyway"], finished=True)

    def broken(**_):
        raise RuntimeError("the outbox is broken")

    monkeypatch.setattr(notices, "jobs_ended", broken)
    assert send_due_jobs(simulator.url, ROUTE) == ["succeeded"]
    assert run.jobs.get().state == "succeeded"
    run.refresh_from_db()
    assert run.finished_at is None
    monkeypatch.undo()
    # The minute sweep makes up for it.
    assert notices.runs_settle_sweep() == [run.pk]
    assert Notice.objects.filter(run=run).count() == 1
