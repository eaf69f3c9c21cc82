"""Budgets as a researcher sees them: their own and the account's on the
account page, and the reason work waits on the job page, the run page and
the overview, with the run's budget raised from its page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from jobs.engine import budgets, claiming
from jobs.models import BudgetUse, Job, State
from tests.support import HTMX, as_user, make_run, submit

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_in_tmp")]


def claim() -> list[claiming.Claim]:
    return claiming.jobs_claim(owner="test", limit=50, lease_seconds=60)


def test_the_account_page_shows_limit_spent_reserved_and_left(client, ada):
    budgets.user_limit_set(user=ada, limit=Decimal("5.00"))
    submit(ada, "held", max_output_tokens=1000)
    (claimed,) = claim()
    key = budgets.user_key(ada.pk, budgets.month_of(timezone.now()))
    BudgetUse.objects.filter(key=key).update(spent_usd=Decimal("1.25"))
    page = as_user(client, ada).get("/account/").content.decode()
    assert 'id="budgets"' in page
    assert "$5.00" in page and "$1.25" in page
    assert "Reserved: the most the requests in flight may cost" in page
    left = Decimal("5.00") - Decimal("1.25") - claimed.reserved_usd
    assert budgets.standings_of(ada)[0].left == left


def test_waiting_work_says_which_budget_holds_it_on_every_page(client, ada):
    run = make_run(ada, [(str(n), f"line {n}") for n in range(3)], name="nightly",
                   max_output_tokens=10_000)  # fmt: skip
    budgets.run_budget_set(run=run, limit=Decimal("0.02"))
    claim()  # one worst case fits; the rest is held
    waiting = run.jobs.filter(state=State.QUEUED).first()
    as_user(client, ada)
    words = "budget for run “nightly” reached: $0.0125 of $0.02 spent or reserved"

    job_page = client.get(f"/jobs/{waiting.pk}/").content.decode()
    assert f"<strong>Waiting:</strong> {words}; it goes on when the run" in job_page
    run_page = client.get(f"/runs/{run.pk}/").content.decode()
    assert words in run_page
    assert 'id="run-budget">Budget $0.02' in run_page
    assert (
        words
        in client.get(
            f"/runs/{run.pk}/", headers={**HTMX, "HX-Target": "run-live"}
        ).content.decode()
    )
    assert words in client.get("/").content.decode()

    response = client.post(f"/runs/{run.pk}/budget/", {"budget_usd": "1.50"}, follow=True)
    assert "The run&#x27;s budget is now $1.50." in response.content.decode()
    assert budgets.holds_for_run(run) == []
    assert len(claim()) == 2


def test_a_bad_budget_on_the_run_page_changes_nothing(client, ada, bob):
    run = make_run(ada, name="nightly")
    as_user(client, ada)
    response = client.post(f"/runs/{run.pk}/budget/", {"budget_usd": "-3"}, follow=True)
    assert (
        "The budget was not changed: The budget must be at least $0.01."
        in response.content.decode()
    )
    run.refresh_from_db()
    assert run.budget_usd is None and not BudgetUse.objects.filter(run=run).exists()
    as_user(client, bob)
    assert client.post(f"/runs/{run.pk}/budget/", {"budget_usd": "3"}).status_code == 404


def test_a_job_nothing_holds_back_shows_no_budget_reason(client, ada):
    (job,) = submit(ada, "free")
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert "budget-hold" not in page
    assert Job.objects.get(pk=job.pk).state == State.QUEUED
