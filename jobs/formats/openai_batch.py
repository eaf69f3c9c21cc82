"""OpenAI Batch lines (chat completions): each body field translated into Gemini's
request, or the line refused with the field named; and the result lines, real
chat.completion bodies written from Gemini's answer. The README's "How each format's
fields are sent" lists every field and where it goes."""

from __future__ import annotations

import json
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
    arguments,
    data_url_blob,
    declarations,
    function_calling,
    function_declaration,
    one_of,
    only,
    setting,
    translate_fields,
)

OPENAI_CHAT_URL = "/v1/chat/completions"
LINE_FIELDS = ("custom_id", "method", "url", "body")
# Accepted and not sent: they label, store or bill the request, and change nothing in
# the answer (FlexDash chooses the tier itself).
IGNORED = ("metadata", "prompt_cache_key", "safety_identifier", "service_tier", "store", "user")
_MESSAGE_FIELDS = {
    "system": ("role", "content"),
    "developer": ("role", "content"),
    "user": ("role", "content"),
    "assistant": ("role", "content", "tool_calls"),
    "tool": ("role", "content", "tool_call_id"),
}
_TOOL_CHOICES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def openai_line(number: int, line: dict, source: str) -> PromptLine:
    known_fields(line, LINE_FIELDS, "an OpenAI Batch line")
    if line.get("method", "POST") != "POST":
        raise LineError("'method' must be POST")
    if line.get("url") != OPENAI_CHAT_URL:
        raise LineError(f"'url' must be {OPENAI_CHAT_URL!r} (found {line.get('url')!r})")
    body = line.get("body")
    if not isinstance(body, dict):
        raise LineError("'body' must be an object")
    if body.get("messages") is None:
        raise LineError("no body.messages")
    t = Translation()
    translate_fields(t, body, "body", _BODY, IGNORED)
    model = line_model(body.get("model"), "body.model")
    return PromptLine(number, line_id(line, "custom_id"), t.request("body.messages"), model, source)


