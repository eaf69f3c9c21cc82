# ruff: noqa: E501 (the definitions are YAML, one per line)
"""The leaderboard of a small eval against figures worked out here, independently:
the pass rates and means by hand, the intervals by a resampling loop written
in the test (plain Python's random, not scipy), and the ranks from the
intervals' overlaps."""

from __future__ import annotations

import io
import random
import statistics
from decimal import Decimal

import pytest

from jobs.engine.submitting import JobSpec
from jobs.models import Job, State
from jobs.runs import eval_checks, eval_definitions, leaderboard
from jobs.runs.leaderboard import Score
from tests.support import MODEL

pytestmark = pytest.mark.django_db
SPEC = JobSpec(model=MODEL)
DEFINITION = """
name: arithmetic
seed: 11
candidates:
  - {model: gemini-2.5-flash, name: big}
  - {model: gemini-2.5-flash-lite, name: small}
prompt: "{{ row.question }}"
graders:
  - name: exact
    check: {type: equals, expected: "{{ row.reference }}", normalize: [strip]}
  - name: judge
    model: gemini-2.5-pro
    prompt: "Grade {{ answer }} against {{ row.reference }}"
    response_schema: {type: object, properties: {score: {type: integer, minimum: 1, maximum: 10}}, required: [score]}
  - name: duel
    compare: [big, small]
    model: gemini-2.5-pro
    prompt: "A: {{ a }} B: {{ b }}"
"""
ROWS = 40


def _finish(
    run, step: str, line: int, *, text: str = "", output=None, state=State.SUCCEEDED, **extra
):
    done = Job.objects.filter(run=run, step=step, line_number=line).update(
        state=state, result_text=text, output_json=output, attempts=1, **extra
    )
    assert done == 1, (step, line)


def _resample_interval(
    values: list[float], *, draws: int = 20000, seed: int = 5
) -> tuple[float, float]:
    """The percentile bootstrap worked out by hand: draw rows with replacement."""
    chance = random.Random(seed)
    means = sorted(statistics.fmean(chance.choices(values, k=len(values))) for _ in range(draws))
    return means[int(0.025 * draws)], means[int(0.975 * draws) - 1]


@pytest.fixture
def graded_eval(ada):
    """40 rows. big answers rows 1-30 right and the rest wrong; small answers
    every third row right (1, 4, 7, ...), fails row 40 outright. The judge gives
    big 8 on a right answer and 3 on a wrong one, small 6 and 2; its answer for
    big on rows 5 and 6 breaks its schema (no score) and on row 7 its job fails.
    The duel: big wins both orders on rows 1-20, small both on 21-25, and the
    verdict follows position A on 26-40 (a flip: A in both orders)."""
    compiled = eval_definitions.eval_read(DEFINITION, spec=SPEC)
    table = "question,reference\n" + "".join(f"q{n},{n}\n" for n in range(1, ROWS + 1))
    run = eval_definitions.eval_run_create(
        compiled=compiled,
        owner=ada,
        stream=io.BytesIO(table.encode()),
        filename="qa.csv",
        spec=SPEC,
    )
    big_right = set(range(1, 31))
    small_right = set(range(1, ROWS + 1, 3))
    for n in range(1, ROWS + 1):
        line = n + 1  # the file's line: the header is line 1
        _finish(
            run,
            "answer_big",
            line,
            text=f" {n} " if n in big_right else "no",
            cost_usd=Decimal("0.001"),
            standard_cost_usd=Decimal("0.002"),
            input_tokens=10,
            output_tokens=5,
            http_503=n % 2,
        )
        if n == ROWS:
            _finish(run, "answer_small", line, state=State.FAILED, text="")
        else:
            _finish(run, "answer_small", line, text=str(n) if n in small_right else "nope")
        if n in (5, 6):
            _finish(
                run,
                "judge_big",
                line,
                output={"reason": "no score"},
                output_problem="score is missing",
            )
        elif n == 7:
            _finish(run, "judge_big", line, state=State.FAILED)
        else:
            _finish(run, "judge_big", line, output={"score": 8 if n in big_right else 3})
        if n != ROWS:
            _finish(run, "judge_small", line, output={"score": 6 if n in small_right else 2})
        else:
            _finish(run, "judge_small", line, state=State.SKIPPED)
        ab, ba = ("A", "B") if n <= 20 else ("B", "A") if n <= 25 else ("A", "A")
        _finish(run, "duel_ab", line, output={"winner": ab})
        _finish(run, "duel_ba", line, output={"winner": ba})
    return run, big_right, small_right


