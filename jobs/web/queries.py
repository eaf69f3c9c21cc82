"""Read-side aggregates for the pages: what the dashboard counts and charts.

Nothing here changes a row (that is `jobs/engine/`); views call these so
they stay thin, and every query is limited to a `Scope` so a researcher only
ever counts their own jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Max, Min, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, Length, Substr
from django.utils import timezone

from jobs.catalog import FLEX_MODELS
from jobs.engine import actions, budgets, capacity, control, counts, pricing
from jobs.models import (
    ACTIVE_STATES,
    FINISHED_STATES,
    WAITING_STATES,
    Attempt,
    DispatcherSlot,
    Job,
    ModelPrice,
    State,
    Tier,
)
from jobs.web import search as job_search

PROMPT_EXCERPT_CHARS = 140
# Attempts per job are shown as a histogram with this last, open bucket.
ATTEMPT_BUCKETS = 5


@dataclass(frozen=True)
class Scope:
    """Whose jobs a page shows: one owner's, or everyone's (staff only)."""

    owner_id: int | None

    def jobs(self) -> QuerySet[Job]:
        jobs = Job.objects.all()
        return jobs if self.owner_id is None else jobs.filter(owner_id=self.owner_id)

    def attempts(self) -> QuerySet[Attempt]:
        attempts = Attempt.objects.all()
        return attempts if self.owner_id is None else attempts.filter(job__owner_id=self.owner_id)

    # From the stored counts (jobs/engine/counts.py): the same few rows at a
    # thousand jobs and at a million. A run's scope counts its own jobs.
    def jobs_by_state(self) -> dict[str, int]:
        return counts.by_state(self.owner_id)

    def jobs_by_attempts(self) -> counts.AttemptsTally:
        return counts.by_attempts(self.owner_id)

    def http_totals(self) -> tuple[int, int]:
        """The 503s and 429s of all the scope's jobs."""
        tally = self.jobs_by_attempts()
        return tally.http_503, tally.http_429

    def outcomes_by_minute(
        self, *, start: datetime, end: datetime
    ) -> dict[datetime, counts.Outcomes]:
        """Successes, 503s and 429s of the attempts that finished in each minute of [start, end)."""
        return counts.outcomes_by_minute(self.owner_id, start=start, end=end)

    def first_outcome_minute(self, *, start: datetime, end: datetime) -> datetime | None:
        return counts.first_outcome_minute(self.owner_id, start=start, end=end)


# --- Counts by state ---------------------------------------------------------------
@dataclass(frozen=True)
class StateCount:
    state: str
    label: str
    count: int


# The states only pipelines reach: listed only when some job is in one.
PIPELINE_STATES = (State.WAITING, State.SKIPPED)


@dataclass(frozen=True)
class StateCounts:
    by_state: dict[str, int]
    soonest_retry_at: datetime | None

    @property
    def active(self) -> int:
        return sum(self.by_state.get(state, 0) for state in ACTIVE_STATES)

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def rows(self) -> list[StateCount]:
        """Every state, the two only pipelines have only when some job is in them."""
        return [
            StateCount(state, label, self.by_state.get(state, 0))
            for state, label in State.choices
            if state not in PIPELINE_STATES or self.by_state.get(state)
        ]


def state_counts(scope: Scope) -> StateCounts:
    soonest = scope.jobs().filter(state=State.RETRYING).aggregate(at=Min("next_attempt_at"))["at"]
    return StateCounts(by_state=scope.jobs_by_state(), soonest_retry_at=soonest)


# --- 503s and 429s ------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorTotals:
    http_503: int
    http_429: int
    http_503_last_hour: int
    http_429_last_hour: int


def error_totals(scope: Scope, *, now: datetime) -> ErrorTotals:
    """503s and 429s of all the scope's jobs, and of the attempts that
    finished in the last 60 minutes (the current one included)."""
    http_503, http_429 = scope.http_totals()
    end = minute_of(now) + timedelta(minutes=1)
    last_hour = scope.outcomes_by_minute(start=end - timedelta(minutes=60), end=end).values()
    return ErrorTotals(
        http_503=http_503,
        http_429=http_429,
        http_503_last_hour=sum(minute.http_503 for minute in last_hour),
        http_429_last_hour=sum(minute.http_429 for minute in last_hour),
    )


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


