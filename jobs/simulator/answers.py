"""What an answer says and what it costs, whichever route carries it: the request as both routes
describe it (`Call`), the answer composed for it (`Reply`) and the token counts.

Tokens, counted the same way on both routes:
- input: ceil(characters / 4) for every text part of every turn, the system instruction and the
  JSON of function calls and results, plus `MEDIA_TOKENS` (258) per audio or video part and per
  document page. An image sent inline costs what Gemini 2.x bills for its size, read from its
  header (sizes.tiled_image_tokens: 258 up to 384 px a side, else 258 a tile); one whose
  size cannot be read, or sent by URI, 258. A PDF sent inline has as many pages as it has
  `/Type /Page` objects (not `/Type /Pages`), at least one; any other document, or one sent by
  URI, is one page;
- thoughts, only when the request turns thinking on (none otherwise, although Gemini 2.5 models
  think by default): a budget of N gives min(N, 64), -1 (dynamic) 64; a level gives
  `THOUGHTS_BY_LEVEL` (minimal 4, low 16, medium 64, high 256, xhigh 1024);
- output: ceil(characters / 4) of each candidate's text, or of a function call's JSON.
The total is input + thoughts + output.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jobs import sizes
from jobs.simulator.directives import Final, answer_text
from jobs.simulator.errors import ApiError
from jobs.simulator.schemas import schema_instance, schema_violation

MEDIA_TOKENS = 258
THOUGHT_BUDGET_CAP = 64
THOUGHTS_BY_LEVEL = {"minimal": 4, "low": 16, "medium": 64, "high": 256, "xhigh": 1024}
MAX_CANDIDATES = 8

_PDF_PAGE = re.compile(rb"/Type\s*/Page(?!s)")


def tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def pdf_pages(pdf: bytes) -> int:
    return max(1, len(_PDF_PAGE.findall(pdf)))


def media_part_tokens(mime_type: str, raw: bytes) -> int:
    """The input tokens of an image or PDF sent inline as `raw` bytes."""
    if mime_type.startswith("image/"):
        size = sizes.image_size(raw)
        return sizes.tiled_image_tokens(*size) if size else MEDIA_TOKENS
    return MEDIA_TOKENS * pdf_pages(raw)


def media_modality(mime_type: str) -> str:
    """The modality Google counts a non-text part under, by its MIME type."""
    kind = mime_type.partition("/")[0].upper()
    return kind if kind in ("IMAGE", "AUDIO", "VIDEO") else "DOCUMENT"


def thought_tokens(*, budget: Any = None, level: Any = None) -> int:
    """The thought tokens of a request that sets a thinking budget or level (0 without)."""
    if level is not None and str(level).lower() != "thinking_level_unspecified":
        if str(level).lower() not in THOUGHTS_BY_LEVEL:
            raise ApiError(400, f"Invalid thinking level {level!r}.")
        return THOUGHTS_BY_LEVEL[str(level).lower()]
    if budget is None:
        return 0
    try:
        budget = int(budget)
    except (TypeError, ValueError):
        raise ApiError(400, f"Invalid thinking budget {budget!r}.") from None
    if budget < -1:
        raise ApiError(400, f"Invalid thinking budget {budget}: -1 (dynamic), 0 or more.")
    return THOUGHT_BUDGET_CAP if budget == -1 else min(budget, THOUGHT_BUDGET_CAP)


@dataclass(frozen=True)
class Function:
    """A function the request declares, with its parameters schema (either dialect)."""

    name: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class Call:
    """One request, as both routes describe it."""

    model: str
    prompt: str
    """The text of the user turns, all text parts joined: directives, counts and the answer."""
    system: str
    tier: str
    text_chars: int
    """Characters of every text part, the system instruction's and function calls' JSON."""
    media_tokens: Mapping[str, int] = field(default_factory=dict)
    """Input tokens of non-text parts by modality ("IMAGE", "DOCUMENT", ...)."""
    json: bool = False
    schema: Mapping[str, Any] | None = None
    thought_tokens: int = 0
    max_output_tokens: int | None = None
    stop_sequences: tuple[str, ...] = ()
    candidates: int = 1
    functions: tuple[Function, ...] = ()

    def input_tokens_by_modality(self) -> dict[str, int]:
        return {"TEXT": tokens(self.text_chars), **self.media_tokens}

    @property
    def input_tokens(self) -> int:
        return sum(self.input_tokens_by_modality().values())


@dataclass(frozen=True)
class Candidate:
    text: str = ""
    function_call: Mapping[str, Any] | None = None
    """{"name": ..., "args": {...}} when the answer calls a function instead of saying text."""
    finish: Literal["STOP", "MAX_TOKENS"] = "STOP"

    @property
    def tokens(self) -> int:
        if self.function_call is not None:
            return tokens(len(json.dumps(self.function_call)))
        return tokens(len(self.text))


Outcome = Literal["answer", "failed", "safety", "prompt-blocked"]


@dataclass(frozen=True)
class Reply:
    """How a request that got HTTP 200 ends: candidates for an answer, none otherwise."""

    outcome: Outcome
    candidates: tuple[Candidate, ...] = ()
    thought_tokens: int = 0

    @property
    def output_tokens(self) -> int:
        return sum(candidate.tokens for candidate in self.candidates)


FILLER = " and so on"


def compose(call: Call, final: Final, answer_tokens: int | None = None) -> Reply:
    """How the call is answered; `answer_tokens` sets each text answer's length
    (SimConfig.random_lengths), padded with FILLER or cut, before the stop
    sequences and the token limit apply."""
    if final in ("failed", "safety", "prompt-blocked"):
        return Reply(final)  # type: ignore[arg-type]
    if final == "function-call":
        function = call.functions[0]
        args = schema_instance(function.parameters or {"type": "object"}, call.prompt)
        called = Candidate(function_call={"name": function.name, "args": args})
        return Reply("answer", (called,), call.thought_tokens)
    candidates = tuple(_candidate(call, final, n, answer_tokens) for n in range(call.candidates))
    return Reply("answer", candidates, call.thought_tokens)


def _candidate(call: Call, final: Final, n: int, answer_tokens: int | None = None) -> Candidate:
    """Candidate `n`'s answer: the others differ from the first by a " (n+1)" suffix (in JSON,
    by the strings derived from it), then cut at a stop sequence and at the token limit."""
    text = answer_text(call.prompt) + (f" ({n + 1})" if n else "")
    if call.json and call.schema is not None:
        build = schema_violation if final == "bad-json" else schema_instance
        text = json.dumps(build(call.schema, text))
    elif call.json and final != "bad-json":
        text = json.dumps({"answer": text})
    elif answer_tokens is not None:
        chars = answer_tokens * 4
        text = (text + FILLER * math.ceil(max(0, chars - len(text)) / len(FILLER)))[:chars]
    for stop in call.stop_sequences:
        if stop and stop in text:
            text = text[: text.index(stop)]
    limit = call.max_output_tokens
    if final == "max-tokens":
        whole = tokens(len(text))
        limit = limit if limit and limit < whole else whole // 2
        return Candidate(text[: limit * 4], finish="MAX_TOKENS")
    if limit and tokens(len(text)) > limit:
        return Candidate(text[: limit * 4], finish="MAX_TOKENS")
    return Candidate(text)
