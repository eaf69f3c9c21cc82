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
from django.db.models import Count, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, Length, Substr, TruncMinute
from django.utils import timezone

from jobs.catalog import FLEX_MODELS
from jobs.engine import budgets, capacity, control, counts, pricing
from jobs.models import (
    ACTIVE_STATES,
    FINISHED_STATES,
    WAITING_STATES,
    Attempt,
    DispatcherSlot,
    Job,
    ModelPrice,
    Outcome,
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

    def jobs_by_state(self) -> dict[str, int]:
        """From the stored counts (jobs/engine/counts.py): the same few rows at
        a thousand jobs and at a million."""
        return counts.by_state(self.owner_id)


# --- Counts by state ---------------------------------------------------------------
@dataclass(frozen=True)
class StateCount:
    state: str
    label: str
    count: int


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
        return [
            StateCount(state, label, self.by_state.get(state, 0)) for state, label in State.choices
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
    totals = scope.jobs().aggregate(
        http_503=Coalesce(Sum("http_503"), 0), http_429=Coalesce(Sum("http_429"), 0)
    )
    # Per attempt for the last hour: the jobs' counters have no time.
    recent = scope.attempts().filter(started_at__gte=now - timedelta(hours=1))
    last_hour = recent.aggregate(
        http_503=Count("id", filter=Q(http_status=503)),
        http_429=Count("id", filter=Q(http_status=429)),
    )
    return ErrorTotals(
        http_503=totals["http_503"],
        http_429=totals["http_429"],
        http_503_last_hour=last_hour["http_503"],
        http_429_last_hour=last_hour["http_429"],
    )


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
    counts = {f"n{n}": Count("id", filter=Q(attempts=n)) for n in range(1, ATTEMPT_BUCKETS)} | {
        f"n{ATTEMPT_BUCKETS}": Count("id", filter=Q(attempts__gte=ATTEMPT_BUCKETS))
    }
    row = (
        scope.jobs()
        .filter(attempts__gt=0)
        .aggregate(
            tried=Count("id"),
            total=Coalesce(Sum("attempts"), 0),
            most=Coalesce(Max("attempts"), 0),
            **counts,
        )
    )
    buckets = [AttemptBucket(str(n), row[f"n{n}"]) for n in range(1, ATTEMPT_BUCKETS)]
    buckets.append(AttemptBucket(f"{ATTEMPT_BUCKETS}+", row[f"n{ATTEMPT_BUCKETS}"]))
    return AttemptStats(jobs=row["tried"], attempts=row["total"], most=row["most"], buckets=buckets)


# --- Outcomes per minute (the chart) --------------------------------------------------
@dataclass(frozen=True)
class MinuteOutcomes:
    minute: datetime
    succeeded: int
    http_503: int
    http_429: int


def counts_per_minute(
    scope: Scope, *, now: datetime, minutes: int, **counts: Count
) -> list[tuple[datetime, dict[str, int]]]:
    """(minute, {name: count}) for each of the last `minutes` minutes, oldest first,
    ending with the current one, every name 0 in a minute without attempts; an
    attempt counts in the minute it finished (when its outcome was known)."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    # No attempt finishes later than its request timeout after it started, so
    # bounding started_at too lets the database use the attempt_started index.
    earliest_start = start - timedelta(seconds=settings.FLEX_REQUEST_TIMEOUT + 60)
    rows = (
        scope.attempts()
        .filter(started_at__gte=earliest_start, finished_at__gte=start, finished_at__lt=end)
        .annotate(minute=TruncMinute("finished_at"))
        .values("minute")
        .annotate(**counts)
        .order_by("minute")
    )
    found = {row["minute"]: row for row in rows}
    series = []
    for offset in range(minutes):
        minute = start + timedelta(minutes=offset)
        row = found.get(minute, {})
        series.append((minute, {name: row.get(name, 0) for name in counts}))
    return series


def outcomes_per_minute(scope: Scope, *, now: datetime, minutes: int) -> list[MinuteOutcomes]:
    """Successes, 503s and 429s per minute (counts_per_minute)."""
    series = counts_per_minute(
        scope,
        now=now,
        minutes=minutes,
        succeeded=Count("id", filter=Q(outcome=Outcome.SUCCEEDED)),
        http_503=Count("id", filter=Q(http_status=503)),
        http_429=Count("id", filter=Q(http_status=429)),
    )
    return [MinuteOutcomes(minute=minute, **found) for minute, found in series]


# The windows the chart fits itself to, in minutes, shortest first.
FIT_WINDOWS = (15, 30, 60, 180, 360, 1440)
# The part of a fitted window the work may fill: the rest, on the left, shows
# the quiet before it started.
FIT_SHARE = 0.9


def chart_minutes(scope: Scope, *, now: datetime, hours: int | None) -> int:
    """The chart's window: `hours` when chosen, else the shortest of
    FIT_WINDOWS that holds every attempt of the last day (an hour when none)."""
    if hours:
        return hours * 60
    first = (
        scope.attempts()
        .filter(started_at__gte=now - timedelta(minutes=FIT_WINDOWS[-1]))
        .order_by("started_at")
        .values_list("started_at", flat=True)
        .first()
    )
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
    and what the same tokens would have cost on standard."""
    since = timezone.localtime(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    row = (
        scope.jobs()
        .filter(finished_at__gte=since, cost_usd__isnull=False)
        .aggregate(
            answers=Count("id"),
            cost=Coalesce(Sum("cost_usd"), Decimal(0)),
            standard=Coalesce(Sum("standard_cost_usd"), Decimal(0)),
        )
    )
    return MonthCost(
        since=since,
        answers=row["answers"],
        cost_usd=money(row["cost"]),
        standard_cost_usd=money(row["standard"]),
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
CANCELLABLE_STATES = WAITING_STATES
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