# --- Attempts per job -----------------------------------------------------------------
@dataclass(frozen=True)
class AttemptBucket:
    label: str
    jobs: int


@dataclass(frozen=True)
class AttemptStats:
    jobs: int
    attempts: int
    most: int
    buckets: list[AttemptBucket]

    @property
    def average(self) -> float | None:
        return self.attempts / self.jobs if self.jobs else None


def attempt_stats(scope: Scope) -> AttemptStats:
    """Attempts per job, over jobs that have been tried at least once."""
    tried = {n: jobs for n, jobs in scope.jobs_by_attempts().jobs_by_attempts.items() if n > 0}
    buckets = [AttemptBucket(str(n), tried.get(n, 0)) for n in range(1, ATTEMPT_BUCKETS)]
    last = sum(jobs for n, jobs in tried.items() if n >= ATTEMPT_BUCKETS)
    buckets.append(AttemptBucket(f"{ATTEMPT_BUCKETS}+", last))
    return AttemptStats(
        jobs=sum(tried.values()),
        attempts=sum(n * jobs for n, jobs in tried.items()),
        most=max(tried, default=0),
        buckets=buckets,
    )


# --- Outcomes per minute (the chart) --------------------------------------------------
@dataclass(frozen=True)
class MinuteOutcomes:
    minute: datetime
    succeeded: int
    http_503: int
    http_429: int


def last_minutes(now: datetime, minutes: int) -> list[datetime]:
    """The last `minutes` minutes, oldest first, ending with the current one."""
    current = minute_of(now)
    return [current - timedelta(minutes=back) for back in reversed(range(minutes))]


def outcomes_per_minute(scope: Scope, *, now: datetime, minutes: int) -> list[MinuteOutcomes]:
    """Successes, 503s and 429s per minute for each of the last `minutes`
    minutes, oldest first, ending with the current one; an attempt counts in
    the minute it finished (when its outcome was known)."""
    each = last_minutes(now, minutes)
    found = scope.outcomes_by_minute(start=each[0], end=each[-1] + timedelta(minutes=1))
    series = []
    for minute in each:
        seen = found.get(minute, counts.Outcomes())
        series.append(MinuteOutcomes(minute, seen.succeeded, seen.http_503, seen.http_429))
    return series


# The windows the chart fits itself to, in minutes, shortest first.
FIT_WINDOWS = (15, 30, 60, 180, 360, 1440)
# The part of a fitted window the work may fill: the rest, on the left, shows
# the quiet before it started.
FIT_SHARE = 0.9


def chart_minutes(scope: Scope, *, now: datetime, hours: int | None) -> int:
    """The chart's window: `hours` when chosen, else the shortest of
    FIT_WINDOWS that holds every minute with an outcome in the last day (an
    hour when there is none)."""
    if hours:
        return hours * 60
    since = minute_of(now) - timedelta(minutes=FIT_WINDOWS[-1] - 1)
    first = scope.first_outcome_minute(start=since, end=minute_of(now) + timedelta(minutes=1))
    if first is None:
        return 60
    span = (now - first).total_seconds() / 60 + 1  # and the minute now under way
    return next((w for w in FIT_WINDOWS if span <= w * FIT_SHARE), FIT_WINDOWS[-1])


# --- The engine ---------------------------------------------------------------------
@dataclass(frozen=True)
class EngineStatus:
    paused: bool
    paused_reason: str
    paused_at: datetime | None
    dispatchers: int
    in_flight: int
    heartbeat_at: datetime | None
    route: str
    backend: str


def engine_status(*, now: datetime) -> EngineStatus:
    switch = control.dispatch_control()
    live = DispatcherSlot.objects.filter(expires_at__gt=now).aggregate(
        dispatchers=Count("number"),
        in_flight=Coalesce(Sum("in_flight"), 0),
        heartbeat_at=Max("heartbeat_at"),
    )
    return EngineStatus(
        paused=switch.paused,
        paused_reason=switch.reason,
        paused_at=switch.paused_at,
        dispatchers=live["dispatchers"],
        in_flight=live["in_flight"],
        heartbeat_at=live["heartbeat_at"],
        route=settings.GEMINI_API,
        backend=settings.GEMINI_BASE_URL or "Google",
    )


