"""Recording what came back: each finished try becomes an Attempt row and
moves its job on (succeeded, retrying at its next time, failed, or queued
again with dispatch paused), and the model's pacing state learns from it; the
tries a stopping cluster hands on are recorded here too."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs import gemini_shape
from jobs.engine import backoff, budgets, capacity, chaining, control, notices, pricing
from jobs.engine.claiming import Claim
from jobs.engine.gemini import GeminiError, GeminiResult
from jobs.models import Attempt, ErrorKind, Job, Outcome, State

logger = logging.getLogger(__name__)


# --- Recording what happened ------------------------------------------------------
def attempt_succeeded(
    *,
    claim: Claim,
    owner: str,
    result: GeminiResult,
    latency: float,
    budget: budgets.Settlement | None = None,
) -> str:
    """Store the answer whole; with a response schema, parse and check it too. An
    answer that breaks the schema is tried again when the job asked for that and
    has attempts left ("retry"); otherwise it succeeds, flagged. "discarded" when
    the job was no longer ours (cancelled by a person, or reclaimed after our lease
    lapsed): the attempt says so. Every answer's tokens and cost are the job's,
    the retried ones too: Google billed them, and the budgets are charged it in
    place of the try's reservation (`budget`: the batch's, else its own)."""
    if budget is None:
        with transaction.atomic():
            budget = budgets.Settlement([claim.attempt_id])
            decision = attempt_succeeded(
                claim=claim, owner=owner, result=result, latency=latency, budget=budget
            )
            budget.save()
        return decision
    now = timezone.now()
    tier = result.tier_served or claim.tier
    cost, standard = pricing.job_costs(
        model=claim.model,
        tier=tier,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens + result.thought_tokens,
    )
    parsed, problem = gemini_shape.check_answer(claim.request, result.text)
    billed = {
        "tier_served": tier,
        "input_tokens": F("input_tokens") + result.input_tokens,
        "output_tokens": F("output_tokens") + result.output_tokens,
        "thought_tokens": F("thought_tokens") + result.thought_tokens,
        "cost_usd": _added(F("cost_usd"), cost),
        "standard_cost_usd": _added(F("standard_cost_usd"), standard),
        "lease_owner": "",
        "lease_expires_at": None,
        "updated_at": now,
    }
    with transaction.atomic():
        ours = Job.objects.filter(pk=claim.job_id, state=State.RUNNING, lease_owner=owner)
        retry = _bad_output_retry(claim, ours) if problem and claim.retry_bad_output else None
        if retry is not None:
            won = ours.update(
                **billed,
                state=State.RETRYING,
                next_attempt_at=now + timedelta(seconds=retry.delay),
                bad_outputs=F("bad_outputs") + 1,
                last_error=problem,
            )
        else:
            won = ours.update(
                **billed,
                state=State.SUCCEEDED,
                result_text=result.text,
                response=result.response,
                finish_reason=result.finish_reason[:32],
                cut_at_limit=result.cut_at_limit,
                output_json=parsed,
                output_problem=problem,
                bad_outputs=F("bad_outputs") + int(bool(problem)),
                response_id=result.response_id,
                last_error="",
                finished_at=now,
            )
        outcome = Outcome.WILL_RETRY if retry is not None else Outcome.SUCCEEDED
        Attempt.objects.filter(pk=claim.attempt_id).update(
            finished_at=now,
            latency_seconds=latency,
            http_status=result.http_status,
            tier_served=result.tier_served,
            error_kind=ErrorKind.BAD_OUTPUT if problem else "",
            error_message=problem,
            outcome=outcome if won else Outcome.DISCARDED,
            cost_usd=cost,
        )
        budget.settle(claim.attempt_id, billed=cost)
    if not won:
        return "discarded"
    return "retry" if retry is not None else "succeeded"


def _added(column: F, amount: Decimal | None):
    """A cost column plus one more answer's cost (None, unpriced, leaves it as it is)."""
    if amount is None:
        return column
    return Coalesce(column, Value(Decimal(0))) + Value(amount)


def _bad_output_retry(claim: Claim, ours) -> backoff.Decision | None:
    job = ours.only("attempts", "refunded_attempts", "max_attempts").first()
    if job is None:
        return None
    decision = backoff.decide(
        ErrorKind.BAD_OUTPUT,
        attempts_used=job.budgeted_attempts,
        policy=backoff.Policy(
            base=settings.FLEX_BACKOFF_BASE,
            cap=settings.FLEX_BACKOFF_CAP,
            max_attempts=job.max_attempts,
        ),
    )
    return decision if decision.action == "retry" else None


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
            budget = budgets.Settlement(item.claim.attempt_id for item in outcomes)
            decisions = [_record(owner, item, budget) for item in outcomes]
            budget.save()
            chaining.jobs_ended(job_ids=_ended(outcomes, decisions))
            _note_ended(outcomes, decisions)
            return decisions
    except Exception:
        logger.exception("Recording %d outcomes together failed; one by one", len(outcomes))
    decisions = []
    for item in outcomes:
        try:
            with transaction.atomic():
                decision = _record(owner, item)
                chaining.jobs_ended(job_ids=_ended([item], [decision]))
                _note_ended([item], [decision])
            decisions.append(decision)
        except Exception:
            logger.exception("Could not record the outcome of job %s", item.claim.job_id)
            decisions.append("unrecorded")
    return decisions


