"""An eval run's page: the leaderboard section with the board's figures (each
beside its interval, overlapping ranks as ties), the fragment the page polls
while the eval runs, and the chart."""

from __future__ import annotations

import io
import re

import pytest

from jobs.models import Job, Run, State
from jobs.runs import eval_board, eval_definitions, leaderboard
from tests.runs import test_leaderboard
from tests.runs.test_leaderboard import DEFINITION, ROWS, SPEC
from tests.support import HTMX, as_user

pytestmark = pytest.mark.django_db

# The finished eval of tests/runs/test_leaderboard.py: big and small over 40 rows.
graded_eval = test_leaderboard.graded_eval
DASH = "\N{EN DASH}"


def board_section(page: str) -> str:
    return page.split('id="eval-board"')[1].split("</section>")[0]


def standing_row(page: str, key: str) -> str:
    return re.search(rf'<tr id="eval-candidate-{key}".*?</tr>', page, re.S).group(0)


def score_cell(row: str, grader: str) -> str:
    cell = re.search(rf'data-grader="{grader}">(.*?)</td>', row, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", " ", cell).split())


def even_eval(graded_eval) -> Run:
    """The graded eval with small judged as big is: the judge's intervals overlap."""
    run, big_right, _ = graded_eval
    for n in range(1, ROWS):
        Job.objects.filter(run=run, step="judge_small", line_number=n + 1).update(
            output_json={"score": 8 if n in big_right else 3}
        )
    return run


def test_it_shows_the_leaderboard_first_with_each_figure_beside_its_interval(
    client, ada, graded_eval
):
    run, *_ = graded_eval
    board = leaderboard.leaderboard(run)
    big, small = board.standings
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    assert page.index('id="eval-board"') < page.index('id="run-heading"')
    section = board_section(page)
    assert "Every job of this eval has finished" in section
    assert 'hx-trigger="jobs-changed from:body"' in section  # finished: no more polling

    judge = big.scores["judge"]
    figure = f"{judge.mean:.1f} ({judge.low:.1f}{DASH}{judge.high:.1f})"
    assert score_cell(standing_row(page, "big"), "judge") == f"1 {figure} 37 graded, 3 ungraded"
    exact = small.scores["exact"]
    written = f"{exact.mean * 100:.0f}% ({exact.low * 100:.0f}{DASH}{exact.high * 100:.0f}%)"
    assert score_cell(standing_row(page, "small"), "exact") == f"2 {written} 39 graded"
    assert page.index('id="eval-candidate-big"') < page.index('id="eval-candidate-small"')

    row = standing_row(page, "big")
    assert "40 / 0 / 0" in row  # answered / failed / pending
    assert "600" in row  # 40 answers x 15 tokens
    assert "$0.04" in row and "$0.08" in row  # flex next to standard (no judge cost here)
    assert "20 / 0" in row  # 503s / 429s
    assert "39 / 1 / 0" in standing_row(page, "small")

    legend = re.sub(r"<[^>]+>", "", section.split('id="eval-legend"')[1].split("</p>")[0])
    assert "Best first by judge" in legend  # the first judge orders the board, not the check
    assert "95% bootstrap interval" in legend
    assert f"resampled {leaderboard.RESAMPLES:,} times with seed 11" in legend
    assert "=1" in legend and "tie" in legend


def test_overlapping_ranks_are_shown_as_ties(client, ada, graded_eval):
    run = even_eval(graded_eval)
    judge = {s.key: s.scores["judge"] for s in leaderboard.leaderboard(run).standings}
    assert judge["big"].tied and judge["small"].tied  # the board's own finding
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    assert score_cell(standing_row(page, "big"), "judge").startswith("=1 ")
    assert score_cell(standing_row(page, "small"), "judge").startswith("=1 ")
    # The check still tells them apart: plain ranks there.
    assert score_cell(standing_row(page, "big"), "exact").startswith("1 ")
    assert score_cell(standing_row(page, "small"), "exact").startswith("2 ")


def test_the_pairwise_grader_shows_its_win_rate_and_how_often_the_order_changed_it(
    client, ada, graded_eval
):
    run, *_ = graded_eval
    (duel,) = leaderboard.leaderboard(run).pairs
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    pair = page.split('id="eval-pair-duel"')[1].split("</div>")[0]
    text = " ".join(re.sub(r"<[^>]+>", " ", pair).split())
    rate = duel.win_rate
    assert (
        f"big's win rate: {rate.mean * 100:.0f}% ({rate.low * 100:.0f}{DASH}{rate.high * 100:.0f}%)"
        in text
    )
    assert "big won 20, small won 5, even 15" in text
    assert "The verdict changed with the order on 15 of 40 rows (38%)" in text


def test_a_running_eval_says_so_and_its_fragment_polls_until_it_finishes(client, ada):
    compiled = eval_definitions.eval_read(DEFINITION, spec=SPEC)
    run = eval_definitions.eval_run_create(
        compiled=compiled,
        owner=ada,
        stream=io.BytesIO(b"question,reference\nq1,1\nq2,2\n"),
        filename="q.csv",
        spec=SPEC,
    )
    as_user(client, ada)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    section = board_section(page)
    assert "Still running: 12 jobs to finish" in section
    assert 'hx-trigger="every 5s, jobs-changed from:body"' in section

    Job.objects.filter(run=run).update(state=State.SUCCEEDED, result_text="1", attempts=1)
    Job.objects.filter(run=run, step__startswith="judge").update(output_json={"score": 9})
    Job.objects.filter(run=run, step__startswith="duel").update(output_json={"winner": "tie"})
    fragment = client.get(f"/runs/{run.pk}/", headers={**HTMX, "HX-Target": "eval-board"})
    body = fragment.content.decode()
    # The same fragment, alone: no page around it, now finished, no longer polling.
    assert body.lstrip().startswith('<section class="panel eval-board live" id="eval-board"')
    assert "<html" not in body and 'id="run-live"' not in body
    assert "Every job of this eval has finished" in body
    assert "every 5s" not in body
    assert re.search(r'data-grader="judge">\s*<span class="eval-rank tied"[^>]*>=1</span>', body)


def test_the_board_is_counted_once_per_page(client, ada, graded_eval, monkeypatch):
    run, *_ = graded_eval
    counted = []
    original = leaderboard.leaderboard
    monkeypatch.setattr(leaderboard, "leaderboard", lambda r: counted.append(r.pk) or original(r))
    as_user(client, ada)
    client.get(f"/runs/{run.pk}/")
    assert counted == [run.pk]
    client.get(f"/runs/{run.pk}/", headers={**HTMX, "HX-Target": "run-live"})
    assert counted == [run.pk]  # the progress' poll leaves the board alone


def test_the_chart_is_drawn_per_grader_on_the_page(client, ada, graded_eval):
    run, *_ = graded_eval
    board = eval_board.board(run)
    as_user(client, ada)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    charts = page.split('id="eval-charts"')[1].split("</div>")[0]
    assert charts.count("<svg") == 3  # exact, judge, duel
    assert 'role="img" aria-labelledby="eval-chart-judge-title eval-chart-judge-desc"' in charts
    big_judge = board.rows[0].figures[1].text
    assert f"big {big_judge}; small" in charts  # the description says the figures
    assert 'class="eval-figure"' in charts and 'class="eval-bar"' in charts


def test_a_run_that_is_not_an_eval_has_no_leaderboard(client, ada):
    run = Run.objects.create(owner=ada, name="plain", model="gemini-2.5-flash")
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    assert 'id="eval-board"' not in page


def test_another_researchers_eval_is_not_found(client, bob, graded_eval):
    run, *_ = graded_eval
    as_user(client, bob)
    assert client.get(f"/runs/{run.pk}/").status_code == 404
