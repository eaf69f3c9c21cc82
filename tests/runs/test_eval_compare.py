# ruff: noqa: E501 (the definitions are YAML, one per line)
"""An eval run compared with an earlier run of the same dataset, against figures
worked out here: the means by hand over the rows graded in both, the paired
intervals by a resampling loop written in the test (plain Python's random, not
scipy), a regression only where the interval lies below 0, the changed rows,
the rows whose values differ counted and left out; and who may see it."""

from __future__ import annotations

import io
import random
import statistics

import pytest

from jobs.engine.submitting import JobSpec
from jobs.models import Job, State
from jobs.runs import eval_compare, eval_definitions
from tests.runs import test_leaderboard
from tests.support import MODEL, as_user, make_run

pytestmark = pytest.mark.django_db
SPEC = JobSpec(model=MODEL)
DEFINITION = """
name: arithmetic
seed: {seed}
candidates:
  - {{model: gemini-2.5-flash, name: big}}
  - {{model: gemini-2.5-flash-lite, name: small}}
prompt: "{{{{ row.question }}}}"
graders:
  - name: exact
    check: {{type: equals, expected: "{{{{ row.reference }}}}"}}
  - name: judge
    model: gemini-2.5-pro
    prompt: "Grade {{{{ answer }}}} against {{{{ row.reference }}}}"
    response_schema: {{type: object, properties: {{score: {{type: integer, minimum: 1, maximum: 10}}}}, required: [score]}}
"""
ROWS = 30
MATCHED = range(1, 29)  # rows 29 and 30 ask other questions in the later run

# Who is right where. Before: big on 1-24, small on 1-15. Now: big on 1-12 only
# (a regression), small loses row 15 (one row: too few to call), and the judge
# now gives small's right answers 9 where it gave 6 (an improvement).
RIGHT = {
    "before": {"big": set(range(1, 25)), "small": set(range(1, 16))},
    "now": {"big": set(range(1, 13)), "small": set(range(1, 15))},
}
SCORES = {"before": {"big": (8, 3), "small": (6, 2)}, "now": {"big": (8, 3), "small": (9, 2)}}
# Before, the judge's job for big on row 1 failed: that row is ungraded there, and
# left out of big's judge figures.
JUDGE_FAILED = {"before": {("big", 1)}, "now": set()}


def _eval(owner, when: str, *, seed: int, rows: int = ROWS, name: str = ""):
    compiled = eval_definitions.eval_read(DEFINITION.format(seed=seed), spec=SPEC)
    questions = [
        f"q{n}" if when == "before" or n in MATCHED else f"other q{n}" for n in range(1, rows + 1)
    ]
    table = "question,reference\n" + "".join(f"{q},{n}\n" for n, q in enumerate(questions, 1))
    return eval_definitions.eval_run_create(
        compiled=compiled,
        owner=owner,
        stream=io.BytesIO(table.encode()),
        filename="qa.csv",
        spec=SPEC,
        name=name or f"arithmetic {when}",
    )


def _finish(run, step: str, n: int, *, state=State.SUCCEEDED, **fields) -> None:
    done = Job.objects.filter(run=run, step=step, line_number=n + 1).update(
        state=state, attempts=1, **fields
    )
    assert done == 1, (step, n)


def graded(owner, when: str, *, seed: int):
    run = _eval(owner, when, seed=seed)
    for n in range(1, ROWS + 1):
        for key in ("big", "small"):
            right = n in RIGHT[when][key]
            _finish(run, f"answer_{key}", n, result_text=str(n) if right else "no")
            if (key, n) in JUDGE_FAILED[when]:
                _finish(run, f"judge_{key}", n, state=State.FAILED, last_error="judge broke")
            else:
                good, bad = SCORES[when][key]
                _finish(run, f"judge_{key}", n, output_json={"score": good if right else bad})
    return run


