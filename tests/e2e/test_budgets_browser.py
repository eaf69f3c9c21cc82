"""Budgets in a real browser: Ada uploads a run with a budget of its own and
the preview says it fits; once one try's worst case is reserved the rest
waits, and the overview and the run page say which budget holds it, in
words; she raises the budget from the run page, and her account page shows
what is reserved. No cluster: the claim that reserves is made by the test.
Screenshots in test-results/e2e/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from jobs.engine import claiming
from jobs.models import Run, State
from tests.e2e.browsing import SCREENSHOTS, log_in
from tests.support import tag

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_run_budget_is_set_seen_holding_work_and_raised(live_server, browser, ada, ada_password):
    base = live_server.url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    log_in(page, base, ada_password)
    word = tag()

    page.goto(f"{base}/runs/new/")
    page.locator("input[type=file][name=file]").set_input_files(
        files=[
            {
                "name": "prompts.txt",
                "mimeType": "text/plain",
                "buffer": "\n".join(f"budgeted {word} {n}" for n in range(3)).encode(),
            }
        ]
    )
    page.get_by_label("Run name").fill("nightly")
    page.get_by_label("Budget (USD)").fill("0.10")
    page.get_by_role("button", name="Upload and preview").click()
    expect(page.locator("#budget-fit")).to_contain_text("Fits the run's budget ($0.10).")
    page.get_by_role("button", name="Create the run: queue 3 jobs").click()
    run = Run.objects.get()
    expect(page).to_have_url(f"{base}/runs/{run.pk}/")
    assert str(run.budget_usd) == "0.10"

    # Without an output cap each try reserves the model's (65,536 tokens at
    # flex: $0.08): one fits in $0.10, the other two wait.
    (claimed,) = claiming.jobs_claim(owner="test", limit=10, lease_seconds=60)
    assert run.jobs.filter(state=State.QUEUED).count() == 2
    held = "budget for run “nightly” reached:"
    expect(page.locator("#run-live")).to_contain_text(held, timeout=10_000)  # the 2 s poll
    page.screenshot(path=SCREENSHOTS / "run-budget-held.png", full_page=True)

    page.goto(f"{base}/")
    expect(page.get_by_text(held).first).to_be_visible()

    page.goto(f"{base}/runs/{run.pk}/")
    form = page.locator("#run-budget-form")
    form.get_by_label("Budget (USD)").fill("5.00")
    form.get_by_role("button", name="Change the budget").click()
    expect(page.get_by_text("The run's budget is now $5.00.")).to_be_visible()
    expect(page.locator("#run-budget")).to_contain_text("Budget $5.00")
    run.refresh_from_db()
    assert str(run.budget_usd) == "5.00"

    page.goto(f"{base}/account/")
    yours = page.locator("#budgets tbody tr").first
    expect(yours.locator('[data-label="Reserved"]')).not_to_have_text("$0.00")
    expect(yours.locator('[data-label="Limit"]')).to_have_text("none")
    page.screenshot(path=SCREENSHOTS / "account-budgets.png", full_page=True)
    assert claimed.reserved_usd > 0
