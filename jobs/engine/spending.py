"""Budgets as pure arithmetic: what one try may cost at most, whether it fits
what a budget has left, and the words for a budget that holds work back.
No Django, no database, no clock (jobs/engine/budgets.py does the rest).

The worst case is an upper bound on the bill, never an estimate of it:
- input: one token per UTF-8 byte of text (Gemini's tokenizer never makes more
  tokens than bytes; English averages about four characters a token), plus
  the most its images and documents can cost on any model it may be sent to
  (sizes.media_worst_case_tokens: an image by its pixel size, read from
  its header, at the greater of Gemini 2.x's tiles and Gemini 3's count at its
  media resolution; a document by its pages; media it cannot measure, such as
  those sent by URI, at the most they can cost); and never more than the
  largest prompt Gemini takes (INPUT_LIMIT_TOKENS), which it refuses unbilled;
- output: every answer at its cap (max output tokens, or the model's own
  output limit where the request sets none), times the answers asked for,
  plus the thinking budget where one is set (a level or dynamic thinking:
  the largest budget Gemini takes);
- the price of the tier the try is sent at, at the long-prompt rates when the
  worst-case input is over the threshold; rounded up to the next 1e-8 USD.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from jobs import gemini_shape, sizes
from jobs.catalog import INPUT_LIMIT_TOKENS, LONG_PROMPT_THRESHOLD_TOKENS

# The largest thinking budget Gemini takes: what dynamic thinking and a
# thinking level may spend at most.
WORST_CASE_THINKING_TOKENS = 32_768
_MILLION = Decimal(1_000_000)
_QUANTUM = Decimal("0.00000001")


@dataclass(frozen=True)
class Rates:
    """A model's standard-tier USD per million tokens (ModelPrice's fields)."""

    input_per_million: Decimal
    output_per_million: Decimal
    long_input_per_million: Decimal | None = None
    long_output_per_million: Decimal | None = None


@dataclass(frozen=True)
class Reserve:
    """A request's worst case in tokens: `model_caps` answers have no cap of
    their own and are counted at the model's output limit when it is sent."""

    input_tokens: int
    output_tokens: int
    model_caps: int = 0

    def output_with(self, model_cap: int) -> int:
        return self.output_tokens + self.model_caps * model_cap


def request_reserve(request: dict) -> Reserve:
    """The worst case of a request in Gemini's shape (jobs/gemini_shape.py)."""
    text_bytes = len(gemini_shape.system_text(request).encode())
    for _, part in gemini_shape.parts(request):
        if "text" in part:
            text_bytes += len(part["text"].encode())
        elif "inline_data" not in part and "file_data" not in part:
            text_bytes += len(json.dumps(part).encode())
    config = gemini_shape.generation(request)
    answers = config.get("candidate_count") or 1
    cap = config.get("max_output_tokens")
    thinking = config.get("thinking_config") or {}
    budget = thinking.get("thinking_budget")
    if budget is not None and budget >= 0:
        thoughts = budget
    elif budget == -1 or thinking.get("thinking_level"):
        thoughts = WORST_CASE_THINKING_TOKENS
    else:
        thoughts = 0
    return Reserve(
        input_tokens=min(text_bytes + sizes.media_worst_case_tokens(request), INPUT_LIMIT_TOKENS),
        output_tokens=(answers * cap if cap else 0) + thoughts,
        model_caps=0 if cap else answers,
    )


def stored_reserve(
    *,
    input_tokens: int | None,
    output_tokens: int | None,
    model_caps: int | None,
    prompt_chars: int,
    max_output_tokens: int | None,
) -> Reserve:
    """The worst case a job stored (Job.reserve_*), or for a job from before
    they were kept, from its prompt's length (a character is at most four
    UTF-8 bytes) and its output cap."""
    if input_tokens is not None and output_tokens is not None and model_caps is not None:
        return Reserve(input_tokens, output_tokens, model_caps)
    return Reserve(
        input_tokens=4 * prompt_chars,
        output_tokens=max_output_tokens or 0,
        model_caps=0 if max_output_tokens else 1,
    )


def worst_case_usd(
    rates: Rates, *, input_tokens: int, output_tokens: int, multiplier: Decimal
) -> Decimal:
    """The most `input_tokens` in and `output_tokens` out can cost on a tier that
    bills `multiplier` times standard: long-prompt rates over the threshold (the
    higher of the two, should a table have them the wrong way round)."""
    input_rate, output_rate = rates.input_per_million, rates.output_per_million
    if input_tokens > LONG_PROMPT_THRESHOLD_TOKENS:
        input_rate = max(input_rate, rates.long_input_per_million or input_rate)
        output_rate = max(output_rate, rates.long_output_per_million or output_rate)
    cost = (Decimal(input_tokens) * input_rate + Decimal(output_tokens) * output_rate) / _MILLION
    return (cost * multiplier).quantize(_QUANTUM, rounding=ROUND_CEILING)


@dataclass(frozen=True)
class Budget:
    """One budget as a claim sees it: its limit (None: none), what is spent
    and what is reserved by tries in flight."""

    limit: Decimal | None
    spent: Decimal
    reserved: Decimal

    @property
    def left(self) -> Decimal | None:
        return None if self.limit is None else self.limit - self.spent - self.reserved

    def fits(self, amount: Decimal) -> bool:
        return self.limit is None or self.spent + self.reserved + amount <= self.limit

    def stopped_by(self, amount: Decimal) -> bool:
        """Even with every try in flight released, `amount` would not fit: the
        budget has stopped this work until its limit is raised (or the month turns)."""
        return self.limit is not None and self.spent + amount > self.limit

    def taking(self, amount: Decimal) -> Budget:
        return Budget(self.limit, self.spent, self.reserved + amount)


def dollars(amount: Decimal) -> str:
    """USD for people: cents, and below a dollar up to four places ($0.0125)."""
    amount = Decimal(amount)
    places = Decimal("0.01") if abs(amount) >= 1 else Decimal("0.0001")
    text = f"{amount.quantize(places, rounding=ROUND_HALF_UP):,}"
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction.rstrip('0').ljust(2, '0')}"


def reached_words(subject: str, budget: Budget) -> str:
    """“budget for run “nightly” reached: $12.48 of $12.50 spent or reserved”."""
    used = dollars(budget.spent + budget.reserved)
    limit = dollars(budget.limit or Decimal(0))
    return f"{subject} reached: {used} of {limit} spent or reserved"
