"""Read-side figures for runs: progress, rate, time left, cost so far and
projected, the failed jobs worth a retry, the run's jobs in file order, and
the price of moving to standard.

Nothing here changes a row (that is `jobs/runs/services.py`). The jobs-list queries in
`jobs/web/queries.py` work on a run through `RunScope`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import (
    Avg,
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    Max,
    Min,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Length, NullIf, Substr

from jobs.engine import actions, counts, pricing
from jobs.engine.counts import RunOutcomes, run_outcomes_by_minute, run_sums
from jobs.models import (
    ACTIVE_STATES,
    COST_UNITS_PER_USD,
    FINISHED_STATES,
    ErrorKind,
    Job,
    ModelPrice,
    Run,
    RunTally,
    State,
    Tier,
)
from jobs.runs import failures, minute_chart, timeleft
from jobs.web import queries
from jobs.web.queries import ErrorTotals, Scope, StateCounts, error_totals, money

# The window the rate (and so the ETA) is measured over.
RATE_MINUTES = 5
# A rate measured over less time than this says nothing yet.
MIN_RATE_SECONDS = 10
ZERO = Decimal(0)


@dataclass(frozen=True)
class RunScope(Scope):
    """The jobs of one run, for the jobs-list queries (access already checked)."""

    run_id: int = 0

    def jobs(self) -> QuerySet[Job]:
        return super().jobs().filter(run_id=self.run_id)

    def attempts(self):
        return super().attempts().filter(job__run_id=self.run_id)

    def jobs_by_state(self) -> dict[str, int]:
        # The stored counts (RunTally): a few rows, whatever the run's size.
        return counts.run_by_state(self.run_id)

    def jobs_by_attempts(self) -> counts.AttemptsTally:
        rows = list(
            self.jobs()
            .order_by()
            .values_list("attempts")
            .annotate(n=Count("*"), n503=Sum("http_503"), n429=Sum("http_429"))
        )
        return counts.AttemptsTally(
            jobs_by_attempts={attempts: n for attempts, n, _, _ in rows},
            http_503=sum(n503 for _, _, n503, _ in rows),
            http_429=sum(n429 for _, _, _, n429 in rows),
        )

    # The run's page reads its stored sums and minutes (RunTally, RunMinute).
    def http_totals(self) -> tuple[int, int]:
        sums = counts.run_sums(self.run_id)
        return sums.http_503, sums.http_429

    def outcomes_by_minute(
        self, *, start: datetime, end: datetime
    ) -> dict[datetime, counts.Outcomes]:
        found = counts.run_outcomes_by_minute(self.run_id, start=start, end=end)
        return {
            minute: counts.Outcomes(seen.finished, seen.succeeded, seen.http_503, seen.http_429)
            for minute, seen in found.items()
        }


def run_scope(run: Run) -> RunScope:
    return RunScope(owner_id=None, run_id=run.pk)


def visible_runs(user) -> QuerySet[Run]:
    """Runs this user may see: their own; staff see everyone's."""
    return Run.objects.visible_to(user).select_related("owner")


# --- Progress ----------------------------------------------------------------------
@dataclass(frozen=True)
class RunProgress:
    counts: StateCounts
    errors: ErrorTotals
    minutes: list[RunMinute]
    chart: minute_chart.MinuteChart
    rate_per_minute: float | None
    time_left: timeleft.TimeLeft
    input_tokens: int
    output_tokens: int
    thought_tokens: int
    cost_usd: Decimal
    standard_cost_usd: Decimal
    projected_cost_usd: Decimal
    projected_standard_cost_usd: Decimal
    priced_jobs: int
    unfinished_flex: int

    @property
    def total(self) -> int:
        return self.counts.total

    @property
    def finished(self) -> int:
        return sum(self.counts.by_state.get(state, 0) for state in FINISHED_STATES)

    @property
    def active(self) -> int:
        return self.counts.active

    @property
    def percent(self) -> int:
        """Whole percent finished; 100 only when every job is."""
        if not self.total:
            return 100
        share = 100 * self.finished // self.total
        return 99 if share == 100 and self.active else share

    @property
    def rate_minutes(self) -> int:
        return RATE_MINUTES

    @property
    def waiting(self) -> int:
        """What a cancel of the run reaches: not yet sent (a pipeline's later steps too)."""
        return sum(self.counts.by_state.get(state, 0) for state in actions.CANCELLABLE_STATES)

    @property
    def failed(self) -> int:
        return self.counts.by_state.get(State.FAILED, 0)

    @property
    def unanswered(self) -> int:
        """Lines without an answer (failed, cancelled or not finished): what the
        failed-and-unfinished download holds."""
        return self.total - self.counts.by_state.get(State.SUCCEEDED, 0)

    @property
    def eta(self) -> timedelta | None:
        """The time left at this rate, when that is the honest figure (see timeleft)."""
        return self.time_left.eta

    @property
    def savings_usd(self) -> Decimal:
        return self.standard_cost_usd - self.cost_usd

    @property
    def projected_savings_usd(self) -> Decimal:
        return self.projected_standard_cost_usd - self.projected_cost_usd


