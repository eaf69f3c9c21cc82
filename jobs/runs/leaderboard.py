"""An eval run's leaderboard, counted from its jobs: every row graded by every
grader for every candidate, then per candidate the mean of each grader with a
95% bootstrap confidence interval over the rows.

How a grade is read:
- a check (jobs/runs/eval_checks.py) passes (1) or fails (0) the candidate's
  answer; its mean is the pass rate;
- a judge's grade is the `score` field of its structured answer; a judge job
  that failed, or answered without a number there, leaves the answer
  ungraded, never a zero;
- a pairwise grader asks in both orders; a row's outcome for the first
  candidate is the mean of the two verdicts (a win 1, a tie ½, a loss 0), and
  the row counts as flipped when the two orders name different winners. A
  row with only one verdict is ungraded;
- an answer that failed (or is still running) is neither graded nor ungraded:
  it is counted as failed (or pending).

The intervals are scipy.stats.bootstrap's percentile intervals, resampling the
rows (RESAMPLES times), with a generator seeded by the eval's seed and the
candidate's and grader's places, so the same jobs give the same figures.
Candidates whose intervals overlap share a rank: a rank is 1 + the number of
candidates whose interval lies wholly above this one's.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

import numpy as np
from scipy import stats

from jobs.models import ACTIVE_STATES, Job, Run, RunRow, State
from jobs.redaction import redact_api_key
from jobs.runs import eval_checks

CONFIDENCE = 0.95
RESAMPLES = 9999
# Resamples drawn at once: the same figures as all at once, in a tenth of the time
# and memory (9,999 x 1,000 rows at once is 80 MB).
BOOTSTRAP_BATCH = 500
ROWS_PER_FETCH = 200
VERDICTS = {"a": "A", "b": "B", "tie": "tie"}  # the pairwise answer, read case-blind
_JOB_FIELDS = (
    "id",
    "line_number",
    "step",
    "state",
    "result_text",
    "output_json",
    "output_problem",
    "last_error",
    "attempts",
    "http_503",
    "http_429",
    "input_tokens",
    "output_tokens",
    "thought_tokens",
    "cost_usd",
    "standard_cost_usd",
    "first_started_at",
    "finished_at",
)


# --- One row, graded ------------------------------------------------------------------
@dataclass(frozen=True)
class Grade:
    """One grader's grade of one answer. `state`: graded, ungraded (the grader
    could not grade it; `note` says why), no-answer (the answer failed) or
    pending (the answer or its judge is still on its way)."""

    state: str
    value: float | None = None
    job_id: int | None = None  # the judge's job
    note: str = ""


@dataclass(frozen=True)
class Cell:
    """A candidate's answer to one row and its grades."""

    job_id: int | None
    state: str
    text: str
    grades: dict[str, Grade]


@dataclass(frozen=True)
class PairCell:
    """A pairwise grader's two verdicts on one row (A/B/tie as the judge gave them in
    each order; None when that order has no verdict) and the row's outcome for the
    first candidate (1 won, 0 lost, ½ even). Ungraded: both its jobs finished, yet
    without a verdict in each order."""

    ab: str | None
    ba: str | None
    ab_job: int | None
    ba_job: int | None
    outcome: float | None
    flipped: bool | None
    ungraded: bool = False


@dataclass(frozen=True)
class GradedRow:
    line: int
    custom_id: str
    values: dict
    cells: dict[str, Cell]  # candidate key -> its answer
    pairs: dict[str, PairCell]  # pairwise grader -> its verdicts
    candidates_disagree: bool
    judge_checks_disagree: bool


# --- The leaderboard --------------------------------------------------------------------
@dataclass(frozen=True)
class Score:
    """A candidate's figure for one grader: the mean (pass rate, mean score, win rate)
    over the rows it graded, with its interval (None below two rows)."""

    grader: str
    kind: str
    mean: float | None
    low: float | None
    high: float | None
    graded: int
    ungraded: int
    rank: int | None = None
    tied: bool = False


@dataclass
class Usage:
    jobs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    thought_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    standard_cost_usd: Decimal = Decimal(0)

    def add(self, job: dict) -> None:
        self.jobs += 1
        self.input_tokens += job["input_tokens"]
        self.output_tokens += job["output_tokens"]
        self.thought_tokens += job["thought_tokens"]
        self.cost_usd += job["cost_usd"] or 0
        self.standard_cost_usd += job["standard_cost_usd"] or job["cost_usd"] or 0