def test_the_leaderboard_equals_figures_worked_out_by_hand(graded_eval):
    run, big_right, small_right = graded_eval
    board = leaderboard.leaderboard(run)
    assert board.rows == ROWS and board.finished and board.seed == 11
    big, small = (board.standings[0], board.standings[1])
    assert (big.key, small.key) == ("big", "small")

    # The check: big passes 30 of 40; small 13 of its 39 answers (row 40 failed: not a fail).
    exact_big, exact_small = big.scores["exact"], small.scores["exact"]
    assert (exact_big.mean, exact_big.graded, exact_big.ungraded) == (30 / 40, 40, 0)
    assert (exact_small.mean, exact_small.graded) == (13 / 39, 39)
    assert (small.answered, small.failed, big.answered) == (39, 1, 40)

    # The judge: big's rows 5, 6 and 7 are ungraded, not zeros.
    judged_big = [8.0 if n in big_right else 3.0 for n in range(1, ROWS + 1) if n not in (5, 6, 7)]
    assert big.scores["judge"].mean == pytest.approx(statistics.fmean(judged_big))
    assert (big.scores["judge"].graded, big.scores["judge"].ungraded) == (37, 3)
    judged_small = [6.0 if n in small_right else 2.0 for n in range(1, ROWS)]
    assert small.scores["judge"].mean == pytest.approx(statistics.fmean(judged_small))
    assert small.scores["judge"].ungraded == 0  # its one failed answer is counted as failed

    # The intervals against the resampling loop written here (within a resampling's noise).
    for score, values in (
        (exact_big, [1.0 if n in big_right else 0.0 for n in range(1, ROWS + 1)]),
        (big.scores["judge"], judged_big),
        (small.scores["judge"], judged_small),
    ):
        low, high = _resample_interval(values)
        assert score.low == pytest.approx(low, abs=0.03 * (max(values) - min(values)))
        assert score.high == pytest.approx(high, abs=0.03 * (max(values) - min(values)))
        assert score.low < score.mean < score.high

    # Apart, so ranked 1 and 2 for both graders.
    assert (exact_big.rank, exact_small.rank, exact_big.tied) == (1, 2, False)
    assert (big.scores["judge"].rank, small.scores["judge"].rank) == (1, 2)

    # The duel: 20 rows to big, 5 to small, 15 flipped (position A each time): even.
    (duel,) = board.pairs
    assert (duel.first, duel.second, duel.compared) == ("big", "small", 40)
    assert (duel.first_wins, duel.second_wins, duel.even, duel.flips) == (20, 5, 15, 15)
    assert duel.flip_rate == pytest.approx(15 / 40)
    assert duel.win_rate.mean == pytest.approx((20 + 15 * 0.5) / 40)

    # Money and tries: big's answers cost 40 x 0.001 on flex, 40 x 0.002 on standard.
    assert big.answers.cost_usd == Decimal("0.04") and big.answers.standard_cost_usd == Decimal(
        "0.08"
    )
    assert (big.http_503, big.answers.input_tokens) == (20, 400)
    assert board.usage.jobs == ROWS * 6


def test_the_same_jobs_give_the_same_figures_and_the_seed_is_reported(graded_eval):
    run, *_ = graded_eval
    first, again = leaderboard.leaderboard(run).as_json(), leaderboard.leaderboard(run).as_json()
    assert first == again
    assert first["interval"] == {
        "confidence": 0.95,
        "method": "percentile bootstrap",
        "resamples": leaderboard.RESAMPLES,
        "seed": 11,
        "resampled": "rows",
    }
    run.evaluation = {**run.evaluation, "seed": 12}
    other = leaderboard.leaderboard(run).as_json()
    assert (
        other["candidates"][0]["scores"]["judge"]["mean"]
        == first["candidates"][0]["scores"]["judge"]["mean"]
    )
    assert (
        other["candidates"][0]["scores"]["judge"]["low"]
        != first["candidates"][0]["scores"]["judge"]["low"]
    )


