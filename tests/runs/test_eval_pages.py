"""An eval run's page and downloads: the leaderboard section with the board's
figures (each beside its interval, overlapping ranks as ties), the fragment the
page polls while the eval runs, the chart, the leaderboard as CSV and JSON and
every graded row as CSV and JSONL; who may download what."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, Run, RunRow, State
from jobs.runs import eval_board, eval_definitions, leaderboard
from tests.runs import test_leaderboard
from tests.runs.test_leaderboard import DEFINITION, ROWS, SPEC
from tests.support import HTMX, as_user

pytestmark = pytest.mark.django_db

# The finished eval of tests/runs/test_leaderboard.py: big and small over 40 rows.
graded_eval = test_leaderboard.graded_eval
DOWNLOADS = ("leaderboard.csv", "leaderboard.json", "chart.svg", "rows.csv", "rows.jsonl")
SVG = "{http://www.w3.org/2000/svg}"
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
    for name in DOWNLOADS:
        assert client.get(f"/runs/{run.pk}/eval/{name}").status_code == 404


def test_another_researchers_eval_is_not_found(client, bob, graded_eval):
    run, *_ = graded_eval
    as_user(client, bob)
    assert client.get(f"/runs/{run.pk}/").status_code == 404
    for name in DOWNLOADS:
        assert client.get(f"/runs/{run.pk}/eval/{name}").status_code == 404


def test_the_page_links_every_download(client, ada, graded_eval):
    run, *_ = graded_eval
    section = board_section(as_user(client, ada).get(f"/runs/{run.pk}/").content.decode())
    for name in DOWNLOADS:
        assert f'href="/runs/{run.pk}/eval/{name}"' in section


def streamed(response) -> str:
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def test_the_leaderboard_json_is_the_boards(client, ada, graded_eval):
    run, *_ = graded_eval
    response = as_user(client, ada).get(f"/runs/{run.pk}/eval/leaderboard.json")
    assert response["Content-Type"] == "application/json"
    assert 'filename="run-' in response["Content-Disposition"]
    assert json.loads(response.content) == leaderboard.leaderboard(run).as_json()


def test_the_leaderboard_csv_has_a_line_per_candidate_with_every_figure(client, ada, graded_eval):
    run, *_ = graded_eval
    big = leaderboard.leaderboard(run).standings[0]
    response = as_user(client, ada).get(f"/runs/{run.pk}/eval/leaderboard.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    records = list(csv.DictReader(io.StringIO(streamed(response))))
    assert [r["key"] for r in records] == ["big", "small"]
    first, second = records
    assert float(first["judge.mean"]) == big.scores["judge"].mean
    assert float(first["judge.low"]) == big.scores["judge"].low
    assert float(first["judge.high"]) == big.scores["judge"].high
    assert (first["judge.graded"], first["judge.ungraded"], first["judge.rank"]) == ("37", "3", "1")
    assert first["judge.tied"] == "false"
    assert float(second["exact.mean"]) == pytest.approx(13 / 39)
    assert (second["answered"], second["failed"]) == ("39", "1")
    assert Decimal(first["cost_usd"]) == Decimal("0.04")
    assert Decimal(first["standard_cost_usd"]) == Decimal("0.08")
    assert (first["http_503"], first["seed"], first["resamples"]) == ("20", "11", "9999")
    # The duel from each side: big's win rate, and small's as its mirror.
    assert (first["duel.opponent"], first["duel.wins"], first["duel.losses"]) == (
        "small",
        "20",
        "5",
    )
    assert (second["duel.wins"], second["duel.flips"]) == ("5", "15")
    assert float(first["duel.win_rate"]) + float(second["duel.win_rate"]) == pytest.approx(1)
    assert float(first["duel.low"]) == pytest.approx(1 - float(second["duel.high"]))


def test_the_chart_downloads_as_one_drawing_that_stands_alone(client, ada, graded_eval):
    run, *_ = graded_eval
    board = eval_board.board(run)
    response = as_user(client, ada).get(f"/runs/{run.pk}/eval/chart.svg")
    assert response["Content-Type"] == "image/svg+xml"
    drawing = ElementTree.fromstring(response.content)  # well-formed XML
    assert drawing.tag == f"{SVG}svg"
    nested = drawing.findall(f"{SVG}svg")
    assert [chart.find(f"{SVG}title").text.split(":")[0] for chart in nested] == [
        "exact",
        "judge",
        "duel",
    ]
    judge = nested[1]
    figures = [t.text for t in judge.iter(f"{SVG}text") if t.get("class") == "eval-figure"]
    assert figures == [row.figures[1].text for row in board.rows]
    bars = [b for b in judge.iter(f"{SVG}line") if b.get("class") == "eval-bar"]
    assert len(bars) == 2 and all(float(b.get("x1")) < float(b.get("x2")) for b in bars)
    assert float(nested[1].get("y")) > float(nested[0].get("y"))


def test_the_graded_rows_csv_has_every_answer_grade_and_verdict(client, ada, graded_eval):
    run, *_ = graded_eval
    response = as_user(client, ada).get(f"/runs/{run.pk}/eval/rows.csv")
    records = list(csv.DictReader(io.StringIO(streamed(response))))
    assert len(records) == ROWS
    row5 = records[4]
    assert (row5["line"], row5["question"], row5["reference"]) == ("6", "q5", "5")
    assert (row5["big.state"], row5["big.answer"]) == ("succeeded", " 5 ")
    assert (row5["big.exact.state"], row5["big.exact.value"]) == ("graded", "1.0")
    assert (row5["big.judge.state"], row5["big.judge.note"]) == ("ungraded", "score is missing")
    assert (row5["duel.ab"], row5["duel.ba"], row5["duel.flipped"]) == ("A", "B", "false")
    last = records[-1]
    assert (last["small.state"], last["small.exact.state"]) == ("failed", "no-answer")
    assert (last["duel.ab"], last["duel.ba"], last["duel.flipped"]) == ("A", "A", "true")
    assert last["duel.outcome"] == "0.5"


def test_the_graded_rows_jsonl_has_a_line_per_row_with_its_jobs(client, ada, graded_eval):
    run, *_ = graded_eval
    response = as_user(client, ada).get(f"/runs/{run.pk}/eval/rows.jsonl")
    lines = [json.loads(line) for line in streamed(response).splitlines()]
    assert [line["line"] for line in lines] == list(range(2, ROWS + 2))
    row7 = lines[6]
    assert row7["row"] == {"question": "q7", "reference": "7"}
    judged = row7["candidates"]["big"]["grades"]["judge"]
    assert judged["state"] == "ungraded"
    assert judged["job_id"] == Job.objects.get(run=run, step="judge_big", line_number=8).pk
    assert row7["candidates"]["small"]["grades"]["judge"] == {
        "state": "graded",
        "value": 6.0,
        "note": "",
        "job_id": Job.objects.get(run=run, step="judge_small", line_number=8).pk,
    }
    assert row7["pairwise"]["duel"]["ab"] == "A" and row7["pairwise"]["duel"]["ba"] == "B"
    assert row7["pairwise"]["duel"]["first_outcome"] == 1.0


def test_the_downloads_never_carry_the_gemini_key(client, ada, graded_eval, settings):
    run, *_ = graded_eval
    key = settings.GEMINI_API_KEY = "AIzaSyTESTKEY0123456789abcdefghijklmnopq"
    RunRow.objects.filter(run=run, line_number=2).update(
        values={"question": f"leaked {key}", "reference": "1"}
    )
    Job.objects.filter(run=run, step="answer_big", line_number=2).update(result_text=f"1 {key}")
    as_user(client, ada)
    for name in ("rows.csv", "rows.jsonl"):
        body = streamed(client.get(f"/runs/{run.pk}/eval/{name}"))
        assert "leaked [GEMINI_API_KEY]" in body and key not in body
        assert "1 [GEMINI_API_KEY]" in body


def test_the_graded_rows_stream_a_chunk_of_rows_at_a_time(client, ada, graded_eval, monkeypatch):
    run, *_ = graded_eval
    monkeypatch.setattr(leaderboard, "ROWS_PER_FETCH", 15)
    as_user(client, ada)
    with CaptureQueriesContext(connection) as queries:
        body = streamed(client.get(f"/runs/{run.pk}/eval/rows.jsonl"))
    assert len(body.splitlines()) == ROWS
    fetches = [q for q in queries.captured_queries if 'FROM "jobs_job"' in q["sql"]]
    assert len(fetches) == 3  # 40 rows, 15 at a time
