"""Cost of a run against figures worked out by hand: what its answers cost at
the tier that served them (fallback to standard included), what standard would
have cost, the projection, the price of moving to standard, and the month's
total on the overview.

gemini-2.5-flash on standard: $0.30 per million input tokens, $2.50 per
million output tokens; flex is half. An answer of 100 input and 40 output
tokens: (100 * 0.30 + 40 * 2.50) / 1e6 = $0.00013 on standard, $0.000065 on flex.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from jobs.engine import claiming, recording
from jobs.engine.gemini import GeminiError, GeminiResult
from jobs.models import Job, Run, Tier
from jobs.runs import queries as run_queries
from jobs.runs import services as runs
from jobs.web import queries
from tests.support import as_user, make_run

pytestmark = pytest.mark.django_db

PROMPT = "x" * 400  # 100 tokens by the estimate (characters / 4)


def run_of(owner, count: int, *, fallback: bool = False) -> Run:
    """A run of `count` lines of PROMPT, each with two attempts."""
    lines = [("", PROMPT)] * count
    return make_run(owner, lines, fmt="text", max_attempts=2, fallback_standard=fallback)


def answer(count: int, *, served: str | None = None) -> list[Job]:
    """Claim `count` due jobs and answer each with 100 input and 40 output
    tokens, served at the tier the dispatcher asked for (or `served`)."""
    claims = claiming.jobs_claim(owner="test", limit=count, lease_seconds=60)
    for claim in claims:
        result = GeminiResult(
            text="ok",
            response_id="r",
            input_tokens=100,
            output_tokens=40,
            thought_tokens=0,
            tier_served=served or claim.tier,
        )
        assert (
            recording.attempt_succeeded(claim=claim, owner="test", result=result, latency=1.0)
            == "succeeded"
        )
    return list(Job.objects.filter(pk__in=[claim.job_id for claim in claims]))


def fail_once(count: int) -> None:
    """Spend one attempt of `count` jobs on a 503 and make the retry due now."""
    for claim in claiming.jobs_claim(owner="test", limit=count, lease_seconds=60):
        error = GeminiError("capacity", "shed", http_status=503)
        recording.attempt_failed(claim=claim, owner="test", error=error, latency=1.0)
    Job.objects.filter(next_attempt_at__isnull=False).update(next_attempt_at=timezone.now())


def progress(run: Run) -> run_queries.RunProgress:
    counts = queries.state_counts(run_queries.run_scope(run))
    return run_queries.run_progress(run, counts, now=timezone.now())


def test_flex_answers_cost_half_of_standard(ada):
    run = run_of(ada, 2)
    answer(2)
    figures = progress(run)
    assert figures.cost_usd == Decimal("0.00013")  # 2 x 0.000065
    assert figures.standard_cost_usd == Decimal("0.00026")  # 2 x 0.00013
    assert figures.savings_usd == Decimal("0.00013")
    assert figures.projected_cost_usd == figures.cost_usd


def test_a_fallback_answer_is_billed_at_standard(ada):
    run = run_of(ada, 3, fallback=True)
    answer(2)
    fail_once(1)
    # The last of its 2 attempts runs on standard: the dispatcher asks for it.
    (fallback,) = answer(1)
    assert (fallback.tier_served, fallback.cost_usd) == (Tier.STANDARD, Decimal("0.00013"))
    figures = progress(run)
    assert figures.cost_usd == Decimal("0.00026")  # 0.000065 + 0.000065 + 0.00013
    assert figures.standard_cost_usd == Decimal("0.00039")  # 3 x 0.00013
    assert figures.savings_usd == Decimal("0.00013")


def test_the_projection_is_the_average_answer_for_each_job_still_to_run(ada):
    run = run_of(ada, 4)
    answer(1)
    figures = progress(run)
    # 0.000065 so far, and 3 more at 0.000065 each.
    assert figures.projected_cost_usd == Decimal("0.00026")
    assert figures.projected_standard_cost_usd == Decimal("0.00052")
    assert figures.projected_savings_usd == Decimal("0.00026")


def test_before_any_answer_the_projection_is_the_upload_estimate(ada):
    run = run_of(ada, 2)
    # 100 tokens in and (assumed) 100 out: (30 + 250) / 1e6 = 0.00028 a job on standard.
    assert run.estimated_standard_cost_usd == Decimal("0.00056")
    figures = progress(run)
    assert figures.projected_cost_usd == Decimal("0.00028")
    assert figures.projected_standard_cost_usd == Decimal("0.00056")


def test_moving_to_standard_is_quoted_from_the_answers_so_far_and_billed_at_standard(ada):
    run = run_of(ada, 3)
    answer(1)
    quote = run_queries.standard_quote(run)
    # 2 unfinished: 100 tokens in each, and 40 out as the one answer so far.
    assert (quote.jobs, quote.observed) == (2, True)
    assert quote.standard_usd == Decimal("0.00026")
    assert quote.flex_usd == Decimal("0.00013")
    assert quote.difference_usd == Decimal("0.00013")

    assert runs.run_move_to_standard(run=run) == 2
    moved = answer(2)
    assert {(job.tier_served, job.cost_usd) for job in moved} == {
        (Tier.STANDARD, Decimal("0.00013"))
    }
    figures = progress(run)
    # The flex answer and the difference quoted: 0.000065 + 0.00026.
    assert figures.cost_usd == Decimal("0.000325")
    assert figures.cost_usd - Decimal("0.000065") == quote.standard_usd
    assert run_queries.standard_quote(run).jobs == 0


def test_the_overview_shows_this_months_cost_and_standard_for_me_only(client, ada, bob):
    mine = run_of(ada, 2)
    answer(2)
    run_of(bob, 1)
    answer(1)
    # An answer from before this month does not count.
    last_month = timezone.localtime().replace(day=1) - timedelta(days=1)
    Job.objects.filter(pk=mine.jobs.order_by("id").first().pk).update(finished_at=last_month)
    page = as_user(client, ada).get("/").content.decode()
    assert '<dd id="month-cost">$0.000065</dd>' in page
    assert '<dd id="month-standard">$0.00013</dd>' in page
    assert '<dd id="month-saved">$0.000065</dd>' in page
    assert "1 answer since 1 " in page
