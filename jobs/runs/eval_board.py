"""An eval's leaderboard as the run page shows it: the figures of
jobs/runs/leaderboard.py, counted once per request, written out (a check's
pass rate and a pairwise win rate as percentages, a judge's mean score on its
scale, each with its 95% interval beside it and its rank, "=1" where
intervals overlap), and its charts laid out (jobs/runs/eval_chart.py)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from jobs.models import Run
from jobs.runs import eval_chart, leaderboard
from jobs.runs.leaderboard import Leaderboard, PairStanding, Score, Standing

# Between an interval's ends, as in "7.4 (6.9\N{EN DASH}7.8)".
DASH = "\N{EN DASH}"
# How far a judge's score is written: a 1-10 scale to a tenth, a narrow one to a hundredth.
WIDE_SCALE = 5


@dataclass(frozen=True)
class Figure:
    """One score, as it is written."""

    grader: str
    mean: str  # "7.4", "75%", "—" before any grade
    interval: str  # "6.9 to 7.8" or "62 to 88%" joined by DASH, "" below two graded rows
    rank: str  # "1", "=1" (tied), "" without a mean
    tied: bool
    graded: int
    ungraded: int

    @property
    def text(self) -> str:
        return f"{self.mean} ({self.interval})" if self.interval else self.mean


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    words: str  # what its figure is: "pass rate", "mean score, 1 to 10" (DASH)
    orders: bool  # the standings are best first by this grader


@dataclass(frozen=True)
class Row:
    standing: Standing
    figures: list[Figure]  # in the columns' order

    @property
    def tokens(self) -> int:
        answers = self.standing.answers
        return answers.input_tokens + answers.output_tokens + answers.thought_tokens

    @property
    def cost_usd(self) -> Decimal:
        return self.standing.answers.cost_usd + self.standing.grading.cost_usd

    @property
    def standard_cost_usd(self) -> Decimal:
        return self.standing.answers.standard_cost_usd + self.standing.grading.standard_cost_usd


@dataclass(frozen=True)
class Pair:
    standing: PairStanding
    first: str  # the candidates' labels
    second: str
    win_rate: Figure  # the first candidate's

    @property
    def flip_percent(self) -> str:
        rate = self.standing.flip_rate
        return "" if rate is None else f"{rate * 100:.0f}%"


@dataclass(frozen=True)
class Board:
    leaderboard: Leaderboard
    columns: list[Column]
    rows: list[Row]  # best first
    pairs: list[Pair]
    charts: list[eval_chart.Chart]  # one per grader, in the definition's order

    @property
    def ordered_by(self) -> Column | None:
        return next((column for column in self.columns if column.orders), None)

    @property
    def confidence_percent(self) -> str:
        return f"{self.leaderboard.confidence * 100:g}%"

    @property
    def tokens(self) -> int:
        usage = self.leaderboard.usage
        return usage.input_tokens + usage.output_tokens + usage.thought_tokens

    def stacked(self) -> tuple[list[eval_chart.Placed], int, int]:
        return eval_chart.stacked(self.charts)


def board(run: Run) -> Board:
    """The run's leaderboard, counted now from its jobs, written out."""
    counted = leaderboard.leaderboard(run)
    graders = {g["name"]: g for g in counted.graders}
    scored = [g for g in counted.graders if g["kind"] != "pairwise"]
    columns = [
        Column(g["name"], g["kind"], _words(g), g["name"] == counted.ordered_by) for g in scored
    ]
    rows = [
        Row(s, [_figure(s.scores[c.name], graders[c.name]) for c in columns])
        for s in counted.standings
    ]
    labels = {s.key: s.label for s in counted.standings}
    pairs = [
        Pair(p, labels[p.first], labels[p.second], _figure(p.win_rate, graders[p.grader]))
        for p in counted.pairs
    ]
    return Board(counted, columns, rows, pairs, _charts(counted, rows, pairs))


def _words(grader: dict) -> str:
    if grader["kind"] == "check":
        return "pass rate"
    scale = grader.get("scale")
    return f"mean score, {_number(scale[0])}{DASH}{_number(scale[1])}" if scale else "mean score"


def _number(value: float) -> str:
    return f"{value:g}"


def _judge_places(grader: dict) -> int:
    scale = grader.get("scale")
    return 1 if scale and scale[1] - scale[0] >= WIDE_SCALE else 2


def _written(value: float, grader: dict) -> str:
    """A value of the grader's figure as the page writes it."""
    if grader["kind"] in ("check", "pairwise"):
        return f"{value * 100:.0f}%"
    return f"{value:.{_judge_places(grader)}f}"


def _figure(score: Score, grader: dict) -> Figure:
    if score.mean is None:
        return Figure(score.grader, "—", "", "", False, score.graded, score.ungraded)
    interval = ""
    if score.low is not None:
        low, high = _written(score.low, grader), _written(score.high, grader)
        interval = f"{low.rstrip('%')}{DASH}{high}"
    rank = "" if score.rank is None else f"{'=' if score.tied else ''}{score.rank}"
    mean = _written(score.mean, grader)
    return Figure(score.grader, mean, interval, rank, score.tied, score.graded, score.ungraded)


def _charts(counted: Leaderboard, rows: list[Row], pairs: list[Pair]) -> list[eval_chart.Chart]:
    charts = []
    by_grader = {pair.standing.grader: pair for pair in pairs}
    for grader in counted.graders:
        name = grader["name"]
        if grader["kind"] == "pairwise":
            pair = by_grader[name]
            score = pair.standing.win_rate
            lines = [(pair.first, pair.win_rate.text, score.mean, score.low, score.high)]
            title = f"{name}: {pair.first}'s win rate against {pair.second}"
        else:
            lines = []
            for row in rows:
                score = row.standing.scores[name]
                text = next(f.text for f in row.figures if f.grader == name)
                lines.append((row.standing.label, text, score.mean, score.low, score.high))
            title = f"{name}: {_words(grader)} per candidate"
        title += f", with {counted.confidence * 100:g}% intervals"
        described = "; ".join(f"{label} {text}" for label, text, *_ in lines)
        charts.append(
            eval_chart.chart(
                slug=name,
                title=title,
                description=f"{described}." if lines else "No candidate yet.",
                kind=grader["kind"],
                scale=grader.get("scale"),
                lines=lines,
                tick_text=lambda value, grader=grader: _tick(value, grader),
            )
        )
    return charts


def _tick(value: float, grader: dict) -> str:
    if grader["kind"] in ("check", "pairwise"):
        return f"{value * 100:.0f}%"
    return f"{value:g}"
