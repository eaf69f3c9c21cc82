"""Cost arithmetic against hand-computed figures (prices per 1M tokens)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from jobs.engine.pricing import job_costs, standard_cost, tier_cost
from jobs.models import ModelPrice

pytestmark = pytest.mark.django_db


def test_seeded_price_table_has_every_flex_model():
    from jobs.catalog import FLEX_MODELS

    assert set(ModelPrice.objects.values_list("model", flat=True)) >= set(FLEX_MODELS)


def test_flex_bills_half_of_standard():
    # gemini-2.5-flash: $0.30 in, $2.50 out per 1M. 1,000 in + 2,000 out:
    # standard = 0.0003 + 0.005 = 0.0053; flex = 0.00265.
    cost, standard = job_costs(
        model="gemini-2.5-flash", tier="flex", input_tokens=1000, output_tokens=2000
    )
    assert standard == Decimal("0.00530000")
    assert cost == Decimal("0.00265000")


def test_fallback_to_standard_bills_the_full_price():
    cost, standard = job_costs(
        model="gemini-2.5-flash", tier="standard", input_tokens=1000, output_tokens=2000
    )
    assert cost == standard == Decimal("0.00530000")


def test_long_prompts_on_pro_use_the_long_prices():
    price = ModelPrice.objects.get(model="gemini-2.5-pro")
    # 300k in at $2.50 + 1k out at $15.00 = 0.75 + 0.015
    assert standard_cost(price, input_tokens=300_000, output_tokens=1000) == Decimal("0.76500000")
    # 100k in at $1.25 + 1k out at $10.00 = 0.125 + 0.01
    assert standard_cost(price, input_tokens=100_000, output_tokens=1000) == Decimal("0.13500000")


def test_priority_is_charged_at_its_upper_bound():
    assert tier_cost(Decimal("0.01"), "priority") == Decimal("0.02000000")


def test_a_model_missing_from_the_table_uses_the_published_price():
    ModelPrice.objects.filter(model="gemini-2.5-flash").delete()
    cost, standard = job_costs(
        model="gemini-2.5-flash", tier="flex", input_tokens=1000, output_tokens=2000
    )
    assert (cost, standard) == (Decimal("0.00265000"), Decimal("0.00530000"))


def test_unknown_model_has_no_cost_rather_than_a_wrong_one():
    assert job_costs(model="nope", tier="flex", input_tokens=1, output_tokens=1) == (None, None)


def test_prices_edited_in_the_table_are_used():
    ModelPrice.objects.filter(model="gemini-2.5-flash").update(
        input_per_million=Decimal("1"), output_per_million=Decimal("1")
    )
    cost, _ = job_costs(
        model="gemini-2.5-flash", tier="flex", input_tokens=1_000_000, output_tokens=0
    )
    assert cost == Decimal("0.50000000")
