"""What Google offers on the flex tier (seed/flex-inference.md, "Supported
models") and the published standard prices (shared/prices.json), in one place
so forms, commands and the price table agree."""

from __future__ import annotations

FLEX_MODELS: tuple[str, ...] = (
    "gemini-3.1-flash-lite",
    "gemini-3.1-flash-lite-preview",
    "gemini-3.1-pro-preview",
    "gemini-3-flash-preview",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
)
DEFAULT_MODEL = "gemini-2.5-flash"

# Standard-tier USD per 1M tokens: (input, output, long_input, long_output).
# Long prices apply on the Pro models when the prompt exceeds 200k tokens.
PUBLISHED_PRICES: dict[str, tuple[str, str, str | None, str | None]] = {
    "gemini-3.1-pro-preview": ("2.00", "12.00", "4.00", "18.00"),
    "gemini-3-flash-preview": ("0.50", "3.00", None, None),
    "gemini-3.1-flash-lite": ("0.25", "1.50", None, None),
    "gemini-3.1-flash-lite-preview": ("0.25", "1.50", None, None),
    "gemini-2.5-pro": ("1.25", "10.00", "2.50", "15.00"),
    "gemini-2.5-flash": ("0.30", "2.50", None, None),
    "gemini-2.5-flash-lite": ("0.10", "0.40", None, None),
}
LONG_PROMPT_THRESHOLD_TOKENS = 200_000
# Characters a token is reckoned at before a request is sent (its prompt is not
# tokenized until Google answers).
CHARS_PER_TOKEN = 4

# The most output tokens one answer may have, as published (every flex model: 65,536).
# Budgets reserve it for a request without max output tokens (ModelPrice.max_output_tokens).
PUBLISHED_OUTPUT_LIMITS: dict[str, int] = dict.fromkeys(FLEX_MODELS, 65_536)
# The most input tokens a prompt may have on every flex model, as published: Gemini
# refuses (and bills nothing for) a longer one, so no try is billed more input than this.
INPUT_LIMIT_TOKENS = 1_048_576