# --- The messages ------------------------------------------------------------------
def _messages(t: Translation, messages: Any, path: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise LineError(f"{path} must be a list of messages")
    for i, message in enumerate(messages):
        where = f"{path}[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        known = _MESSAGE_FIELDS.get(role)
        if known is None:
            raise LineError(f"{where} has role {role!r}; a message is from the system, "
                            "developer, user, assistant or tool")  # fmt: skip
        for name, value in message.items():
            if name not in known and value is not None:
                raise LineError(f"{where}.{name} has no Gemini counterpart")
        content, content_path = message.get("content"), f"{where}.content"
        if role in ("system", "developer"):
            for part, part_path in _parts(content, content_path, text_only=True):
                t.system_part(part, part_path)
        elif role == "user":
            t.turn("user", _parts(content, content_path), where)
        elif role == "assistant":
            parts = [] if content is None else _parts(content, content_path, text_only=True)
            for j, call in enumerate(message.get("tool_calls") or []):
                call_path = f"{where}.tool_calls[{j}]"
                parts.append((_tool_call(t, call, call_path), call_path))
            if not parts:
                raise LineError(f"{where} has neither content nor tool_calls")
            t.turn("model", parts, where)
        else:
            text = "\n\n".join(p["text"] for p, _ in _parts(content, content_path, text_only=True))
            part = t.function_response(message.get("tool_call_id"), text, f"{where}.tool_call_id")
            t.turn("user", [(part, where)], where, join=True)


def _parts(content: Any, path: str, *, text_only: bool = False) -> list[tuple[dict, str]]:
    if isinstance(content, str):
        return [({"text": content}, path)]
    if not isinstance(content, list) or not content:
        raise LineError(f"{path} must be a string or a list of content parts")
    found = []
    for k, block in enumerate(content):
        where = f"{path}[{k}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            known_fields(block, ("type", "text"), "a text part", where)
            if not isinstance(block.get("text"), str):
                raise LineError(f"{where}.text must be a string")
            found.append(({"text": block["text"]}, where))
        elif text_only:
            raise LineError(f"{where} is {kind!r}; this message holds text only")
        elif kind == "image_url":
            found.append((_image(block, where), f"{where}.image_url.url"))
        elif kind == "file":
            found.append((_file(block, where), f"{where}.file.file_data"))
        elif kind == "input_audio":
            raise LineError(f"{where} is audio; FlexDash sends text, images and PDFs")
        else:
            raise LineError(f"{where} is {kind!r}; parts are text, image_url or file")
    return found


def _image(block: dict, where: str) -> dict:
    known_fields(block, ("type", "image_url"), "an image_url part", where)
    image = block.get("image_url")
    if not isinstance(image, dict):
        raise LineError(f"{where}.image_url must be an object with a url")
    known_fields(image, ("url", "detail"), "an image_url", f"{where}.image_url")
    if image.get("detail") not in (None, "auto"):
        raise LineError(f"{where}.image_url.detail {image['detail']!r} has no Gemini counterpart "
                        "for one image; leave it out or send auto")  # fmt: skip
    return data_url_blob(image.get("url"), f"{where}.image_url.url", "image")


def _file(block: dict, where: str) -> dict:
    known_fields(block, ("type", "file"), "a file part", where)
    file = block.get("file")
    if not isinstance(file, dict):
        raise LineError(f"{where}.file must be an object with file_data")
    # The file's name is not sent: Gemini's request has no place for it.
    known_fields(file, ("file_data", "file_id", "filename"), "a file", f"{where}.file")
    if file.get("file_id") is not None:
        raise LineError(f"{where}.file.file_id names a file stored at OpenAI, which Gemini "
                        "cannot read; send the file as file_data (a data: URL)")  # fmt: skip
    return data_url_blob(file.get("file_data"), f"{where}.file.file_data", "file")


def _tool_call(t: Translation, call: Any, where: str) -> dict:
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise LineError(f"{where} must be a function tool call")
    known_fields(call, ("id", "type", "function"), "a tool call", where)
    function = call.get("function")
    if not isinstance(function, dict):
        raise LineError(f"{where}.function must be an object with name and arguments")
    known_fields(function, ("name", "arguments"), "a tool call's function", f"{where}.function")
    args = arguments(function.get("arguments"), f"{where}.function.arguments")
    return t.function_call(call.get("id"), function.get("name"), args, f"{where}.function.name")


# --- The other body fields -----------------------------------------------------------
def _stop(t: Translation, value: Any, path: str) -> None:
    t.setting("stop_sequences", [value] if isinstance(value, str) else value, path)
    if isinstance(value, str):
        t.origins.note("generation_config.stop_sequences", path, whole=True)


def _max_tokens(t: Translation, value: Any, path: str) -> None:
    if t.config.get("max_output_tokens", value) != value:
        raise LineError(f"{path} differs from the other token limit given; give one")
    t.setting("max_output_tokens", value, path)


def _response_format(t: Translation, value: Any, path: str) -> None:
    kind = value.get("type") if isinstance(value, dict) else None
    one_of(kind, f"{path}.type", ("text", "json_object", "json_schema"))
    known_fields(value, ("type", "json_schema") if kind == "json_schema" else ("type",),
                 "a response_format", path)  # fmt: skip
    if kind == "text":
        return  # Gemini answers in text unless asked otherwise
    t.setting("response_mime_type", gemini_shape.JSON_MIME, f"{path}.type")
    if kind == "json_object":
        return
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or "schema" not in spec:
        raise LineError(f"{path}.json_schema needs a schema")
    # The name labels the schema; strict is how Gemini always decodes to one.
    known_fields(spec, ("name", "schema", "strict"), "a json_schema", f"{path}.json_schema")
    t.setting("response_json_schema", spec["schema"], f"{path}.json_schema.schema")


def _tools(t: Translation, tools: Any, path: str) -> None:
    if not isinstance(tools, list):
        raise LineError(f"{path} must be a list")
    found = []
    for i, tool in enumerate(tools):
        where = f"{path}[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise LineError(f"{where} is a {kind!r} tool; only function tools have a "
                            "Gemini counterpart")  # fmt: skip
        known_fields(tool, ("type", "function"), "a tool", where)
        function = tool.get("function")
        if not isinstance(function, dict):
            raise LineError(f"{where}.function must be an object")
        # strict is accepted and not sent: Gemini has no such switch.
        known = ("name", "description", "parameters", "strict")
        known_fields(function, known, "a function", f"{where}.function")
        declaration = function_declaration(
            function.get("name"), function.get("description"), function.get("parameters")
        )
        found.append((declaration, f"{where}.function", f"{where}.function.parameters"))
    declarations(t, found)


def _tool_choice(t: Translation, value: Any, path: str) -> None:
    if isinstance(value, str):
        mode = _TOOL_CHOICES[one_of(value, path, tuple(_TOOL_CHOICES))]
        function_calling(t, mode, path)
        return
    function = value.get("function") if isinstance(value, dict) else None
    if not isinstance(function, dict) or value.get("type") != "function":
        raise LineError(f"{path} must be auto, none, required or "
                        '{"type": "function", "function": {"name": ...}}')  # fmt: skip
    function_calling(t, "ANY", f"{path}.function.name", function.get("name"))


def _default_or(gemini_name: str, default: Any) -> Callable[[Translation, Any, str], None]:
    """A field sent only when it is not Gemini's default too (one answer, no logprobs):
    as sent, it would make the job go by the route that carries it for nothing."""

    def translate(t: Translation, value: Any, path: str) -> None:
        if value != default or type(value) is not type(default):
            t.setting(gemini_name, value, path)

    return translate