def run_progress(run: Run, counts: StateCounts, *, now: datetime) -> RunProgress:
    """The run's progress from its stored sums and minutes (RunTally,
    RunMinute) and its retrying jobs: the same few rows whatever its size."""
    scope = run_scope(run)
    sums = run_sums(run.pk)
    last_retry = (
        scope.jobs().filter(state=State.RETRYING).aggregate(last=Max("next_attempt_at"))["last"]
    )
    active = counts.active
    # A finished run keeps the rate of its last minutes, not one that decays to zero.
    until = now if active or run.finished_at is None else run.finished_at
    rate = _rate_per_minute(run, until=until)
    minutes = run_minutes(scope, now=now, minutes=_minutes_shown(run, now=now))
    by_state = counts.by_state
    left = timeleft.time_left(
        queued=by_state.get(State.QUEUED, 0),
        running=by_state.get(State.RUNNING, 0),
        retrying=by_state.get(State.RETRYING, 0),
        rate_per_minute=rate,
        next_retry_in=_seconds_from(now, counts.soonest_retry_at),
        last_retry_in=_seconds_from(now, last_retry),
    )
    cost, standard, priced = sums.cost_usd, sums.standard_cost_usd, sums.priced
    if priced:
        # What the answers so far cost on average, for each job still to answer.
        projected = cost + cost / priced * active
        projected_standard = standard + standard / priced * active
    elif counts.total:
        share = Decimal(active) / counts.total
        projected = run.estimated_cost_usd * share
        projected_standard = run.estimated_standard_cost_usd * share
    else:
        projected = projected_standard = ZERO
    return RunProgress(
        counts=counts,
        errors=error_totals(scope, now=now),
        minutes=minutes,
        chart=minute_chart.minute_chart(minutes),
        rate_per_minute=rate,
        time_left=left,
        input_tokens=sums.input_tokens,
        output_tokens=sums.output_tokens,
        thought_tokens=sums.thought_tokens,
        cost_usd=cost,
        standard_cost_usd=standard,
        projected_cost_usd=money(projected),
        projected_standard_cost_usd=money(projected_standard),
        priced_jobs=priced,
        unfinished_flex=sum(sums.flex_by_state.get(state, 0) for state in ACTIVE_STATES),
    )


def _seconds_from(now: datetime, moment: datetime | None) -> float | None:
    return None if moment is None else (moment - now).total_seconds()


def _minutes_shown(run: Run, *, now: datetime) -> int:
    """The per-minute table's length: the last RATE_MINUTES * 2 minutes, but
    none before the minute the run was created (nothing of it happened then)."""
    created = run.created_at.replace(second=0, microsecond=0)
    current = now.replace(second=0, microsecond=0)
    since_created = (current - created) // timedelta(minutes=1) + 1
    return max(1, min(RATE_MINUTES * 2, since_created))


def _rate_per_minute(run: Run, *, until: datetime) -> float | None:
    """Jobs answered or failed per minute over the RATE_MINUTES before
    `until` (or since the run's first job started, when that is sooner),
    counted by the minute their last attempt finished (RunMinute)."""
    started = run.jobs.aggregate(first=Min("first_started_at"))["first"]
    if started is None:
        return None
    since = max(started, until - timedelta(minutes=RATE_MINUTES))
    seconds = (until - since).total_seconds()
    if seconds < MIN_RATE_SECONDS:
        return None
    end = queries.minute_of(until) + timedelta(minutes=1)
    found = run_outcomes_by_minute(run.pk, start=queries.minute_of(since), end=end)
    return sum(seen.succeeded + seen.failed for seen in found.values()) * 60 / seconds


@dataclass(frozen=True)
class RunMinute:
    minute: datetime
    succeeded: int
    errors: int


def run_minutes(scope: RunScope, *, now: datetime, minutes: int) -> list[RunMinute]:
    """Answers and errored attempts per minute, oldest first, ending with the
    current minute; as web.queries.outcomes_per_minute, but an error of any
    kind (a 400 too)."""
    each = queries.last_minutes(now, minutes)
    end = each[-1] + timedelta(minutes=1)
    found = run_outcomes_by_minute(scope.run_id, start=each[0], end=end)
    empty = RunOutcomes()
    return [
        RunMinute(minute, found.get(minute, empty).succeeded, found.get(minute, empty).errors)
        for minute in each
    ]


# --- A run's jobs, in file order ---------------------------------------------------------
ERROR_EXCERPT_CHARS = 90
TEXT_EXCERPT_CHARS = 600