@dataclass
class Standing:
    """One candidate on the leaderboard."""

    key: str
    label: str
    model: str
    answered: int = 0
    failed: int = 0
    pending: int = 0
    scores: dict[str, Score] = field(default_factory=dict)
    answers: Usage = field(default_factory=Usage)  # the candidate's own answer jobs
    grading: Usage = field(default_factory=Usage)  # its judges' jobs
    retries: int = 0
    http_503: int = 0
    http_429: int = 0
    median_latency_s: float | None = None


@dataclass(frozen=True)
class PairStanding:
    grader: str
    first: str
    second: str
    compared: int  # rows with both verdicts
    ungraded: int
    first_wins: int  # both orders name the first
    second_wins: int
    even: int  # ties, and rows where the orders disagree
    flips: int
    win_rate: Score  # the first candidate's
    usage: Usage

    @property
    def flip_rate(self) -> float | None:
        return self.flips / self.compared if self.compared else None


@dataclass
class Leaderboard:
    run_id: int
    name: str
    seed: int
    rows: int
    graders: list[dict]
    standings: list[Standing]  # best first by `ordered_by`, ties in definition order
    pairs: list[PairStanding]
    usage: Usage
    pending_jobs: int
    ordered_by: str | None = None  # the first judge, else the first check
    confidence: float = CONFIDENCE
    resamples: int = RESAMPLES

    @property
    def finished(self) -> bool:
        return self.pending_jobs == 0

    def as_json(self) -> dict:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "rows": self.rows,
            "finished": self.finished,
            "pending_jobs": self.pending_jobs,
            "interval": {
                "confidence": self.confidence,
                "method": "percentile bootstrap",
                "resamples": self.resamples,
                "seed": self.seed,
                "resampled": "rows",
            },
            "graders": [{k: g[k] for k in ("name", "kind") if k in g} for g in self.graders],
            "candidates": [_standing_json(s) for s in self.standings],
            "pairwise": [_pair_json(p) for p in self.pairs],
            "usage": _usage_json(self.usage),
        }


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.00000001')):f}"


def _fields_json(value: Any, **shaped: Callable[[Any], Any]) -> dict:
    """A dataclass's fields as JSON, in their order, those named in `shaped` shaped so."""
    return {
        f.name: shaped[f.name](getattr(value, f.name))
        if f.name in shaped
        else getattr(value, f.name)
        for f in fields(value)
    }


def _usage_json(usage: Usage) -> dict:
    return _fields_json(usage, cost_usd=_money, standard_cost_usd=_money)


def _score_json(score: Score) -> dict:
    return _fields_json(score)


def _standing_json(standing: Standing) -> dict:
    return _fields_json(
        standing,
        scores=lambda scores: {name: _score_json(score) for name, score in scores.items()},
        answers=_usage_json,
        grading=_usage_json,
    )


def _pair_json(pair: PairStanding) -> dict:
    found = _fields_json(pair, usage=_usage_json)
    win_rate = _score_json(found.pop("win_rate"))
    return {**found, "flip_rate": pair.flip_rate, "first_win_rate": win_rate}


# --- Reading the jobs -------------------------------------------------------------------
def _row_chunks(run: Run) -> Iterator[tuple[list[dict], dict[int, dict[str, dict]]]]:
    """The run's rows in line order, a fetch at a time, each with its jobs by step."""
    last = -1
    rows = RunRow.objects.filter(run=run).order_by("line_number")
    while chunk := list(
        rows.filter(line_number__gt=last).values("line_number", "custom_id", "values")[
            :ROWS_PER_FETCH
        ]
    ):
        jobs: dict[int, dict[str, dict]] = {}
        found = Job.objects.filter(
            run=run,
            line_number__gte=chunk[0]["line_number"],
            line_number__lte=chunk[-1]["line_number"],
        ).values(*_JOB_FIELDS)
        for job in found:
            jobs.setdefault(job["line_number"], {})[job["step"]] = job
        yield chunk, jobs
        last = chunk[-1]["line_number"]


def _judge_grade(job: dict | None, score_field: str) -> Grade:
    if job is None or job["state"] in ACTIVE_STATES:
        return Grade("pending", job_id=job and job["id"])
    if job["state"] != State.SUCCEEDED:
        why = job["last_error"] or f"the judge's job was {job['state']}"
        return Grade("ungraded", job_id=job["id"], note=redact_api_key(why)[:300])
    answer = job["output_json"]
    value = answer.get(score_field) if isinstance(answer, dict) else None
    if job["output_problem"] or not isinstance(value, int | float) or isinstance(value, bool):
        why = job["output_problem"] or f"the judge's answer has no number in {score_field!r}"
        return Grade("ungraded", job_id=job["id"], note=why[:300])
    return Grade("graded", value=float(value), job_id=job["id"])


