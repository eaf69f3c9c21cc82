"""A batch's budget through the API: set on upload, shown on the batch, and
a bad one refused naming the field, creating nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import BudgetUse, Job, Run

pytestmark = pytest.mark.django_db


def post_file(client, **fields):
    upload = SimpleUploadedFile("p.txt", b"one\ntwo\n")
    return client.post("/api/batches", {"file": upload, **fields})


def test_a_batch_takes_a_budget_and_shows_it(as_ada):
    response = post_file(as_ada, budget_usd="12.50")
    assert response.status_code == 201, response.content
    assert response.json()["budget_usd"] == "12.50"
    run = Run.objects.get()
    assert run.budget_usd == Decimal("12.50")
    assert BudgetUse.objects.filter(run=run).exists()
    assert as_ada.get(f"/api/batches/{run.pk}").json()["budget_usd"] == "12.50"


def test_a_batch_without_a_budget_has_none(as_ada):
    assert post_file(as_ada).json()["budget_usd"] is None


@pytest.mark.parametrize(
    ("typed", "words"),
    [("ten", "amount in USD"), ("-1", "more than $0"), ("1.234", "two decimal places")],
)
def test_a_bad_budget_is_refused_naming_the_field_and_creates_nothing(as_ada, typed, words):
    response = post_file(as_ada, budget_usd=typed)
    assert response.status_code == 422
    (message,) = response.json()["errors"]["budget_usd"]
    assert words in message
    assert not Run.objects.exists() and not Job.objects.exists()
