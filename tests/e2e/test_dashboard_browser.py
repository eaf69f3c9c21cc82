"""The dashboard in a real browser: Debian's Chromium driven by Playwright,
against a live server, a real django-q2 cluster and the Flex simulator (the
shared `simulator` fixture), all sharing the test database. Screenshots go to test-results/e2e/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from jobs.engine import control
from tests.e2e.browsing import SCREENSHOTS, log_in
from tests.support import tag

pytestmark = [pytest.mark.e2e, pytest.mark.engine, pytest.mark.django_db(transaction=True)]

XSS = '<script>window.__xss=1</script> <img src=x onerror="window.__xss=2">'


@pytest.fixture
def held_dispatch(transactional_db) -> None:
    control.dispatch_pause(reason="Held by the browser test until it has seen the job queued.")


@pytest.fixture
def engine(held_dispatch, cluster) -> None:
    """The cluster, started paused: it boots while the browser logs in, and
    the test resumes dispatch once it has seen the job queued."""


def test_a_shed_prompt_goes_from_queued_through_retrying_to_succeeded_without_reload(
    live_server, engine, browser, ada_password
):
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    jobs_page = context.new_page()
    log_in(jobs_page, base, ada_password)

    # An overview opened while nothing is active does not poll ...
    overview = context.new_page()
    overview.goto(f"{base}/")
    expect(overview.locator("#overview-live")).to_contain_text("Nothing is active")
    expect(overview.locator(".banner")).to_contain_text("Dispatch is paused")
    assert "every 2s" not in overview.locator("#overview-live").get_attribute("hx-trigger")

    # ... submit a prompt that is shed once and whose answer echoes HTML;
    # dispatch is paused, so the job stays queued. Its Retry-After (8 s) is
    # longer than a list poll on a busy machine, so the list is seen waiting.
    prompt = f"e2e {tag()} [sim:503x1:retry-after=8] {XSS}"
    jobs_page.goto(f"{base}/jobs/new/")
    jobs_page.get_by_label("Prompt").fill(prompt)
    jobs_page.get_by_text("System instruction, temperature and output length").click()
    jobs_page.get_by_label("Temperature").fill("5")
    jobs_page.get_by_role("button", name="Submit").click()
    expect(jobs_page.locator(".field-error")).to_have_text("Temperature must be between 0 and 2.")
    expect(jobs_page.get_by_label("Prompt")).to_have_value(prompt)
    jobs_page.screenshot(path=SCREENSHOTS / "submit-error.png", full_page=True)
    jobs_page.get_by_label("Temperature").fill("")
    jobs_page.get_by_role("button", name="Submit").click()
    # A submitted job opens on its own page, the flash there ...
    expect(jobs_page).to_have_url(re.compile(rf"^{re.escape(base)}/jobs/\d+/$"))
    job_id = jobs_page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(jobs_page.locator(".messages")).to_contain_text(f"Job {job_id} submitted.")
    # ... and the list, opened from there, has it queued.
    jobs_page.goto(f"{base}/jobs/")
    row = jobs_page.locator(f"#job-{job_id}")
    state = row.locator(".state-cell")
    expect(state).to_have_text("◷ Queued")
    jobs_page.evaluate("window.__sameDocument = true")

    # ... and the idle overview in the other tab starts polling by itself.
    expect(overview.locator("#overview-live")).to_contain_text("Live: 1 active job", timeout=5000)
    expect(overview.locator(".card-queued .card-count")).to_have_text("1")

    detail = context.new_page()
    detail.goto(f"{base}/jobs/{job_id}/")
    expect(detail.locator("#job-live")).to_contain_text("Not tried yet")

    control.dispatch_resume()
    expect(state).to_have_text("↻ Waiting to retry", timeout=15_000)
    countdown = row.locator('time[data-relative="countdown"]')
    expect(countdown).to_have_text(re.compile(r"in [1-8] s|due now"))
    expect(row.locator('td[data-label="503s"]')).to_have_text("1")
    jobs_page.screenshot(path=SCREENSHOTS / "jobs-retrying.png")
    expect(state).to_have_text("✓ Succeeded", timeout=30_000)
    assert jobs_page.evaluate("window.__sameDocument") is True
    expect(row.locator('td[data-label="Attempts"]')).to_have_text("2 / 8")
    expect(row.locator('td[data-label="Tier served"]')).to_have_text("flex")

    # The detail page that was open all along got the result by polling (an
    # htmx swap), stopped polling, and its script did not run.
    expect(detail.locator(".result")).to_contain_text("Simulated answer to: e2e")
    assert detail.evaluate("typeof window.__xss") == "undefined"
    assert detail.locator("#job-live").get_attribute("hx-trigger") is None

    # A fresh load of the detail page: both attempts, the result as inert text.
    jobs_page.get_by_role("link", name=f"#{job_id}").click()
    expect(jobs_page.get_by_role("heading", name=f"Job {job_id}")).to_be_visible()
    first, second = jobs_page.locator("#attempt-1"), jobs_page.locator("#attempt-2")
    expect(first).to_contain_text("503")
    expect(first).to_contain_text("UNAVAILABLE")
    expect(first).to_contain_text("Will retry")
    expect(first.locator('td[data-label="Retry-After"]')).to_have_text("8.0 s")
    expect(second).to_contain_text("200")
    expect(second).to_contain_text("Succeeded")
    result = jobs_page.locator(".result")
    expect(result).to_contain_text("<script>window.__xss=1</script>")
    expect(result).to_contain_text('onerror="window.__xss=2"')
    assert result.locator("script, img").count() == 0
    assert jobs_page.evaluate("typeof window.__xss") == "undefined"
    jobs_page.screenshot(path=SCREENSHOTS / "job-detail.png", full_page=True)

    overview.reload()
    expect(overview.locator(".card-succeeded .card-count")).to_have_text("1")
    expect(overview.locator(".banner")).to_have_count(0)
    expect(overview.locator("#overview-live")).to_contain_text("Nothing is active")
    # The capacity weather reports the model the job just used, and its pacing.
    weather = overview.locator('#capacity-weather tr[data-model="gemini-2.5-flash"]')
    expect(weather.locator(".pacing")).to_have_text("✓ Normal")
    overview.screenshot(path=SCREENSHOTS / "overview.png", full_page=True)

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone_page = phone.new_page()
    log_in(phone_page, base, ada_password)
    phone_page.goto(f"{base}/jobs/")
    expect(phone_page.locator(f"#job-{job_id}")).to_contain_text("Succeeded")
    phone_page.screenshot(path=SCREENSHOTS / "jobs-phone.png", full_page=True)
    phone.close()
    context.close()
