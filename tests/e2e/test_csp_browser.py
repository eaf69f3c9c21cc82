"""Every page under the Content-Security-Policy in a real browser: Debian's
Chromium through Playwright, against a live server (no cluster: the jobs stay
as made, so the live fragments keep polling). Each page is loaded, the polled
ones are left for a few polls, forms and htmx posts are used, and no part of
any page may be refused by the policy: no inline script or style, no eval.
Screenshots go to test-results/e2e/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from jobs.models import Attempt, Job, ModelLimit, Outcome, Run, State
from tests.e2e.browsing import SCREENSHOTS, log_in
from tests.support import MODEL, make_run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Polled fragments ask every 2 s: two polls each within this long.
POLLS_SEEN_WITHIN_MS = 6_000

# The page reports each refusal itself (securitypolicyviolation), besides the
# console line Chromium prints; both are collected, so neither can be missed.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.effectiveDirective} refused ${event.blockedURI || "inline"} `
    + `in ${event.documentURI} (${event.sourceFile}:${event.lineNumber}) ${event.sample}`
  );
});
"""

COUNT_SWAPS = """() => {
  window.swapsSeen = 0;
  document.body.addEventListener("htmx:afterSettle", () => { window.swapsSeen += 1; });
}"""


@pytest.fixture
def operator(ada, ada_password):
    """Ada, with her password, made a superuser too, so the admin pages are in reach."""
    ada.is_staff = ada.is_superuser = True
    ada.save(update_fields=["is_staff", "is_superuser"])
    return ada


@pytest.fixture
def work(operator, uploads_in_tmp) -> dict[str, int]:
    """Something on every page: a queued job (so the overview, the jobs list
    and its page poll), a tried one (the attempts histogram), model limits
    (the weather's gauges) and a run with answers in the last minutes (its bars)."""
    now = timezone.now()
    ModelLimit.objects.update_or_create(
        model=MODEL, defaults={"rpm_limit": 100, "tpm_limit": 1_000_000, "rpd_limit": 10_000}
    )
    queued = Job.objects.create(owner=operator, model=MODEL, input_text="csp: waiting")
    tried = Job.objects.create(
        owner=operator,
        model=MODEL,
        input_text="csp: answered",
        result_text="**Bold** and `code`, rendered as Markdown.",
        cost_usd=Decimal("0.0001"),
    )
    answered(tried, at=now - timedelta(minutes=1), statuses=(503, 200))
    run = make_run(
        operator, [(f"line-{n}", f"csp run prompt {n}") for n in range(4)], name="CSP run"
    )
    # The run's per-minute table starts at its creation: make it older than its answers.
    Run.objects.filter(pk=run.pk).update(created_at=now - timedelta(minutes=5))
    for minutes_ago, job in enumerate(run.jobs.order_by("id")[:2], start=1):
        answered(job, at=now - timedelta(minutes=minutes_ago), statuses=(200,))
    return {"job": queued.pk, "tried": tried.pk, "run": run.pk}


def answered(job: Job, *, at: datetime, statuses: tuple[int, ...]) -> None:
    """Mark `job` answered at `at`, after one attempt per status (the last one 200)."""
    for number, status in enumerate(statuses, start=1):
        outcome = Outcome.SUCCEEDED if status == 200 else Outcome.WILL_RETRY
        Attempt.objects.create(
            job=job,
            number=number,
            tier_requested="flex",
            started_at=at - timedelta(seconds=5),
            finished_at=at,
            http_status=status,
            outcome=outcome,
        )
    Job.objects.filter(pk=job.pk).update(
        state=State.SUCCEEDED,
        attempts=len(statuses),
        http_503=statuses.count(503),
        first_started_at=at - timedelta(seconds=5),
        finished_at=at,
    )


