"""A run's budget on the upload and the preview: the preview says whether
the estimate fits the run's budget and what is left of the monthly ones, and
a bad budget is refused naming the field, creating nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from jobs.engine import budgets
from jobs.models import BudgetUse, Run
from tests.run_files import prompt_file
from tests.support import MODEL, as_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_in_tmp")]


def upload(client, **fields):
    filename, content = prompt_file("jsonl", [("q1", "x" * 4000), ("q2", "y" * 4000)])
    data = {"model": MODEL, "tier": "flex", "max_attempts": "8", **fields}
    data["file"] = SimpleUploadedFile(filename, content)
    return client.post("/runs/new/", data)


def test_the_preview_says_the_run_fits_its_budget_and_creates_it_with_it(client, ada):
    response = upload(as_user(client, ada), budget_usd="2.00")
    page = client.get(response["Location"]).content.decode()
    assert "Fits the run&#x27;s budget ($2.00)." in page
    assert 'name="budget_usd" value="2.00"' in page
    client.post(response["Location"])
    run = Run.objects.get()
    assert run.budget_usd == Decimal("2.00")
    assert BudgetUse.objects.get(run=run).spent_usd == 0


def test_a_bad_budget_on_the_preview_is_refused_and_creates_nothing(client, ada):
    response = upload(as_user(client, ada), budget_usd="0.01")
    preview = response["Location"]
    page = client.get(preview).content.decode()
    # 2 x 1,000 tokens in and (assumed) out at flex: about $0.0028.
    assert "Fits the run&#x27;s budget ($0.01)." in page
    page = client.post(preview, {"budget_usd": "0.001", "deadline_policy": "keep"}).content.decode()
    assert "The budget is in dollars and cents: at most two decimals." in page
    assert not Run.objects.exists()


def test_a_run_that_does_not_fit_what_is_left_of_the_month_says_so(client, ada):
    budgets.user_limit_set(user=ada, limit=Decimal("0.01"))
    month = budgets.month_of(timezone.now())
    BudgetUse.objects.create(
        key=budgets.user_key(ada.pk, month),
        scope="user",
        user=ada,
        month=month,
        spent_usd=Decimal("0.009"),
    )
    response = upload(as_user(client, ada))
    page = client.get(response["Location"]).content.decode()
    assert "Does not fit what is left of your monthly budget</strong> ($0.001)" in page


@pytest.mark.parametrize(("typed", "words"), [("ten", "amount in USD"), ("0", "at least $0.01")])
def test_a_bad_budget_on_the_upload_is_refused_and_nothing_is_staged(client, ada, typed, words):
    response = upload(as_user(client, ada), budget_usd=typed)
    assert response.status_code == 200
    assert words in response.content.decode()
    assert not Run.objects.exists()
