"""An eval in a real browser: uploaded with its definition file, previewed
(jobs and cost per candidate and grader), created; its run page (two
candidates, a check, a judge and a pairwise judge over three rows) says it is
still running, fills in by the page's own polling as a real qcluster answers
on the shared simulator, draws a chart per grader, and its leaderboard
downloads as CSV. Debian's Chromium through Playwright; screenshots go to
test-results/e2e/."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import expect

from jobs.models import Run
from tests.e2e.browsing import SCREENSHOTS, log_in
from tests.support import tag

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.engine,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_in_tmp"),
]
DEFINITION = """
name: browser-eval
seed: 7
candidates:
  - {model: gemini-2.5-flash, name: big}
  - {model: gemini-2.5-flash-lite, name: small}
prompt: "{{ row.question }}"
graders:
  - name: mentions
    check: {type: contains, value: "{{ row.reference }}"}
  - name: judge
    model: gemini-2.5-pro
    prompt: "Grade {{ answer }} against {{ row.reference }}"
    response_schema:
      type: object
      properties: {score: {type: integer, minimum: 1, maximum: 10}}
      required: [score]
  - name: duel
    compare: [big, small]
    model: gemini-2.5-pro
    prompt: "A: {{ a }} B: {{ b }}"
"""


def test_an_evals_leaderboard_fills_in_draws_its_chart_and_downloads(
    live_server, cluster, browser, ada, ada_password, tmp_path
):
    base = live_server.url
    word = tag()
    # The simulator answers with the prompt: the check passes where it names the reference.
    table = (
        "question,reference\n"
        f"e2e eval {word}: alpha,alpha\n"
        f"e2e eval {word}: beta,gamma\n"
        f"e2e eval {word}: delta,delta\n"
    )
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    log_in(page, base, ada_password)

    # Uploaded with its definition, previewed (jobs and cost per candidate and
    # grader, on flex and on standard), then created.
    page.goto(f"{base}/runs/new/")
    page.locator("#id_file").set_input_files(
        files=[{"name": "questions.csv", "mimeType": "text/csv", "buffer": table.encode()}]
    )
    page.get_by_text("An eval: several models answer the table").click()
    page.locator("#id_eval_file").set_input_files(
        files=[{"name": "eval.yaml", "mimeType": "text/yaml", "buffer": DEFINITION.encode()}]
    )
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.locator("#eval-seed")).to_have_text("7")
    expect(page.locator("#candidate-big")).to_contain_text("gemini-2.5-flash")
    expect(page.locator("#candidate-big td").nth(2)).to_have_text("3")  # one answer per row
    expect(page.locator("#grader-mentions")).to_contain_text("free: no model is called")
    expect(page.locator("#grader-judge td").nth(2)).to_have_text("6")  # per row per candidate
    expect(page.locator("#grader-duel td").nth(2)).to_have_text("6")  # per row, both orders
    expect(page.locator("#eval-jobs")).to_have_text("18")
    page.screenshot(path=SCREENSHOTS / "eval-preview.png", full_page=True)
    assert not Run.objects.exists()
    page.get_by_role("button", name="Create the eval: 3 rows, 2 candidates, 3 graders").click()
    run = Run.objects.get()
    assert run.evaluation["seed"] == 7 and run.owner == ada
    expect(page).to_have_url(f"{base}/runs/{run.pk}/")
    page.evaluate("window.__sameDocument = true")

    board = page.locator("#eval-board")
    expect(board.get_by_role("heading", name="Leaderboard: browser-eval")).to_be_visible()
    # Every job answers and the board says so, by its own polling, not a reload.
    expect(page.locator("#eval-state")).to_have_text(
        "Every job of this eval has finished: these are its final figures.", timeout=60_000
    )
    assert page.evaluate("window.__sameDocument") is True
    big = page.locator("#eval-candidate-big")
    expect(big.locator('[data-grader="mentions"]')).to_contain_text("67% (0\u2013100%)")
    expect(big.locator('[data-grader="mentions"] .eval-rank')).to_have_text("=1")
    expect(big).to_contain_text("3 / 0 / 0")
    expect(page.locator("#eval-legend")).to_contain_text("seed 7")
    expect(page.locator("#eval-pair-duel")).to_contain_text("The verdict changed with the order")

    charts = page.locator("#eval-charts svg[role=img]")
    expect(charts).to_have_count(3)
    for chart in charts.all():
        expect(chart).to_be_visible()
        assert chart.bounding_box()["height"] > 40
    expect(
        page.get_by_role("img", name="judge: mean score, 1\u201310 per candidate")
    ).to_be_visible()
    board.screenshot(path=SCREENSHOTS / "eval-leaderboard.png")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Leaderboard as CSV").click()
    download = download_info.value
    assert download.suggested_filename == f"run-{run.pk}-browser-eval-leaderboard.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    records = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert sorted(r["key"] for r in records) == ["big", "small"]
    assert {r["mentions.graded"] for r in records} == {"3"}
    assert {r["seed"] for r in records} == {"7"}

    # The leaderboard leads to every answer, row by row.
    page.get_by_role("link", name="Every answer and its grades, row by row").click()
    expect(page.get_by_role("heading", name="Eval browser-eval: every answer")).to_be_visible()
    context.close()