def test_a_row_is_flagged_where_candidates_or_the_judge_and_the_check_disagree(graded_eval):
    run, *_ = graded_eval
    rows = {row.line - 1: row for row, _ in leaderboard.graded_rows(run)}  # by data row
    assert not rows[1].candidates_disagree  # both right
    assert rows[2].candidates_disagree  # big right, small wrong
    assert not rows[2].judge_checks_disagree
    Job.objects.filter(run=run, step="judge_small", line_number=3).update(output_json={"score": 9})
    rows = {row.line - 1: row for row, _ in leaderboard.graded_rows(run)}  # by data row
    assert rows[2].judge_checks_disagree  # the check fails small's answer, the judge gives it 9
    assert rows[5].cells["big"].grades["judge"].state == "ungraded"
    assert rows[5].cells["big"].grades["judge"].note == "score is missing"
    assert rows[40].cells["small"].grades["exact"].state == "no-answer"


def test_ranks_that_overlap_are_ties():
    def score(mean, low, high):
        return Score("g", "judge", mean, low, high, 10, 0)

    ranked = leaderboard.ranked(
        [
            score(0.8, 0.7, 0.9),
            score(0.75, 0.65, 0.85),
            score(0.3, 0.2, 0.4),
            score(None, None, None),
        ]
    )
    assert [(s.rank, s.tied) for s in ranked] == [(1, True), (1, True), (3, False), (None, False)]


def test_an_eval_still_running_counts_its_pending_answers(ada):
    compiled = eval_definitions.eval_read(DEFINITION, spec=SPEC)
    run = eval_definitions.eval_run_create(
        compiled=compiled,
        owner=ada,
        stream=io.BytesIO(b"question,reference\nq,1\n"),
        filename="q.csv",
        spec=SPEC,
    )
    board = leaderboard.leaderboard(run)
    assert not board.finished and board.pending_jobs == 6
    assert [s.pending for s in board.standings] == [1, 1]
    assert board.standings[0].scores["judge"].mean is None


@pytest.mark.parametrize(
    ("check", "text", "row", "passed"),
    [
        (
            {"type": "equals", "expected": "{{ row.r }}", "normalize": ["lower", "strip"]},
            " Paris\n",
            {"r": "paris"},
            True,
        ),
        ({"type": "equals", "expected": "{{ row.r }}"}, "Paris.", {"r": "Paris"}, False),
        (
            {"type": "equals", "expected": "{{ row.r }}", "normalize": ["strip_punctuation"]},
            "Paris.",
            {"r": "Paris"},
            True,
        ),
        (
            {"type": "contains", "value": "{{ row.r }}", "normalize": ["lower"]},
            "It is PARIS.",
            {"r": "paris"},
            True,
        ),
        ({"type": "regex", "pattern": r"^\d+$"}, "42", {}, True),
        ({"type": "regex", "pattern": "paris", "flags": "i"}, "PARIS", {}, True),
        (
            {"type": "numeric", "expected": "{{ row.r }}", "tolerance": 0.5},
            "so the total is 1,250.3.",
            {"r": "1250"},
            True,
        ),
        ({"type": "numeric", "expected": "{{ row.r }}"}, "about 7", {"r": "8"}, False),
        ({"type": "numeric", "expected": 3}, "no number", {}, False),
        (
            {"type": "json_path", "path": "answer.value", "expected": "{{ row.r }}"},
            '```json\n{"answer": {"value": 4}}\n```',
            {"r": "4"},
            True,
        ),
        (
            {"type": "json_path", "path": "items.1", "expected": "b"},
            '{"items": ["a", "b"]}',
            {},
            True,
        ),
        (
            {"type": "json_path", "path": "items.5", "expected": "b"},
            '{"items": ["a", "b"]}',
            {},
            False,
        ),
        ({"type": "json_path", "path": "x", "expected": "1"}, "not json", {}, False),
        (
            {"type": "json_schema", "schema": {"type": "object", "required": ["a"]}},
            '{"a": 1}',
            {},
            True,
        ),
        (
            {"type": "json_schema", "schema": {"type": "object", "required": ["a"]}},
            '{"b": 1}',
            {},
            False,
        ),
    ],
)
def test_each_check(check, text, row, passed):
    assert eval_checks.check_answer(check, text=text, row=row) is passed


def test_a_row_whose_expected_value_does_not_render_is_ungraded_not_failed():
    with pytest.raises(eval_checks.Ungraded):
        eval_checks.check_answer(
            {"type": "numeric", "expected": "{{ row.r }}"}, text="4", row={"r": "n/a"}
        )
