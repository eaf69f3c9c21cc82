"""Claiming: the dispatcher atomically takes due jobs under a lease, within
each model's pacing budget, and opens an Attempt row for each try.

A claim is a conditional UPDATE whose row count is checked, so two
dispatchers can never both win a job; a job whose lease lapsed is taken again
and its lost try is recorded."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs.engine import backoff, budgets, capacity, chaining, control, notices, routes
from jobs.models import (
    WAITING_STATES,
    Attempt,
    DeadlinePolicy,
    ErrorKind,
    Job,
    Outcome,
    State,
    Tier,
)

logger = logging.getLogger(__name__)


# --- Claiming -------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    job_id: int
    attempt_id: int
    attempt_number: int
    model: str
    request: dict  # Gemini's shape (jobs/gemini_shape.py)
    tier: str
    route: str
    retry_bad_output: bool = False
    reserved_usd: Decimal = Decimal(0)  # its worst case, held against its budgets
    previous_interaction_id: str = ""  # the interaction a pipeline step continues


def _due_filters(now: datetime) -> list[Q]:
    # Expired leases first: those jobs were already waiting on a dead worker.
    return [
        Q(state=State.RUNNING, lease_expires_at__lt=now),
        Q(state__in=WAITING_STATES, next_attempt_at__lte=now),
    ]


class ClaimConflict(Exception):
    """A claim's UPDATE changed fewer rows than the locked SELECT found."""


def jobs_claim(*, owner: str, limit: int, lease_seconds: int) -> list[Claim]:
    """Atomically take up to `limit` due jobs for this dispatcher.

    The candidates are locked while we update them: row locks with SKIP
    LOCKED where the database has them (PostgreSQL), the database write lock
    taken at BEGIN elsewhere (SQLite, transaction_mode IMMEDIATE). The UPDATE
    repeats the "due" condition and its row count must match, so a claim is
    all or nothing and two dispatchers can never both win a job."""
    if limit <= 0 or control.dispatch_is_paused():
        return []
    now = timezone.now()
    claimed: list[int] = []
    reclaimed: list[int] = []
    with transaction.atomic():
        # Each model's quota, shared by every dispatcher: the rows stay locked
        # until this claim commits, so two claims never spend the same budget.
        plan = capacity.ClaimPlan(now)
        blocked = plan.blocked_models()
        # The money budgets, locked the same way (after the model rows).
        money = budgets.ClaimBudgets(now)
        for reclaiming, due in zip((True, False), _due_filters(now), strict=True):
            # Each pass leaves out the owners and runs whose budget refused
            # work in the one before, so their jobs never hold up the others'.
            for _ in range(BUDGET_PASSES):
                room = limit - len(claimed)
                if room <= 0:
                    break
                taken = _claim_due(
                    due,
                    room,
                    blocked,
                    plan,
                    money,
                    owner,
                    lease_seconds,
                    now,
                    reclaiming=reclaiming,
                )
                if taken is None:
                    break
                claimed += taken[0]
                reclaimed += taken[1]
                if not taken[2]:
                    break
        if not claimed:
            money.save({})
            plan.save()
            return []
        plan.save()
        given_up = _mark_lost_attempts(reclaimed, now)
        claimed = [job_id for job_id in claimed if job_id not in given_up]
        claims = _open_attempts(claimed, owner, now, money) if claimed else []
        money.save({claim.job_id: claim.reserved_usd for claim in claims})
        return claims


# How many times one due filter is queried again after budgets refused some
# of its candidates, each time without their owners' or runs' work.
BUDGET_PASSES = 3


