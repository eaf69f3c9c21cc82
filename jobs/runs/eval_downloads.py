"""An eval run's downloads: the leaderboard as CSV (one record per candidate)
and as JSON (Leaderboard.as_json()), its chart as SVG, and every graded row as
CSV and JSONL: the row's values, each candidate's answer, each grade with its
state, the pairwise verdicts in both orders.

The graded rows stream a chunk of rows at a time (leaderboard.graded_rows),
never the whole run at once. Answers and notes are redacted there; the rows'
own values here, as every download does (the Gemini key never leaves).

In the leaderboard CSV a pairwise grader's columns are read from each
candidate's side: the first candidate's win rate as counted, the second's as
its mirror (1 - the rate, the interval's ends swapped and mirrored, which the
same resamples give), blank for a candidate the grader does not compare."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string

from jobs.formats import writing
from jobs.models import Run
from jobs.redaction import redact_api_key
from jobs.runs import eval_board, leaderboard, pipeline_downloads
from jobs.runs.leaderboard import GradedRow, Leaderboard, PairStanding, Score, Standing

_CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "jsonl": "application/jsonl; charset=utf-8",
    "svg": "image/svg+xml",
}
_SCORE_COLUMNS = ("mean", "low", "high", "graded", "ungraded", "rank", "tied")
_PAIR_COLUMNS = ("opponent", "win_rate", "low", "high", "compared", "ungraded", "wins",
                 "losses", "even", "flips", "flip_rate")  # fmt: skip


def _disposition(response: HttpResponse, run: Run, what: str, extension: str) -> HttpResponse:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", run.name).strip("-.") or "eval"
    response["Content-Disposition"] = (
        f'attachment; filename="run-{run.pk}-{stem[:80]}-{what}.{extension}"'
    )
    return response


def _streamed(lines: Iterable[str], run: Run, what: str, extension: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        (line.encode() for line in lines), content_type=_CONTENT_TYPES[extension]
    )
    return _disposition(response, run, what, extension)


def _redacted(value: Any) -> Any:
    text = json.dumps(value, ensure_ascii=False)
    cleaned = redact_api_key(text)
    return value if cleaned == text else json.loads(cleaned)


def _cell(value: Any) -> str:
    """A row's value: text as it is, anything else as compact JSON, None as empty."""
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- The leaderboard ------------------------------------------------------------------
def leaderboard_json(run: Run) -> HttpResponse:
    """Leaderboard.as_json(), counted now."""
    body = json.dumps(leaderboard.leaderboard(run).as_json(), ensure_ascii=False, indent=2)
    response = HttpResponse(body + "\n", content_type=_CONTENT_TYPES["json"])
    return _disposition(response, run, "leaderboard", "json")


def leaderboard_csv(run: Run) -> StreamingHttpResponse:
    return _streamed(leaderboard_lines(leaderboard.leaderboard(run)), run, "leaderboard", "csv")


def leaderboard_lines(counted: Leaderboard) -> Iterator[str]:
    """One CSV record per candidate, best first, every figure of the board."""
    scored = [g["name"] for g in counted.graders if g["kind"] != "pairwise"]
    header = ["position", "key", "label", "model", "answered", "failed", "pending"]
    header += [f"{name}.{column}" for name in scored for column in _SCORE_COLUMNS]
    header += [f"{pair.grader}.{column}" for pair in counted.pairs for column in _PAIR_COLUMNS]
    header += ["input_tokens", "output_tokens", "thought_tokens", "cost_usd", "standard_cost_usd",
               "grading_cost_usd", "grading_standard_cost_usd", "retries", "http_503",
               "http_429", "median_latency_s", "confidence", "resamples", "seed"]  # fmt: skip

    def records() -> Iterator[list]:
        for position, standing in enumerate(counted.standings, start=1):
            record = [position, standing.key, standing.label, standing.model, standing.answered,
                      standing.failed, standing.pending]  # fmt: skip
            for name in scored:
                record += _score_cells(standing.scores[name])
            for pair in counted.pairs:
                record += _pair_cells(pair, standing)
            answers, grading = standing.answers, standing.grading
            record += [answers.input_tokens, answers.output_tokens, answers.thought_tokens,
                       answers.cost_usd, answers.standard_cost_usd, grading.cost_usd,
                       grading.standard_cost_usd, standing.retries, standing.http_503,
                       standing.http_429, standing.median_latency_s, counted.confidence,
                       counted.resamples, counted.seed]  # fmt: skip
            yield record

    return writing.export_table(header, records())


def _flag(value: bool | None) -> str:
    return "" if value is None else "true" if value else "false"


