"""Read-side figures for runs: progress, rate, cost so far and projected, the
price of moving to standard, and the rows the downloads stream.

Nothing here changes a row (that is `jobs/runs/services.py`). The jobs-list queries in
`jobs/web/queries.py` work on a run through `RunScope`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Avg, Count, F, Min, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, Length

from jobs import formats
from jobs.engine import pricing
from jobs.models import (
    ACTIVE_STATES,
    FINISHED_STATES,
    WAITING_STATES,
    Job,
    ModelPrice,
    Run,
    State,
    Tier,
)
from jobs.redaction import redact_api_key
from jobs.web.queries import (
    ErrorTotals,
    MinuteOutcomes,
    Scope,
    StateCounts,
    error_totals,
    money,
)
from jobs.web.queries import outcomes_per_minute as _outcomes_per_minute

# The window the rate (and so the ETA) is measured over.
RATE_MINUTES = 5
# A rate measured over less time than this says nothing yet.
MIN_RATE_SECONDS = 10
EXPORT_CHUNK = 2000
ZERO = Decimal(0)


@dataclass(frozen=True)
class RunScope(Scope):
    """The jobs of one run, for the jobs-list queries (access already checked)."""

    run_id: int = 0

    def jobs(self) -> QuerySet[Job]:
        return super().jobs().filter(run_id=self.run_id)

    def attempts(self):
        return super().attempts().filter(job__run_id=self.run_id)


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
    minutes: list[MinuteOutcomes]
    rate_per_minute: float | None
    eta: timedelta | None
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
        return sum(self.counts.by_state.get(state, 0) for state in WAITING_STATES)

    @property
    def failed(self) -> int:
        return self.counts.by_state.get(State.FAILED, 0)

    @property
    def unanswered(self) -> int:
        """Lines without an answer (failed, cancelled or not finished): what the
        failed-and-unfinished download holds."""
        return self.total - self.counts.by_state.get(State.SUCCEEDED, 0)

    @property
    def busiest_minute(self) -> int:
        return max((minute.succeeded for minute in self.minutes), default=0)

    @property
    def savings_usd(self) -> Decimal:
        return self.standard_cost_usd - self.cost_usd

    @property
    def projected_savings_usd(self) -> Decimal:
        return self.projected_standard_cost_usd - self.projected_cost_usd


def run_progress(run: Run, counts: StateCounts, *, now: datetime) -> RunProgress:
    scope = run_scope(run)
    jobs = scope.jobs()
    sums = jobs.aggregate(
        input_tokens=Coalesce(Sum("input_tokens"), 0),
        output_tokens=Coalesce(Sum("output_tokens"), 0),
        thought_tokens=Coalesce(Sum("thought_tokens"), 0),
        cost=Coalesce(Sum("cost_usd"), ZERO),
        standard=Coalesce(Sum("standard_cost_usd"), ZERO),
        priced=Count("id", filter=Q(cost_usd__isnull=False)),
        started=Min("first_started_at"),
        unfinished_flex=Count("id", filter=Q(state__in=ACTIVE_STATES, tier_requested=Tier.FLEX)),
    )
    active = counts.active
    # A finished run keeps the rate of its last minutes, not one that decays to zero.
    until = now if active or run.finished_at is None else run.finished_at
    rate = _rate_per_minute(jobs, started=sums["started"], until=until)
    eta = timedelta(minutes=active / rate) if rate and active else None
    cost, standard, priced = money(sums["cost"]), money(sums["standard"]), sums["priced"]
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
        minutes=_outcomes_per_minute(scope, now=now, minutes=_minutes_shown(run, now=now)),
        rate_per_minute=rate,
        eta=eta,
        input_tokens=sums["input_tokens"],
        output_tokens=sums["output_tokens"],
        thought_tokens=sums["thought_tokens"],
        cost_usd=cost,
        standard_cost_usd=standard,
        projected_cost_usd=money(projected),
        projected_standard_cost_usd=money(projected_standard),
        priced_jobs=priced,
        unfinished_flex=sums["unfinished_flex"],
    )


def _minutes_shown(run: Run, *, now: datetime) -> int:
    """The per-minute table's length: the last RATE_MINUTES * 2 minutes, but
    none before the minute the run was created (nothing of it happened then)."""
    created = run.created_at.replace(second=0, microsecond=0)
    current = now.replace(second=0, microsecond=0)
    since_created = (current - created) // timedelta(minutes=1) + 1
    return max(1, min(RATE_MINUTES * 2, since_created))


def _rate_per_minute(jobs: QuerySet[Job], *, started: datetime | None, until: datetime):
    """Jobs answered or failed per minute over the RATE_MINUTES before
    `until` (or since the first job started, when that is sooner)."""
    if started is None:
        return None
    since = max(started, until - timedelta(minutes=RATE_MINUTES))
    seconds = (until - since).total_seconds()
    if seconds < MIN_RATE_SECONDS:
        return None
    done = jobs.filter(
        state__in=(State.SUCCEEDED, State.FAILED), finished_at__gte=since, finished_at__lte=until
    ).count()
    return done * 60 / seconds


# --- The list of runs ----------------------------------------------------------------
def run_list(user) -> QuerySet[Run]:
    """Newest first, with each run's counts and cost."""
    return (
        visible_runs(user)
        .annotate(
            total=Count("jobs"),
            finished=Count("jobs", filter=Q(jobs__state__in=FINISHED_STATES)),
            active=Count("jobs", filter=Q(jobs__state__in=ACTIVE_STATES)),
            failed=Count("jobs", filter=Q(jobs__state=State.FAILED)),
            cost=Sum("jobs__cost_usd"),
            standard_cost=Sum("jobs__standard_cost_usd"),
        )
        .order_by("-created_at", "-id")
    )


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