def _grade(when: str, key: str, grader: str, n: int) -> float | None:
    """The grade worked out from the tables above (None: ungraded)."""
    right = n in RIGHT[when][key]
    if grader == "exact":
        return 1.0 if right else 0.0
    if (key, n) in JUDGE_FAILED[when]:
        return None
    good, bad = SCORES[when][key]
    return float(good if right else bad)


def _pairs(key: str, grader: str) -> tuple[list[float], list[float]]:
    both = [
        (b, a)
        for n in MATCHED
        if (b := _grade("before", key, grader, n)) is not None
        and (a := _grade("now", key, grader, n)) is not None
    ]
    return [b for b, _ in both], [a for _, a in both]


def _resample_interval(before, now, *, draws: int = 20000, seed: int = 5) -> tuple[float, float]:
    """The paired percentile bootstrap by hand: draw rows with replacement, both
    runs' grades of a row together."""
    chance = random.Random(seed)
    rows = list(zip(before, now, strict=True))
    deltas = []
    for _ in range(draws):
        drawn = chance.choices(rows, k=len(rows))
        deltas.append(statistics.fmean(a for _, a in drawn) - statistics.fmean(b for b, _ in drawn))
    deltas.sort()
    return deltas[int(0.025 * draws)], deltas[int(0.975 * draws) - 1]


@pytest.fixture
def two_runs(ada):
    return graded(ada, "before", seed=3), graded(ada, "now", seed=11)


def test_the_deltas_equal_figures_worked_out_by_hand(two_runs):
    before, now = two_runs
    comparison = eval_compare.compare(now, before)
    assert (comparison.before, comparison.now, comparison.seed) == (before, now, 11)
    assert (comparison.matched, comparison.mismatched) == (28, 2)
    deltas = {(d.candidate, d.grader): d for d in comparison.deltas}
    assert list(deltas) == [
        ("big", "exact"),
        ("small", "exact"),
        ("big", "judge"),
        ("small", "judge"),
    ]
    for (key, grader), delta in deltas.items():
        was, is_now = _pairs(key, grader)
        assert delta.paired == len(was) == (27 if (key, grader) == ("big", "judge") else 28)
        assert delta.before == pytest.approx(statistics.fmean(was))
        assert delta.now == pytest.approx(statistics.fmean(is_now))
        assert delta.delta == pytest.approx(statistics.fmean(is_now) - statistics.fmean(was))
        low, high = _resample_interval(was, is_now)
        spread = max(abs(a - b) for a, b in zip(was, is_now, strict=True))
        assert delta.low == pytest.approx(low, abs=0.03 * spread)
        assert delta.high == pytest.approx(high, abs=0.03 * spread)
    # big's check: 12 rows lost of 28 (13-24); its judge 5 points on each of them.
    assert deltas["big", "exact"].delta == pytest.approx(-12 / 28)
    assert deltas["big", "judge"].delta == pytest.approx(-5 * 12 / 27)


def test_a_regression_is_called_only_when_its_interval_lies_below_zero(two_runs):
    before, now = two_runs
    deltas = {(d.candidate, d.grader): d for d in eval_compare.compare(before, now).deltas}
    assert deltas["big", "exact"].high < 0 and deltas["big", "exact"].verdict == "regression"
    assert deltas["big", "judge"].verdict == "regression"
    # small lost one row of 28: the change is below 0, but its interval reaches 0.
    small = deltas["small", "exact"]
    assert small.delta == pytest.approx(-1 / 28) and small.high == 0.0
    assert small.verdict == "unclear"
    # The judge now gives small's right answers 9, not 6: better, past doubt.
    assert deltas["small", "judge"].low > 0 and deltas["small", "judge"].verdict == "improvement"
    assert eval_compare.verdict(-0.3, -0.01) == "regression"
    assert eval_compare.verdict(-0.3, 0.0) == "unclear"
    assert eval_compare.verdict(0.01, 0.3) == "improvement"
    assert eval_compare.verdict(None, None) is None