INTERRUPTED_MESSAGE = (
    "Its cluster was stopped with this request in flight; the job was handed on to "
    "another dispatcher and this try is not counted."
)


def attempts_interrupted(*, owner: str, claims: Sequence[Claim]) -> int:
    """Hand on the requests a stopping dispatcher still has in flight, in one
    transaction: each try is recorded as interrupted (not counted against its
    job, its reservation released: no answer means no bill), and its job is
    made due again at once with its lease given up, so another dispatcher
    takes it within a tick rather than after the lease. Returns how many jobs
    were handed on (a job no longer this dispatcher's is left alone)."""
    if not claims:
        return 0
    now = timezone.now()
    attempt_ids = [claim.attempt_id for claim in claims]
    with transaction.atomic():
        budget = budgets.Settlement(attempt_ids)
        Attempt.objects.filter(pk__in=attempt_ids, outcome=Outcome.IN_FLIGHT).update(
            outcome=Outcome.INTERRUPTED, finished_at=now, error_message=INTERRUPTED_MESSAGE
        )
        for attempt_id in attempt_ids:
            budget.settle(attempt_id, billed=None)
        budget.save()
        return Job.objects.filter(
            pk__in=[claim.job_id for claim in claims], state=State.RUNNING, lease_owner=owner
        ).update(
            state=State.QUEUED,
            next_attempt_at=now,
            lease_owner="",
            lease_expires_at=None,
            refunded_attempts=F("refunded_attempts") + 1,
            updated_at=now,
        )


def _ended(outcomes: Sequence[AttemptOutcome], decisions: Sequence[str]) -> list[int]:
    """The jobs these outcomes finished (succeeded, or failed for good)."""
    return [
        item.claim.job_id
        for item, decision in zip(outcomes, decisions, strict=True)
        if decision in ("succeeded", "fail")
    ]


def _note_ended(outcomes: Sequence[AttemptOutcome], decisions: Sequence[str]) -> None:
    """Settle the runs whose last jobs these were, and note failures past a
    threshold, in the batch's transaction. Notifications are told, never
    in the way: should noting fail, the batch is recorded all the same and
    the minute sweep settles the runs."""
    ended = _ended(outcomes, decisions)
    if not ended:
        return
    try:
        with transaction.atomic():
            notices.jobs_ended(job_ids=ended)
    except Exception:
        logger.exception("Noting the end of jobs %s failed; the minute sweep will", ended)


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


def _record(owner: str, item: AttemptOutcome, budget: budgets.Settlement | None = None) -> str:
    if isinstance(item.outcome, GeminiResult):
        return attempt_succeeded(
            claim=item.claim, owner=owner, result=item.outcome, latency=item.latency, budget=budget
        )
    return attempt_failed(
        claim=item.claim, owner=owner, error=item.outcome, latency=item.latency, budget=budget
    )


_COUNTER_FOR_KIND = {
    ErrorKind.CAPACITY: "http_503",
    ErrorKind.RATE_LIMIT: "http_429",
}


def attempt_failed(
    *,
    claim: Claim,
    owner: str,
    error: GeminiError,
    latency: float,
    budget: budgets.Settlement | None = None,
) -> str:
    """Count the failure and move the job on: retrying (with its next time),
    failed, or back to queued with dispatch paused. Returns the decision. An
    error carries no bill, so the try's reservation is released."""
    if budget is None:
        with transaction.atomic():
            budget = budgets.Settlement([claim.attempt_id])
            decision = attempt_failed(
                claim=claim, owner=owner, error=error, latency=latency, budget=budget
            )
            budget.save()
        return decision
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
        budget.settle(claim.attempt_id, billed=None)
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
            control.dispatch_pause(
                reason=f"Gemini refused the API key ({_describe(error)}). Fix GEMINI_API_KEY, "
                "then resume dispatch."
            )
            logger.error("Dispatch paused: %s", _describe(error))
    return decision.action


def _describe(error: GeminiError) -> str:
    status = f"HTTP {error.http_status}" if error.http_status else error.kind
    google = f" {error.google_status}" if error.google_status else ""
    return f"{status}{google}: {error.message}"[:2000]
