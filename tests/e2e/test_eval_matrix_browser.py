"""An eval's matrix in a real browser (Debian's Chromium through Playwright,
against a live server): tests/runs/test_leaderboard.py's graded eval of 40
rows renders with its answers and grades, the "Candidates disagree" filter
narrows it to those rows, and a cell's link opens the answer's job page. The
jobs are finished in the database, so no cluster is needed. Screenshots go to
test-results/e2e/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs.models import Job
from tests.e2e.browsing import SCREENSHOTS, log_in
from tests.runs import test_leaderboard

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
graded_eval = test_leaderboard.graded_eval  # the fixture
# big is right on rows 1-30, small on 1, 4, 7, ... 37: where only one is, they disagree.
DISAGREE = [n for n in range(1, 31) if n % 3 != 1] + [31, 34, 37]


def test_the_matrix_renders_narrows_to_disagreements_and_opens_a_cells_job(
    live_server, browser, ada_password, graded_eval
):
    run, *_ = graded_eval
    base = live_server.url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, base, ada_password)

    page.goto(f"{base}/runs/{run.pk}/eval/matrix/")
    expect(page.get_by_role("heading", name="Eval arithmetic: every answer")).to_be_visible()
    rows = page.locator("table.eval-matrix tbody tr")
    expect(rows).to_have_count(test_leaderboard.ROWS)
    first = page.locator("#row-2")  # data row 1, the file's line 2: both right
    expect(first.locator('[data-candidate="big"] .answer')).to_have_text("1")
    expect(first.locator('[data-candidate="big"] [data-grader="exact"]')).to_contain_text("✓")
    expect(first.locator('[data-candidate="small"] [data-grader="judge"]')).to_contain_text("6")
    ungraded = page.locator('#row-6 [data-candidate="big"] [data-grader="judge"]')
    expect(ungraded).to_have_text("judge ungraded")
    expect(ungraded).to_have_attribute("title", "judge: score is missing")
    page.screenshot(path=SCREENSHOTS / "eval-matrix.png", full_page=True)

    page.get_by_role("link", name="Candidates disagree").click()
    expect(page).to_have_url(f"{base}/runs/{run.pk}/eval/matrix/?show=disagree")
    expect(rows).to_have_count(len(DISAGREE))
    lines = [int(line) - 1 for line in rows.evaluate_all("rows => rows.map(r => r.dataset.line)")]
    assert lines == DISAGREE
    expect(page.locator("#show-disagree")).to_have_attribute("aria-current", "true")
    page.screenshot(path=SCREENSHOTS / "eval-matrix-disagree.png", full_page=True)

    answer = Job.objects.get(run=run, step="answer_small", line_number=3)  # data row 2
    page.locator('#row-3 [data-candidate="small"] a.answer').click()
    expect(page).to_have_url(f"{base}/jobs/{answer.pk}/")
    expect(page.get_by_role("heading", name=f"Job {answer.pk}")).to_be_visible()
    context.close()
