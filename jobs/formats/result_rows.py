"""One job of a run as the result files need it (ResultRow), and what its answer says
in the terms every format's result shape is built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobs import gemini_shape

CANCELLED = "cancelled"


@dataclass(frozen=True)
class ResultRow:
    """One job of a run as the exports need it; the caller builds it from the Job."""

    custom_id: str
    prompt: str
    state: str
    attempts: int
    http_503: int
    http_429: int
    input_tokens: int
    output_tokens: int
    thought_tokens: int
    cost_usd: str  # a plain decimal ("0.00000000", never "0E-8"), "" if none
    output_text: str
    error: str
    model: str
    response_id: str
    finished: bool
    succeeded: bool
    # The answer as Gemini sent it: a GenerateContentResponse as JSON (camelCase).
    response: dict | None = None
    finish_reason: str = ""  # Gemini's ("STOP", "MAX_TOKENS", "SAFETY"...), "" if none
    cut_at_limit: bool = False
    output_json: Any = None  # the structured answer, parsed, or None
    output_problem: str = ""  # why the JSON answer did not parse or validate
    created: int = 0  # Unix seconds of when the job finished, 0 if it has not
    source: str = ""  # the line as uploaded (PromptLine.source); "" for older jobs
    # What older jobs kept instead of `source` (prompt, system_instruction, model,
    # temperature, max_output_tokens), to write their lines again.
    legacy_fields: dict = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        return self.state == CANCELLED

    @property
    def error_message(self) -> str:
        return self.error or ("The job was cancelled." if self.cancelled else "The job failed.")


def answer(row: ResultRow) -> dict | None:
    """The response to write the row's result from: the one Gemini sent, or for a job
    that succeeded before responses were kept, one built from what the job kept."""
    if row.response is not None:
        return row.response
    if not row.succeeded:
        return None
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": row.output_text}]},
                "finishReason": row.finish_reason or "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": row.input_tokens,
            "candidatesTokenCount": row.output_tokens,
            "thoughtsTokenCount": row.thought_tokens,
            "totalTokenCount": row.input_tokens + row.output_tokens + row.thought_tokens,
        },
        "modelVersion": row.model,
        "responseId": row.response_id,
    }


@dataclass(frozen=True)
class Tokens:
    prompt: int  # cached tokens included, as Gemini counts them
    cached: int
    answer: int  # every candidate's
    thoughts: int


def tokens(row: ResultRow, response: dict) -> Tokens:
    """The answer's usage; the job's own counts for a response that carries none."""
    usage = gemini_shape.usage(response)
    if not usage:
        return Tokens(row.input_tokens, 0, row.output_tokens, row.thought_tokens)
    return Tokens(
        int(usage.get("promptTokenCount") or 0),
        int(usage.get("cachedContentTokenCount") or 0),
        int(usage.get("candidatesTokenCount") or 0),
        int(usage.get("thoughtsTokenCount") or 0),
    )


def answer_parts(candidate: dict) -> list[dict]:
    """The candidate's text and function calls in order, thoughts left out, adjacent
    texts joined: [{"text": ...} | {"function_call": {...}}]."""
    found: list[dict] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if part.get("thought"):
            continue
        if "functionCall" in part:
            found.append({"function_call": part["functionCall"]})
        elif "text" in part:
            if found and "text" in found[-1]:
                found[-1] = {"text": found[-1]["text"] + part["text"]}
            else:
                found.append({"text": part["text"]})
    return found


BLOCKED = ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
           "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION")  # fmt: skip


def model_name(row: ResultRow, response: dict) -> str:
    """The model that answered (its version, when Gemini named one)."""
    return str(response.get("modelVersion") or row.model)


def response_id(row: ResultRow, response: dict) -> str:
    return str(response.get("responseId") or row.response_id)