def _check_grade(check: dict, answer: dict, row: dict) -> Grade:
    try:
        passed = eval_checks.check_answer(
            check, text=answer["result_text"], structured=answer["output_json"], row=row
        )
    except eval_checks.Ungraded as error:
        return Grade("ungraded", note=str(error)[:300])
    return Grade("graded", value=1.0 if passed else 0.0)


def _verdict(job: dict | None, field_name: str) -> str | None:
    if job is None or job["state"] != State.SUCCEEDED or job["output_problem"]:
        return None
    answer = job["output_json"]
    value = answer.get(field_name) if isinstance(answer, dict) else None
    return VERDICTS.get(str(value).strip().lower()) if value is not None else None


_FOR_FIRST = {"ab": {"A": 1.0, "B": 0.0, "tie": 0.5}, "ba": {"A": 0.0, "B": 1.0, "tie": 0.5}}


def _pair_cell(grader: dict, jobs: dict[str, dict]) -> PairCell:
    ab_job, ba_job = (jobs.get(grader["steps"][order]) for order in ("ab", "ba"))
    ab, ba = (_verdict(job, grader.get("verdict", "winner")) for job in (ab_job, ba_job))
    outcome = flipped = None
    if ab is not None and ba is not None:
        first, second = _FOR_FIRST["ab"][ab], _FOR_FIRST["ba"][ba]
        outcome, flipped = (first + second) / 2, first != second
    done = all(job is not None and job["state"] not in ACTIVE_STATES for job in (ab_job, ba_job))
    return PairCell(
        ab, ba, ab_job and ab_job["id"], ba_job and ba_job["id"], outcome, flipped,
        ungraded=outcome is None and done,
    )  # fmt: skip


def _passes(grader: dict, grade: Grade) -> bool | None:
    """A grade read as pass or fail: a check's as it is; a judge's at or above the
    middle of its scale (None when the schema gives no scale)."""
    if grade.state != "graded":
        return None
    if grader["kind"] == "check":
        return grade.value == 1.0
    scale = grader.get("scale")
    return None if not scale else grade.value >= (scale[0] + scale[1]) / 2


def _graded_row(evaluation: dict, values: dict, jobs: dict[str, dict]) -> GradedRow:
    cells: dict[str, Cell] = {}
    graders = evaluation["graders"]
    for candidate in evaluation["candidates"]:
        answer = jobs.get(candidate["step"])
        state = answer["state"] if answer else State.WAITING
        grades: dict[str, Grade] = {}
        for grader in graders:
            if grader["kind"] == "pairwise":
                continue
            if answer is None or state in ACTIVE_STATES:
                grades[grader["name"]] = Grade("pending")
            elif state != State.SUCCEEDED:
                grades[grader["name"]] = Grade("no-answer")
            elif grader["kind"] == "check":
                grades[grader["name"]] = _check_grade(grader["check"], answer, values["values"])
            else:
                judge = jobs.get(grader["steps"][candidate["key"]])
                grades[grader["name"]] = _judge_grade(judge, grader.get("score", "score"))
        text = redact_api_key(answer["result_text"]) if answer else ""
        cells[candidate["key"]] = Cell(answer and answer["id"], state, text, grades)
    pairs = {g["name"]: _pair_cell(g, jobs) for g in graders if g["kind"] == "pairwise"}
    return GradedRow(
        line=values["line_number"],
        custom_id=values["custom_id"],
        values=values["values"],
        cells=cells,
        pairs=pairs,
        candidates_disagree=_candidates_disagree(graders, cells),
        judge_checks_disagree=_judge_checks_disagree(graders, cells),
    )


def _candidates_disagree(graders: list[dict], cells: dict[str, Cell]) -> bool:
    """Some grader passes one candidate's answer and fails another's (a judge
    without a scale: gives them different scores)."""
    for grader in graders:
        if grader["kind"] == "pairwise":
            continue
        grades = [cell.grades[grader["name"]] for cell in cells.values()]
        if grader["kind"] == "judge" and not grader.get("scale"):
            seen = {grade.value for grade in grades if grade.state == "graded"}
        else:
            seen = {_passes(grader, grade) for grade in grades} - {None}
        if len(seen) > 1:
            return True
    return False


