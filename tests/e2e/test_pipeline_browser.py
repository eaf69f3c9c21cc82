"""A pipeline in a real browser: upload a small table with a two-step
definition, read the preview (each step's estimate and the first row's
prompts), create it, watch the rows-by-steps grid fill in to succeeded without
a reload, and open a cell's job. Debian's Chromium through Playwright, against
a live server, a real qcluster and the shared simulator. Screenshots go to
test-results/e2e/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs.models import Job, Run, State
from tests.e2e.browsing import SCREENSHOTS, log_in
from tests.support import tag

# How the preview shows an answer not known yet.
STAND_IN = "\u2039steps.facts.output\u203a"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.engine,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_in_tmp"),
]


def test_a_two_step_pipeline_fills_its_grid_and_a_cell_opens_its_job(
    live_server, cluster, browser, ada_password
):
    base = live_server.url
    word = tag()
    table = f"id,text\nr1,e2e pipeline {word}: alpha\nr2,e2e pipeline {word}: beta [sim:503x1]\n"
    definition = (
        "name: facts-then-summary\n"
        "steps:\n"
        "  - name: facts\n"
        '    prompt: "List the claims in: {{ row.text }}"\n'
        "  - name: summary\n"
        '    prompt: "Summarise: {{ steps.facts.output }}"\n'
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, base, ada_password)

    page.goto(f"{base}/runs/new/")
    expect(page.get_by_role("heading", name="Upload a run")).to_be_visible()
    page.locator("#id_file").set_input_files(
        files=[{"name": "rows.csv", "mimeType": "text/csv", "buffer": table.encode()}]
    )
    page.get_by_text("A pipeline: steps that use the answers before them").click()
    page.get_by_label("Or the definition itself").fill(definition)
    page.get_by_label("Run name").fill(f"E2E pipeline {word}")
    page.get_by_role("button", name="Upload and preview").click()

    expect(page.locator("#row-count")).to_have_text("2")
    expect(page.locator("#job-count")).to_have_text("4")
    expect(page.locator("#estimate-summary")).to_contain_text("rough")
    expect(page.locator("#first-row-facts")).to_contain_text(
        f"List the claims in: e2e pipeline {word}: alpha"
    )
    expect(page.locator("#first-row-summary")).to_contain_text(STAND_IN)
    page.screenshot(path=SCREENSHOTS / "pipeline-preview.png", full_page=True)
    assert not Run.objects.exists()
    page.get_by_role("button", name="Create the pipeline: 2 rows, 2 steps").click()

    run = Run.objects.get()
    expect(page).to_have_url(f"{base}/runs/{run.pk}/")
    page.evaluate("window.__sameDocument = true")
    cells = page.locator("#pipeline-grid td.grid-cell")
    expect(cells).to_have_count(4)
    # Every cell reaches succeeded by the page's own polling, not a reload.
    expect(page.locator('#pipeline-grid td.grid-cell[data-state="succeeded"]')).to_have_count(
        4, timeout=45_000
    )
    assert page.evaluate("window.__sameDocument") is True
    expect(page.locator("#step-summary-done")).to_have_text("2 / 2", timeout=10_000)
    expect(page.locator("#step-facts-done")).to_have_text("2 / 2")
    page.screenshot(path=SCREENSHOTS / "pipeline-grid.png", full_page=True)

    summary = Job.objects.get(run=run, custom_id="r2", step="summary")
    assert summary.state == State.SUCCEEDED
    page.locator('#row-3 td[data-step="summary"] a').click()
    expect(page).to_have_url(f"{base}/jobs/{summary.pk}/")
    expect(page.locator("#pipeline-step")).to_contain_text("summary")
    expect(page.locator("#pipeline-row")).to_contain_text("r2")
    page.locator("#pipeline-row a").click()
    expect(page.locator("#pipeline-grid tbody tr")).to_have_count(1)
    context.close()