def test_the_rows_that_changed_are_listed_and_the_others_are_not(two_runs):
    before, now = two_runs
    comparison = eval_compare.compare(now, before)
    changed = {row.line - 1: row for row in comparison.changed_rows}
    # big's row 1 judged only now; big wrong on 13-24; small wrong on 15; small's
    # judge 6 -> 9 on its right rows 1-14. Rows 29 and 30 are not compared.
    expected = {1, *range(13, 25), *range(1, 15), 15}
    assert set(changed) == expected and comparison.changed == len(expected)
    assert [(c.candidate, c.grader, c.before_words, c.now_words) for c in changed[13].changes] == [
        ("big", "exact", "✓", "✗"),
        ("big", "judge", "8", "3"),
        ("small", "judge", "6", "9"),
    ]
    assert [(c.candidate, c.grader, c.before_words, c.now_words) for c in changed[1].changes] == [
        ("big", "judge", "ungraded", "8"),
        ("small", "judge", "6", "9"),
    ]


def test_the_page_shows_the_deltas_and_links_each_changed_row_in_both_runs(signed_in, two_runs):
    before, now = two_runs
    page = signed_in.get(f"/runs/{now.pk}/eval/compare/{before.pk}/").content.decode()
    assert 'data-candidate="big" data-grader="exact" data-verdict="regression"' in page
    assert 'data-candidate="small" data-grader="exact" data-verdict="unclear"' in page
    assert 'id="rows-matched">28<' in page
    assert 'id="rows-mismatched">2 ' in page
    assert f'href="/runs/{before.pk}/rows/14/">before</a>' in page
    assert f'href="/runs/{now.pk}/rows/14/">now</a>' in page
    assert 'id="changed-31"' not in page  # row 30: its question differs
    assert f'href="/runs/{now.pk}/eval/compare/{before.pk}.json"' in page


def test_the_json_is_what_a_regression_test_in_ci_reads(signed_in, two_runs):
    before, now = two_runs
    answer = signed_in.get(f"/runs/{before.pk}/eval/compare/{now.pk}.json").json()
    assert (answer["before"]["run_id"], answer["now"]["run_id"]) == (before.pk, now.pk)
    assert answer["interval"]["seed"] == 11 and answer["interval"]["confidence"] == 0.95
    assert answer["rows"] == {"matched": 28, "mismatched": 2}
    assert answer["regressions"] == 2 and answer["improvements"] == 1
    assert answer["finished"] is True
    big = next(d for d in answer["deltas"] if (d["candidate"], d["grader"]) == ("big", "exact"))
    assert big["verdict"] == "regression" and big["delta"] == pytest.approx(-12 / 28)
    assert answer["changed_rows"]["count"] == 24
    first = answer["changed_rows"]["listed"][0]
    assert first["line"] == 2 and first["changes"][0] == {
        "candidate": "big",
        "grader": "judge",
        "kind": "judge",
        "before": {"state": "ungraded", "value": None},
        "now": {"state": "graded", "value": 8.0},
    }


def test_candidates_are_matched_by_label_and_graders_by_name(ada):
    before = graded(ada, "before", seed=3)
    renamed = DEFINITION.replace("name: small", "name: tiny").replace("name: judge", "name: rubric")
    compiled = eval_definitions.eval_read(renamed.format(seed=4), spec=SPEC)
    table = "question,reference\n" + "".join(f"q{n},{n}\n" for n in range(1, ROWS + 1))
    now = eval_definitions.eval_run_create(
        compiled=compiled,
        owner=ada,
        stream=io.BytesIO(table.encode()),
        filename="qa.csv",
        spec=SPEC,
    )
    comparison = eval_compare.compare(before, now)
    assert [(d.candidate, d.grader) for d in comparison.deltas] == [("big", "exact")]
    assert comparison.only_before == {"candidates": ["small"], "graders": ["judge"]}
    assert comparison.only_now == {"candidates": ["tiny"], "graders": ["rubric"]}
    assert comparison.pending  # the later run's jobs have not run
    assert comparison.deltas[0].paired == 0 and comparison.deltas[0].verdict is None


