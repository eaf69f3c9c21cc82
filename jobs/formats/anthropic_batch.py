"""Anthropic Message Batches lines: each params field and content block translated into
Gemini's request, or the line refused with the field named; and the result lines,
messages written from Gemini's answer. The README's "How each format's fields are
sent" lists every field and where it goes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobs import gemini_shape
from jobs.formats.json_lines import LineError, PromptLine, known_fields, line_id, line_model
from jobs.formats.result_rows import (
    BLOCKED,
    ResultRow,
    answer,
    answer_parts,
    model_name,
    response_id,
    tokens,
)
from jobs.formats.translating import (
    Translation,
    declarations,
    function_calling,
    function_declaration,
    one_of,
    only,
    setting,
    translate_fields,
)

LINE_FIELDS = ("custom_id", "params")
# Accepted and not sent: they label or bill the request, and change nothing in the
# answer (FlexDash chooses the tier itself).
IGNORED = ("metadata", "service_tier")
# cache_control on any block is Anthropic's prompt caching: it changes the bill, not
# the answer (Gemini caches repeated prefixes by itself).
_CACHE = "cache_control"
_BLOCKS = {
    "user": ("text", "image", "document", "tool_result"),
    "assistant": ("text", "tool_use"),
}
_TOOL_CHOICES = {"auto": "AUTO", "any": "ANY", "none": "NONE", "tool": "ANY"}


def anthropic_line(number: int, line: dict, source: str) -> PromptLine:
    known_fields(line, LINE_FIELDS, "an Anthropic Message Batches line")
    params = line.get("params")
    if not isinstance(params, dict):
        raise LineError("'params' must be an object")
    if params.get("messages") is None:
        raise LineError("no params.messages")
    t = Translation()
    translate_fields(t, params, "params", _PARAMS, IGNORED)
    model = line_model(params.get("model"), "params.model")
    request = t.request("params.messages")
    return PromptLine(number, line_id(line, "custom_id"), request, model, source)


# --- The messages ------------------------------------------------------------------
def _messages(t: Translation, messages: Any, path: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise LineError(f"{path} must be a list of messages")
    for i, message in enumerate(messages):
        where = f"{path}[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _BLOCKS:
            raise LineError(f"{where} has role {role!r}; a message is from the user or assistant")
        known_fields(message, ("role", "content"), "a message", where)
        parts = _blocks(t, message.get("content"), f"{where}.content", _BLOCKS[role])
        t.turn("model" if role == "assistant" else "user", parts, where)


def _blocks(t: Translation, content: Any, path: str, kinds: tuple[str, ...]) -> list:
    if isinstance(content, str):
        return [({"text": content}, path)]
    if not isinstance(content, list) or not content:
        raise LineError(f"{path} must be a string or a list of content blocks")
    found = []
    for k, block in enumerate(content):
        where = f"{path}[{k}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in kinds:
            raise LineError(f"{where} is {kind!r}; here a block is {', '.join(kinds)}")
        if kind == "text":
            found.append((_text(block, where), where))
        elif kind == "image":
            known_fields(block, ("type", "source", _CACHE), "an image block", where)
            found.append(
                (_media(block.get("source"), f"{where}.source", "image"), f"{where}.source")
            )
        elif kind == "document":
            found.append((_document(block, where), f"{where}.source"))
        elif kind == "tool_use":
            known_fields(block, ("type", "id", "name", "input", _CACHE), "a tool_use block", where)
            if not isinstance(block.get("input", {}), dict):
                raise LineError(f"{where}.input must be an object")
            part = t.function_call(block.get("id"), block.get("name"), block.get("input", {}),
                                   f"{where}.name")  # fmt: skip
            found.append((part, where))
        else:
            found.append((_tool_result(t, block, where), where))
    return found


def _text(block: dict, where: str) -> dict:
    known_fields(block, ("type", "text", "citations", _CACHE), "a text block", where)
    if block.get("citations"):
        raise LineError(f"{where}.citations has no Gemini counterpart")
    if not isinstance(block.get("text"), str):
        raise LineError(f"{where}.text must be a string")
    return {"text": block["text"]}


def _media(source: Any, where: str, what: str) -> dict:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "url":
        raise LineError(f"{where} is a web address: nothing is fetched; send the {what} "
                        "as base64 data")  # fmt: skip
    if kind == "file":
        raise LineError(f"{where} names a file stored at Anthropic, which Gemini cannot "
                        f"read; send the {what} as base64 data")  # fmt: skip
    if kind != "base64":
        raise LineError(f"{where} must be a base64 source (type, media_type, data)")
    known_fields(source, ("type", "media_type", "data"), "a base64 source", where)
    return {"inline_data": {"mime_type": source.get("media_type"), "data": source.get("data")}}


def _document(block: dict, where: str) -> dict:
    known = ("type", "source", "title", "context", "citations", _CACHE)
    known_fields(block, known, "a document block", where)
    for name in ("title", "context"):
        if block.get(name) is not None:
            raise LineError(f"{where}.{name} has no Gemini counterpart")
    if (block.get("citations") or {}).get("enabled"):
        raise LineError(f"{where}.citations has no Gemini counterpart")
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "text":
        known_fields(source, ("type", "media_type", "data"), "a text source", f"{where}.source")
        if not isinstance(source.get("data"), str):
            raise LineError(f"{where}.source.data must be a string")
        return {"text": source["data"]}
    return _media(source, f"{where}.source", "document")


def _tool_result(t: Translation, block: dict, where: str) -> dict:
    known = ("type", "tool_use_id", "content", "is_error", _CACHE)
    known_fields(block, known, "a tool_result block", where)
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for n, item in enumerate(content):
            if not isinstance(item, dict) or item.get("type") != "text":
                raise LineError(f"{where}.content[{n}] is not text; a function's answer goes "
                                "to Gemini as text")  # fmt: skip
            texts.append(_text(item, f"{where}.content[{n}]")["text"])
        content = "\n\n".join(texts)
    elif not isinstance(content, str):
        raise LineError(f"{where}.content must be a string or a list of text blocks")
    return t.function_response(block.get("tool_use_id"), content, f"{where}.tool_use_id",
                               error=bool(block.get("is_error")))  # fmt: skip


# --- The other params -----------------------------------------------------------------
def _system(t: Translation, value: Any, path: str) -> None:
    for part, part_path in _blocks(t, value, path, ("text",)):
        t.system_part(part, part_path)


def _thinking(t: Translation, value: Any, path: str) -> None:
    kind = value.get("type") if isinstance(value, dict) else None
    one_of(kind, f"{path}.type", ("enabled", "disabled", "adaptive"))
    known_fields(value, ("type", "budget_tokens") if kind == "enabled" else ("type",),
                 "thinking", path)  # fmt: skip
    if kind == "enabled":
        if "budget_tokens" not in value:
            raise LineError(f"{path}.budget_tokens is missing")
        t.thinking("thinking_budget", value["budget_tokens"], f"{path}.budget_tokens")
    else:  # Gemini's budget 0 turns thinking off; -1 lets the model choose
        t.thinking("thinking_budget", 0 if kind == "disabled" else -1, f"{path}.type")


def _tools(t: Translation, tools: Any, path: str) -> None:
    if not isinstance(tools, list):
        raise LineError(f"{path} must be a list")
    found = []
    for i, tool in enumerate(tools):
        where = f"{path}[{i}]"
        kind = tool.get("type", "custom") if isinstance(tool, dict) else None
        if kind != "custom":
            raise LineError(f"{where} is Anthropic's {kind!r} tool; only custom tools (name, "
                            "input_schema) have a Gemini counterpart")  # fmt: skip
        # strict is accepted and not sent: Gemini has no such switch.
        known = ("type", "name", "description", "input_schema", "strict", _CACHE)
        known_fields(tool, known, "a tool", where)
        declaration = function_declaration(
            tool.get("name"), tool.get("description"), tool.get("input_schema")
        )
        found.append((declaration, where, f"{where}.input_schema"))
    declarations(t, found)


def _tool_choice(t: Translation, value: Any, path: str) -> None:
    kind = value.get("type") if isinstance(value, dict) else None
    mode = _TOOL_CHOICES[one_of(kind, f"{path}.type", tuple(_TOOL_CHOICES))]
    known = ("type", "disable_parallel_tool_use", *(("name",) if kind == "tool" else ()))
    known_fields(value, known, "a tool_choice", path)
    if value.get("disable_parallel_tool_use"):
        raise LineError(f"{path}.disable_parallel_tool_use has no Gemini counterpart (Gemini "
                        "may always call several functions at once)")  # fmt: skip
    name = value.get("name", "") if kind == "tool" else None
    function_calling(t, mode, f"{path}.name" if kind == "tool" else path, name)


def _output_format(t: Translation, value: Any, path: str) -> None:
    kind = value.get("type") if isinstance(value, dict) else None
    one_of(kind, f"{path}.type", ("json_schema",))
    known_fields(value, ("type", "schema"), "an output format", path)
    if "schema" not in value:
        raise LineError(f"{path}.schema is missing")
    t.setting("response_mime_type", gemini_shape.JSON_MIME, f"{path}.type")
    t.setting("response_json_schema", value["schema"], f"{path}.schema")


def _output_config(t: Translation, value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise LineError(f"{path} must be an object")
    for name, item in value.items():
        if name != "format" and item is not None:
            raise LineError(f"{path}.{name} has no Gemini counterpart")
    if value.get("format") is not None:
        _output_format(t, value["format"], f"{path}.format")


_PARAMS: dict[str, Callable[[Translation, Any, str], None]] = {
    "messages": _messages,
    "system": _system,
    "max_tokens": setting("max_output_tokens"),
    "temperature": setting("temperature"),
    "top_p": setting("top_p"),
    "top_k": setting("top_k"),
    "stop_sequences": setting("stop_sequences"),
    "thinking": _thinking,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "output_config": _output_config,
    "output_format": _output_format,  # the structured outputs beta's spelling
    "stream": only(False, "a batch line's answer comes whole"),
}


# --- Result lines ----------------------------------------------------------------------
def anthropic_result(row: ResultRow, _: int) -> dict:
    """A line of Anthropic's batch results: the answer as a message, or the error."""
    response = answer(row)
    found = gemini_shape.candidates(response)
    if row.cancelled:
        result: dict[str, Any] = {"type": "canceled"}
    elif not found:
        error = {"type": "api_error", "message": row.error_message}
        result = {"type": "errored", "error": {"type": "error", "error": error}}
    else:
        result = {"type": "succeeded", "message": message(row, response, found[0])}
    return {"custom_id": row.custom_id, "result": result}