def _claim_due(
    due: Q,
    room: int,
    blocked: list[str],
    plan: capacity.ClaimPlan,
    money: budgets.ClaimBudgets,
    owner: str,
    lease_seconds: int,
    now: datetime,
    *,
    reclaiming: bool,
) -> tuple[list[int], list[int], bool] | None:
    """One query of due candidates: (claimed ids, reclaimed ids, whether a
    budget refused any), or None when none were due (or the account's budget
    holds everything back). Lapsed leases (`reclaiming`) are looked at
    whatever their budgets: taking one again releases its try's reservation."""
    candidates = Job.objects.filter(due).exclude(model__in=blocked)
    if not reclaiming:
        if money.account_holds_back():
            return None
        left_out_owners, left_out_runs = money.left_out()
        if left_out_owners:
            candidates = candidates.exclude(owner_id__in=left_out_owners)
        if left_out_runs:
            candidates = candidates.exclude(run_id__in=left_out_runs)
    candidates = candidates.order_by("next_attempt_at", "id")
    if connection.features.has_select_for_update_skip_locked:
        candidates = candidates.select_for_update(skip_locked=True)
    rows = list(
        candidates.annotate(chars=capacity.prompt_chars()).values(
            "id", "state", "model", "chars", *budgets.CANDIDATE_FIELDS
        )[:room]
    )
    if not rows:
        return None
    money.prepare(rows)
    taken, budget_refused = [], False
    for row in rows:
        if not money.fits(row):
            budget_refused = True
        elif plan.admit(row["model"], row["chars"] or 0):
            money.take(row)
            taken.append(row)
    if not taken:
        return [], [], budget_refused
    ids = [row["id"] for row in taken]
    won = Job.objects.filter(due, pk__in=ids).update(
        state=State.RUNNING,
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        attempts=F("attempts") + 1,
        next_attempt_at=None,
        first_started_at=Coalesce(F("first_started_at"), now),
        updated_at=now,
    )
    if won != len(ids):
        raise ClaimConflict(f"claimed {won} of {len(ids)} locked jobs; rolled back")
    reclaimed = [row["id"] for row in taken if row["state"] == State.RUNNING]
    return ids, reclaimed, budget_refused


# A worker lost with a job in flight is not the job's fault, the first few
# times: those tries are not charged to its budget. A prompt that keeps
# killing its worker is, so it ends failed instead of being sent forever.
LOST_TRIES_REFUNDED = 2


def _mark_lost_attempts(job_ids: list[int], now: datetime) -> set[int]:
    """A reclaimed job's previous try died with its worker: say so on its row,
    and refund it unless the job has lost LOST_TRIES_REFUNDED already. Returns
    the jobs whose budget that leaves spent: they are failed, not sent again."""
    if not job_ids:
        return set()
    earlier = dict(
        Attempt.objects.filter(job_id__in=job_ids, outcome=Outcome.LOST)
        .values("job_id")
        .annotate(n=Count("id"))
        .values_list("job_id", "n")
    )
    # Its reservation goes back to the budgets (the claim holds them): the try
    # is taken again, and reserved again, now.
    budgets.release_attempts(Attempt.objects.filter(job_id__in=job_ids))
    Attempt.objects.filter(job_id__in=job_ids, outcome=Outcome.IN_FLIGHT).update(
        outcome=Outcome.LOST,
        error_kind=ErrorKind.LOST,
        error_message="The worker holding this request stopped; its lease expired.",
        finished_at=now,
    )
    refunded = [job_id for job_id in job_ids if earlier.get(job_id, 0) < LOST_TRIES_REFUNDED]
    Job.objects.filter(pk__in=refunded).update(refunded_attempts=F("refunded_attempts") + 1)
    # The claim already counted the try it was about to send.
    spent = (
        Job.objects.filter(pk__in=job_ids)
        .alias(used=F("attempts") - F("refunded_attempts"))
        .filter(used__gt=F("max_attempts"))
    )
    given_up = set(spent.values_list("id", flat=True))
    if given_up:
        Job.objects.filter(pk__in=given_up).update(
            state=State.FAILED,
            attempts=F("attempts") - 1,
            finished_at=now,
            next_attempt_at=None,
            lease_owner="",
            lease_expires_at=None,
            last_error=(
                f"Its worker was lost {LOST_TRIES_REFUNDED + 1} times or more with this "
                "request in flight, and no attempts are left; not sent again."
            ),
            updated_at=now,
        )
        logger.error("Gave up on jobs whose workers kept being lost: %s", sorted(given_up))
        chaining.jobs_ended(job_ids=given_up)
        notices.jobs_ended(job_ids=given_up)
    return given_up


