"""What a person does to jobs already submitted: cancel, retry now, and
what each owner chose to happen at a deadline."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Case, F, Max, Min, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs.engine import chaining, control, notices
from jobs.models import ACTIVE_STATES, WAITING_STATES, DeadlinePolicy, Job, State, Tier

logger = logging.getLogger(__name__)


# --- Actions a person takes --------------------------------------------------------
# What a person may cancel: not yet sent, or between tries.
CANCELLABLE_STATES = (State.WAITING, *WAITING_STATES)


def job_cancel(*, job: Job) -> bool:
    """Cancel a job that is waiting (queued, waiting to retry, or waiting on
    earlier steps); in a pipeline, the later steps of its row are skipped."""
    now = timezone.now()
    with transaction.atomic():
        changed = Job.objects.filter(pk=job.pk, state__in=CANCELLABLE_STATES).update(
            state=State.CANCELLED, finished_at=now, next_attempt_at=None, updated_at=now
        )
        if changed and job.run_id is not None:
            chaining.jobs_ended(job_ids=[job.pk], now=now)
            notices.runs_settle(run_ids=[job.run_id])
    job.refresh_from_db()
    return bool(changed)


def job_retry_now(*, job: Job) -> bool:
    """Run a failed or waiting job again as soon as possible. A failed job
    gets its attempt budget again (retried_budget); a waiting one keeps its own."""
    now = timezone.now()
    with transaction.atomic():
        changed = Job.objects.filter(pk=job.pk, state=State.RETRYING).update(
            next_attempt_at=now, updated_at=now
        )
        changed += Job.objects.filter(pk=job.pk, state=State.FAILED).update(
            state=State.QUEUED,
            next_attempt_at=now,
            finished_at=None,
            **retried_budget(),
            deadline_policy=policy_after_retry(now),
            updated_at=now,
        )
        if changed:
            # In a pipeline, the steps it skipped wait for it again.
            chaining.jobs_revived(job_ids=[job.pk], now=now)
            transaction.on_commit(control.wake_dispatcher)
    job.refresh_from_db()
    return bool(changed)


def attempts_per_retry() -> Coalesce:
    """The attempts a person's retry of a failed job grants: as many as it was
    submitted with. One more would likely fail the same way, against the same
    503s; the whole budget is what the researcher chose for this prompt."""
    return Coalesce(F("attempt_budget"), F("max_attempts"))


def retried_budget() -> dict:
    """The fields a retry of a failed job updates: the attempts used so far
    plus attempts_per_retry() more, and the grant kept for the next retry."""
    grant = attempts_per_retry()
    return {
        "attempt_budget": grant,
        "max_attempts": F("attempts") - F("refunded_attempts") + grant,
    }


def retry_grants(jobs: QuerySet[Job]) -> tuple[int, int] | None:
    """The fewest and most attempts a retry would grant the failed ones of
    `jobs` (for the buttons that say it); None when none failed."""
    grants = jobs.filter(state=State.FAILED).aggregate(
        fewest=Min(attempts_per_retry()), most=Max(attempts_per_retry())
    )
    if grants["fewest"] is None:
        return None
    return grants["fewest"], grants["most"]


def grant_words(grant: tuple[int, int] | None) -> str:
    """retry_grants in words: "3 more attempts", "2 to 3 more attempts", or ""."""
    if grant is None:
        return ""
    fewest, most = grant
    count = f"{fewest}" if fewest == most else f"{fewest} to {most}"
    return f"{count} more attempt{'' if most == 1 else 's'}"


def policy_after_retry(now: datetime) -> Case:
    """A failed job retried by a person after its deadline is their new
    decision: it keeps waiting instead of being cancelled again at once."""
    return Case(
        When(deadline_at__lte=now, then=Value(DeadlinePolicy.KEEP)),
        default=F("deadline_policy"),
    )


# --- Deadlines ------------------------------------------------------------------
CANCELLED_AT_DEADLINE = "Cancelled at its deadline: it had not finished by then."


def jobs_apply_deadlines(*, now: datetime | None = None) -> dict[str, int]:
    """Do what each owner chose for active jobs whose deadline has passed.

    cancel: cancelled, running ones too (the answer still in flight is
    discarded when it comes back, as the job is no longer running).
    standard: flex jobs ask for standard from their next attempt on; waiting
    ones become due now, a running one keeps its flex request in flight.
    keep: left alone. Called every few seconds by the dispatcher and every
    minute by the Schedule; repeating it changes nothing."""
    now = now or timezone.now()
    passed = Job.objects.filter(deadline_at__lte=now, state__in=ACTIVE_STATES)
    to_standard = passed.filter(deadline_policy=DeadlinePolicy.STANDARD, tier_requested=Tier.FLEX)
    to_cancel = passed.filter(deadline_policy=DeadlinePolicy.CANCEL)
    with transaction.atomic():
        # Read before the cancel: afterwards those jobs no longer match `passed`.
        runs_cancelled = set(
            to_cancel.filter(run__isnull=False).values_list("run_id", flat=True).order_by()
        )
        cancelled = to_cancel.update(
            state=State.CANCELLED,
            finished_at=now,
            next_attempt_at=None,
            lease_owner="",
            lease_expires_at=None,
            last_error=CANCELLED_AT_DEADLINE,
            updated_at=now,
        )
        moved_waiting = to_standard.filter(state__in=WAITING_STATES).update(
            tier_requested=Tier.STANDARD, next_attempt_at=now, updated_at=now
        )
        moved_running = to_standard.filter(state__in=(State.RUNNING, State.WAITING)).update(
            tier_requested=Tier.STANDARD, updated_at=now
        )
        if moved_waiting:
            transaction.on_commit(control.wake_dispatcher)
        if cancelled and runs_cancelled:
            notices.runs_settle(run_ids=runs_cancelled, now=now)
    if cancelled or moved_waiting or moved_running:
        logger.info(
            "Deadlines: %d cancelled, %d moved to standard (%d of them running)",
            cancelled,
            moved_waiting + moved_running,
            moved_running,
        )
    return {
        "cancelled": cancelled,
        "moved_waiting": moved_waiting,
        "moved_running": moved_running,
    }
