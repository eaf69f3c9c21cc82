"""The wire shapes google-genai 3.3.0 expects: request bodies read into a `Call`, and the JSON
bodies written back, for both routes and for errors.

- Interactions (`.../interactions`): snake_case, `input`, `system_instruction`, `service_tier`,
  answered with `steps` and `usage`;
- generateContent (`.../models/{model}:generateContent`): camelCase, `contents`,
  `systemInstruction`, `serviceTier`, answered with `candidates` and `usageMetadata`;
- errors: `{"error": {code, message, status}}` with an optional RetryInfo detail and
  `Retry-After` header, except a 500, which is an HTML page.

What a request is read as and what an answer looks like belong here; when and whether to
answer (keys, limits, latency, directives) is the server's.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from jobs.catalog import FLEX_MODELS
from jobs.simulator.directives import Final, answer_text
from jobs.simulator.errors import GOOGLE_STATUS, ApiError

TIERS = ("flex", "standard", "priority")
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
HTML_500 = (
    "<html><head><title>500 Internal Server Error</title></head>"
    "<body><h1>Error: Server Error</h1></body></html>"
)


@dataclass(frozen=True)
class Call:
    """One request, as both routes describe it."""

    model: str
    prompt: str
    system: str
    tier: str


def _tokens(*texts: str) -> int:
    return math.ceil(sum(len(text) for text in texts) / 4)


def _texts(value: Any) -> list[str]:
    """The text parts of an input in any of the shapes the SDK sends: a string, a content
    block, a list of blocks, a step or turn holding `content`, or a Content with `parts`."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return [value["text"]]
        return _texts(value.get("content") or value.get("parts") or [])
    return []


def interaction_call(request: web.Request, body: dict[str, Any]) -> Call:
    return _checked_call(
        str(body.get("model") or "").removeprefix("models/"),
        "\n".join(_texts(body.get("input"))),
        "\n".join(_texts(body.get("system_instruction"))),
        body.get("service_tier"),
    )


def generate_call(request: web.Request, body: dict[str, Any]) -> Call:
    return _checked_call(
        request.match_info["model"],
        "\n".join(_texts(body.get("contents"))),
        "\n".join(_texts(body.get("systemInstruction"))),
        body.get("serviceTier"),
    )


def _checked_call(model: str, prompt: str, system: str, tier: Any) -> Call:
    if not model:
        raise ApiError(400, "Missing required field: model.")
    if model not in FLEX_MODELS:
        raise ApiError(404, f"models/{model} is not found or does not support the flex tier.")
    if not prompt.strip():
        raise ApiError(400, "The input is empty: at least one text part is required.")
    served = str(tier or "standard").lower()
    if served == "unspecified":
        served = "standard"
    if served not in TIERS:
        raise ApiError(400, f"Invalid service tier {tier!r}; expected one of {', '.join(TIERS)}.")
    return Call(model, prompt, system, served)


def interaction_body(call: Call, final: Final) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    input_tokens = _tokens(call.prompt, call.system)
    body: dict[str, Any] = {
        "id": f"sim-{uuid.uuid4().hex}",
        "model": call.model,
        "created": now,
        "updated": now,
    }
    if final == "failed":
        output_tokens = 0
        body["status"] = "failed"
        body["steps"] = []
        body["errors"] = [{"message": "The model could not produce an answer (simulated)."}]
    else:
        text = answer_text(call.prompt)
        output_tokens = _tokens(text)
        body["status"] = "completed"
        body["steps"] = [{"type": "model_output", "content": [{"type": "text", "text": text}]}]
    body["usage"] = {
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "total_thought_tokens": 0,
        "total_cached_tokens": 0,
        "total_tokens": input_tokens + output_tokens,
    }
    return body


def generate_body(call: Call, final: Final) -> dict[str, Any]:
    input_tokens = _tokens(call.prompt, call.system)
    if final == "failed":
        return _failed_body(call, input_tokens)
    text = answer_text(call.prompt)
    output_tokens = _tokens(text)
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": input_tokens,
            "candidatesTokenCount": output_tokens,
            "thoughtsTokenCount": 0,
            "totalTokenCount": input_tokens + output_tokens,
        },
        "modelVersion": call.model,
        "responseId": uuid.uuid4().hex,
    }


def _failed_body(call: Call, input_tokens: int) -> dict[str, Any]:
    """A 200 that carries no answer, shaped like Google's answer blocked by its safety filter:
    one candidate with finishReason SAFETY, a blocking rating and no content at all."""
    return {
        "candidates": [
            {
                "finishReason": "SAFETY",
                "index": 0,
                "safetyRatings": [
                    {
                        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                        "probability": "HIGH",
                        "blocked": True,
                    }
                ],
            }
        ],
        "usageMetadata": {"promptTokenCount": input_tokens, "totalTokenCount": input_tokens},
        "modelVersion": call.model,
        "responseId": uuid.uuid4().hex,
    }


def error_response(error: ApiError) -> web.Response:
    if error.status == 500:
        return web.Response(status=500, text=HTML_500, content_type="text/html")
    body: dict[str, Any] = {
        "code": error.status,
        "message": error.message,
        "status": GOOGLE_STATUS[error.status],
    }
    if error.retry_info is not None:
        body["details"] = [{"@type": RETRY_INFO_TYPE, "retryDelay": f"{error.retry_info}s"}]
    headers = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
    return web.json_response({"error": body}, status=error.status, headers=headers)