def _open_attempts(
    job_ids: list[int], owner: str, now: datetime, money: budgets.ClaimBudgets
) -> list[Claim]:
    jobs = Job.objects.filter(pk__in=job_ids).only(
        "id",
        "attempts",
        "refunded_attempts",
        "max_attempts",
        "model",
        "input_text",
        "system_instruction",
        "media_tokens",
        "temperature",
        "max_output_tokens",
        "request",
        "tier_requested",
        "fallback_standard",
        "retry_bad_output",
        "continues_interaction",
    )
    claims: list[Claim] = []
    attempts: list[Attempt] = []
    for job in jobs:
        request = job.gemini_request()
        route = routes.route_for(request, settings.GEMINI_API)
        tier = backoff.tier_for_attempt(
            requested=job.tier_requested,
            fallback_standard=job.fallback_standard,
            attempt_number=job.budgeted_attempts,
            max_attempts=job.max_attempts,
        )
        reserved = money.reserve_for(job.pk, tier)
        attempts.append(
            Attempt(
                job_id=job.pk,
                number=job.attempts,
                dispatcher=owner,
                route=route,
                started_at=now,
                tier_requested=tier,
                reserved_usd=reserved,
                budget_month=money.month,
                model=job.model,
                prompt_chars=job.paced_chars,
            )
        )
        claims.append(
            Claim(
                job_id=job.pk,
                attempt_id=0,
                attempt_number=job.attempts,
                model=job.model,
                request=request,
                tier=tier,
                route=route,
                retry_bad_output=job.retry_bad_output,
                reserved_usd=reserved,
                previous_interaction_id=job.continues_interaction,
            )
        )
    Attempt.objects.bulk_create(attempts)
    ids = dict(
        Attempt.objects.filter(
            job_id__in=job_ids, outcome=Outcome.IN_FLIGHT, dispatcher=owner
        ).values_list("job_id", "id")
    )
    return [Claim(**{**claim.__dict__, "attempt_id": ids[claim.job_id]}) for claim in claims]


def seconds_until_next_due() -> float | None:
    now = timezone.now()
    # Work of a model whose daily cap is spent waits for midnight Pacific; the
    # minute Schedule looks again, so no dispatcher stays up for it.
    jobs = Job.objects.exclude(model__in=capacity.day_capped_models(now))
    waiting = jobs.filter(state__in=WAITING_STATES)
    # Nor for waiting work a budget holds back: a raised limit wakes a
    # dispatcher. A lapsed lease is taken again whatever the budgets say:
    # its try's reservation is released then.
    account, owners, runs = budgets.held_back(now=now)
    if account:
        waiting = waiting.none()
    if owners:
        waiting = waiting.exclude(owner_id__in=owners)
    if runs:
        waiting = waiting.exclude(run_id__in=runs)
    soonest = waiting.aggregate(at=Min("next_attempt_at"))["at"]
    lease = jobs.filter(state=State.RUNNING).aggregate(at=Min("lease_expires_at"))["at"]
    # A deadline that moves waiting flex work to standard makes it due then.
    moving = waiting.filter(
        deadline_policy=DeadlinePolicy.STANDARD, tier_requested=Tier.FLEX, deadline_at__isnull=False
    ).aggregate(at=Min("deadline_at"))["at"]
    times = [t for t in (soonest, lease, moving) if t is not None]
    if not times:
        return None
    return max(0.0, (min(times) - now).total_seconds())