# --- Cost this month ----------------------------------------------------------------
def money(value: Decimal | None) -> Decimal | None:
    """A sum of costs at the stored precision (SQLite sums decimals as floats)."""
    return None if value is None else Decimal(value).quantize(Decimal("0.00000001"))


@dataclass(frozen=True)
class MonthCost:
    since: datetime
    answers: int
    cost_usd: Decimal
    standard_cost_usd: Decimal

    @property
    def savings_usd(self) -> Decimal:
        return self.standard_cost_usd - self.cost_usd


def month_cost(scope: Scope, *, now: datetime) -> MonthCost:
    """What the answers that arrived this calendar month (in TIME_ZONE) cost,
    and what the same tokens would have cost on standard (stored per hour:
    counts.spent_since)."""
    since = timezone.localtime(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spent = counts.spent_since(scope.owner_id, since=since)
    return MonthCost(
        since=since,
        answers=spent.answers,
        cost_usd=spent.cost_usd,
        standard_cost_usd=spent.standard_cost_usd,
    )


@dataclass(frozen=True)
class Overview:
    counts: StateCounts
    errors: ErrorTotals
    attempts: AttemptStats
    outcomes: list[MinuteOutcomes]
    engine: EngineStatus
    month: MonthCost
    # Per model, for everyone: the quota is the account's, not one researcher's.
    weather: list[capacity.Weather]
    # The budgets holding the scope's waiting work back.
    budget_holds: list[budgets.Standing]

    @property
    def active(self) -> bool:
        return self.counts.active > 0

    @property
    def weather_unsettled(self) -> bool:
        """A model is throttled or paused: worth watching even with nothing of one's own active."""
        return any(report.state != "normal" for report in self.weather)

    @property
    def weather_headline(self) -> str:
        """What holds the unsettled models back: "a model is throttled or
        paused" when one has a limit it is held to, else what slowed each one
        that has none (a 429 step-down is not a limit)."""
        unsettled = [report for report in self.weather if report.state != "normal"]
        if any(report.label != "Slowed" for report in unsettled):
            return "a model is throttled or paused"
        return "; ".join(report.headline for report in unsettled)


def overview(scope: Scope, *, now: datetime, hours: int | None) -> Overview:
    """hours: the chart's window, or None to fit it to the work (chart_minutes)."""
    minutes = chart_minutes(scope, now=now, hours=hours)
    return Overview(
        counts=state_counts(scope),
        errors=error_totals(scope, now=now),
        attempts=attempt_stats(scope),
        outcomes=outcomes_per_minute(scope, now=now, minutes=minutes),
        engine=engine_status(now=now),
        month=month_cost(scope, now=now),
        weather=capacity.weather(now),
        budget_holds=budgets.holds_for_owner(scope.owner_id, now=now),
    )


# --- The jobs list ------------------------------------------------------------------
def job_filter(
    scope: Scope, *, state: str = "", model: str = "", search: str = "", newest: bool = False
) -> QuerySet[Job]:
    """The jobs the list's filters keep; a search (checked first with
    search.search_problem) asks the word index, in the way that suits a list
    read `newest` first (pages.newest_first_page) or in any other order."""
    jobs = scope.jobs()
    if state == "active":
        jobs = jobs.filter(state__in=ACTIVE_STATES)
    elif state == "finished":
        jobs = jobs.filter(state__in=FINISHED_STATES)
    elif state:
        jobs = jobs.filter(state=state)
    if model:
        jobs = jobs.filter(model=model)
    if search and newest:
        jobs = job_search.newest_matching(jobs, search)
    elif search:
        jobs = job_search.matching(jobs, search)
    return jobs


def job_list(scope: Scope, *, state: str = "", model: str = "", search: str = "") -> QuerySet[Job]:
    """Newest first, the rows of job_rows (for a run's table, which orders
    them its own way)."""
    return job_rows(job_filter(scope, state=state, model=model, search=search)).order_by("-id")


def job_rows(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """The list's columns of `jobs`, with the latency of each job's latest
    finished attempt. Prompts and results can be megabytes: rows carry an
    excerpt only, worked out for the rows of a page once it is chosen."""
    latest_latency = (
        Attempt.objects.filter(job=OuterRef("pk"), latency_seconds__isnull=False)
        .order_by("-number")
        .values("latency_seconds")[:1]
    )
    return (
        jobs.select_related("owner")
        # The whole request and answer may carry megabytes of inline images: a list
        # of jobs never reads them.
        .defer(
            "input_text",
            "result_text",
            "system_instruction",
            "last_error",
            "request",
            "response",
            "output_json",
            "source_line",
            "request_fields",
        )
        .annotate(
            prompt_excerpt=Substr("input_text", 1, PROMPT_EXCERPT_CHARS),
            prompt_chars=Length("input_text"),
            latency=Subquery(latest_latency),
        )
    )


def in_id_order(jobs: QuerySet[Job], ids: list[int]) -> list[Job]:
    """The jobs of `jobs` with these ids, in the order of `ids` (a page chosen
    by its ids first: the jobs list, /api/jobs)."""
    rows = {job.pk: job for job in jobs.filter(pk__in=ids)}
    return [rows[pk] for pk in ids if pk in rows]


def jobs_by_id(ids: list[int]) -> list[Job]:
    """job_rows of these jobs, in the order of `ids` (a page of the jobs list)."""
    return in_id_order(job_rows(Job.objects.all()), ids)


def job_list_total(
    by_state: dict[str, int], *, state: str = "", model: str = "", search: str = ""
) -> int | None:
    """How many jobs the list holds, from the stored counts, when only the
    state narrows it. Under a search or a model filter, None: counting the
    matches would read every one, so such a page is one query, for its rows."""
    if model or search:
        return None
    states = {"active": ACTIVE_STATES, "finished": FINISHED_STATES}.get(state)
    states = states or ((state,) if state else State.values)
    return sum(by_state.get(one, 0) for one in states)


# --- One job ------------------------------------------------------------------------
# The states actions.job_cancel and actions.job_retry_now act on, to offer
# only the buttons that can work.
CANCELLABLE_STATES = actions.CANCELLABLE_STATES
RETRYABLE_STATES = (State.FAILED, State.RETRYING)


def capacity_hold(job: Job, *, now: datetime) -> capacity.Weather | None:
    """The weather of a waiting job's model when it holds the job back (the
    daily cap is spent, or the model is throttled); None otherwise."""
    if job.state not in WAITING_STATES:
        return None
    reports = capacity.weather(now, models=[job.model])
    return next((report for report in reports if report.state != "normal"), None)


@dataclass(frozen=True)
class JobTimes:
    queued: timedelta
    in_flight: timedelta
    backing_off: timedelta


def job_times(job: Job, attempts: list[Attempt], *, now: datetime) -> JobTimes:
    """Where a job's time went: waiting for its first try, with a request in
    flight, and between one attempt's end and the next one's start (backoff,
    or a pause) — up to now, or to when the job finished."""
    end = job.finished_at or now
    queued = (job.first_started_at or end) - job.submitted_at
    in_flight = timedelta()
    backing_off = timedelta()
    previous_end: datetime | None = None
    for attempt in attempts:
        if previous_end is not None:
            backing_off += max(attempt.started_at - previous_end, timedelta())
        finished = attempt.finished_at or now
        in_flight += max(finished - attempt.started_at, timedelta())
        previous_end = attempt.finished_at
    if previous_end is not None and job.state != State.RUNNING:
        backing_off += max(end - previous_end, timedelta())
    return JobTimes(queued=max(queued, timedelta()), in_flight=in_flight, backing_off=backing_off)


# --- Prices -------------------------------------------------------------------------
@dataclass(frozen=True)
class TierPrice:
    tier: str
    input_per_million: Decimal
    output_per_million: Decimal


@dataclass(frozen=True)
class PriceRow:
    model: str
    tiers: list[TierPrice]


def price_table() -> list[PriceRow]:
    """USD per million tokens on every tier, for the models flex runs."""
    prices = {price.model: price for price in ModelPrice.objects.filter(model__in=FLEX_MODELS)}
    rows = []
    for model in FLEX_MODELS:
        price = prices.get(model)
        if price is None:
            continue
        tiers = [
            TierPrice(
                tier=tier,
                input_per_million=pricing.tier_cost(price.input_per_million, tier),
                output_per_million=pricing.tier_cost(price.output_per_million, tier),
            )
            for tier in Tier.values
        ]
        rows.append(PriceRow(model=model, tiers=tiers))
    return rows
