"""The work bench/eval.py measures, the same for every part (not a benchmark itself):
the rows, the eval definition, what the simulator must answer to each request, and
the prices every cost is computed from.

The rows carry a random nonce, so one row's answer or grade cannot pass for
another's. The simulator answers "Simulated answer to: " + the prompt, and a
schema with an instance of it (a judge's score from 1 to 10 and a reason, both
derived from the prompt), so every answer and every judge's prompt is known in advance: the
parts check what they stored or got back against `expected_answer` and
`judge_prompt`.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

# (model, the generation config it is asked with): the three candidates.
CANDIDATES = (
    ("gemini-2.5-flash", {}),
    ("gemini-2.5-flash-lite", {}),
    ("gemini-3-flash-preview", {"thinking_level": "low"}),
)
JUDGE_MODEL = "gemini-2.5-pro"
JUDGE_NAME = "judge"
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 10},
        "reason": {"type": "string"},
    },
    "required": ["score", "reason"],
}
SCORE_RANGE = (1, 10)
# The judge's prompt, as the pipeline renders the definition's block scalar (its
# final newline trimmed).
JUDGE_TEMPLATE = (
    "Question: {question}\n"
    "Reference answer: {reference}\n"
    "Candidate answer: {answer}\n"
    "Grade the candidate from 1 to 10 for correctness."
)
TIERS = ("flex", "standard")


def table_rows(rows: int, seed: int) -> list[dict[str, str]]:
    """{"id", "question", "reference"} for each row."""
    rng = random.Random(seed)
    table = []
    for i in range(1, rows + 1):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        nonce = f"{rng.getrandbits(32):08x}"
        table.append(
            {
                "id": f"row-{i:05d}",
                "question": f"Row {i} ({nonce}): what is {a} plus {b}?",
                "reference": str(a + b),
            }
        )
    return table


def definition(tier: str) -> str:
    """The eval as YAML, on `tier` (every step: the candidates' answers and the judge)."""
    candidates = "\n".join(
        f"  - {{model: {model}"
        + (f", generation_config: {json.dumps(config)}" if config else "")
        + "}"
        for model, config in CANDIDATES
    )
    template = JUDGE_TEMPLATE.format(
        question="{{ row.question }}", reference="{{ row.reference }}", answer="{{ answer }}"
    )
    judge_prompt = "".join(f"      {line}\n" for line in template.splitlines())
    return (
        "name: bench-qa-eval\n"
        f"tier: {tier}\n"
        "candidates:\n"
        f"{candidates}\n"
        'prompt: "{{ row.question }}"\n'
        "graders:\n"
        f"  - name: {JUDGE_NAME}\n"
        f"    model: {JUDGE_MODEL}\n"
        "    prompt: |\n"
        f"{judge_prompt}"
        f"    response_schema: {json.dumps(JUDGE_SCHEMA)}\n"
        "    score: score\n"
        "seed: 7\n"
    )


def expected_answer(question: str) -> str:
    """What the simulator answers a candidate asked `question`."""
    from jobs.simulator.directives import answer_text

    return answer_text(question)


def judge_prompt(row: dict[str, str], answer: str) -> str:
    return JUDGE_TEMPLATE.format(
        question=row["question"], reference=row["reference"], answer=answer
    )


def score_of(output: Any) -> int | None:
    """The judge's score from its structured answer, or None when it is not one."""
    if not isinstance(output, dict):
        return None
    score = output.get("score")
    if isinstance(score, bool) or not isinstance(score, int):
        return None
    low, high = SCORE_RANGE
    return score if low <= score <= high else None


# --- Prices ---------------------------------------------------------------------------
def load_prices(path: str | Path) -> dict[str, Any]:
    """prices.json's models, as ModelPrice rows (unsaved), for jobs.engine.pricing."""
    from jobs.models import ModelPrice

    def rate(value: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    models = json.loads(Path(path).read_text())["models"]
    return {
        model: ModelPrice(
            model=model,
            input_per_million=rate(p["input"]),
            output_per_million=rate(p["output"]),
            long_input_per_million=rate(p.get("long_input")),
            long_output_per_million=rate(p.get("long_output")),
        )
        for model, p in models.items()
    }


def answer_cost(
    prices: dict[str, Any], *, model: str, tier: str, input_tokens: int, output_tokens: int
) -> tuple[Decimal, Decimal]:
    """(cost on `tier`, cost on standard) of one answer, as jobs/engine/pricing.py
    computes a job's; `output_tokens` includes thought tokens (prices.json bills them
    as output)."""
    from jobs.engine import pricing

    standard = pricing.standard_cost(
        prices[model], input_tokens=input_tokens, output_tokens=output_tokens
    )
    return pricing.tier_cost(standard, tier), standard


def prices_match_catalog(prices: dict[str, Any]) -> list[str]:
    """Models whose prices.json rates differ from jobs/catalog.py's (which seeds the
    ModelPrice table FlexDash prices its jobs with)."""
    from jobs.engine.pricing import published_price

    differ = []
    for model, price in prices.items():
        seeded = published_price(model)
        fields = (
            "input_per_million",
            "output_per_million",
            "long_input_per_million",
            "long_output_per_million",
        )
        if seeded is None or any(getattr(seeded, f) != getattr(price, f) for f in fields):
            differ.append(model)
    return differ
