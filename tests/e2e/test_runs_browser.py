"""A run in a real browser: drop a Gemini Batch file on the upload page, read
the preview, create the run, watch its progress bar reach 100% without a
reload, and download the results. Debian's Chromium through Playwright,
against a live server, a real qcluster and the shared simulator.
Screenshots go to test-results/e2e/."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from jobs.models import Run
from jobs.simulator import ANSWER_PREFIX
from tests.e2e.browsing import SCREENSHOTS, log_in
from tests.run_files import prompt_file
from tests.support import tag

pytestmark = [pytest.mark.e2e, pytest.mark.engine, pytest.mark.django_db(transaction=True)]


DROP_FILE = """([name, text]) => {
  const zone = document.querySelector("[data-dropzone]");
  const files = new DataTransfer();
  files.items.add(new File([text], name, {type: "application/jsonl"}));
  zone.dispatchEvent(new DragEvent("drop", {dataTransfer: files, bubbles: true, cancelable: true}));
}"""


def test_a_dropped_file_runs_to_100_percent_and_its_results_download(
    live_server, cluster, browser, ada_password, tmp_path
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    word = tag()
    # Answers take a moment, and one is shed once, so the bar is seen moving.
    lines = [
        ("q-alpha", f"e2e run {word}: alpha [sim:sleep=1.5]"),
        ("q-beta", f"e2e run {word}: beta [sim:503x1]"),
        ("q-gamma", f"e2e run {word}: gamma [sim:sleep=3]"),
    ]
    filename, content = prompt_file("gemini_batch", lines, model="gpt-4o")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    log_in(page, base, ada_password)

    page.get_by_role("link", name="Runs").click()
    page.get_by_role("link", name="Upload a file", exact=True).click()
    expect(page.get_by_role("heading", name="Upload a run")).to_be_visible()
    page.wait_for_load_state("load")  # the drop zone's script has run
    page.evaluate(DROP_FILE, [filename, content.decode()])
    expect(page.locator("[data-dropzone-hint]")).to_have_text(f"Chosen: {filename}")
    page.get_by_label("Run name").fill(f"E2E run {word}")
    page.get_by_role("button", name="Upload and preview").click()

    expect(page.locator("#detected-format")).to_have_text("Gemini Batch API JSONL")
    expect(page.locator("#prompt-count")).to_have_text("3")
    expect(page.locator("#replaced-models")).to_contain_text("3 lines name models")
    page.screenshot(path=SCREENSHOTS / "run-preview.png", full_page=True)
    assert not Run.objects.exists()
    page.get_by_role("button", name="Create the run: queue 3 jobs").click()

    run = Run.objects.get()
    expect(page).to_have_url(f"{base}/runs/{run.pk}/")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#run-format")).to_have_text("Gemini Batch API JSONL")
    expect(page.locator("#run-percent")).to_have_text("100%", timeout=30_000)
    progress = page.locator("#run-progress-bar")
    expect(progress).to_have_attribute("value", "3")
    expect(progress).to_have_attribute("max", "3")
    assert page.evaluate("window.__sameDocument") is True
    expect(page.locator("#run-live")).to_contain_text(
        "Every job of this run has finished, the last at"
    )
    expect(page.locator("#run-503")).to_have_text("1")
    expect(page.locator("#state-counts")).to_contain_text("Succeeded 3")
    # Finished: the progress stops polling, and so does the job table.
    assert "every 2s" not in page.locator("#run-live").get_attribute("hx-trigger")
    expect(page.locator("#job-table")).not_to_have_attribute(
        "hx-trigger", "every 2s, jobs-changed from:body"
    )
    page.screenshot(path=SCREENSHOTS / "run-page.png", full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Results", exact=True).click()
    download = download_info.value
    assert download.suggested_filename.endswith("-results.jsonl")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    got = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [line["key"] for line in got] == ["q-alpha", "q-beta", "q-gamma"]
    texts = [line["response"]["candidates"][0]["content"]["parts"][0]["text"] for line in got]
    assert texts == [
        ANSWER_PREFIX + f"e2e run {word}: {line}" for line in ("alpha", "beta", "gamma")
    ]
    context.close()
