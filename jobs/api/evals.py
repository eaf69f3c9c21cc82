"""The /api/evals endpoint: an eval batch's leaderboard (jobs/runs/leaderboard.py),
counted from its jobs when asked, in the shape `manage.py eval --json` prints."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Field, Router, Schema
from ninja.errors import HttpError

from jobs.api.schemas import ERRORS, PathId
from jobs.runs import leaderboard
from jobs.runs import queries as run_queries

router = Router(tags=["evals"])


class IntervalOut(Schema):
    confidence: float = Field(description="0.95: the intervals are 95% intervals.")
    method: str = Field(description="percentile bootstrap (scipy.stats.bootstrap)")
    resamples: int
    seed: int = Field(description="The eval's seed: the same jobs give the same intervals.")
    resampled: str = Field(description="What is resampled: the rows of the table.")


class GraderOut(Schema):
    name: str
    kind: str = Field(description="check, judge or pairwise")


class ScoreOut(Schema):
    grader: str
    kind: str
    mean: float | None = Field(
        description="A check's pass rate (0 to 1), a judge's mean score, a pairwise "
        "grader's win rate; over the graded rows only (null when none)."
    )
    low: float | None = Field(description="The interval's low end (null below two rows).")
    high: float | None
    graded: int
    ungraded: int = Field(
        description="Answers the grader could not grade (a judge that failed or broke its "
        "schema): not counted as zeros."
    )
    rank: int | None = Field(
        description="1 + the candidates whose interval lies wholly above this one's."
    )
    tied: bool = Field(description="Another candidate has the same rank.")


class UsageOut(Schema):
    jobs: int
    input_tokens: int
    output_tokens: int
    thought_tokens: int
    cost_usd: str = Field(description="What it cost (flex where served on flex), in USD.")
    standard_cost_usd: str = Field(description="What it would have cost on standard.")


class CandidateOut(Schema):
    key: str
    label: str
    model: str
    answered: int
    failed: int
    pending: int
    scores: dict[str, ScoreOut]
    answers: UsageOut = Field(description="The candidate's answer jobs.")
    grading: UsageOut = Field(description="Its judges' jobs.")
    retries: int
    http_503: int
    http_429: int
    median_latency_s: float | None = Field(
        description="Median seconds from an answer's first try to its answer."
    )


class PairOut(Schema):
    grader: str
    first: str
    second: str
    compared: int = Field(description="Rows with a verdict in both orders.")
    ungraded: int
    first_wins: int = Field(description="Rows where both orders name the first candidate.")
    second_wins: int
    even: int = Field(description="Ties, and rows where the two orders disagree.")
    flips: int = Field(description="Rows where the verdict changed with the order.")
    flip_rate: float | None
    first_win_rate: ScoreOut
    usage: UsageOut


class EvalOut(Schema):
    run_id: int
    name: str
    rows: int
    finished: bool
    pending_jobs: int
    interval: IntervalOut
    graders: list[GraderOut]
    candidates: list[CandidateOut] = Field(description="Best first by the first judge or check.")
    pairwise: list[PairOut]
    usage: UsageOut


@router.get(
    "/{eval_id}",
    response={200: EvalOut, **ERRORS},
    url_name="eval",
    operation_id="jobs_api_get_eval",
    summary="Get Eval",
)
def get_eval(request: HttpRequest, eval_id: PathId):
    """An eval batch's leaderboard: per candidate each grader's mean with its 95%
    bootstrap interval and rank (overlapping intervals are ties), answers, tokens,
    cost on flex and on standard, latency and retries; pairwise win rates and flips."""
    run = run_queries.run_list(request.auth).filter(pk=eval_id).first()
    if run is None or not run.evaluation:
        raise HttpError(404, f"No eval {eval_id}.")
    return leaderboard.leaderboard(run).as_json()