def _score_cells(score: Score) -> list:
    return [score.mean, score.low, score.high, score.graded, score.ungraded, score.rank,
            _flag(score.tied)]  # fmt: skip


def _mirror(value: float | None) -> float | None:
    return None if value is None else 1 - value


def _pair_cells(pair: PairStanding, standing: Standing) -> list:
    rate, common = pair.win_rate, [pair.compared, pair.ungraded]
    if standing.key == pair.first:
        return [pair.second, rate.mean, rate.low, rate.high, *common, pair.first_wins,
                pair.second_wins, pair.even, pair.flips, pair.flip_rate]  # fmt: skip
    if standing.key == pair.second:
        return [pair.first, _mirror(rate.mean), _mirror(rate.high), _mirror(rate.low), *common,
                pair.second_wins, pair.first_wins, pair.even, pair.flips,
                pair.flip_rate]  # fmt: skip
    return [""] * len(_PAIR_COLUMNS)


def chart_svg(run: Run) -> HttpResponse:
    """Every grader's chart, one under another, in one drawing that stands alone."""
    body = render_to_string("runs/eval_chart_download.svg", {"board": eval_board.board(run)})
    response = HttpResponse(body, content_type=_CONTENT_TYPES["svg"])
    return _disposition(response, run, "chart", "svg")


# --- Every graded row -----------------------------------------------------------------
def _grade_json(grade: leaderboard.Grade) -> dict:
    return {
        "state": grade.state,
        "value": grade.value,
        "note": redact_api_key(grade.note),
        "job_id": grade.job_id,
    }


def _row_json(row: GradedRow) -> dict:
    return {
        "line": row.line,
        "id": row.custom_id,
        "row": _redacted(row.values),
        "candidates": {
            key: {
                "state": cell.state,
                "answer": cell.text,
                "job_id": cell.job_id,
                "grades": {name: _grade_json(grade) for name, grade in cell.grades.items()},
            }
            for key, cell in row.cells.items()
        },
        "pairwise": {
            name: {
                "ab": pair.ab,
                "ba": pair.ba,
                "ab_job_id": pair.ab_job,
                "ba_job_id": pair.ba_job,
                "first_outcome": pair.outcome,
                "flipped": pair.flipped,
            }
            for name, pair in row.pairs.items()
        },
        "candidates_disagree": row.candidates_disagree,
        "judge_checks_disagree": row.judge_checks_disagree,
    }


def rows_jsonl_lines(run: Run) -> Iterator[str]:
    """One JSON line per row, in file order."""
    for row, _jobs in leaderboard.graded_rows(run):
        yield json.dumps(_row_json(row), ensure_ascii=False) + "\n"


def rows_csv_lines(run: Run) -> Iterator[str]:
    """One CSV record per row: its line, id and columns; per candidate its answer's
    state and text, then each grade's state, value and note; per pairwise grader
    the verdict in each order, the first candidate's outcome and whether it flipped."""
    evaluation = run.evaluation
    columns = [
        name
        for name in pipeline_downloads.row_columns(run, pipeline_downloads.table_format(run))
        if name != "id"
    ]
    scored = [g["name"] for g in evaluation["graders"] if g["kind"] != "pairwise"]
    pairwise = [g["name"] for g in evaluation["graders"] if g["kind"] == "pairwise"]
    keys = [c["key"] for c in evaluation["candidates"]]
    header = ["line", "id", *columns]
    for key in keys:
        header += [f"{key}.state", f"{key}.answer"]
        header += [f"{key}.{name}.{part}" for name in scored for part in ("state", "value", "note")]
    header += [f"{name}.{part}" for name in pairwise for part in ("ab", "ba", "outcome", "flipped")]
    header += ["candidates_disagree", "judge_checks_disagree"]

    def records() -> Iterator[list]:
        for row, _jobs in leaderboard.graded_rows(run):
            values = _redacted(row.values)
            record = [row.line, row.custom_id, *(_cell(values.get(name)) for name in columns)]
            for key in keys:
                cell = row.cells[key]
                record += [cell.state, cell.text]
                for name in scored:
                    grade = cell.grades[name]
                    record += [grade.state, grade.value, redact_api_key(grade.note)]
            for name in pairwise:
                pair = row.pairs[name]
                record += [pair.ab, pair.ba, pair.outcome, _flag(pair.flipped)]
            record += [_flag(row.candidates_disagree), _flag(row.judge_checks_disagree)]
            yield record

    return writing.export_table(header, records())


def rows_csv(run: Run) -> StreamingHttpResponse:
    return _streamed(rows_csv_lines(run), run, "graded-rows", "csv")


def rows_jsonl(run: Run) -> StreamingHttpResponse:
    return _streamed(rows_jsonl_lines(run), run, "graded-rows", "jsonl")
