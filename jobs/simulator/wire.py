"""The wire shapes google-genai 3.3.0 expects: request bodies read into a `Call`, and the JSON
bodies written back, for both routes and for errors.

- Interactions (`.../interactions`): snake_case; `input` (a string, content blocks or steps),
  `system_instruction`, `generation_config`, `response_format`, `tools`, `service_tier`;
  answered with `status`, `steps` and `usage`;
- generateContent (`.../models/{model}:generateContent`): camelCase (the SDK sends some nested
  keys in snake_case, which Google accepts too, so both are read); `contents` of turns with
  parts, `systemInstruction`, `generationConfig`, `tools`, `serviceTier`; answered with
  `candidates`, `promptFeedback` and `usageMetadata`;
- errors: `{"error": {code, message, status}}` with an optional RetryInfo detail and
  `Retry-After` header, except a 500, which is an HTML page.

Safety settings, tool config and cached content are accepted (and recorded by the server) but
change nothing. What a request is read as and what an answer looks like belong here; what it
says is `answers`', when and whether to answer (keys, limits, latency, directives) the server's.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from jobs.catalog import FLEX_MODELS
from jobs.simulator.answers import (
    MAX_CANDIDATES,
    MEDIA_TOKENS,
    Call,
    Function,
    Reply,
    media_modality,
    media_part_tokens,
    thought_tokens,
)
from jobs.simulator.errors import GOOGLE_STATUS, ApiError
from jobs.simulator.schemas import lookup

TIERS = ("flex", "standard", "priority")
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
JSON_MIME = "application/json"
PDF_MIME = "application/pdf"
HTML_500 = (
    "<html><head><title>500 Internal Server Error</title></head>"
    "<body><h1>Error: Server Error</h1></body></html>"
)
BLOCKING_RATING = {
    "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
    "probability": "HIGH",
    "blocked": True,
}
FAILURES = {
    "failed": "The model could not produce an answer (simulated).",
    "safety": "The answer was blocked by the safety filter (simulated).",
    "prompt-blocked": "The prompt was blocked by the safety filter (simulated).",
}
INTERACTION_STEPS = ("user_input", "model_output", "thought", "function_call", "function_result")


class _Input:
    """The turns and system instruction of a request, read part by part: the user's text (the
    prompt), the characters of all text and the tokens of all other parts."""

    def __init__(self) -> None:
        self.user_texts: list[str] = []
        self.chars = 0
        self.media: Counter[str] = Counter()
        self.other_parts = 0

    def text(self, text: Any, *, user: bool) -> None:
        if isinstance(text, str):
            self.chars += len(text)
            if user:
                self.user_texts.append(text)

    def structured(self, value: Any) -> None:
        """A function call or result: its JSON counts as text."""
        self.chars += len(json.dumps(value))
        self.other_parts += 1

    def media_part(self, mime_type: Any, data: Any) -> None:
        """An image, audio, video or document part, inline (`data`, base64) or by URI."""
        mime_type = str(mime_type or "")
        tokens = MEDIA_TOKENS
        if isinstance(data, str) and (mime_type == PDF_MIME or mime_type.startswith("image/")):
            try:
                padded = data + "=" * (-len(data) % 4)
                raw = base64.b64decode(padded, altchars=b"-_")
            except (binascii.Error, ValueError):
                raise ApiError(400, "Invalid value: the inline data is not base64.") from None
            tokens = media_part_tokens(mime_type, raw)
        self.media[media_modality(mime_type)] += tokens
        self.other_parts += 1

    @property
    def prompt(self) -> str:
        return "\n".join(self.user_texts)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _texts(value: Any) -> list[str]:
    """The text parts of a system instruction in any shape the SDK sends: a string, a content
    block, a list of them, or a Content with `parts`."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, Mapping):
        if isinstance(value.get("text"), str):
            return [value["text"]]
        return _texts(value.get("content") or value.get("parts") or [])
    return []


def _count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Invalid value at '{name}': {value!r} is not an integer.") from None


def _stop_sequences(value: Any) -> tuple[str, ...]:
    return tuple(stop for stop in _list(value) if isinstance(stop, str))


def interaction_steps(value: Any) -> list[dict[str, Any]]:
    """An interaction's `input` as steps, in whichever shape the SDK sent it (a string, a
    content block, a list of blocks or of steps): what a stored conversation is made of."""
    if isinstance(value, str):
        value = {"type": "text", "text": value}
    steps: list[dict[str, Any]] = []
    blocks: list[Any] = []
    for item in [value] if isinstance(value, Mapping) else _list(value):
        if _mapping(item).get("type") in INTERACTION_STEPS:
            if blocks:
                steps.append({"type": "user_input", "content": blocks})
                blocks = []
            steps.append(dict(item))
        else:
            blocks.append(item)
    if blocks:
        steps.append({"type": "user_input", "content": blocks})
    return steps


