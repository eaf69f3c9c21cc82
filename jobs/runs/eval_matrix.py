"""An eval run's matrix: its rows by candidates, each cell the candidate's answer
with its grades, and each pairwise grader's two verdicts, a page at a time,
filtered to the rows a researcher looks at first (where the candidates
disagree, where the judge and the checks disagree, where something could not
be graded).

The flags come from grading each row (jobs/runs/leaderboard.py graded_rows),
so a filter is found by reading the rows in file order, not by a query: one
pass over the eval counts every filter's rows and keeps only the page asked
for (and the last page, for a page number past the end), so memory stays at a
page whatever the eval's size. That pass costs what the leaderboard's does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import QuerySet

from jobs.models import ACTIVE_STATES, Run
from jobs.runs import queries as run_queries
from jobs.runs.leaderboard import Cell, Grade, GradedRow, PairCell, graded_rows
from jobs.runs.pipeline_downloads import UNANSWERED_STATES

ROWS_PER_PAGE = 50


def visible_evals(user) -> QuerySet[Run]:
    """The eval runs this user may see (their own; staff see everyone's)."""
    return run_queries.visible_runs(user).filter(evaluation__isnull=False)


# --- The filters ----------------------------------------------------------------------
def _cant_grade(row: GradedRow, jobs: dict[str, dict], evaluation: dict) -> bool:
    """An answer that failed, a grade the grader could not give, or a pairwise
    comparison whose two jobs finished without both verdicts."""
    for cell in row.cells.values():
        if cell.job_id is not None and cell.state in UNANSWERED_STATES:
            return True
        if any(grade.state == "ungraded" for grade in cell.grades.values()):
            return True
    return any(pair.ungraded for pair in row.pairs.values())


@dataclass(frozen=True)
class MatrixFilter:
    key: str
    label: str
    keeps: Callable[[GradedRow, dict[str, dict], dict], bool]


FILTERS = (
    MatrixFilter("all", "All rows", lambda row, jobs, evaluation: True),
    MatrixFilter("disagree", "Candidates disagree", lambda row, jobs, ev: row.candidates_disagree),
    MatrixFilter(
        "judge-checks",
        "Judge and checks disagree",
        lambda row, jobs, evaluation: row.judge_checks_disagree,
    ),
    MatrixFilter("ungraded", "Ungraded or failed", _cant_grade),
)
FILTER_KEYS = tuple(f.key for f in FILTERS)


# --- What a page shows ----------------------------------------------------------------
@dataclass(frozen=True)
class GradeShown:
    """A grade as the cell shows it: `mark` the few characters, `title` the words
    behind them (an ungraded answer's reason)."""

    grader: str
    kind: str
    state: str
    mark: str
    title: str
    job_id: int | None


@dataclass(frozen=True)
class CellShown:
    candidate: dict
    job_id: int | None
    state: str
    text: str
    grades: list[GradeShown]


@dataclass(frozen=True)
class PairShown:
    """A pairwise grader's verdict in each order, named by the candidate it picks."""

    grader: str
    ab: str  # e.g. "A (big)", "tie", "—"
    ba: str
    ab_job: int | None
    ba_job: int | None
    flipped: bool
    outcome: float | None


@dataclass(frozen=True)
class MatrixRow:
    line: int
    custom_id: str
    values: dict
    cells: list[CellShown]
    pairs: list[PairShown]
    candidates_disagree: bool
    judge_checks_disagree: bool


@dataclass(frozen=True)
class MatrixPage:
    show: str
    number: int
    pages: int
    rows: list[MatrixRow]
    counts: dict[str, int]  # filter key -> its rows
    candidates: list[dict]
    graders: list[dict]  # the checks and judges, in definition order
    pairwise: list[dict]
    pending: int  # rows with an answer or a grade still on its way

    @property
    def matched(self) -> int:
        return self.counts[self.show]

    @property
    def filters(self) -> list[tuple[MatrixFilter, int]]:
        return [(f, self.counts[f.key]) for f in FILTERS]

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.pages else None


def _score_words(value: float) -> str:
    return f"{value:g}"


def _grade_shown(grader: dict, grade: Grade, cell: Cell) -> GradeShown:
    name, kind = grader["name"], grader["kind"]
    if grade.state == "graded" and kind == "check":
        passed = grade.value == 1.0
        mark, title = ("✓", "passes") if passed else ("✗", "fails")
        return GradeShown(name, kind, "pass" if passed else "fail", mark, f"{name}: {title}", None)
    if grade.state == "graded":
        words = _score_words(grade.value)
        return GradeShown(name, kind, "graded", words, f"{name}: {words}", grade.job_id)
    if grade.state == "ungraded":
        why = grade.note or "the grader could not grade it"
        return GradeShown(name, kind, "ungraded", "ungraded", f"{name}: {why}", grade.job_id)
    if grade.state == "no-answer":
        title = f"{name}: nothing to grade, the answer {cell.state}"
        return GradeShown(name, kind, "no-answer", cell.state, title, None)
    return GradeShown(name, kind, "pending", "pending", f"{name}: still on its way", grade.job_id)


def _verdict_words(verdict: str | None, picks: dict[str, str]) -> str:
    if verdict is None:
        return "—"
    return verdict if verdict == "tie" else f"{verdict} ({picks[verdict]})"


def _pair_shown(grader: dict, pair: PairCell, labels: dict[str, str]) -> PairShown:
    first, second = (labels[key] for key in grader["compare"])
    return PairShown(
        grader=grader["name"],
        ab=_verdict_words(pair.ab, {"A": first, "B": second}),
        ba=_verdict_words(pair.ba, {"A": second, "B": first}),
        ab_job=pair.ab_job,
        ba_job=pair.ba_job,
        flipped=bool(pair.flipped),
        outcome=pair.outcome,
    )


def _row_shown(row: GradedRow, evaluation: dict) -> MatrixRow:
    graders = [g for g in evaluation["graders"] if g["kind"] != "pairwise"]
    labels = {c["key"]: c["label"] for c in evaluation["candidates"]}
    cells = []
    for candidate in evaluation["candidates"]:
        cell = row.cells[candidate["key"]]
        grades = [_grade_shown(g, cell.grades[g["name"]], cell) for g in graders]
        cells.append(CellShown(candidate, cell.job_id, cell.state, cell.text, grades))
    pairs = [
        _pair_shown(g, row.pairs[g["name"]], labels)
        for g in evaluation["graders"]
        if g["kind"] == "pairwise"
    ]
    return MatrixRow(
        line=row.line,
        custom_id=row.custom_id,
        values=row.values,
        cells=cells,
        pairs=pairs,
        candidates_disagree=row.candidates_disagree,
        judge_checks_disagree=row.judge_checks_disagree,
    )


def _pending(row: GradedRow, jobs: dict[str, dict]) -> bool:
    return any(job["state"] in ACTIVE_STATES for job in jobs.values()) or any(
        grade.state == "pending" for cell in row.cells.values() for grade in cell.grades.values()
    )


def matrix_page(run: Run, *, show: str = "all", page: int = 1) -> MatrixPage:
    """The `page`th ROWS_PER_PAGE rows (from 1) the filter `show` keeps, in file
    order, with every filter's count; a page past the end gives the last one."""
    evaluation = run.evaluation
    chosen = next((f for f in FILTERS if f.key == show), FILTERS[0])
    counts = dict.fromkeys(FILTER_KEYS, 0)
    wanted: list[GradedRow] = []
    last: list[GradedRow] = []  # the rows of the last page begun so far
    pending = 0
    first_kept = (max(page, 1) - 1) * ROWS_PER_PAGE
    for row, jobs in graded_rows(run):
        pending += _pending(row, jobs)
        for matrix_filter in FILTERS:
            if matrix_filter.keeps(row, jobs, evaluation):
                if matrix_filter is chosen:
                    kept = counts[chosen.key]
                    if first_kept <= kept < first_kept + ROWS_PER_PAGE:
                        wanted.append(row)
                    if kept % ROWS_PER_PAGE == 0:
                        last = []
                    last.append(row)
                counts[matrix_filter.key] += 1
    pages = max(1, -(-counts[chosen.key] // ROWS_PER_PAGE))
    number = min(max(page, 1), pages)
    shown = wanted if number == max(page, 1) else last
    return MatrixPage(
        show=chosen.key,
        number=number,
        pages=pages,
        rows=[_row_shown(row, evaluation) for row in shown],
        counts=counts,
        candidates=evaluation["candidates"],
        graders=[g for g in evaluation["graders"] if g["kind"] != "pairwise"],
        pairwise=[g for g in evaluation["graders"] if g["kind"] == "pairwise"],
        pending=pending,
    )
