"""The stored counts the overview reads instead of scanning the tables: jobs
by owner and state (JobCount, migration 0013), and the tallies of migration
0016 (JobTally: jobs, 503s and 429s per number of attempts; OutcomeMinute:
successes, 503s and 429s per minute; CostHour: answers and their cost per
hour; RunTally: jobs and their cost per run and state, with their tokens,
503s and 429s since migration 0019; RunMinute, migration 0019: a run's
attempts per minute). Read them, fold
PostgreSQL's delta rows together, and check them against a fresh count of
the jobs and attempts.

The database's triggers write them; nothing here adds to them, so no code
path can forget to."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db import connection, models, transaction
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncHour, TruncMinute

from jobs.models import (
    COST_UNITS_PER_USD,
    ERROR_OUTCOMES,
    Attempt,
    CostHour,
    Job,
    JobCount,
    JobTally,
    Outcome,
    OutcomeMinute,
    RunMinute,
    RunTally,
    Tier,
)


def _owned(model: type[models.Model], owner_id: int | None) -> models.QuerySet:
    rows = model.objects.all()
    return rows if owner_id is None else rows.filter(owner_id=owner_id)


# --- Reading -------------------------------------------------------------------------------
def by_state(owner_id: int | None = None) -> dict[str, int]:
    """Jobs per state, for one owner or for everyone: a few rows, whatever the table holds."""
    rows = _owned(JobCount, owner_id)
    totals = rows.order_by().values_list("state").annotate(n=Sum("n"))
    return {state: n for state, n in totals if n}


def run_by_state(run_id: int) -> dict[str, int]:
    """A run's jobs per state: a few rows, whatever the size of the run."""
    rows = RunTally.objects.filter(run_id=run_id).order_by().values_list("state")
    return {state: n for state, n in rows.annotate(n=Sum("n")) if n}


@dataclass(frozen=True)
class AttemptsTally:
    """Jobs per number of attempts (0 included), and the 503s and 429s of all of them."""

    jobs_by_attempts: dict[int, int]
    http_503: int
    http_429: int


def by_attempts(owner_id: int | None = None) -> AttemptsTally:
    rows = (
        _owned(JobTally, owner_id)
        .order_by()
        .values_list("attempts")
        .annotate(n=Sum("n"), http_503=Sum("http_503"), http_429=Sum("http_429"))
    )
    jobs, http_503, http_429 = {}, 0, 0
    for attempts, n, n503, n429 in rows:
        if n:
            jobs[attempts] = n
        http_503 += n503
        http_429 += n429
    return AttemptsTally(jobs_by_attempts=jobs, http_503=http_503, http_429=http_429)


@dataclass(frozen=True)
class Outcomes:
    finished: int = 0
    succeeded: int = 0
    http_503: int = 0
    http_429: int = 0


def outcomes_by_minute(
    owner_id: int | None, *, start: datetime, end: datetime
) -> dict[datetime, Outcomes]:
    """Attempts that finished in each minute of [start, end), by minute (UTC):
    one row per owner and minute, whatever the attempts table holds."""
    rows = (
        _owned(OutcomeMinute, owner_id)
        .filter(minute__gte=start, minute__lt=end)
        .order_by()
        .values_list("minute")
        .annotate(n=Sum("finished"), s=Sum("succeeded"), n503=Sum("http_503"), n429=Sum("http_429"))
    )
    return {minute: Outcomes(n, s, n503, n429) for minute, n, s, n503, n429 in rows if n}


def first_outcome_minute(owner_id: int | None, *, start: datetime, end: datetime):
    """The earliest minute of [start, end) in which an attempt finished, or
    None: one aggregate, where outcomes_by_minute reads every minute."""
    rows = _owned(OutcomeMinute, owner_id).filter(minute__gte=start, minute__lt=end, finished__gt=0)
    return rows.order_by().aggregate(first=Min("minute"))["first"]


@dataclass(frozen=True)
class RunSums:
    """A run's jobs per state, and what they add up to."""

    by_state: dict[str, int]
    flex_by_state: dict[str, int]  # those asked for flex
    priced: int
    cost_usd: Decimal
    standard_cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    thought_tokens: int
    http_503: int
    http_429: int