def interaction_call(request: web.Request, body: dict[str, Any]) -> Call:
    turns = _Input()
    raw = body.get("input")
    if isinstance(raw, str):
        turns.text(raw, user=True)
    for item in [raw] if isinstance(raw, Mapping) else _list(raw):
        item = _mapping(item)
        kind = item.get("type")
        if kind in ("user_input", "model_output"):
            for block in _list(item.get("content")):
                _interaction_block(turns, _mapping(block), user=kind == "user_input")
        elif kind == "function_call":
            turns.structured(item.get("arguments"))
        elif kind == "function_result":
            turns.structured(item.get("result"))
        elif kind not in INTERACTION_STEPS:
            _interaction_block(turns, item, user=True)
    config = _mapping(body.get("generation_config"))
    formats = body.get("response_format")
    formats = [_mapping(f) for f in (formats if isinstance(formats, list) else [formats]) if f]
    wants_json = body.get("response_mime_type") == JSON_MIME or any(
        f.get("mime_type") == JSON_MIME for f in formats
    )
    schemas = [f["schema"] for f in formats if isinstance(f.get("schema"), Mapping)]
    system = "\n".join(_texts(body.get("system_instruction")))
    turns.text(system, user=False)
    return _checked_call(
        Call(
            model=str(body.get("model") or "").removeprefix("models/"),
            prompt=turns.prompt,
            system=system,
            tier=body.get("service_tier"),  # type: ignore[arg-type]
            text_chars=turns.chars,
            media_tokens=dict(turns.media),
            json=wants_json,
            schema=schemas[0] if wants_json and schemas else None,
            thought_tokens=thought_tokens(level=config.get("thinking_level")),
            max_output_tokens=_count(
                config.get("max_output_tokens"), "generation_config.max_output_tokens"
            ),
            stop_sequences=_stop_sequences(config.get("stop_sequences")),
            functions=tuple(
                Function(str(tool.get("name")), _mapping(tool.get("parameters")))
                for tool in map(_mapping, _list(body.get("tools")))
                if tool.get("type") == "function"
            ),
        ),
        turns,
    )


def _interaction_block(turns: _Input, block: Mapping[str, Any], *, user: bool) -> None:
    kind = block.get("type")
    if kind == "text":
        turns.text(block.get("text"), user=user)
    elif kind in ("image", "audio", "video", "document"):
        default = PDF_MIME if kind == "document" else f"{kind}/*"
        turns.media_part(block.get("mime_type") or default, block.get("data"))


def generate_call(request: web.Request, body: dict[str, Any]) -> Call:
    turns = _Input()
    for turn in map(_mapping, _list(body.get("contents"))):
        user = (turn.get("role") or "user") == "user"
        for part in map(_mapping, _list(turn.get("parts"))):
            turns.text(part.get("text"), user=user)
            if inline := _mapping(lookup(part, "inlineData")):
                turns.media_part(lookup(inline, "mimeType"), inline.get("data"))
            if by_uri := _mapping(lookup(part, "fileData")):
                turns.media_part(lookup(by_uri, "mimeType"), None)
            for key in ("functionCall", "functionResponse"):
                if (value := lookup(part, key)) is not None:
                    turns.structured(value)
    config = _mapping(lookup(body, "generationConfig"))
    wants_json = lookup(config, "responseMimeType") == JSON_MIME
    schema = lookup(config, "responseJsonSchema") or lookup(config, "responseSchema")
    thinking = _mapping(lookup(config, "thinkingConfig"))
    candidates = _count(lookup(config, "candidateCount"), "generation_config.candidate_count")
    if candidates is not None and not 0 <= candidates <= MAX_CANDIDATES:
        raise ApiError(400, f"candidateCount must be from 1 to {MAX_CANDIDATES}, got {candidates}.")
    declarations = [
        _mapping(declaration)
        for tool in map(_mapping, _list(lookup(body, "tools")))
        for declaration in _list(lookup(tool, "functionDeclarations"))
    ]
    system = "\n".join(_texts(lookup(body, "systemInstruction")))
    turns.text(system, user=False)
    return _checked_call(
        Call(
            model=request.match_info["model"],
            prompt=turns.prompt,
            system=system,
            tier=lookup(body, "serviceTier"),
            text_chars=turns.chars,
            media_tokens=dict(turns.media),
            json=wants_json,
            schema=schema if wants_json and isinstance(schema, Mapping) else None,
            thought_tokens=thought_tokens(
                budget=lookup(thinking, "thinkingBudget"), level=lookup(thinking, "thinkingLevel")
            ),
            max_output_tokens=_count(
                lookup(config, "maxOutputTokens"), "generation_config.max_output_tokens"
            ),
            stop_sequences=_stop_sequences(lookup(config, "stopSequences")),
            candidates=candidates or 1,
            functions=tuple(
                Function(
                    str(declaration.get("name")),
                    _mapping(lookup(declaration, "parametersJsonSchema"))
                    or _mapping(declaration.get("parameters")),
                )
                for declaration in declarations
            ),
        ),
        turns,
    )


