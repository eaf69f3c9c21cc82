"""The `[sim:...]` directives a test plants in a prompt, what they ask for and the answer text.

Directives are counted per distinct prompt and applied in order of appearance:

    [sim:503x2]                  the first 2 requests get 503 UNAVAILABLE
    [sim:429x1]                  the next request gets 429 RESOURCE_EXHAUSTED, with no hint
    [sim:429x1:retry-after=3]    ... with a `Retry-After: 3` header
    [sim:429x1:retry-info=4]     ... with `"retryDelay": "4s"` in the body only
    [sim:500x1]                  500 with an HTML body (504x1 gives a JSON DEADLINE_EXCEEDED)
    [sim:400]                    every later request gets 400 INVALID_ARGUMENT
    [sim:failed]                 HTTP 200 that is not an answer (see `wire.generate_body`)
    [sim:hang]                   never answers; the client has to give up
    [sim:sleep=2.5]              answer after 2.5 s instead of the configured latency
    [sim:max-tokens]             the answer stops at the token limit: the text so far, finish
                                 MAX_TOKENS (Interactions: status "incomplete"), cut to the
                                 request's maxOutputTokens if that is shorter, else to half
    [sim:safety]                 the answer is blocked by the safety filter: generateContent
                                 finishReason SAFETY, no content (Interactions: status "failed")
    [sim:prompt-blocked]         the prompt is blocked: generateContent promptFeedback.blockReason
                                 SAFETY and no candidates (Interactions: status "failed")
    [sim:bad-json]               JSON asked for with a schema: JSON that breaks it (a required
                                 property missing); without a schema, text that is not JSON
    [sim:function-call]          a call of the request's first declared function, its arguments
                                 built from its parameters (Interactions: "requires_action");
                                 400 when the request declares no function

Once a prompt's counted faults are used up, the last of the others (all but sleep) decides its
fate; without one it is answered, "Simulated answer to: " + the prompt without directives (first
500 chars, HTML kept verbatim), or JSON when JSON is asked for (`answers`). The prompt is the text
of the user turns, all text parts joined. An unknown directive is a 400, so a typo cannot pass
silently. Both routes share a prompt's count; a request refused by the RPM limit does not advance
it (`FlexSimulator` keeps the count).

Parsing a prompt into a `Plan` and the answer text belong here; nothing about HTTP does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from jobs.simulator.errors import GOOGLE_STATUS, ApiError

ANSWER_PREFIX = "Simulated answer to: "

_DIRECTIVE = re.compile(r"\[sim:([^\]]*)\]")
_FAULT = re.compile(r"(429|500|503|504)x(\d+)")
_HINTS = ("retry-after", "retry-info")

Final = Literal[
    "answer",
    "invalid",
    "failed",
    "hang",
    "max-tokens",
    "safety",
    "prompt-blocked",
    "bad-json",
    "function-call",
]
_FINALS: dict[str, Final] = {
    "400": "invalid",
    "failed": "failed",
    "hang": "hang",
    "max-tokens": "max-tokens",
    "safety": "safety",
    "prompt-blocked": "prompt-blocked",
    "bad-json": "bad-json",
    "function-call": "function-call",
}


@dataclass(frozen=True)
class Fault:
    status: int
    times: int
    retry_after: int | None = None
    retry_info: int | None = None

    def error(self) -> ApiError:
        return ApiError(
            self.status,
            f"Simulated {self.status} {GOOGLE_STATUS[self.status]}.",
            retry_after=self.retry_after,
            retry_info=self.retry_info,
        )


@dataclass(frozen=True)
class Plan:
    """What a prompt's directives ask for."""

    faults: tuple[Fault, ...] = ()
    final: Final = "answer"
    sleep: float | None = None

    def fault_for(self, seen: int) -> Fault | None:
        """The fault for the prompt's request number `seen` (0-based), if any."""
        for fault in self.faults:
            if seen < fault.times:
                return fault
            seen -= fault.times
        return None


def parse_directives(prompt: str) -> Plan:
    faults: list[Fault] = []
    final: Final = "answer"
    sleep: float | None = None
    for directive in _DIRECTIVE.findall(prompt):
        head, *options = directive.split(":")
        if fault := _FAULT.fullmatch(head):
            hints = dict(option.partition("=")[::2] for option in options)
            if set(hints) - set(_HINTS) or not all(v.isdigit() for v in hints.values()):
                raise ApiError(400, f"Bad simulator directive [sim:{directive}].")
            faults.append(
                Fault(
                    status=int(fault[1]),
                    times=int(fault[2]),
                    retry_after=int(hints["retry-after"]) if "retry-after" in hints else None,
                    retry_info=int(hints["retry-info"]) if "retry-info" in hints else None,
                )
            )
        elif directive in _FINALS:
            final = _FINALS[directive]
        elif directive.startswith("sleep=") and _is_seconds(directive.removeprefix("sleep=")):
            sleep = float(directive.removeprefix("sleep="))
        else:
            raise ApiError(400, f"Unknown simulator directive [sim:{directive}].")
    return Plan(tuple(faults), final, sleep)


def _is_seconds(text: str) -> bool:
    try:
        return 0 <= float(text) < math.inf
    except ValueError:
        return False


def answer_text(prompt: str) -> str:
    return ANSWER_PREFIX + _DIRECTIVE.sub("", prompt).strip()[:500]