def _judge_checks_disagree(graders: list[dict], cells: dict[str, Cell]) -> bool:
    """For some answer a check passes where a judge fails it, or the other way."""
    checks = [g for g in graders if g["kind"] == "check"]
    judges = [g for g in graders if g["kind"] == "judge" and g.get("scale")]
    for cell in cells.values():
        verdicts = {_passes(g, cell.grades[g["name"]]) for g in checks + judges} - {None}
        if len(verdicts) > 1 and checks and judges:
            by_check = {_passes(g, cell.grades[g["name"]]) for g in checks} - {None}
            by_judge = {_passes(g, cell.grades[g["name"]]) for g in judges} - {None}
            if by_check and by_judge and by_check != by_judge:
                return True
    return False


def graded_rows(run: Run) -> Iterator[tuple[GradedRow, dict[str, dict]]]:
    """Every row of the eval run, in file order, graded, with its jobs by step."""
    evaluation = run.evaluation
    for chunk, jobs in _row_chunks(run):
        for values in chunk:
            row_jobs = jobs.get(values["line_number"], {})
            yield _graded_row(evaluation, values, row_jobs), row_jobs


# --- The figures ------------------------------------------------------------------------
def interval(
    values: list[float], *, seed: int, place: tuple[int, ...]
) -> tuple[float, float] | None:
    """The 95% percentile bootstrap interval of the mean of `values` (None below two)."""
    if len(values) < 2:
        return None
    sample = np.asarray(values, dtype=float)
    if np.all(sample == sample[0]):
        return float(sample[0]), float(sample[0])
    result = stats.bootstrap(
        (sample,),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=RESAMPLES,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng([seed, *place]),
        batch=BOOTSTRAP_BATCH,
    )
    low, high = result.confidence_interval
    return float(low), float(high)


def _score(grader: dict, values: list[float], ungraded: int, *, seed: int, place) -> Score:
    mean = statistics.fmean(values) if values else None
    bounds = interval(values, seed=seed, place=place)
    low, high = bounds if bounds else (None, None)
    return Score(grader["name"], grader["kind"], mean, low, high, len(values), ungraded)


def ranked(scores: list[Score]) -> list[Score]:
    """The scores with their ranks: 1 + how many intervals lie wholly above each
    one's (a score without an interval stands at its mean); tied when it shares
    that rank with another."""

    def ends(score: Score) -> tuple[float, float]:
        if score.low is None:
            return score.mean, score.mean
        return score.low, score.high

    placed = [s for s in scores if s.mean is not None]
    ranks = {id(s): 1 + sum(ends(o)[0] > ends(s)[1] for o in placed if o is not s) for s in placed}
    counts = [ranks[id(s)] for s in placed]
    return [
        Score(**{**s.__dict__, "rank": ranks[id(s)], "tied": counts.count(ranks[id(s)]) > 1})
        if id(s) in ranks
        else s
        for s in scores
    ]


_PAIR_COUNTS = ("ungraded", "first", "second", "even", "flips")