def _checked_call(call: Call, turns: _Input) -> Call:
    """`call` with its tier normalised, once its model, input and tier are known to be good."""
    if not call.model:
        raise ApiError(400, "Missing required field: model.")
    if call.model not in FLEX_MODELS:
        raise ApiError(404, f"models/{call.model} is not found or does not support the flex tier.")
    if not call.prompt.strip() and not turns.other_parts:
        raise ApiError(400, "The input is empty: at least one part is required.")
    tier = call.tier
    served = str(tier or "standard").lower()
    if served == "unspecified":
        served = "standard"
    if served not in TIERS:
        raise ApiError(400, f"Invalid service tier {tier!r}; expected one of {', '.join(TIERS)}.")
    return replace(call, tier=served)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def interaction_body(call: Call, reply: Reply) -> dict[str, Any]:
    """Status "completed" with a model_output step; "incomplete" (cut at the token limit) with
    the partial text; "requires_action" with one function_call step; "failed" with `errors`."""
    now = _now()
    body: dict[str, Any] = {
        "id": f"sim-{uuid.uuid4().hex}",
        "model": call.model,
        "created": now,
        "updated": now,
    }
    if reply.outcome != "answer":
        body["status"] = "failed"
        body["steps"] = []
        body["errors"] = [{"message": FAILURES[reply.outcome]}]
    elif (called := reply.candidates[0].function_call) is not None:
        body["status"] = "requires_action"
        body["steps"] = [
            {
                "type": "function_call",
                "id": f"call-{uuid.uuid4().hex[:16]}",
                "name": called["name"],
                "arguments": called["args"],
            }
        ]
    else:
        answer = reply.candidates[0]
        body["status"] = "completed" if answer.finish == "STOP" else "incomplete"
        body["steps"] = [
            {"type": "model_output", "content": [{"type": "text", "text": answer.text}]}
        ]
    output_tokens = reply.candidates[0].tokens if reply.candidates else 0
    body["usage"] = {
        "total_input_tokens": call.input_tokens,
        "total_output_tokens": output_tokens,
        "total_thought_tokens": reply.thought_tokens,
        "total_cached_tokens": 0,
        "total_tokens": call.input_tokens + reply.thought_tokens + output_tokens,
        "input_tokens_by_modality": [
            {"modality": modality.lower(), "tokens": count}
            for modality, count in call.input_tokens_by_modality().items()
        ],
    }
    return body


def generate_body(call: Call, reply: Reply) -> dict[str, Any]:
    """Candidates with text or a functionCall part; for [sim:failed] and [sim:safety] one
    candidate blocked by the safety filter (finishReason SAFETY, a blocking rating, no content);
    for [sim:prompt-blocked] no candidates and `promptFeedback.blockReason` SAFETY."""
    body: dict[str, Any] = {}
    if reply.outcome in ("failed", "safety"):
        body["candidates"] = [
            {"finishReason": "SAFETY", "index": 0, "safetyRatings": [BLOCKING_RATING]}
        ]
    elif reply.outcome == "prompt-blocked":
        body["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": [BLOCKING_RATING]}
    else:
        body["candidates"] = [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": candidate.text}
                        if candidate.function_call is None
                        else {"functionCall": dict(candidate.function_call)}
                    ],
                },
                "finishReason": candidate.finish,
                "index": index,
            }
            for index, candidate in enumerate(reply.candidates)
        ]
    usage: dict[str, Any] = {"promptTokenCount": call.input_tokens}
    if reply.outcome == "answer":
        usage["candidatesTokenCount"] = reply.output_tokens
        usage["thoughtsTokenCount"] = reply.thought_tokens
    usage["totalTokenCount"] = call.input_tokens + reply.thought_tokens + reply.output_tokens
    usage["promptTokensDetails"] = [
        {"modality": modality, "tokenCount": count}
        for modality, count in call.input_tokens_by_modality().items()
    ]
    body["usageMetadata"] = usage
    body["modelVersion"] = call.model
    body["responseId"] = uuid.uuid4().hex
    return body


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