# --- Downloads ------------------------------------------------------------------------
_ROW_FIELDS = (
    "custom_id",
    "input_text",
    "state",
    "attempts",
    "http_503",
    "http_429",
    "input_tokens",
    "output_tokens",
    "thought_tokens",
    "cost_usd",
    "result_text",
    "last_error",
    "model",
    "response_id",
    "response",
    "finish_reason",
    "cut_at_limit",
    "output_json",
    "output_problem",
    "finished_at",
)


def _redacted(value):
    """Any JSON value with the Gemini key out of its text (decoded again only when
    the key was there)."""
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False)
    cleaned = redact_api_key(text)
    return value if cleaned == text else json.loads(cleaned)


def _result_row(values: dict) -> formats.ResultRow:
    cost = values["cost_usd"]
    finished_at = values["finished_at"]
    return formats.ResultRow(
        custom_id=values["custom_id"],
        prompt=redact_api_key(values["input_text"]),
        state=values["state"],
        attempts=values["attempts"],
        http_503=values["http_503"],
        http_429=values["http_429"],
        input_tokens=values["input_tokens"],
        output_tokens=values["output_tokens"],
        thought_tokens=values["thought_tokens"],
        cost_usd="" if cost is None else f"{cost:f}",
        output_text=redact_api_key(values["result_text"]),
        error=redact_api_key(values["last_error"]),
        model=values["model"],
        response_id=values["response_id"],
        finished=values["state"] in FINISHED_STATES,
        succeeded=values["state"] == State.SUCCEEDED,
        response=_redacted(values["response"]),
        finish_reason=values["finish_reason"],
        cut_at_limit=values["cut_at_limit"],
        output_json=_redacted(values["output_json"]),
        output_problem=values["output_problem"],
        created=int(finished_at.timestamp()) if finished_at else 0,
        source=redact_api_key(values.get("source_line", "")),
        legacy_fields=_redacted_request(values.get("request_fields") or {}),
    )


def result_rows(run: Run) -> Iterator[formats.ResultRow]:
    """Every job of the run in file order, fetched EXPORT_CHUNK rows at a time."""
    rows = Job.objects.filter(run=run).order_by("id").values(*_ROW_FIELDS)
    for values in rows.iterator(chunk_size=EXPORT_CHUNK):
        yield _result_row(values)


def resubmit_lines(run: Run) -> Iterator[formats.ResultRow]:
    """The lines without an answer (failed, cancelled or still unfinished), in
    file order, each with the line as it was uploaded."""
    rows = (
        Job.objects.filter(run=run)
        .exclude(state=State.SUCCEEDED)
        .order_by("id")
        .values(*_ROW_FIELDS, "source_line", "request_fields")
    )
    for values in rows.iterator(chunk_size=EXPORT_CHUNK):
        yield _result_row(values)


def _redacted_request(fields: dict) -> dict:
    """A line's request_fields with the key out of its prompt and system instruction."""
    texts = ("prompt", "system_instruction")
    return {name: redact_api_key(v) if name in texts else v for name, v in fields.items()}