def test_the_chooser_lists_the_owners_other_evals_of_as_many_rows(signed_in, ada, bob, two_runs):
    before, now = two_runs
    longer = _eval(ada, "before", seed=1, rows=ROWS + 1, name="a longer table")
    plain = make_run(ada, name="not an eval")
    others = _eval(bob, "before", seed=1, name="bob's eval")
    page = signed_in.get(f"/runs/{now.pk}/eval/compare/").content.decode()
    assert f'href="/runs/{now.pk}/eval/compare/{before.pk}/"' in page
    for hidden in (longer, plain, others, now):
        assert f"/eval/compare/{hidden.pk}/" not in page
    assert list(eval_compare.comparable_runs(before)) == [now]


def test_only_the_owner_compares_and_only_two_evals(client, ada, bob, two_runs):
    before, now = two_runs
    url = f"/runs/{now.pk}/eval/compare/{before.pk}/"
    assert as_user(client, bob).get(url).status_code == 404
    assert client.get(url.rstrip("/") + ".json").status_code == 404
    assert client.get(f"/runs/{now.pk}/eval/compare/").status_code == 404
    bobs = _eval(bob, "before", seed=1)
    plain = make_run(ada)
    as_user(client, ada)
    assert client.get(url).status_code == 200
    assert client.get(f"/runs/{now.pk}/eval/compare/{bobs.pk}/").status_code == 404
    assert client.get(f"/runs/{now.pk}/eval/compare/{plain.pk}/").status_code == 404
    assert client.get(f"/runs/{plain.pk}/eval/compare/{now.pk}/").status_code == 404
    assert client.get(f"/runs/{now.pk}/eval/compare/{now.pk}/").status_code == 404


def test_a_pairwise_grader_is_compared_by_its_first_candidates_wins(ada):
    """tests/runs/test_leaderboard.py's eval (big against small in a duel) run twice;
    the later run gives the duel to small in both orders on rows 1-10, which big
    won before: big's win rate falls by 10 rows' worth out of 40."""
    runs = []
    for seed in (1, 2):
        compiled = eval_definitions.eval_read(
            test_leaderboard.DEFINITION.replace("seed: 11", f"seed: {seed}"), spec=SPEC
        )
        table = "question,reference\n" + "".join(f"q{n},{n}\n" for n in range(1, 41))
        run = eval_definitions.eval_run_create(
            compiled=compiled,
            owner=ada,
            stream=io.BytesIO(table.encode()),
            filename="qa.csv",
            spec=SPEC,
        )
        for n in range(1, 41):
            for key in ("big", "small"):
                _finish(run, f"answer_{key}", n, result_text=str(n))
                _finish(run, f"judge_{key}", n, output_json={"score": 7})
            small_wins = seed == 2 and n <= 10
            _finish(run, "duel_ab", n, output_json={"winner": "B" if small_wins else "A"})
            _finish(run, "duel_ba", n, output_json={"winner": "A" if small_wins else "B"})
        runs.append(run)
    comparison = eval_compare.compare(*runs)
    duel = next(d for d in comparison.deltas if d.grader == "duel")
    assert (duel.candidate, duel.kind, duel.paired) == ("big", "pairwise", 40)
    assert (duel.before, duel.now) == (1.0, pytest.approx(30 / 40))
    low, high = _resample_interval([1.0] * 40, [0.0] * 10 + [1.0] * 30)
    assert duel.low == pytest.approx(low, abs=0.03) and duel.high == pytest.approx(high, abs=0.03)
    assert duel.verdict == "regression"
    assert comparison.changed == 10
    assert [
        (c.grader, c.before_words, c.now_words) for c in comparison.changed_rows[0].changes
    ] == [("duel", "won", "lost")]
