"""The outbox's writing side: a Notice row for each event a person asked to be
told of, written in the same transaction as the change that causes it (a run's
last job ending, its failures crossing the threshold, dispatch pausing, a
budget stopping work), and its delivery enqueued once that commits.

Each event is noted once: the change itself is a conditional UPDATE whose row
count is checked (Run.finished_at set from empty, Run.failures_noticed_at set
once, DispatchControl.paused set from false), and the notice_once constraint
on (user, kind, key) holds behind it. Sending is not done here: a django-q2
task (jobs/tasks.py deliver_notice, jobs/notices/) does it, so the dispatcher
never waits on a mail server or a webhook. A task that is lost is made up for
by the minute sweep, which delivers every notice still due.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from jobs.models import (
    ACTIVE_STATES,
    ChannelState,
    Job,
    Notice,
    NoticeKind,
    NoticeSettings,
    Run,
    State,
)

logger = logging.getLogger(__name__)

DELIVER_TASK = "jobs.tasks.deliver_notice"


# --- Writing a notice -------------------------------------------------------------
def note(
    *, kind: str, user, key: str, subject: str, detail: dict, run: Run | None = None
) -> Notice | None:
    """Put one notice in the outbox, unless (user, kind, key) was noted
    before; returns it, or None when it was. Its channels are the person's
    as they stand now (e-mail to their address, the webhook if one is set);
    its delivery is enqueued when the surrounding transaction commits."""
    user_id = getattr(user, "pk", user)
    prefs = NoticeSettings.objects.filter(user_id=user_id).select_related("user").first()
    if prefs is None:
        people = get_user_model().objects.filter(pk=user_id)
        email = people.values_list("email", flat=True).first()
        email_on, webhook_on = bool(email), False
    else:
        email_on = prefs.email_enabled and bool(prefs.email_address)
        webhook_on = bool(prefs.webhook_url)
    now = timezone.now()
    notice = Notice(
        user_id=user_id,
        run=run,
        kind=kind,
        key=key[:200],
        subject=subject[:300],
        detail=detail,
        created_at=now,
        email_state=ChannelState.PENDING if email_on else ChannelState.OFF,
        webhook_state=ChannelState.PENDING if webhook_on else ChannelState.OFF,
        due_at=now if email_on or webhook_on else None,
    )
    try:
        # A savepoint: on PostgreSQL a refused INSERT would otherwise spoil the
        # whole surrounding transaction (the dispatcher's record of a batch).
        with transaction.atomic():
            notice.save(force_insert=True)
    except IntegrityError:
        return None
    if notice.due_at is not None:
        transaction.on_commit(lambda: enqueue_delivery(notice.pk))
    return notice


def enqueue_delivery(notice_id: int) -> None:
    """Ask django-q2 to deliver the notice. Should this fail, the sweep does it."""
    from django_q.tasks import async_task

    try:
        async_task(DELIVER_TASK, notice_id, task_name=f"flexdash-notice-{notice_id}")
    except Exception:
        logger.exception("Could not enqueue notice %s; the minute sweep will", notice_id)


# --- Runs ending, and failing --------------------------------------------------------
def jobs_ended(*, job_ids: Iterable[int]) -> None:
    """After jobs reached a final state (in the same transaction): settle the
    runs they belong to whose jobs have all ended, and note failures past a
    run's threshold. One query finds the runs; only those that ended or
    failed read further."""
    ids = list(job_ids)
    if not ids:
        return
    rows = (
        Job.objects.filter(pk__in=ids, run__isnull=False)
        .values_list("run_id", "state")
        .distinct()
        .order_by()
    )
    run_ids, failing = set(), set()
    for run_id, state in rows:
        run_ids.add(run_id)
        if state == State.FAILED:
            failing.add(run_id)
    if failing:
        runs_check_failures(run_ids=failing)
    if run_ids:
        runs_settle(run_ids=run_ids)


def runs_settle(*, run_ids: Iterable[int], now: datetime | None = None) -> list[int]:
    """Record when each of these runs finished, once none of its jobs is
    active, and tell its owner if they asked. Returns the runs settled now;
    a run already settled, or settled meanwhile by another process, is not
    among them (the UPDATE from empty is the one-time switch)."""
    now = now or timezone.now()
    active = Job.objects.filter(run=OuterRef("pk"), state__in=ACTIVE_STATES)
    unsettled = Run.objects.filter(pk__in=list(run_ids), finished_at__isnull=True)
    ended = list(unsettled.exclude(Exists(active)).values_list("pk", flat=True))
    settled = []
    for run_id in ended:
        last = (
            Job.objects.filter(run=OuterRef("pk"))
            .order_by()
            .values("run")
            .annotate(at=Max("finished_at"))
            .values("at")
        )
        won = (
            Run.objects.filter(pk=run_id, finished_at__isnull=True)
            .exclude(Exists(active))
            .update(finished_at=Coalesce(Subquery(last), now))
        )
        if not won:
            continue
        settled.append(run_id)
        run = Run.objects.select_related("owner").get(pk=run_id)
        if run.notify_finished:
            _note_run_finished(run)
    return settled


def runs_settle_sweep(*, limit: int = 500) -> list[int]:
    """Settle unsettled runs whose jobs have all ended, whatever ended them
    (a path that does not report here, a batch two processes committed at
    once). The minute Schedule calls it; run_unfinished keeps it to the
    runs not yet settled."""
    active = Job.objects.filter(run=OuterRef("pk"), state__in=ACTIVE_STATES)
    ended = (
        Run.objects.filter(finished_at__isnull=True)
        .exclude(Exists(active))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    ids = list(ended)
    if not ids:
        return []
    with transaction.atomic():
        return runs_settle(run_ids=ids)


def _run_summary(run: Run) -> dict:
    by_state = dict(
        Job.objects.filter(run=run)
        .order_by()
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    cost = Job.objects.filter(run=run).aggregate(usd=Sum("cost_usd"))["usd"]
    counts = {state: by_state.get(state, 0) for state in State.values}
    return {
        "run": {
            "id": run.pk,
            "name": run.name,
            "path": reverse("jobs:run_detail", args=[run.pk]),
            "created_at": run.created_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
        "jobs": sum(counts.values()),
        "counts": counts,
        "cost_usd": str(cost.quantize(Decimal("0.000001"))) if cost is not None else None,
    }


def _note_run_finished(run: Run) -> Notice | None:
    detail = _run_summary(run)
    counts = detail["counts"]
    words = f"{counts[State.SUCCEEDED]:,} succeeded, {counts[State.FAILED]:,} failed"
    if counts[State.CANCELLED]:
        words += f", {counts[State.CANCELLED]:,} cancelled"
    return note(
        kind=NoticeKind.RUN_FINISHED,
        user=run.owner,
        run=run,
        key=f"run:{run.pk}:{run.finished_at.isoformat()}",
        subject=f"Run “{run.name}” finished: {words}",
        detail=detail,
    )


def runs_check_failures(*, run_ids: Iterable[int]) -> list[int]:
    """Note, once per run, when its failed jobs reach the owner's threshold (a
    count, a share of the run's jobs, or whichever comes first). Runs without a
    threshold, or past it already, cost nothing more than the one query."""
    failed = Job.objects.filter(run=OuterRef("pk"), state=State.FAILED).order_by()
    failed = failed.values("run").annotate(n=Count("id")).values("n")
    candidates = (
        Run.objects.filter(pk__in=list(run_ids), failures_noticed_at__isnull=True)
        .filter(Q(notify_failed_jobs__isnull=False) | Q(notify_failed_percent__isnull=False))
        .annotate(failed=Coalesce(Subquery(failed), 0))
        .select_related("owner")
    )
    noticed = []
    for run in candidates:
        total = None
        crossed = run.notify_failed_jobs is not None and run.failed >= run.notify_failed_jobs
        if not crossed and run.notify_failed_percent is not None and run.failed:
            total = Job.objects.filter(run=run).count()
            crossed = run.failed * 100 >= run.notify_failed_percent * total
        if not crossed:
            continue
        now = timezone.now()
        won = Run.objects.filter(pk=run.pk, failures_noticed_at__isnull=True).update(
            failures_noticed_at=now
        )
        if not won:
            continue
        noticed.append(run.pk)
        detail = _run_summary(run)
        detail["threshold"] = {
            "failed_jobs": run.notify_failed_jobs,
            "failed_percent": run.notify_failed_percent,
        }
        note(
            kind=NoticeKind.RUN_FAILURES,
            user=run.owner,
            run=run,
            key=f"run:{run.pk}",
            subject=(
                f"Run “{run.name}”: {run.failed:,} of {detail['jobs']:,} jobs failed "
                f"(your threshold: "
                f"{threshold_words(run.notify_failed_jobs, run.notify_failed_percent)})"
            ),
            detail=detail,
        )
    return noticed


def threshold_words(count: int | None, share: int | None) -> str:
    """ "10 jobs", "5%" or "10 jobs or 5%, whichever comes first"."""
    parts = []
    if count is not None:
        parts.append(f"{count:,} job{'' if count == 1 else 's'}")
    if share is not None:
        parts.append(f"{share}%")
    if len(parts) == 2:
        return f"{parts[0]} or {parts[1]}, whichever comes first"
    return parts[0] if parts else ""


# --- Dispatch paused, budgets -----------------------------------------------------
def note_dispatch_paused(*, reason: str, paused_at: datetime) -> int:
    """Tell everyone with work waiting who asked: owners of unsettled runs
    that asked for it, and people whose account asks for it and who have any
    active job. Called by control.dispatch_pause when it paused (once per pause)."""
    by_runs = Run.objects.filter(finished_at__isnull=True, notify_paused=True).values("owner_id")
    active = Job.objects.filter(owner=OuterRef("user_id"), state__in=ACTIVE_STATES)
    by_account = NoticeSettings.objects.filter(on_paused=True).filter(Exists(active))
    users = get_user_model().objects.filter(
        Q(pk__in=Subquery(by_runs)) | Q(pk__in=Subquery(by_account.values("user_id")))
    )
    told = 0
    for user in users:
        told += bool(
            note(
                kind=NoticeKind.DISPATCH_PAUSED,
                user=user,
                key=f"paused:{paused_at.isoformat()}",
                subject="FlexDash paused dispatch: no requests are sent until it is resumed",
                detail={"reason": reason, "paused_at": paused_at.isoformat()},
            )
        )
    return told


def note_budget_stop(*, user, budget: str, reason: str, run: Run | None = None) -> bool:
    """Tell the person, if they asked (the run's choice, or their account's
    for work outside a run), that a budget stopped work: call it at the
    moment a budget first blocks a request. `budget` names the budget and
    its limit (e.g. "run:12:12.50", "user:7:2026-12:100.00"): noted once per
    name, so a raised limit, or a new month, reached again is told again.
    `reason` is the words the pages show. Returns whether a notice was written."""
    user_id = getattr(user, "pk", user)
    if run is not None:
        wanted = run.notify_budget
    else:
        wanted = NoticeSettings.objects.filter(user_id=user_id, on_budget=True).exists()
    if not wanted:
        return False
    detail: dict = {"budget": budget, "reason": reason}
    if run is not None:
        detail["run"] = {
            "id": run.pk,
            "name": run.name,
            "path": reverse("jobs:run_detail", args=[run.pk]),
        }
    key = f"{budget}|run:{run.pk}" if run is not None else budget
    where = f"Run “{run.name}”" if run is not None else "Your work"
    return (
        note(
            kind=NoticeKind.BUDGET_STOPPED,
            user=user_id,
            run=run,
            key=key,
            subject=f"{where} is waiting: {reason}",
            detail=detail,
        )
        is not None
    )
