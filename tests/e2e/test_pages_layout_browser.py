"""The pages as a researcher sees them, in Debian's Chromium at 1280 and 390 px,
against a live server, a real qcluster and the shared simulator: a model with
no limit slowed after 429s says so in words, relative times keep counting
once polling stops, cancel asks first (also without script) and looks like
what it is, the Engine card and the chart keep their text inside, no page
scrolls sideways, and the jobs list is short on a phone. One scenario, one
cluster. A screenshot of each page at each width goes to test-results/e2e/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from jobs.models import Attempt, Job, Outcome, State
from jobs.templatetags import dashboard
from tests.e2e.browsing import SCREENSHOTS, log_in
from tests.support import MODEL, finished, make_job, make_run, submit, tag, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.engine, pytest.mark.django_db(transaction=True)]

WIDE, PHONE = 1280, 390
# A page of the jobs list (25 rows, prompts of 140 characters) at 390 px was
# 12,023 px tall with each cell a labelled line of its own; the compact rows
# make it about 4,500.
PHONE_LIST_MOST_PX = 5_000
LONG_PROMPT = (
    "Summarise the following abstract in two sentences for a reader outside the field, "
    "keeping every figure it reports and naming the method it used: "
)

OVERFLOW = "() => document.documentElement.scrollWidth"
ENGINE_CLIPPED = """() => {
  const panel = document.querySelector("#engine-heading").closest(".panel");
  const edge = panel.getBoundingClientRect().right;
  return [...panel.querySelectorAll("dt, dd")]
    .filter((cell) => cell.scrollWidth > cell.clientWidth
      || cell.getBoundingClientRect().right > edge)
    .map((cell) => cell.textContent.trim());
}"""
CHART_LABELS_OUTSIDE = """() => {
  const svg = document.querySelector(".chart > svg");
  const width = svg.viewBox.baseVal.width, height = svg.viewBox.baseVal.height;
  return [...svg.querySelectorAll("text.tick")]
    .map((label) => [label.textContent, label.getBBox()])
    .filter(([, box]) => box.x < 0 || box.y < 0
      || box.x + box.width > width || box.y + box.height > height)
    .map(([text]) => text);
}"""
NEXT_SWAP = """() => new Promise((resolve) => {
  document.body.addEventListener("htmx:afterSettle", () => resolve(true), {once: true});
})"""
# What another tab's submission does: the fragments that stopped polling ask again.
SWAP_NOW = """() => new Promise((resolve) => {
  document.body.addEventListener("htmx:afterSettle", () => resolve(true), {once: true});
  htmx.trigger(document.body, "jobs-changed");
})"""


@pytest.fixture
def operator(ada, ada_password):
    """Ada, made a superuser, so the admin's jobs list is in reach."""
    ada.is_staff = ada.is_superuser = True
    ada.save(update_fields=["is_staff", "is_superuser"])
    return ada


@pytest.fixture
def long_endpoint(settings, simulator) -> None:
    """What the Engine card shows as the endpoint: a URL with nowhere to wrap,
    as long as a proxy's (the cluster itself talks to the simulator)."""
    settings.GEMINI_BASE_URL = f"{simulator.url}/v1beta/proxies/flexdash-research-group-endpoint"


def answered_lately(owner, count: int) -> list[Job]:
    """`count` jobs answered in the last ten minutes, each after one attempt."""
    now = timezone.now()
    jobs = []
    for n in range(count):
        at = now - timedelta(seconds=30 + 20 * n)
        job = make_job(
            owner,
            prompt=f"{LONG_PROMPT}abstract {n}",
            submitted_at=at - timedelta(seconds=4),
            first_started_at=at - timedelta(seconds=3),
            finished_at=at,
            attempts=1,
            tier_served="flex",
            result_text="A two-sentence summary.",
        )
        Attempt.objects.create(
            job=job,
            number=1,
            tier_requested="flex",
            tier_served="flex",
            started_at=at - timedelta(seconds=3),
            finished_at=at,
            http_status=200,
            latency_seconds=2.6,
            outcome=Outcome.SUCCEEDED,
        )
        jobs.append(job)
    return jobs