def message(row: ResultRow, response: dict, candidate: dict) -> dict:
    """The first candidate as a message (Anthropic's answers have one)."""
    content: list[dict] = []
    for part in answer_parts(candidate):
        if "text" in part:
            content.append({"type": "text", "text": part["text"]})
        else:
            call = part["function_call"]
            call_id = call.get("id") or f"toolu_{len(content)}"
            name, args = call.get("name", ""), call.get("args") or {}
            content.append({"type": "tool_use", "id": call_id, "name": name, "input": args})
    used = tokens(row, response)
    return {
        "id": response_id(row, response),
        "type": "message",
        "role": "assistant",
        "model": model_name(row, response),
        "content": content,
        "stop_reason": stop_reason(candidate.get("finishReason") or "", content),
        # Gemini's answer does not say whether it stopped at a stop sequence.
        "stop_sequence": None,
        "usage": {
            # Anthropic counts cache reads apart from input_tokens, and thinking inside
            # output_tokens, as Gemini bills it.
            "input_tokens": used.prompt - used.cached,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": used.cached,
            "output_tokens": used.answer + used.thoughts,
        },
    }


def stop_reason(gemini_reason: str, content: list[dict]) -> str:
    if gemini_reason == "MAX_TOKENS":
        return "max_tokens"
    if gemini_reason in BLOCKED:
        return "refusal"
    return "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"


def legacy_line(custom_id: str, fields: dict) -> dict:
    """The line of a job from before lines were kept, from what it kept."""
    params: dict[str, Any] = {"model": fields["model"]} if "model" in fields else {}
    if "max_output_tokens" in fields:
        params["max_tokens"] = fields["max_output_tokens"]
    if system := fields.get("system_instruction"):
        params["system"] = system
    params["messages"] = [{"role": "user", "content": fields["prompt"]}]
    if "temperature" in fields:
        params["temperature"] = fields["temperature"]
    return {"custom_id": custom_id, "params": params}
