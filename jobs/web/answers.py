"""What a job asked for and what came back, read for the job page and the API: the
request with its media summarised and the Gemini key redacted, the generation
settings and the finish reason in words, every candidate and function call, and a
structured answer as a tree of tables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jobs import gemini_shape
from jobs.models import Job
from jobs.redaction import redact_api_key
from jobs.web.attachments import MEDIA_LABELS

# --- JSON as scripts get it --------------------------------------------------------
# A request is snake_case (gemini_shape), an answer as Gemini sent it camelCase.
_INLINE = ("inline_data", "inlineData")


def blob_bytes(data: str) -> int:
    """The decoded size of base64 `data`, without decoding it."""
    return max(0, len(data) * 3 // 4 - data[-2:].count("="))


def redacted_json(value: Any, *, keep_data: bool = False) -> Any:
    """`value` (a request, an answer, a structured answer) with the Gemini key
    redacted from every string. Inline data is never searched for the key (it is
    base64); unless `keep_data`, it is replaced by its type and size in bytes."""
    if isinstance(value, str):
        return redact_api_key(value)
    if isinstance(value, list):
        return [redacted_json(item, keep_data=keep_data) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key in _INLINE and isinstance(item, dict) and isinstance(item.get("data"), str):
            rest = {k: redacted_json(v) for k, v in item.items() if k != "data"}
            if keep_data:
                out[key] = {**rest, "data": item["data"]}
            else:
                out[key] = {**rest, "bytes": blob_bytes(item["data"])}
        else:
            out[key] = redacted_json(item, keep_data=keep_data)
    return out


# --- JSON as a person reads it: nested tables ----------------------------------------
MAX_DEPTH = 12
MAX_COLUMNS = 12


@dataclass(frozen=True)
class Node:
    """One JSON value for includes/json_node.html. kind: "object" (rows of key and
    value), "table" (a list of objects: columns, and cells row by row), "list", or
    "value" (text, with type string, number, boolean, null or json)."""

    kind: str
    text: str = ""
    type: str = ""
    rows: tuple[tuple[str, Node], ...] = ()
    items: tuple[Node, ...] = ()
    columns: tuple[str, ...] = ()
    cells: tuple[tuple[Node | None, ...], ...] = ()


def json_tree(value: Any, depth: int = 0) -> Node:
    if depth >= MAX_DEPTH:
        return Node("value", redact_api_key(json.dumps(value, ensure_ascii=False)), "json")
    if isinstance(value, dict) and value:
        rows = tuple((redact_api_key(str(k)), json_tree(v, depth + 1)) for k, v in value.items())
        return Node("object", rows=rows)
    if isinstance(value, list) and value:
        columns = _columns(value)
        if columns:
            cells = tuple(
                tuple(json_tree(row[c], depth + 2) if c in row else None for c in columns)
                for row in value
            )
            return Node("table", columns=tuple(redact_api_key(c) for c in columns), cells=cells)
        return Node("list", items=tuple(json_tree(item, depth + 1) for item in value))
    if isinstance(value, str):
        return Node("value", redact_api_key(value), "string")
    if isinstance(value, bool) or value is None:
        return Node("value", json.dumps(value), "boolean" if value is not None else "null")
    if isinstance(value, int | float):
        return Node("value", json.dumps(value), "number")
    return Node("value", "{}" if isinstance(value, dict) else "[]", "json")


def _columns(items: list) -> list[str]:
    """The keys of a list of objects, first seen first, when it reads as a table."""
    if not all(isinstance(item, dict) and item for item in items):
        return []
    columns: dict[str, None] = {}
    for item in items:
        columns.update(dict.fromkeys(item))
    return list(columns) if len(columns) <= MAX_COLUMNS else []


# --- The request -----------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    """One part of a turn: text, an attachment (inline, or a file_data URI), or a
    function call or answer (as a tree)."""

    kind: str  # "text" | "media" | "file" | "json"
    text: str = ""
    label: str = ""
    size: int | None = None
    tree: Node | None = None


@dataclass(frozen=True)
class Turn:
    role: str
    parts: list[Part]


@dataclass(frozen=True)
class Setting:
    label: str
    value: str


@dataclass(frozen=True)
class RequestView:
    """What the job page shows of a request beyond its prompt, system instruction,
    temperature and max output tokens (the columns show those)."""

    turns: list[Turn] = field(default_factory=list)  # a conversation of several turns
    media: list[Part] = field(default_factory=list)  # attachments of a one-turn request
    settings: list[Setting] = field(default_factory=list)
    schema: str = ""
    tools: list[Setting] = field(default_factory=list)
    other: list[Setting] = field(default_factory=list)

    @property
    def has_settings(self) -> bool:
        return bool(self.settings or self.schema or self.tools or self.other)


_SETTING_LABELS = {
    "response_mime_type": "Answer as",
    "top_p": "Top-p",
    "top_k": "Top-k",
    "seed": "Seed",
    "stop_sequences": "Stop sequences",
    "candidate_count": "Candidates",
    "presence_penalty": "Presence penalty",
    "frequency_penalty": "Frequency penalty",
    "response_logprobs": "Log probabilities",
    "logprobs": "Top log probabilities",
    "response_modalities": "Answer modalities",
    "media_resolution": "Media resolution",
}
# Shown by the page's own facts (temperature, max output tokens) or on their own (the schema).
_SHOWN_ELSEWHERE = {"temperature", "max_output_tokens", "response_schema", "response_json_schema"}
_ROLES = {"user": "User", "model": "Model"}


def _setting_text(name: str, value: Any) -> str:
    if name == "response_mime_type":
        return {"application/json": "JSON (application/json)", "text/plain": "text"}.get(
            value, value
        )
    if name == "stop_sequences":
        return ", ".join(json.dumps(item, ensure_ascii=False) for item in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, int):
        return f"{value:,}" if name != "seed" else str(value)
    return str(value)


def thinking_text(config: dict) -> str:
    """thinking_config in words: "level high", "budget 1,024 tokens", "off"."""
    words = []
    if "thinking_level" in config:
        words.append(f"level {config['thinking_level']}")
    if "thinking_budget" in config:
        budget = config["thinking_budget"]
        words.append({0: "off", -1: "dynamic budget"}.get(budget, f"budget {budget:,} tokens"))
    if config.get("include_thoughts"):
        words.append("thoughts included in the answer")
    return ", ".join(words) or "model default"


def _part(part: dict) -> Part:
    if "text" in part:
        return Part("text", text=redact_api_key(part["text"]))
    if "inline_data" in part:
        blob = part["inline_data"]
        mime_type = blob.get("mime_type", "")
        return Part(
            "media",
            label=MEDIA_LABELS.get(mime_type, mime_type),
            size=blob_bytes(blob.get("data", "")),
        )
    if "file_data" in part:
        data = part["file_data"]
        mime_type = data.get("mime_type", "")
        label = MEDIA_LABELS.get(mime_type, mime_type or "File")
        return Part("file", text=redact_api_key(data.get("file_uri", "")), label=label)
    data = ((k, v) for k, v in part.items() if k not in ("thought", "thought_signature"))
    name, value = next(data, ("part", part))
    return Part("json", label=name.replace("_", " "), tree=json_tree(value))


def request_view(request: dict) -> RequestView:
    contents = request.get("contents") or []
    turns = [
        Turn(
            _ROLES.get(t.get("role", "user"), t.get("role", "")),
            [_part(p) for p in t.get("parts") or []],
        )
        for t in contents
    ]
    conversation = len(turns) > 1 or any(p.kind == "json" for t in turns for p in t.parts)
    media = [] if conversation else [p for t in turns for p in t.parts if p.kind != "text"]
    config = gemini_shape.generation(request)
    settings = []
    for name, value in config.items():
        if name in _SHOWN_ELSEWHERE:
            continue
        if name == "thinking_config":
            settings.append(Setting("Thinking", thinking_text(value)))
        else:
            settings.append(Setting(_SETTING_LABELS.get(name, name), _setting_text(name, value)))
    schema = gemini_shape.answer_schema(request)
    tools = []
    for tool in request.get("tools") or []:
        for name, value in tool.items():
            if name == "function_declarations":
                tools += [
                    Setting(f"Function {f['name']}", redact_api_key(f.get("description", "")))
                    for f in value
                ]
            else:
                tools.append(Setting(name.replace("_", " ").capitalize(), "on"))
    other = [
        Setting(f"Safety: {s.get('category', '')}", s.get("threshold", ""))
        for s in request.get("safety_settings") or []
    ]
    if "tool_config" in request:
        other.append(Setting("Tool config", json.dumps(request["tool_config"])))
    if "cached_content" in request:
        other.append(Setting("Cached content", request["cached_content"]))
    return RequestView(
        turns=turns if conversation else [],
        media=media,
        settings=settings,
        schema=redact_api_key(json.dumps(schema, indent=2, ensure_ascii=False)) if schema else "",
        tools=tools,
        other=other,
    )


# --- The answer --------------------------------------------------------------------------
FINISH_WORDS = {
    "STOP": "Finished (STOP)",
    "MAX_TOKENS": "Cut at the token limit (MAX_TOKENS): the text is what came before it",
    "SAFETY": "Blocked by Gemini's safety filter (SAFETY)",
    "RECITATION": "Stopped: the answer recited its training data (RECITATION)",
    "LANGUAGE": "Stopped: the answer was in a language Gemini does not support (LANGUAGE)",
    "BLOCKLIST": "Blocked: the answer held a forbidden term (BLOCKLIST)",
    "PROHIBITED_CONTENT": "Blocked as prohibited content (PROHIBITED_CONTENT)",
    "SPII": "Blocked: the answer held sensitive personal information (SPII)",
    "IMAGE_SAFETY": "Blocked by Gemini's image safety filter (IMAGE_SAFETY)",
    "MALFORMED_FUNCTION_CALL": "Stopped: the model wrote a malformed function call "
    "(MALFORMED_FUNCTION_CALL)",
    "UNEXPECTED_TOOL_CALL": "Stopped: the model called a tool it was not given "
    "(UNEXPECTED_TOOL_CALL)",
    "TOO_MANY_TOOL_CALLS": "Stopped: too many tool calls (TOO_MANY_TOOL_CALLS)",
    "OTHER": "Stopped for a reason Gemini does not name (OTHER)",
}
BLOCKED_PROMPT_WORDS = {
    "SAFETY": "The prompt was blocked by Gemini's safety filter (SAFETY)",
    "BLOCKLIST": "The prompt was blocked: it held a forbidden term (BLOCKLIST)",
    "PROHIBITED_CONTENT": "The prompt was blocked as prohibited content (PROHIBITED_CONTENT)",
    "IMAGE_SAFETY": "The prompt was blocked by Gemini's image safety filter (IMAGE_SAFETY)",
}


def finish_words(reason: str) -> str:
    if not reason:
        return ""
    return FINISH_WORDS.get(reason, f"Stopped ({reason})")


@dataclass(frozen=True)
class Call:
    name: str
    args: Node | None


@dataclass(frozen=True)
class Candidate:
    number: int
    text: str
    finish: str
    calls: list[Call]


@dataclass(frozen=True)
class AnswerView:
    finish: str = ""  # the first candidate's finish reason (or the prompt's block) in words
    stopped_early: bool = False  # not STOP: the page says so beside the answer
    candidates: list[Candidate] = field(default_factory=list)
    several: bool = False
    calls: list[Call] = field(default_factory=list)  # the first candidate's
    structured: Node | None = None
    problem: str = ""
    wants_json: bool = False
    cached_tokens: int = 0
    model_version: str = ""


def _calls(candidate: dict) -> list[Call]:
    return [
        Call(
            redact_api_key(str(call.get("name", ""))),
            json_tree(call["args"]) if call.get("args") else None,
        )
        for call in gemini_shape.function_calls(candidate)
    ]


def answer_view(job: Job) -> AnswerView:
    request = job.gemini_request()
    response = job.response or {}
    found = gemini_shape.candidates(response)
    reason = job.finish_reason or gemini_shape.finish_reason(response)
    blocked = (response.get("promptFeedback") or {}).get("blockReason", "")
    if blocked and not found:
        finish = BLOCKED_PROMPT_WORDS.get(blocked, f"The prompt was blocked ({blocked})")
    elif job.cut_at_limit:
        # Whatever the route called it (generateContent's MAX_TOKENS, an incomplete interaction).
        finish = (
            f"Cut at the token limit ({reason or 'MAX_TOKENS'}): the text is what came before it"
        )
    else:
        finish = finish_words(reason)
    candidates = [
        Candidate(
            number,
            redact_api_key(gemini_shape.candidate_text(c)),
            finish_words(str(c.get("finishReason") or "")),
            _calls(c),
        )
        for number, c in enumerate(found, start=1)
    ]
    problem = redact_api_key(job.output_problem)
    if problem and not problem.startswith("The answer"):
        # The engine writes a whole sentence ("The answer is not JSON (...)."); a bare one gets it.
        subject = "match the schema" if gemini_shape.answer_schema(request) else "parse as JSON"
        problem = f"The answer does not {subject}: {problem}"
    usage = gemini_shape.usage(response)
    return AnswerView(
        finish=finish,
        stopped_early=bool(finish) and reason != "STOP",
        candidates=candidates,
        several=len(candidates) > 1,
        calls=candidates[0].calls if candidates else [],
        structured=json_tree(job.output_json) if job.output_json is not None else None,
        problem=problem,
        wants_json=gemini_shape.wants_json(request),
        cached_tokens=int(usage.get("cachedContentTokenCount") or 0),
        model_version=redact_api_key(str(response.get("modelVersion") or "")),
    )
