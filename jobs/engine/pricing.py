"""Cost of a job from the usage the API returned, at the tier actually served."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from jobs.catalog import CHARS_PER_TOKEN, LONG_PROMPT_THRESHOLD_TOKENS, PUBLISHED_PRICES
from jobs.models import ModelPrice

# Multipliers of the standard price. Flex bills 50% (seed/flex-inference.md);
# priority is "75-100% more than standard": we charge the upper bound so the
# dashboard never understates a priority bill.
TIER_MULTIPLIER = {
    "flex": Decimal("0.5"),
    "standard": Decimal("1"),
    "priority": Decimal("2"),
}
_MILLION = Decimal(1_000_000)
_QUANTUM = Decimal("0.00000001")


def standard_cost(price: ModelPrice, *, input_tokens: int, output_tokens: int) -> Decimal:
    """USD on the standard tier; output includes thinking tokens (prices.json)."""
    long_prompt = input_tokens > LONG_PROMPT_THRESHOLD_TOKENS
    input_rate = (long_prompt and price.long_input_per_million) or price.input_per_million
    output_rate = (long_prompt and price.long_output_per_million) or price.output_per_million
    cost = (Decimal(input_tokens) * input_rate + Decimal(output_tokens) * output_rate) / _MILLION
    return cost.quantize(_QUANTUM, rounding=ROUND_HALF_UP)


def tier_cost(standard: Decimal, tier: str) -> Decimal:
    multiplier = TIER_MULTIPLIER.get(tier, Decimal("1"))
    return (standard * multiplier).quantize(_QUANTUM, rounding=ROUND_HALF_UP)


def published_price(model: str) -> ModelPrice | None:
    """The published price, for a model missing from the (editable) table."""
    published = PUBLISHED_PRICES.get(model)
    if published is None:
        return None
    inp, out, long_in, long_out = (Decimal(v) if v else None for v in published)
    return ModelPrice(
        model=model,
        input_per_million=inp,
        output_per_million=out,
        long_input_per_million=long_in,
        long_output_per_million=long_out,
    )


def job_costs(
    *, model: str, tier: str, input_tokens: int, output_tokens: int
) -> tuple[Decimal | None, Decimal | None]:
    """(cost on the tier served, cost of the same tokens on standard), or
    (None, None) when the model has no price in the table."""
    price = ModelPrice.objects.filter(model=model).first() or published_price(model)
    if price is None:
        return None, None
    standard = standard_cost(price, input_tokens=input_tokens, output_tokens=output_tokens)
    return tier_cost(standard, tier), standard


def tokens_for_chars(chars: int) -> int:
    """Tokens estimated before sending: about four characters each."""
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate_tokens(*texts: str) -> int:
    """Tokens estimated for texts sent together (a prompt and its instruction)."""
    return tokens_for_chars(sum(len(text) for text in texts))
