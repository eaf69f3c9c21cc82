"""A run read through a researcher's eyes, in one scenario on a real cluster and
the shared simulator (Debian's Chromium through Playwright): the preview's first
lines, a tail of two jobs waiting out a Retry-After counted as such, retry failed
leaving a 400 alone, cancel asking first (and staying open through the page's
polls), and the results read on the page, searched, a row opening its job.
Screenshots go to test-results/e2e/."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from jobs.models import Run, State
from jobs.simulator import ANSWER_PREFIX
from tests.e2e.browsing import SCREENSHOTS, log_in
from tests.support import tag, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def run_file(word: str) -> bytes:
    lines = [
        ("ok-otter", f"e2e pages {word}: describe an otter"),
        ("ok-owl", f"e2e pages {word}: describe an owl"),
        # Shed twice: with 2 attempts it fails, and a retry's third request passes.
        ("shed", f"e2e pages {word}: shed [sim:503x2]"),
        ("refused", f"e2e pages {word}: refused [sim:400]"),
        # Told to wait: the run's tail, long enough to be read and cancelled.
        ("patient-1", f"e2e pages {word}: patient [sim:429x1:retry-after=40]"),
        ("patient-2", f"e2e pages {word}: patient too [sim:429x1:retry-after=45]"),
    ]
    return "".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in lines).encode()


def states(run: Run) -> dict[str, str]:
    return dict(run.jobs.values_list("custom_id", "state"))


def test_a_runs_pages_count_what_waits_retry_what_can_pass_ask_before_cancelling_and_read(
    live_server, cluster, browser, ada_password
):
    base = live_server.url
    word = tag()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, base, ada_password)

    # The upload's preview shows the first lines as they will be sent.
    page.goto(f"{base}/runs/new/")
    page.get_by_label("Prompt file").set_input_files(
        {"name": "pages.jsonl", "mimeType": "application/jsonl", "buffer": run_file(word)}
    )
    page.get_by_label("Run name").fill(f"Pages {word}")
    page.get_by_label("Max attempts").fill("2")
    page.get_by_role("button", name="Upload and preview").click()
    first_lines = page.locator("#first-lines tbody tr")
    expect(first_lines).to_have_count(5)
    expect(first_lines.first).to_contain_text("ok-otter")
    expect(first_lines.first).to_contain_text(f"e2e pages {word}: describe an otter")
    expect(page.locator("#first-lines")).not_to_contain_text("patient-2")
    page.screenshot(path=SCREENSHOTS / "run-pages-preview.png", full_page=True)
    page.get_by_role("button", name="Create the run: queue 6 jobs").click()

    run = Run.objects.get()
    expect(page).to_have_url(f"{base}/runs/{run.pk}/")
    # The tail: two jobs wait out the 429's Retry-After; the page says so, not a rate.
    wait_for(
        lambda: (
            list(states(run).values()).count(State.RETRYING) == 2
            and list(states(run).values()).count(State.FAILED) == 2
        ),
        timeout=30,
        what="the 503s and the 400 to fail and the 429s to wait",
    )
    eta = page.locator("#run-eta")
    expect(eta).to_have_text(re.compile(r"^\s*2 jobs waiting to retry, next in \d+ s\s*$"))
    expect(page.locator("#run-permanent")).to_contain_text(
        "Retrying leaves alone 1 permanent failure (1 bad request)"
    )
    table = page.locator("#job-table")
    expect(table.locator("tr", has_text="refused")).to_contain_text("Bad request")
    expect(table.locator("tr", has_text="refused")).to_contain_text("4")  # its line
    expect(table).not_to_contain_text(f"#{run.jobs.get(custom_id='refused').pk}")
    page.screenshot(path=SCREENSHOTS / "run-pages-tail.png", full_page=True)
    # Cancel and delete look destructive: red (--failed), not Retry's primary blue.
    # (expect retries: the 2 s poll may swap the buttons out while one is read.)
    red, blue = "rgb(180, 35, 24)", "rgb(31, 95, 191)"
    expect(page.locator("#run-retry")).to_have_css("background-color", blue)
    delete = page.get_by_role("link", name="Delete the run…")
    for destructive in (page.locator("#run-cancel-ask"), delete):
        expect(destructive).to_have_css("color", red)
        expect(destructive).to_have_css("border-top-color", red)

    # Retry failed retries the 503s' job and leaves the 400 alone.
    page.get_by_role("button", name="Retry 1 failed job with 2 more attempts").click()
    expect(page.locator(".messages")).to_contain_text("1 failed job queued again.")
    wait_for(lambda: states(run)["shed"] == State.SUCCEEDED, timeout=30, what="the retry")
    refused = run.jobs.get(custom_id="refused")
    assert (refused.state, refused.attempts) == (State.FAILED, 1)
    expect(page.locator("#run-permanent")).to_contain_text("Left alone: 1 permanent failure")
    expect(page.locator("#run-retry")).to_have_count(0)

    # Cancel asks first, looks destructive, and stays open through the polls.
    ask = page.locator("#run-cancel-ask")
    expect(ask).to_have_text("Cancel 2 waiting jobs…")
    confirm = page.get_by_role("button", name="Yes, cancel 2 jobs")
    expect(confirm).to_be_hidden()
    ask.click()
    expect(confirm).to_be_visible()
    expect(page.locator("#run-cancel .confirm-box")).to_contain_text(
        "Cancel the 2 jobs still waiting to be sent?"
    )
    page.evaluate(
        """() => { window.__polls = 0;
        document.body.addEventListener("htmx:afterSwap", () => window.__polls++); }"""
    )
    page.wait_for_function("() => window.__polls >= 2", timeout=10_000)
    expect(confirm).to_be_visible()
    assert states(run)["patient-1"] == State.RETRYING
    confirm.click()
    expect(page.locator(".messages")).to_contain_text("Cancelled 2 waiting jobs.")
    assert (states(run)["patient-1"], states(run)["patient-2"]) == (State.CANCELLED,) * 2
    expect(page.locator("#run-eta")).to_have_text(re.compile(r"none: finished"))

    # The results, read on the page: prompt beside answer, searchable, a row opens its job.
    page.get_by_role("link", name="Read the results").click()
    expect(page).to_have_url(f"{base}/runs/{run.pk}/results/")
    rows = page.locator("#run-results tbody tr")
    expect(rows).to_have_count(6)
    otter = rows.first
    expect(otter).to_contain_text("ok-otter")
    expect(otter.locator("td.text-cell").nth(0)).to_have_text(
        f"e2e pages {word}: describe an otter"
    )
    expect(otter.locator("td.text-cell").nth(1)).to_have_text(
        f"{ANSWER_PREFIX}e2e pages {word}: describe an otter"
    )
    expect(rows.nth(3)).to_contain_text("No answer: Bad request")
    page.screenshot(path=SCREENSHOTS / "run-pages-results.png", full_page=True)
    page.get_by_label("Words in prompt or answer").fill(f"{word} owl")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ok-owl")
    rows.first.locator("td.text-cell").nth(1).click()
    owl = run.jobs.get(custom_id="ok-owl")
    expect(page).to_have_url(f"{base}/jobs/{owl.pk}/")
    context.close()