def run_sums(run_id: int) -> RunSums:
    """A run's stored sums (RunTally): a few rows, whatever the size of the run."""
    names = RUN_VALUES[1:]
    rows = (
        RunTally.objects.filter(run_id=run_id)
        .order_by()
        .values_list("state")
        .annotate(**{f"total_{name}": Sum(name) for name in ("n", *names)})
    )
    by_state, flex_by_state, totals = {}, {}, dict.fromkeys(names, 0)
    for state, n, *sums in rows:
        if n:
            by_state[state] = n
        values = dict(zip(names, sums, strict=True))
        if values["flex"]:
            flex_by_state[state] = values["flex"]
        for name, value in values.items():
            totals[name] += value
    return RunSums(
        by_state=by_state,
        flex_by_state=flex_by_state,
        priced=totals["priced"],
        cost_usd=_dollars(totals["cost_units"]),
        standard_cost_usd=_dollars(totals["standard_cost_units"]),
        input_tokens=totals["input_tokens"],
        output_tokens=totals["output_tokens"],
        thought_tokens=totals["thought_tokens"],
        http_503=totals["http_503"],
        http_429=totals["http_429"],
    )


@dataclass(frozen=True)
class RunOutcomes:
    finished: int = 0
    succeeded: int = 0
    failed: int = 0  # attempts whose failure ended their job
    errors: int = 0  # attempts that ended in an error, retried or not
    http_503: int = 0
    http_429: int = 0


RUN_OUTCOMES = ("finished", "succeeded", "failed", "errors", "http_503", "http_429")


def run_outcomes_by_minute(
    run_id: int, *, start: datetime, end: datetime
) -> dict[datetime, RunOutcomes]:
    """A run's attempts that finished in each minute of [start, end), by
    minute (UTC), from its stored minutes (RunMinute)."""
    rows = (
        RunMinute.objects.filter(run_id=run_id, minute__gte=start, minute__lt=end)
        .order_by()
        .values_list("minute")
        .annotate(**{f"total_{name}": Sum(name) for name in RUN_OUTCOMES})
    )
    return {minute: RunOutcomes(*values) for minute, *values in rows if values[0]}


@dataclass(frozen=True)
class Spent:
    answers: int
    cost_usd: Decimal
    standard_cost_usd: Decimal


def spent_since(owner_id: int | None, *, since: datetime) -> Spent:
    """Answers that arrived from the hour holding `since` on, and their cost
    (hours are UTC: in a time zone whose offset is not whole hours a month
    starts at the hour before its first minute)."""
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    row = (
        _owned(CostHour, owner_id)
        .filter(hour__gte=hour)
        .aggregate(n=Sum("answers"), cost=Sum("cost_units"), standard=Sum("standard_cost_units"))
    )
    return Spent(
        answers=row["n"] or 0,
        cost_usd=_dollars(row["cost"] or 0),
        standard_cost_usd=_dollars(row["standard"] or 0),
    )


def _dollars(units: int) -> Decimal:
    return (Decimal(units) / COST_UNITS_PER_USD).quantize(Decimal("0.00000001"))


def _units(usd: Decimal | float | None) -> int:
    return 0 if usd is None else int((Decimal(str(usd)) * COST_UNITS_PER_USD).to_integral_value())