def run_job_list(scope: RunScope, **filters: str) -> QuerySet[Job]:
    """The jobs list's rows (queries.job_list, its filters and search) for one
    run, in file order, each with its last error in a few words: the kind's
    label and the start of its message."""
    last = failures.last_attempt().exclude(error_kind="")
    labels = Case(
        *(When(error_kind=kind, then=Value(str(label))) for kind, label in ErrorKind.choices),
        default=Value(""),
    )
    message = Substr("error_message", 1, ERROR_EXCERPT_CHARS)
    return (
        queries.job_list(scope, **filters)
        .select_related(None)  # a run has one owner, and its table no owner column
        .annotate(
            error_label=Subquery(last.annotate(label=labels).values("label")[:1]),
            error_excerpt=Subquery(last.annotate(text=message).values("text")[:1]),
        )
        .order_by("line_number", "id")
    )


def run_result_list(scope: RunScope, **filters: str) -> QuerySet[Job]:
    """run_job_list's rows with more of each prompt and the start of each answer,
    to read side by side (the whole of both is on the job's page)."""
    return run_job_list(scope, **filters).annotate(
        prompt_text=Substr("input_text", 1, TEXT_EXCERPT_CHARS),
        answer_text=Substr("result_text", 1, TEXT_EXCERPT_CHARS),
        answer_chars=Length("result_text"),
    )


# --- The list of runs ----------------------------------------------------------------
def run_list(user) -> QuerySet[Run]:
    """Newest first, with each run's counts and cost, from the stored counts
    (RunTally): a few index rows per run, whatever the size of the runs."""
    return (
        visible_runs(user)
        .annotate(
            total=_run_tally("n"),
            finished=_run_tally("n", FINISHED_STATES),
            active=_run_tally("n", ACTIVE_STATES),
            failed=_run_tally("n", [State.FAILED]),
            cost=_run_cost("cost_units"),
            standard_cost=_run_cost("standard_cost_units"),
        )
        .order_by("-created_at", "-id")
    )


def _run_tally(column: str, states=None) -> Coalesce:
    return Coalesce(_run_sum(column, states), 0)


def _run_cost(column: str) -> ExpressionWrapper:
    """A run's cost in dollars; None before its first answer (every answer
    costs something), as a sum of its jobs' costs was."""
    return ExpressionWrapper(NullIf(_run_sum(column), 0) * COST_PER_UNIT, output_field=COST_FIELD)


def _run_sum(column: str, states=None) -> Subquery:
    """The sum of a RunTally column over the run's rows (those of `states`)."""
    rows = RunTally.objects.filter(run_id=OuterRef("pk"))
    if states is not None:
        rows = rows.filter(state__in=list(states))
    return Subquery(
        rows.order_by().values("run_id").annotate(total=Sum(column)).values("total")[:1]
    )


COST_FIELD = DecimalField(max_digits=14, decimal_places=8)
COST_PER_UNIT = Value(Decimal(1) / COST_UNITS_PER_USD, output_field=COST_FIELD)


# --- Moving to standard ---------------------------------------------------------------
@dataclass(frozen=True)
class StandardQuote:
    """What the unfinished flex jobs would cost on flex and on standard."""

    jobs: int
    running: int
    flex_usd: Decimal
    standard_usd: Decimal
    observed: bool

    @property
    def difference_usd(self) -> Decimal:
        return self.standard_usd - self.flex_usd


def standard_quote(run: Run) -> StandardQuote:
    """Input is the prompts' characters / 4; output is the run's average
    answer per model so far, or (before any answer) as long as the input."""
    unfinished = Job.objects.filter(run=run, state__in=ACTIVE_STATES, tier_requested=Tier.FLEX)
    groups = (
        unfinished.order_by()
        .values("model")
        .annotate(
            jobs=Count("id"),
            chars=Coalesce(Sum(Length("input_text") + Length("system_instruction")), 0),
        )
    )
    answered = dict(
        Job.objects.filter(run=run, state=State.SUCCEEDED)
        .order_by()
        .values("model")
        .annotate(out=Avg(F("output_tokens") + F("thought_tokens")))
        .values_list("model", "out")
    )
    standard = ZERO
    jobs = 0
    for group in groups:
        count = group["jobs"]
        jobs += count
        price = ModelPrice.objects.filter(model=group["model"]).first() or (
            pricing.published_price(group["model"])
        )
        if price is None:
            continue
        input_tokens = math.ceil(group["chars"] / 4 / count)
        observed = answered.get(group["model"])
        output_tokens = round(observed) if observed is not None else input_tokens
        per_job = pricing.standard_cost(
            price, input_tokens=input_tokens, output_tokens=output_tokens
        )
        standard += per_job * count
    return StandardQuote(
        jobs=jobs,
        running=unfinished.filter(state=State.RUNNING).count(),
        flex_usd=pricing.tier_cost(standard, Tier.FLEX),
        standard_usd=standard,
        observed=bool(answered),
    )