def waiting_to_retry(owner) -> Job:
    """A job shed once and waiting ten minutes for its next try: cancellable."""
    return make_job(
        owner,
        State.RETRYING,
        prompt=f"{LONG_PROMPT}the one to cancel",
        attempts=1,
        http_503=1,
        next_attempt_at=timezone.now() + timedelta(minutes=10),
    )


def open_page(browser: Browser, base: str, password: str, width: int, **options) -> Page:
    context = browser.new_context(
        viewport={"width": width, "height": 900 if width == WIDE else 844},
        is_mobile=width == PHONE,
        **options,
    )
    page = context.new_page()
    log_in(page, base, password)
    return page


def test_the_pages_read_calmly_at_both_widths(
    live_server, long_endpoint, cluster, browser, operator, ada_password
):
    base = live_server.url
    word = tag()
    answered_lately(operator, 24)
    to_cancel, to_cancel_without_script = waiting_to_retry(operator), waiting_to_retry(operator)
    run = make_run(operator, [(f"line-{n}", f"layout {word} line {n}") for n in range(3)])
    # No limit is set for the model: Google's 429s slow it, which the overview says in words.
    slowed = submit(operator, *(f"layout {word} {n} [sim:429x1]" for n in range(3)))
    # A ceiling, not a measure: the answers come in seconds; a loaded CI
    # machine starts a cluster slowly, and a failure prints the cluster's log.
    wait_for(finished([*slowed, *run.jobs.all()]), timeout=90, what="the cluster's answers")

    page = open_page(browser, base, ada_password, WIDE)

    # --- The overview: the slowed model in words, the Engine card and the chart's labels inside.
    page.goto(f"{base}/")
    weather = page.locator(f'#capacity-weather tr[data-model="{MODEL}"]')
    expect(weather.locator(".pacing")).to_have_text("▼ Slowed")
    expect(weather).to_contain_text(re.compile(r"429s: \d+ in the last minute"))
    expect(weather).not_to_contain_text("of the limit")
    assert not re.search(r"\d\.\d{3}", weather.inner_text())
    expect(page.locator("#engine-heading + .facts")).to_contain_text("proxies/flexdash")
    assert page.evaluate(ENGINE_CLIPPED) == []
    expect(page.locator("#chart-heading")).to_have_text(
        "Outcomes per minute (the last 15 minutes, fitted to recent work)"
    )
    assert page.evaluate(CHART_LABELS_OUTSIDE) == []

    # --- Relative times: a list that stopped polling keeps counting, and so does a swap.
    page.goto(f"{base}/jobs/?state=succeeded")
    table = page.locator("#job-table")
    assert "every" not in table.get_attribute("hx-trigger")
    newest = page.locator('#job-table time[data-relative="ago"]').first
    said = newest.inner_text()
    assert re.fullmatch(r"\d+ seconds? ago|just now", said), said
    expect(newest).not_to_have_text(said, timeout=3_000)
    assert page.evaluate(SWAP_NOW)
    swapped = page.locator('#job-table time[data-relative="ago"]').first
    said = swapped.inner_text()
    expect(swapped).not_to_have_text(said, timeout=3_000)
    # The script's words are the server's, in every style and unit.
    for style, words in dashboard._RELATIVE_STYLES.items():
        for seconds in (0, 1, 7, 59, 60, 61, 125, 3599, 3600, 4830, 86_399, 86_400, 200_000):
            shown = page.evaluate("([s, n]) => FlexDash.relativeWords(s, n)", [style, seconds])
            assert shown == words(seconds), (style, seconds)

    # --- Cancel asks first, in red, and a poll's swap leaves the question open.
    page.goto(f"{base}/jobs/{to_cancel.pk}/")
    ask = page.locator("#cancel-job summary")
    confirm = page.get_by_role("button", name="Yes, cancel it")
    retry = page.get_by_role("button", name="Retry now")
    expect(ask).to_have_text("Cancel job…")
    expect(confirm).to_be_hidden()
    ask.click()
    expect(page.locator("#cancel-job")).to_contain_text("It will not be tried again")
    # --danger, the failed state's red; expect retries should a poll swap them out.
    expect(confirm).to_have_css("background-color", "rgb(180, 35, 24)")
    expect(retry).not_to_have_css("background-color", "rgb(180, 35, 24)")
    page.screenshot(path=SCREENSHOTS / "layout-cancel-asks.png")
    assert page.evaluate(NEXT_SWAP)  # the job is active: its part of the page polls
    expect(confirm).to_be_visible()
    confirm.click()
    expect(page.locator(".messages")).to_contain_text(f"Job {to_cancel.pk} cancelled.")
    expect(page.locator("#status-heading")).to_contain_text("Cancelled")
    to_cancel.refresh_from_db()
    assert to_cancel.state == State.CANCELLED

    # Without script, the same two clicks.
    plain = open_page(browser, base, ada_password, PHONE, java_script_enabled=False)
    plain.goto(f"{base}/jobs/{to_cancel_without_script.pk}/")
    plain.locator("#cancel-job summary").click()
    plain.get_by_role("button", name="Yes, cancel it").click()
    expect(plain.locator(".messages")).to_contain_text("cancelled.")

    # --- Retrying a failed job grants the attempts it was submitted with, and says so.
    spent = make_job(
        operator, State.FAILED, prompt="[sim:400] spent its attempts", attempts=3, max_attempts=3
    )
    page.goto(f"{base}/jobs/{spent.pk}/")
    page.get_by_role("button", name="Retry with 3 more attempts").click()
    expect(page.locator(".messages")).to_be_visible()
    spent.refresh_from_db()
    assert spent.max_attempts - spent.budgeted_attempts == 3
    to_cancel_without_script.refresh_from_db()
    assert to_cancel_without_script.state == State.CANCELLED
    plain.context.close()

    # --- Every main page at both widths: nothing scrolls sideways; screenshots for review.
    pages = {
        "overview": "/",
        "jobs": "/jobs/",
        "job": f"/jobs/{slowed[0].pk}/",
        "submit": "/jobs/new/",
        "runs": "/runs/",
        "run": f"/runs/{run.pk}/",
        "upload": "/runs/new/",
        "admin-jobs": "/admin/jobs/job/",
    }
    overflowing = {}
    for width in (WIDE, PHONE):
        viewer = page if width == WIDE else open_page(browser, base, ada_password, PHONE)
        for name, path in pages.items():
            viewer.goto(base + path)
            viewer.wait_for_load_state("load")
            if (scroll_width := viewer.evaluate(OVERFLOW)) > width:
                overflowing[f"{name} at {width}"] = scroll_width
            viewer.screenshot(path=SCREENSHOTS / f"layout-{width}-{name}.png", full_page=True)
        viewer.goto(f"{base}/")
        assert viewer.evaluate(ENGINE_CLIPPED) == [], width
        assert viewer.evaluate(CHART_LABELS_OUTSIDE) == [], width
    assert overflowing == {}, "pages wider than the window (px)"

    # --- A page of the jobs list on a phone: compact rows, a few screens rather than a dozen.
    phone = viewer
    phone.goto(f"{base}/jobs/?state=succeeded")
    rows = phone.locator("#job-table tbody tr")
    expect(rows).to_have_count(25)
    height = phone.evaluate("() => document.documentElement.scrollHeight")
    print(f"jobs list, 25 rows at {PHONE} px: {height} px tall")
    assert height <= PHONE_LIST_MOST_PX, height
    # Each row still says what it is, its state and its prompt, first.
    first = rows.first
    expect(first.locator(".state-cell")).to_be_visible()
    expect(first.locator(".prompt-cell")).to_be_visible()
    phone.context.close()
    page.context.close()
