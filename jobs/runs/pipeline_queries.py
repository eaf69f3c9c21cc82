"""Read-side figures for a pipeline run: each step's jobs by state and cost,
the rows-by-steps grid a page at a time, and one row's jobs.

The per-step counts are one GROUP BY (step, state) over the run's jobs; the
grid is paged by line number (the row's key), so a page costs the same at
row 10 and row 100,000 and nothing counts the whole table."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Sum
from django.db.models.functions import Coalesce

from jobs.engine.pipelines import Pipeline, Step
from jobs.models import ACTIVE_STATES, FINISHED_STATES, Job, Run, RunRow, State

ROWS_PER_PAGE = 25
# What the grid's filter looks for: a row where some step did not answer.
PROBLEM_STATES = (State.FAILED, State.SKIPPED)
# The order a step's states are listed in, as a row moves through them.
STATE_ORDER = (
    State.WAITING,
    State.QUEUED,
    State.RUNNING,
    State.RETRYING,
    State.SUCCEEDED,
    State.FAILED,
    State.CANCELLED,
    State.SKIPPED,
)
ZERO = Decimal(0)


def run_pipeline(run: Run) -> Pipeline:
    return Pipeline.from_json(run.pipeline)


# --- Per step -----------------------------------------------------------------------
@dataclass(frozen=True)
class StepCounts:
    step: Step
    by_state: dict[str, int]
    cost_usd: Decimal
    standard_cost_usd: Decimal

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def finished(self) -> int:
        return sum(self.by_state.get(state, 0) for state in FINISHED_STATES)

    @property
    def active(self) -> int:
        return sum(self.by_state.get(state, 0) for state in ACTIVE_STATES)

    @property
    def percent(self) -> int:
        """Whole percent finished; 100 only when every job is."""
        if not self.total:
            return 100
        share = 100 * self.finished // self.total
        return 99 if share == 100 and self.active else share

    @property
    def states(self) -> list[tuple[str, int]]:
        """(state, jobs) for the states the step has jobs in, in the order a job moves."""
        return [(state, self.by_state[state]) for state in STATE_ORDER if self.by_state.get(state)]


def step_counts(run: Run, pipeline: Pipeline) -> list[StepCounts]:
    """Each step's jobs by state and cost so far, in the definition's order:
    one grouped query over the run's jobs. A fanned-out step counts its
    placeholder while it waits, then its items."""
    rows = (
        Job.objects.filter(run=run)
        .order_by()
        .values_list("step", "state")
        .annotate(
            n=Count("*"),
            cost=Coalesce(Sum("cost_usd"), ZERO),
            standard=Coalesce(Sum("standard_cost_usd"), ZERO),
        )
    )
    by_step: dict[str, dict] = {
        step.name: {"by_state": {}, "cost": ZERO, "standard": ZERO} for step in pipeline.steps
    }
    for step_name, state, n, cost, standard in rows:
        if (found := by_step.get(step_name)) is None:
            continue
        found["by_state"][state] = n
        found["cost"] += cost
        found["standard"] += standard
    return [
        StepCounts(
            step=step,
            by_state=by_step[step.name]["by_state"],
            cost_usd=by_step[step.name]["cost"],
            standard_cost_usd=by_step[step.name]["standard"],
        )
        for step in pipeline.steps
    ]


# --- The grid -----------------------------------------------------------------------
@dataclass(frozen=True)
class CellJob:
    pk: int
    item: int | None
    state: str


@dataclass
class Cell:
    """One row's jobs of one step: one job, or a fanned-out step's items."""

    step: Step
    jobs: list[CellJob] = field(default_factory=list)

    @property
    def job(self) -> CellJob | None:
        """The one job a step that does not fan out has (or a fan-out's
        placeholder, while it waits on the list)."""
        if len(self.jobs) == 1 and self.jobs[0].item is None:
            return self.jobs[0]
        return None

    @property
    def fanned_out(self) -> bool:
        return self.job is None

    @property
    def succeeded(self) -> int:
        return sum(job.state == State.SUCCEEDED for job in self.jobs)

    @property
    def state(self) -> str:
        """The state the cell shows for its items: the first that holds the row
        back (failed, then still active), else the way they all ended."""
        states = {job.state for job in self.jobs}
        for state in (State.FAILED, State.SKIPPED, State.CANCELLED, *ACTIVE_STATES):
            if state in states:
                return state
        return State.SUCCEEDED

    @property
    def problem(self) -> bool:
        return any(job.state in PROBLEM_STATES for job in self.jobs)


@dataclass(frozen=True)
class GridRow:
    line_number: int
    custom_id: str
    cells: list[Cell]

    @property
    def problem(self) -> bool:
        return any(cell.problem for cell in self.cells)

    @property
    def active(self) -> bool:
        return any(job.state in ACTIVE_STATES for cell in self.cells for job in cell.jobs)


@dataclass(frozen=True)
class GridPage:
    """A page of the grid, found by its neighbour's line number: `after` for
    the "Later rows" link, `before` for "Earlier rows"; None at either end."""

    steps: tuple[Step, ...]
    rows: list[GridRow]
    before: int | None
    after: int | None

    @property
    def live(self) -> bool:
        return any(row.active for row in self.rows)

    def has_other_pages(self) -> bool:
        return self.before is not None or self.after is not None


def grid_page(
    run: Run,
    pipeline: Pipeline,
    *,
    problems: bool = False,
    row: int | None = None,
    after: int | None = None,
    before: int | None = None,
) -> GridPage:
    """The rows after `after` (or before `before`), ROWS_PER_PAGE of them, in
    line order, each with its jobs by step. `problems`: only rows with a failed
    or skipped job, found from those jobs (the (run, state) index), not by
    walking every row. `row`: that row alone."""
    if row is not None:
        lines = [row]
        earlier = later = None
    else:
        lines, earlier, later = _page_lines(run, problems=problems, after=after, before=before)
    rows = {
        found.line_number: found
        for found in RunRow.objects.filter(run=run, line_number__in=lines).only(
            "line_number", "custom_id"
        )
    }
    cells: dict[int, dict[str, Cell]] = {
        line: {step.name: Cell(step) for step in pipeline.steps} for line in rows
    }
    jobs = (
        Job.objects.filter(run=run, line_number__in=list(rows))
        .order_by("line_number", "item", "pk")
        .values_list("pk", "line_number", "step", "item", "state")
    )
    for pk, line, step_name, item, state in jobs:
        if (cell := cells[line].get(step_name)) is not None:
            cell.jobs.append(CellJob(pk=pk, item=item, state=state))
    grid_rows = [
        GridRow(
            line_number=line,
            custom_id=rows[line].custom_id,
            cells=[cells[line][step.name] for step in pipeline.steps],
        )
        for line in lines
        if line in rows
    ]
    return GridPage(steps=pipeline.steps, rows=grid_rows, before=earlier, after=later)


def _page_lines(
    run: Run, *, problems: bool, after: int | None, before: int | None
) -> tuple[list[int], int | None, int | None]:
    """The page's line numbers, and the cursors of the pages either side (the
    first and last line shown, when there are rows beyond them). A cursor past
    either end gives the first page."""
    if problems:
        source = (
            Job.objects.filter(run=run, state__in=PROBLEM_STATES)
            .values_list("line_number", flat=True)
            .distinct()
        )
    else:
        source = RunRow.objects.filter(run=run).values_list("line_number", flat=True)
    size = ROWS_PER_PAGE

    def lines(order: str, **lookup: int) -> list[int]:
        return list(source.filter(**lookup).order_by(order)[: size + 1])

    def beyond(order: str, **lookup: int) -> bool:
        return bool(source.filter(**lookup).order_by(order)[:1])

    found: list[int] = []
    if before is not None and (found := lines("-line_number", line_number__lt=before)):
        more_before = len(found) > size
        found = found[:size][::-1]
        more_after = beyond("line_number", line_number__gt=found[-1])
    elif after is not None and (found := lines("line_number", line_number__gt=after)):
        more_after = len(found) > size
        found = found[:size]
        more_before = beyond("-line_number", line_number__lt=found[0])
    if not found:
        found = lines("line_number")
        more_before, more_after = False, len(found) > size
        found = found[:size]
    earlier = found[0] if more_before else None
    later = found[-1] if more_after else None
    return found, earlier, later


# --- One row ------------------------------------------------------------------------
@dataclass(frozen=True)
class RowJobs:
    row: RunRow
    steps: list[tuple[Step, list[Job]]]


def row_jobs(run: Run, pipeline: Pipeline, line_number: int) -> RowJobs | None:
    """A row's values and every job of it, by step and item; None if the run has no such row."""
    row = RunRow.objects.filter(run=run, line_number=line_number).first()
    if row is None:
        return None
    by_step: dict[str, list[Job]] = {step.name: [] for step in pipeline.steps}
    jobs = (
        Job.objects.filter(run=run, line_number=line_number)
        .order_by("item", "pk")
        .only("pk", "step", "item", "state", "attempts", "max_attempts", "cost_usd", "last_error")
    )
    for job in jobs:
        by_step.setdefault(job.step, []).append(job)
    return RowJobs(row=row, steps=[(step, by_step[step.name]) for step in pipeline.steps])