@pytest.fixture
def watched(browser) -> Iterator[tuple[BrowserContext, list[str]]]:
    """A browser context whose every page reports what the policy refused."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    violations: list[str] = []

    def reported(text: str) -> None:
        violations.append(text)

    def logged(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    context.expose_function("reportCspViolation", reported)
    context.add_init_script(REPORT_VIOLATIONS)
    context.on("console", logged)
    try:
        yield context, violations
    finally:
        context.close()


def visit(page: Page, url: str, *, polled: bool = False) -> None:
    """Open `url`, check the policy came with it and, for a polled page, wait
    until two polls have been answered and swapped in."""
    response = page.goto(url)
    assert response is not None and response.ok, url
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy, f"{url} came without the policy"
    page.wait_for_load_state("load")
    if polled:
        page.evaluate(COUNT_SWAPS)
        page.wait_for_function("() => window.swapsSeen >= 2", timeout=POLLS_SEEN_WITHIN_MS)


def test_no_page_breaks_the_content_security_policy(live_server, work, watched, ada_password):
    context, violations = watched
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = context.new_page()
    log_in(page, base, ada_password)  # the login page and its form post, under the policy

    visit(page, f"{base}/", polled=True)
    expect(page.locator(".weather meter.use").first).to_be_visible()
    expect(page.locator(".histogram meter.bar").first).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "csp-overview.png", full_page=True)

    visit(page, f"{base}/jobs/", polled=True)
    visit(page, f"{base}/jobs/{work['job']}/", polled=True)
    visit(page, f"{base}/jobs/{work['tried']}/")
    expect(page.locator("strong", has_text="Bold")).to_be_visible()

    visit(page, f"{base}/runs/")
    visit(page, f"{base}/runs/{work['run']}/", polled=True)
    expect(page.locator("#run-minutes rect.bar-succeeded").first).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "csp-run.png", full_page=True)
    visit(page, f"{base}/runs/{work['run']}/results/")
    visit(page, f"{base}/runs/new/")
    # The eval builder: runs.js shows a check's own fields; a row is added by a post.
    visit(page, f"{base}/runs/new/eval/")
    page.locator("#id_checks-0-check_type").select_option("regex")
    expect(page.get_by_label("Pattern (regex)")).to_be_visible()
    page.get_by_role("button", name="Add a candidate").click()
    expect(page.locator("#candidates-2")).to_be_visible()
    visit(page, f"{base}/account/")

    # The submit page's cost quote is an htmx post as the prompt is typed;
    # then the form itself posts.
    visit(page, f"{base}/jobs/new/")
    with page.expect_response(lambda response: response.request.method == "POST"):
        page.get_by_label("Prompt").fill("csp: submitted from the browser")
    page.get_by_role("button", name="Submit").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(base)}/jobs/\d+/$"))

    limit = ModelLimit.objects.get(model=MODEL)
    for path in [
        "/admin/",
        f"/admin/jobs/modellimit/{limit.pk}/change/",
        "/admin/jobs/job/",
        f"/admin/jobs/job/{work['tried']}/change/",
        "/admin/jobs/modellimit/",
    ]:
        visit(page, base + path)
    # The admin's own scripts and forms: a limit edited in the list and saved.
    row = page.locator("tr", has=page.get_by_role("link", name=MODEL, exact=True))
    row.locator(".field-rpm_limit input").fill("120")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    page.screenshot(path=SCREENSHOTS / "csp-admin-limits.png", full_page=True)
    limit.refresh_from_db()
    assert limit.rpm_limit == 120

    assert violations == []


def test_a_refusal_would_be_seen(live_server, operator, watched, ada_password):
    """The listener itself works: an inline style, as a careless template
    would write it, is reported."""
    context, violations = watched
    page = context.new_page()
    log_in(page, live_server.url, ada_password)

    page.evaluate(
        """document.body.insertAdjacentHTML("beforeend", '<p style="color: red">x</p>')"""
    )
    page.wait_for_timeout(500)

    assert any("style-src" in violation for violation in violations), violations