# --- Folding (PostgreSQL's delta rows) ---------------------------------------------------------
@dataclass(frozen=True)
class Stored:
    """One stored count: its table, its key columns and its summed columns."""

    model: type[models.Model]
    keys: tuple[str, ...]
    values: tuple[str, ...]
    # Counted afresh from the jobs and attempts: {key: values}.
    count: Callable[[], dict[tuple, tuple]]

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    def fold_sql(self) -> str:
        """Every delta row written so far, summed into one row per key, in one
        statement: the DELETE sees only committed rows and hands exactly those
        to the INSERT, so a delta committed meanwhile is left for the next
        fold, never lost. (SQLite's rows are updated in place: only the
        emptied ones go.)"""
        if connection.vendor != "postgresql":
            return f"DELETE FROM {self.table} WHERE " + " AND ".join(
                f"{v} = 0" for v in self.values
            )
        columns = ", ".join((*self.keys, *self.values))
        keys = ", ".join(self.keys)
        sums = ", ".join(f"sum({v})" for v in self.values)
        nonzero = " OR ".join(f"sum({v}) <> 0" for v in self.values)
        return (
            f"WITH folded AS (DELETE FROM {self.table} RETURNING {columns}) "
            f"INSERT INTO {self.table} ({columns}) SELECT {keys}, {sums} FROM folded "
            f"GROUP BY {keys} HAVING {nonzero}"
        )

    def stored(self) -> dict[tuple, tuple]:
        rows = (
            self.model.objects.order_by()
            .values_list(*self.keys)
            .annotate(**{f"total_{v}": Sum(v) for v in self.values})
        )
        found = {}
        for row in rows:
            key, values = row[: len(self.keys)], row[len(self.keys) :]
            if any(values):
                found[tuple(key)] = tuple(values)
        return found


def _count_states() -> dict[tuple, tuple]:
    rows = Job.objects.order_by().values_list("owner_id", "state").annotate(n=Count("*"))
    return {(owner, state): (n,) for owner, state, n in rows}


def _count_attempts() -> dict[tuple, tuple]:
    rows = (
        Job.objects.order_by()
        .values_list("owner_id", "attempts")
        .annotate(n=Count("*"), n503=Sum("http_503"), n429=Sum("http_429"))
    )
    return {(owner, attempts): (n, n503, n429) for owner, attempts, n, n503, n429 in rows}


def _count_minutes() -> dict[tuple, tuple]:
    rows = (
        Attempt.objects.filter(finished_at__isnull=False)
        .order_by()
        .annotate(minute=TruncMinute("finished_at", tzinfo=UTC))
        .values_list("job__owner_id", "minute")
        .annotate(
            n=Count("id"),
            s=Count("id", filter=Q(outcome=Outcome.SUCCEEDED)),
            n503=Count("id", filter=Q(http_status=503)),
            n429=Count("id", filter=Q(http_status=429)),
        )
    )
    return {(owner, minute): (n, s, n503, n429) for owner, minute, n, s, n503, n429 in rows}


def _count_run_minutes() -> dict[tuple, tuple]:
    rows = (
        Attempt.objects.filter(finished_at__isnull=False, job__run_id__isnull=False)
        .order_by()
        .annotate(minute=TruncMinute("finished_at", tzinfo=UTC))
        .values_list("job__run_id", "minute")
        .annotate(
            n=Count("id"),
            s=Count("id", filter=Q(outcome=Outcome.SUCCEEDED)),
            f=Count("id", filter=Q(outcome=Outcome.FAILED)),
            e=Count("id", filter=Q(outcome__in=ERROR_OUTCOMES)),
            n503=Count("id", filter=Q(http_status=503)),
            n429=Count("id", filter=Q(http_status=429)),
        )
    )
    return {(run, minute): tuple(values) for run, minute, *values in rows}


def _count_runs() -> dict[tuple, tuple]:
    """{(run, state): RUN_VALUES}, money summed in whole units as the triggers do."""
    rows = Job.objects.filter(run_id__isnull=False).values_list(
        "run_id",
        "state",
        "cost_usd",
        "standard_cost_usd",
        "tier_requested",
        "input_tokens",
        "output_tokens",
        "thought_tokens",
        "http_503",
        "http_429",
    )
    found: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(RUN_VALUES))
    for run, state, cost, standard, tier, *sums in rows.iterator(chunk_size=10_000):
        added = [1, _units(cost), _units(standard), cost is not None, tier == Tier.FLEX, *sums]
        found[(run, state)] = [a + b for a, b in zip(found[(run, state)], added, strict=True)]
    return {key: tuple(values) for key, values in found.items()}


def _count_hours() -> dict[tuple, tuple]:
    rows = (
        Job.objects.filter(cost_usd__isnull=False, finished_at__isnull=False)
        .annotate(hour=TruncHour("finished_at", tzinfo=UTC))
        .values_list("owner_id", "hour", "cost_usd", "standard_cost_usd")
    )
    return _priced(rows)


