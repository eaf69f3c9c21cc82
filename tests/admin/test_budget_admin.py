"""The admin of budgets: staff set a researcher's and the account's monthly
limits (work they held is looked at again), a run's budget, and read what
each budget has spent and reserved."""

from __future__ import annotations

from decimal import Decimal

import pytest

from jobs.engine import budgets, claiming
from jobs.models import AccountBudget, BudgetUse, Run, UserBudget
from tests.support import make_run, submit

pytestmark = pytest.mark.django_db


def test_staff_set_a_researchers_monthly_limit_and_held_work_goes_on(admin_client, ada):
    budgets.user_limit_set(user=ada, limit=Decimal("0.01"))
    submit(ada, "big", max_output_tokens=100_000)
    assert claiming.jobs_claim(owner="t", limit=5, lease_seconds=60) == []
    row = UserBudget.objects.get(user=ada)
    page = admin_client.get(f"/admin/jobs/userbudget/{row.pk}/change/")
    assert page.status_code == 200
    response = admin_client.post(
        f"/admin/jobs/userbudget/{row.pk}/change/", {"user": ada.pk, "monthly_limit_usd": "5.00"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert UserBudget.objects.get(user=ada).monthly_limit_usd == Decimal("5.00")
    assert len(claiming.jobs_claim(owner="t", limit=5, lease_seconds=60)) == 1


def test_a_limit_below_a_cent_is_refused_in_the_admin(admin_client, ada):
    response = admin_client.post(
        "/admin/jobs/userbudget/add/", {"user": ada.pk, "monthly_limit_usd": "-1"}
    )
    assert response.status_code == 200
    assert "greater than or equal to 0.01" in response.content.decode()
    assert not UserBudget.objects.exists()


def test_the_account_budget_is_one_row_edited_in_place(admin_client):
    response = admin_client.post("/admin/jobs/accountbudget/add/", {"monthly_limit_usd": "100"})
    assert response.status_code == 302
    assert AccountBudget.objects.get().monthly_limit_usd == Decimal("100")
    page = admin_client.get("/admin/jobs/accountbudget/").content.decode()
    assert "This month (UTC): spent + reserved" in page
    assert admin_client.get("/admin/jobs/accountbudget/add/").status_code == 403


def test_a_runs_budget_set_in_the_admin_counts_what_it_has_used(admin_client, ada):
    run = make_run(ada, name="nightly")
    claiming.jobs_claim(owner="t", limit=5, lease_seconds=60)
    page = admin_client.get(f"/admin/jobs/run/{run.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields}
    data["budget_usd"] = "3.00"
    response = admin_client.post(f"/admin/jobs/run/{run.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Run.objects.get(pk=run.pk).budget_usd == Decimal("3.00")
    use = BudgetUse.objects.get(run=run)
    assert use.reserved_usd == budgets.open_reservations()[use.key] > 0


def test_budget_use_is_read_only(admin_client, ada):
    submit(ada, "one")
    claiming.jobs_claim(owner="t", limit=5, lease_seconds=60)
    assert admin_client.get("/admin/jobs/budgetuse/").status_code == 200
    row = BudgetUse.objects.first()
    page = admin_client.get(f"/admin/jobs/budgetuse/{row.pk}/change/")
    assert page.status_code == 200
    assert admin_client.post(f"/admin/jobs/budgetuse/{row.pk}/change/", {}).status_code == 403