class _Count:
    """The leaderboard's tallies, row by row: every job's usage, every grade."""

    def __init__(self, evaluation: dict):
        self.candidates = evaluation["candidates"]
        self.graders = evaluation["graders"]
        self.seed = int(evaluation["seed"])
        self.answer_steps = {c["step"]: c["key"] for c in self.candidates}
        self.judge_steps = {
            g["steps"][c["key"]]: c["key"]
            for g in self.graders
            if g["kind"] == "judge"
            for c in self.candidates
        }
        pairwise = [g for g in self.graders if g["kind"] == "pairwise"]
        self.pair_steps = {g["steps"][o]: g["name"] for g in pairwise for o in ("ab", "ba")}
        self.standings = {
            c["key"]: Standing(c["key"], c["label"], c["model"]) for c in self.candidates
        }
        self.values: dict[tuple[str, str], list[float]] = {}
        self.ungraded: dict[tuple[str, str], int] = {}
        self.latencies: dict[str, list[float]] = {c["key"]: [] for c in self.candidates}
        self.outcomes: dict[str, list[float]] = {g["name"]: [] for g in pairwise}
        self.pair_counts = {g["name"]: dict.fromkeys(_PAIR_COUNTS, 0) for g in pairwise}
        self.pair_usage = {g["name"]: Usage() for g in pairwise}
        self.usage, self.pending, self.rows = Usage(), 0, 0

    def add_job(self, job: dict) -> None:
        self.usage.add(job)
        self.pending += job["state"] in ACTIVE_STATES
        step = job["step"]
        if step in self.answer_steps:
            standing = self.standings[self.answer_steps[step]]
            standing.answers.add(job)
            standing.retries += max(job["attempts"] - 1, 0)
            standing.http_503 += job["http_503"]
            standing.http_429 += job["http_429"]
            if job["state"] == State.SUCCEEDED and job["first_started_at"] and job["finished_at"]:
                took = job["finished_at"] - job["first_started_at"]
                self.latencies[standing.key].append(took.total_seconds())
        elif step in self.judge_steps:
            self.standings[self.judge_steps[step]].grading.add(job)
        elif step in self.pair_steps:
            self.pair_usage[self.pair_steps[step]].add(job)

    def add_row(self, row: GradedRow, jobs: dict[str, dict]) -> None:
        self.rows += 1
        for job in jobs.values():
            self.add_job(job)
        for key, cell in row.cells.items():
            standing = self.standings[key]
            if cell.state == State.SUCCEEDED:
                standing.answered += 1
            elif cell.state in ACTIVE_STATES:
                standing.pending += 1
            else:
                standing.failed += 1
            for name, grade in cell.grades.items():
                if grade.state == "graded":
                    self.values.setdefault((key, name), []).append(grade.value)
                elif grade.state == "ungraded":
                    self.ungraded[(key, name)] = self.ungraded.get((key, name), 0) + 1
        for name, pair in row.pairs.items():
            counts = self.pair_counts[name]
            if pair.outcome is None:
                counts["ungraded"] += pair.ungraded
                continue
            self.outcomes[name].append(pair.outcome)
            counts[{1.0: "first", 0.0: "second"}.get(pair.outcome, "even")] += 1
            counts["flips"] += bool(pair.flipped)

    def scores(self, g_index: int, grader: dict) -> list[Score]:
        found = [
            _score(
                grader,
                self.values.get((c["key"], grader["name"]), []),
                self.ungraded.get((c["key"], grader["name"]), 0),
                seed=self.seed,
                place=(c_index, g_index),
            )
            for c_index, c in enumerate(self.candidates)
        ]
        return ranked(found)

    def pair(self, g_index: int, grader: dict) -> PairStanding:
        counts, found = self.pair_counts[grader["name"]], self.outcomes[grader["name"]]
        place = (len(self.candidates), g_index)
        return PairStanding(
            grader=grader["name"],
            first=grader["compare"][0],
            second=grader["compare"][1],
            compared=len(found),
            ungraded=counts["ungraded"],
            first_wins=counts["first"],
            second_wins=counts["second"],
            even=counts["even"],
            flips=counts["flips"],
            win_rate=_score(grader, found, counts["ungraded"], seed=self.seed, place=place),
            usage=self.pair_usage[grader["name"]],
        )

    def standings_ranked(self) -> list[Standing]:
        for key, took in self.latencies.items():
            if took:
                self.standings[key].median_latency_s = statistics.median(took)
        for g_index, grader in enumerate(self.graders):
            if grader["kind"] != "pairwise":
                scores = self.scores(g_index, grader)
                for candidate, score in zip(self.candidates, scores, strict=True):
                    self.standings[candidate["key"]].scores[grader["name"]] = score
        listed = list(self.standings.values())
        if (first := first_grader(self.graders)) is not None:
            # Best first; a candidate with no grades yet last; ties in definition order.
            listed.sort(key=lambda s: -_or_lowest(s.scores[first].mean))
        return listed


def _or_lowest(mean: float | None) -> float:
    return float("-inf") if mean is None else mean


def leaderboard(run: Run) -> Leaderboard:
    """The eval run's leaderboard, counted now from its jobs (ValueError for a run
    that is not an eval)."""
    if not run.evaluation:
        raise ValueError(f"run {run.pk} is not an eval")
    count = _Count(run.evaluation)
    for row, jobs in graded_rows(run):
        count.add_row(row, jobs)
    standings = count.standings_ranked()
    pairs = [count.pair(i, g) for i, g in enumerate(count.graders) if g["kind"] == "pairwise"]
    return Leaderboard(
        run_id=run.pk,
        name=run.evaluation["name"],
        seed=count.seed,
        rows=count.rows,
        graders=count.graders,
        standings=standings,
        pairs=pairs,
        usage=count.usage,
        pending_jobs=count.pending,
        ordered_by=first_grader(count.graders),
    )


def first_grader(graders: list[dict]) -> str | None:
    """The grader the board is ordered by: the first judge, else the first check."""
    for kind in ("judge", "check"):
        for grader in graders:
            if grader["kind"] == kind:
                return grader["name"]
    return None