RUN_VALUES = (
    "n",
    "cost_units",
    "standard_cost_units",
    "priced",
    "flex",
    "input_tokens",
    "output_tokens",
    "thought_tokens",
    "http_503",
    "http_429",
)


def _priced(rows: models.QuerySet) -> dict[tuple, tuple]:
    """{(a, b): (jobs, cost units, standard cost units)} from rows of (a, b,
    cost, standard cost), summed here in whole units as the triggers do:
    SQLite would sum the decimals as floats."""
    found: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for first, second, cost, standard in rows.iterator(chunk_size=10_000):
        sums = found[(first, second)]
        sums[0] += 1
        sums[1] += _units(cost)
        sums[2] += _units(standard)
    return {key: tuple(sums) for key, sums in found.items()}


STORED = (
    Stored(JobCount, ("owner_id", "state"), ("n",), _count_states),
    Stored(JobTally, ("owner_id", "attempts"), ("n", "http_503", "http_429"), _count_attempts),
    Stored(
        OutcomeMinute,
        ("owner_id", "minute"),
        ("finished", "succeeded", "http_503", "http_429"),
        _count_minutes,
    ),
    Stored(RunTally, ("run_id", "state"), RUN_VALUES, _count_runs),
    Stored(
        RunMinute,
        ("run_id", "minute"),
        RUN_OUTCOMES,
        _count_run_minutes,
    ),
    Stored(
        CostHour,
        ("owner_id", "hour"),
        ("answers", "cost_units", "standard_cost_units"),
        _count_hours,
    ),
)


def fold() -> None:
    """Keep the stored counts a few rows per key (the minute Schedule calls this)."""
    with connection.cursor() as cursor:
        for stored in STORED:
            cursor.execute(stored.fold_sql())


# --- Checking -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Difference:
    table: str
    whose: str  # "owner 3", "run 7"
    key: object  # the state, the number of attempts, the minute or the hour
    columns: tuple[str, ...]
    stored: tuple
    counted: tuple

    def describe(self) -> str:
        key = self.key
        if isinstance(key, datetime):
            key = key.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        elif isinstance(key, int):
            key = f"{key} attempts"

        def show(values: tuple) -> str:
            if len(values) == 1:
                return f"{values[0]:,}"
            return ", ".join(f"{c} {v:,}" for c, v in zip(self.columns, values, strict=True))

        return (
            f"{self.table} {self.whose}, {key}: stored {show(self.stored)}, "
            f"counted {show(self.counted)}"
        )


def recount(*, fix: bool = False) -> list[Difference]:
    """Where the stored counts differ from counting the jobs and attempts;
    with `fix`, they are rewritten from those. The tables are held still
    meanwhile (SQLite's write lock; a SHARE lock on PostgreSQL, which lets
    pages read)."""
    differences: list[Difference] = []
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("LOCK TABLE jobs_job, jobs_attempt IN SHARE MODE")
        for stored in STORED:
            counted = stored.count()
            found = _differences(stored, stored.stored(), counted)
            differences += found
            if fix and found:
                _rewrite(stored, counted)
    return differences


def _differences(stored: Stored, have: dict, counted: dict) -> list[Difference]:
    zero = (0,) * len(stored.values)
    found = []
    for key in sorted(have.keys() | counted.keys(), key=repr):
        if have.get(key, zero) != counted.get(key, zero):
            first, rest = key
            found.append(
                Difference(
                    stored.model.__name__,
                    f"{stored.keys[0].removesuffix('_id')} {first}",
                    rest,
                    stored.values,
                    have.get(key, zero),
                    counted.get(key, zero),
                )
            )
    return found


def _rewrite(stored: Stored, counted: dict) -> None:
    stored.model.objects.all().delete()
    stored.model.objects.bulk_create(
        (
            stored.model(
                **dict(zip(stored.keys, key, strict=True)),
                **dict(zip(stored.values, values, strict=True)),
            )
            for key, values in counted.items()
        ),
        batch_size=5_000,
    )
