"""The one place that changes a job's state.

Views, the API, admin actions, management commands and the dispatcher all
call these functions. Every transition is a conditional UPDATE whose row count
is checked, so two processes can never both win the same job.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case, Count, F, Min, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs import backoff, capacity, pricing
from jobs.catalog import FLEX_MODELS
from jobs.gemini import GeminiError, GeminiResult
from jobs.models import (
    ACTIVE_STATES,
    WAITING_STATES,
    Attempt,
    DeadlinePolicy,
    DispatchControl,
    DispatcherSlot,
    ErrorKind,
    Job,
    Outcome,
    State,
    Tier,
)

logger = logging.getLogger(__name__)

MAX_ATTEMPTS_LIMIT = 50


# --- Submitting ------------------------------------------------------------------
@dataclass(frozen=True)
class JobSpec:
    """What a researcher asks for; prompts share the rest of the settings."""

    model: str
    tier: str = Tier.FLEX
    max_attempts: int | None = None
    fallback_standard: bool = False
    system_instruction: str = ""
    temperature: float | None = None
    max_output_tokens: int | None = None
    deadline_at: datetime | None = None
    deadline_policy: str = DeadlinePolicy.KEEP


def job_spec_errors(spec: JobSpec) -> dict[str, str]:
    """Field name -> message for every problem with the shared settings."""
    errors: dict[str, str] = {}
    if spec.model not in FLEX_MODELS:
        errors["model"] = f"Unknown model {spec.model!r}. Flex runs on: {', '.join(FLEX_MODELS)}."
    if spec.tier not in Tier.values:
        errors["tier"] = f"Unknown tier {spec.tier!r}; choose flex, standard or priority."
    if spec.max_attempts is not None and not 1 <= spec.max_attempts <= MAX_ATTEMPTS_LIMIT:
        errors["max_attempts"] = f"Max attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}."
    if spec.temperature is not None and not 0.0 <= spec.temperature <= 2.0:
        errors["temperature"] = "Temperature must be between 0 and 2."
    if spec.max_output_tokens is not None and not 1 <= spec.max_output_tokens <= 1_000_000:
        errors["max_output_tokens"] = "Max output tokens must be between 1 and 1,000,000."
    if len(spec.system_instruction) > settings.FLEX_MAX_PROMPT_CHARS:
        errors["system_instruction"] = (
            f"The system instruction is longer than {settings.FLEX_MAX_PROMPT_CHARS:,} characters."
        )
    elif problem := _storable_text_error(spec.system_instruction):
        errors["system_instruction"] = f"The system instruction {problem}."
    errors.update(_deadline_errors(spec))
    return errors


def _deadline_errors(spec: JobSpec) -> dict[str, str]:
    if spec.deadline_policy not in DeadlinePolicy.values:
        return {
            "deadline_policy": f"Unknown deadline policy {spec.deadline_policy!r}; "
            "choose keep, cancel or standard."
        }
    if spec.deadline_at is None:
        if spec.deadline_policy == DeadlinePolicy.KEEP:
            return {}
        cancel = spec.deadline_policy == DeadlinePolicy.CANCEL
        action = "Cancelling" if cancel else "Moving to standard"
        return {
            "deadline_at": f"{action} at the deadline needs a deadline: "
            "set one, or choose to keep waiting."
        }
    if timezone.is_naive(spec.deadline_at):
        return {"deadline_at": "The deadline needs a time zone (e.g. 2030-06-01T14:00:00+00:00)."}
    if spec.deadline_at <= timezone.now():
        when = timezone.localtime(spec.deadline_at).strftime("%Y-%m-%d %H:%M %Z")
        return {"deadline_at": f"The deadline {when} has already passed; choose a later time."}
    if spec.deadline_policy == DeadlinePolicy.STANDARD and spec.tier != Tier.FLEX:
        return {
            "deadline_policy": f"Only flex work moves to standard at the deadline; this is on "
            f"{spec.tier} already. Choose flex, or keep waiting or cancel."
        }
    return {}


def _storable_text_error(text: str) -> str | None:
    # Neither database stores a NUL, and a lone surrogate cannot be encoded.
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains text that is not valid Unicode"
    return None


def prompt_error(prompt: str) -> str | None:
    if not prompt or not prompt.strip():
        return "The prompt is empty."
    if len(prompt) > settings.FLEX_MAX_PROMPT_CHARS:
        return (
            f"The prompt is {len(prompt):,} characters; the limit is "
            f"{settings.FLEX_MAX_PROMPT_CHARS:,} (FLEX_MAX_PROMPT_CHARS)."
        )
    if problem := _storable_text_error(prompt):
        return f"The prompt {problem}."
    return None


def jobs_submit(*, owner, prompts: Sequence[str], spec: JobSpec) -> list[Job]:
    """Create one queued job per prompt, all or nothing, and wake the
    dispatcher once the rows are committed. Raises ValidationError naming the
    field (and the prompt's position when there are several)."""
    errors = job_spec_errors(spec)
    if not prompts:
        errors["prompt"] = "There is no prompt to submit."
    for index, prompt in enumerate(prompts, start=1):
        problem = prompt_error(prompt)
        if problem:
            errors["prompt"] = problem if len(prompts) == 1 else f"Prompt {index}: {problem}"
            break
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    max_attempts = spec.max_attempts or settings.FLEX_MAX_ATTEMPTS
    jobs = [
        Job(
            owner=owner,
            model=spec.model,
            input_text=prompt,
            system_instruction=spec.system_instruction,
            temperature=spec.temperature,
            max_output_tokens=spec.max_output_tokens,
            tier_requested=spec.tier,
            fallback_standard=spec.fallback_standard,
            max_attempts=max_attempts,
            submitted_at=now,
            next_attempt_at=now,
            deadline_at=spec.deadline_at,
            deadline_policy=spec.deadline_policy,
        )
        for prompt in prompts
    ]
    with transaction.atomic():
        created = Job.objects.bulk_create(jobs, batch_size=500)
        transaction.on_commit(wake_dispatcher)
    return created


# --- Actions a person takes --------------------------------------------------------
def job_cancel(*, job: Job) -> bool:
    """Cancel a job that is waiting (queued or waiting to retry)."""
    now = timezone.now()
    changed = Job.objects.filter(pk=job.pk, state__in=WAITING_STATES).update(
        state=State.CANCELLED, finished_at=now, next_attempt_at=None, updated_at=now
    )
    job.refresh_from_db()
    return bool(changed)


def job_retry_now(*, job: Job) -> bool:
    """Run a failed or waiting job again as soon as possible. A failed job
    gets its attempt budget extended by one so the retry is allowed."""
    now = timezone.now()
    with transaction.atomic():
        changed = Job.objects.filter(pk=job.pk, state=State.RETRYING).update(
            next_attempt_at=now, updated_at=now
        )
        changed += Job.objects.filter(pk=job.pk, state=State.FAILED).update(
            state=State.QUEUED,
            next_attempt_at=now,
            finished_at=None,
            max_attempts=F("attempts") - F("refunded_attempts") + 1,
            deadline_policy=policy_after_retry(now),
            updated_at=now,
        )
        if changed:
            transaction.on_commit(wake_dispatcher)
    job.refresh_from_db()
    return bool(changed)


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
    with transaction.atomic():
        cancelled = passed.filter(deadline_policy=DeadlinePolicy.CANCEL).update(
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
        moved_running = to_standard.filter(state=State.RUNNING).update(
            tier_requested=Tier.STANDARD, updated_at=now
        )
        if moved_waiting:
            transaction.on_commit(wake_dispatcher)
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


def dispatch_control() -> DispatchControl:
    control, _ = DispatchControl.objects.get_or_create(pk=1)
    return control


def dispatch_pause(*, reason: str) -> bool:
    """Stop sending requests; jobs stay where they are until resumed."""
    dispatch_control()
    return bool(
        DispatchControl.objects.filter(pk=1, paused=False).update(
            paused=True, reason=reason, paused_at=timezone.now()
        )
    )


def dispatch_resume() -> bool:
    dispatch_control()
    changed = DispatchControl.objects.filter(pk=1, paused=True).update(
        paused=False, reason="", paused_at=None
    )
    if changed:
        transaction.on_commit(wake_dispatcher)
    return bool(changed)


def dispatch_is_paused() -> bool:
    return DispatchControl.objects.filter(pk=1, paused=True).exists()


# --- Dispatcher slots ----------------------------------------------------------
def wake_dispatcher() -> None:
    """Ask django-q2 for a dispatcher run, unless every slot is already busy:
    a running dispatcher looks for new work every second by itself."""
    now = timezone.now()
    busy = DispatcherSlot.objects.filter(expires_at__gt=now).count()
    if busy >= settings.FLEX_DISPATCHERS:
        return
    from django_q.tasks import async_task

    async_task("jobs.tasks.dispatch", task_name=DISPATCH_SCHEDULE_NAME)


DISPATCH_SCHEDULE_NAME = "flexdash-dispatch"


def dispatch_schedule_ensure() -> None:
    """The every-minute run that picks up retries coming due, jobs whose
    dispatcher died and deadlines that passed, even when nothing new is submitted."""
    from django_q.models import Schedule

    Schedule.objects.get_or_create(
        name=DISPATCH_SCHEDULE_NAME,
        defaults={
            "func": "jobs.tasks.dispatch",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


def dispatcher_slot_acquire(*, owner: str, ttl_seconds: int) -> int | None:
    now = timezone.now()
    for number in range(settings.FLEX_DISPATCHERS):
        DispatcherSlot.objects.get_or_create(number=number)
        taken = DispatcherSlot.objects.filter(
            Q(expires_at__isnull=True) | Q(expires_at__lte=now), number=number
        ).update(
            owner=owner,
            expires_at=now + timedelta(seconds=ttl_seconds),
            heartbeat_at=now,
            in_flight=0,
        )
        if taken:
            return number
    return None


def dispatcher_heartbeat(
    *, owner: str, job_ids: list[int], ttl_seconds: int, in_flight: int
) -> bool:
    """Renew the leases of the jobs this dispatcher has in flight, and its slot.

    Only the named jobs: one whose task ended without recording its outcome
    must let its lease lapse so another run picks it up."""
    now = timezone.now()
    expires = now + timedelta(seconds=ttl_seconds)
    if job_ids:
        Job.objects.filter(pk__in=job_ids, lease_owner=owner, state=State.RUNNING).update(
            lease_expires_at=expires
        )
    return bool(
        DispatcherSlot.objects.filter(owner=owner).update(
            expires_at=expires, heartbeat_at=now, in_flight=in_flight
        )
    )


def dispatcher_slot_release(*, owner: str) -> None:
    DispatcherSlot.objects.filter(owner=owner).update(owner="", expires_at=None, in_flight=0)


# --- Claiming -------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    job_id: int
    attempt_id: int
    attempt_number: int
    model: str
    input_text: str
    system_instruction: str
    temperature: float | None
    max_output_tokens: int | None
    tier: str


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
    if limit <= 0 or dispatch_is_paused():
        return []
    now = timezone.now()
    claimed: list[int] = []
    reclaimed: list[int] = []
    with transaction.atomic():
        # Each model's quota, shared by every dispatcher: the rows stay locked
        # until this claim commits, so two claims never spend the same budget.
        plan = capacity.ClaimPlan(now)
        blocked = plan.blocked_models()
        for due in _due_filters(now):
            room = limit - len(claimed)
            if room <= 0:
                break
            candidates = Job.objects.filter(due).exclude(model__in=blocked)
            candidates = candidates.order_by("next_attempt_at", "id")
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            rows = list(
                candidates.annotate(chars=capacity.prompt_chars()).values_list(
                    "id", "state", "model", "chars"
                )[:room]
            )
            rows = [row for row in rows if plan.admit(row[2], row[3] or 0)]
            if not rows:
                continue
            ids = [row[0] for row in rows]
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
            claimed += ids
            reclaimed += [row[0] for row in rows if row[1] == State.RUNNING]
        plan.save()
        if not claimed:
            return []
        given_up = _mark_lost_attempts(reclaimed, now)
        claimed = [job_id for job_id in claimed if job_id not in given_up]
        return _open_attempts(claimed, owner, now) if claimed else []


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
    return given_up


def _open_attempts(job_ids: list[int], owner: str, now: datetime) -> list[Claim]:
    jobs = Job.objects.filter(pk__in=job_ids).only(
        "id",
        "attempts",
        "refunded_attempts",
        "max_attempts",
        "model",
        "input_text",
        "system_instruction",
        "temperature",
        "max_output_tokens",
        "tier_requested",
        "fallback_standard",
    )
    claims: list[Claim] = []
    attempts: list[Attempt] = []
    route = settings.GEMINI_API
    for job in jobs:
        tier = backoff.tier_for_attempt(
            requested=job.tier_requested,
            fallback_standard=job.fallback_standard,
            attempt_number=job.budgeted_attempts,
            max_attempts=job.max_attempts,
        )
        attempts.append(
            Attempt(
                job_id=job.pk,
                number=job.attempts,
                dispatcher=owner,
                route=route,
                started_at=now,
                tier_requested=tier,
            )
        )
        claims.append(
            Claim(
                job_id=job.pk,
                attempt_id=0,
                attempt_number=job.attempts,
                model=job.model,
                input_text=job.input_text,
                system_instruction=job.system_instruction,
                temperature=job.temperature,
                max_output_tokens=job.max_output_tokens,
                tier=tier,
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


# --- Recording what happened ------------------------------------------------------
def attempt_succeeded(*, claim: Claim, owner: str, result: GeminiResult, latency: float) -> bool:
    """Store the answer. False when the job was no longer ours (cancelled by a
    person, or reclaimed after our lease lapsed): the attempt says so."""
    now = timezone.now()
    tier = result.tier_served or claim.tier
    cost, standard = pricing.job_costs(
        model=claim.model,
        tier=tier,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens + result.thought_tokens,
    )
    with transaction.atomic():
        won = Job.objects.filter(pk=claim.job_id, state=State.RUNNING, lease_owner=owner).update(
            state=State.SUCCEEDED,
            result_text=result.text,
            response_id=result.response_id,
            tier_served=tier,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            thought_tokens=result.thought_tokens,
            cost_usd=cost,
            standard_cost_usd=standard,
            last_error="",
            finished_at=now,
            lease_owner="",
            lease_expires_at=None,
            updated_at=now,
        )
        Attempt.objects.filter(pk=claim.attempt_id).update(
            finished_at=now,
            latency_seconds=latency,
            http_status=result.http_status,
            tier_served=result.tier_served,
            outcome=Outcome.SUCCEEDED if won else Outcome.DISCARDED,
        )
    return bool(won)


@dataclass(frozen=True)
class AttemptOutcome:
    claim: Claim
    outcome: GeminiResult | GeminiError
    latency: float


def attempts_record(*, owner: str, outcomes: Sequence[AttemptOutcome]) -> list[str]:
    """Record a dispatcher's finished requests in one transaction; returns
    each one's decision ("succeeded", "discarded", "retry", "fail", "pause").
    Should the batch fail, each is recorded alone so one bad row cannot take
    the others with it."""
    _tally_outcomes(outcomes)
    try:
        with transaction.atomic():
            return [_record(owner, item) for item in outcomes]
    except Exception:
        logger.exception("Recording %d outcomes together failed; one by one", len(outcomes))
    decisions = []
    for item in outcomes:
        try:
            decisions.append(_record(owner, item))
        except Exception:
            logger.exception("Could not record the outcome of job %s", item.claim.job_id)
            decisions.append("unrecorded")
    return decisions


def _tally_outcomes(outcomes: Sequence[AttemptOutcome]) -> None:
    """What came back, per model, for the shared pacing state (503 storms,
    429 step-downs). Pacing is advice: failing to record it loses no work."""
    tallies: dict[str, capacity.Tally] = {}
    for item in outcomes:
        tally = tallies.setdefault(item.claim.model, capacity.Tally())
        tally.calls += 1
        if isinstance(item.outcome, GeminiError):
            tally.n503 += item.outcome.kind == ErrorKind.CAPACITY
            tally.n429 += item.outcome.kind == ErrorKind.RATE_LIMIT
    try:
        capacity.record_outcomes(tallies)
    except Exception:
        logger.exception("Could not record pacing state for %s", ", ".join(tallies))


def _record(owner: str, item: AttemptOutcome) -> str:
    if isinstance(item.outcome, GeminiResult):
        won = attempt_succeeded(
            claim=item.claim, owner=owner, result=item.outcome, latency=item.latency
        )
        return "succeeded" if won else "discarded"
    return attempt_failed(claim=item.claim, owner=owner, error=item.outcome, latency=item.latency)


_COUNTER_FOR_KIND = {
    ErrorKind.CAPACITY: "http_503",
    ErrorKind.RATE_LIMIT: "http_429",
}


def attempt_failed(*, claim: Claim, owner: str, error: GeminiError, latency: float) -> str:
    """Count the failure and move the job on: retrying (with its next time),
    failed, or back to queued with dispatch paused. Returns the decision."""
    now = timezone.now()
    with transaction.atomic():
        job = (
            Job.objects.filter(pk=claim.job_id)
            .only("attempts", "refunded_attempts", "max_attempts", "state", "lease_owner")
            .first()
        )
        ours = job is not None and job.state == State.RUNNING and job.lease_owner == owner
        decision = backoff.decide(
            error.kind,
            attempts_used=job.budgeted_attempts if job else 0,
            policy=backoff.Policy(
                base=settings.FLEX_BACKOFF_BASE,
                cap=settings.FLEX_BACKOFF_CAP,
                max_attempts=job.max_attempts if job else 1,
            ),
            retry_after=error.retry_after,
        )
        outcome = {"retry": Outcome.WILL_RETRY, "fail": Outcome.FAILED, "pause": Outcome.PAUSED}[
            decision.action
        ]
        Attempt.objects.filter(pk=claim.attempt_id).update(
            finished_at=now,
            latency_seconds=latency,
            http_status=error.http_status,
            google_status=error.google_status[:64],
            retry_after_seconds=error.retry_after,
            tier_served=error.tier_served,
            error_kind=error.kind,
            error_message=error.message,
            outcome=outcome if ours else Outcome.DISCARDED,
        )
        if not ours:
            return "discarded"
        counter = _COUNTER_FOR_KIND.get(error.kind, "other_errors")
        changes: dict = {
            counter: F(counter) + 1,
            "last_error": _describe(error),
            "lease_owner": "",
            "lease_expires_at": None,
            "updated_at": now,
        }
        if decision.action == "retry":
            changes.update(
                state=State.RETRYING, next_attempt_at=now + timedelta(seconds=decision.delay)
            )
        elif decision.action == "pause":
            changes.update(
                state=State.QUEUED,
                next_attempt_at=now,
                refunded_attempts=F("refunded_attempts") + 1,
            )
        else:
            changes.update(state=State.FAILED, finished_at=now, next_attempt_at=None)
        Job.objects.filter(pk=claim.job_id, state=State.RUNNING, lease_owner=owner).update(
            **changes
        )
        if decision.action == "pause":
            dispatch_pause(
                reason=f"Gemini refused the API key ({_describe(error)}). Fix GEMINI_API_KEY, "
                "then resume dispatch."
            )
            logger.error("Dispatch paused: %s", _describe(error))
    return decision.action


def _describe(error: GeminiError) -> str:
    status = f"HTTP {error.http_status}" if error.http_status else error.kind
    google = f" {error.google_status}" if error.google_status else ""
    return f"{status}{google}: {error.message}"[:2000]