def _reasoning_effort(t: Translation, value: Any, path: str) -> None:
    t.thinking("thinking_level", value, path)


_BODY: dict[str, Callable[[Translation, Any, str], None]] = {
    "messages": _messages,
    "temperature": setting("temperature"),
    "top_p": setting("top_p"),
    "seed": setting("seed"),
    "presence_penalty": setting("presence_penalty"),
    "frequency_penalty": setting("frequency_penalty"),
    "n": _default_or("candidate_count", 1),
    "stop": _stop,
    "max_tokens": _max_tokens,
    "max_completion_tokens": _max_tokens,
    "logprobs": _default_or("response_logprobs", False),
    "top_logprobs": setting("logprobs"),
    "reasoning_effort": _reasoning_effort,
    "response_format": _response_format,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "parallel_tool_calls": only(True, "Gemini may always call several functions at once"),
    "modalities": only(["text"], "FlexDash asks for text answers"),
    "stream": only(False, "a batch line's answer comes whole"),
}


# --- Result lines ----------------------------------------------------------------------
def openai_result(row: ResultRow, number: int) -> dict:
    """A line of OpenAI's batch output: the answer as a chat.completion body, or the error."""
    line: dict[str, Any] = {"id": f"batch_req_{number}", "custom_id": row.custom_id}
    response = answer(row)
    if row.cancelled or not gemini_shape.candidates(response):
        code = "batch_cancelled" if row.cancelled else "request_failed"
        return {**line, "response": None, "error": {"code": code, "message": row.error_message}}
    body = chat_completion(row, response)
    return {**line, "response": {"status_code": 200, "request_id": body["id"], "body": body},
            "error": None}  # fmt: skip


def chat_completion(row: ResultRow, response: dict) -> dict:
    used = tokens(row, response)
    # OpenAI counts reasoning inside completion_tokens; Gemini bills thoughts as output.
    completion = used.answer + used.thoughts
    return {
        "id": response_id(row, response),
        "object": "chat.completion",
        "created": row.created,
        "model": model_name(row, response),
        "choices": [_choice(i, c) for i, c in enumerate(gemini_shape.candidates(response))],
        "usage": {
            "prompt_tokens": used.prompt,
            "completion_tokens": completion,
            "total_tokens": used.prompt + completion,
            "prompt_tokens_details": {"cached_tokens": used.cached},
            "completion_tokens_details": {"reasoning_tokens": used.thoughts},
        },
    }


def _choice(index: int, candidate: dict) -> dict:
    parts = answer_parts(candidate)
    text = "".join(part["text"] for part in parts if "text" in part)
    calls = [part["function_call"] for part in parts if "function_call" in part]
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.get("id") or f"call_{index}_{n}",
                "type": "function",
                "function": {
                    "name": call.get("name", ""),
                    "arguments": json.dumps(call.get("args") or {}, ensure_ascii=False),
                },
            }
            for n, call in enumerate(calls)
        ]
    return {
        "index": candidate.get("index", index),
        "message": message,
        "logprobs": _logprobs(candidate.get("logprobsResult")),
        "finish_reason": finish_reason(candidate.get("finishReason") or "", bool(calls)),
    }


def finish_reason(gemini_reason: str, called: bool) -> str:
    if gemini_reason == "MAX_TOKENS":
        return "length"
    if gemini_reason in BLOCKED:
        return "content_filter"
    return "tool_calls" if called else "stop"


def _logprobs(result: dict | None) -> dict | None:
    if not result:
        return None
    tops = result.get("topCandidates") or []
    content = []
    for i, chosen in enumerate(result.get("chosenCandidates") or []):
        top = (tops[i].get("candidates") or []) if i < len(tops) else []
        content.append({**_token(chosen), "top_logprobs": [_token(other) for other in top]})
    return {"content": content, "refusal": None}


def _token(candidate: dict) -> dict:
    token = str(candidate.get("token", ""))
    return {
        "token": token,
        "logprob": candidate.get("logProbability", 0.0),
        "bytes": list(token.encode()),
    }


def legacy_line(custom_id: str, fields: dict) -> dict:
    """The line of a job from before lines were kept, from what it kept."""
    messages = [{"role": "user", "content": fields["prompt"]}]
    if system := fields.get("system_instruction"):
        messages.insert(0, {"role": "system", "content": system})
    body: dict[str, Any] = {"model": fields["model"]} if "model" in fields else {}
    body["messages"] = messages
    if "temperature" in fields:
        body["temperature"] = fields["temperature"]
    if "max_output_tokens" in fields:
        body["max_completion_tokens"] = fields["max_output_tokens"]
    return {"custom_id": custom_id, "method": "POST", "url": OPENAI_CHAT_URL, "body": body}
