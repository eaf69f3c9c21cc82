"""Gemini's own request shape, the one every job carries inside, and what its answers say.

A request is the `request` object of a Gemini Batch line, with snake_case keys:
`contents` (turns with a role and parts: `text`, `inline_data`, `file_data`,
`function_call`, `function_response`), `system_instruction`, `generation_config`,
`safety_settings`, `tools`, `tool_config`, `cached_content`. `normalise` checks one
and returns it in that spelling (the API takes camelCase too, and so do we); only
the field names Gemini defines are respelled, never what a researcher wrote inside a
schema or a function's arguments. Every refusal names the field it is about.

An answer is a GenerateContentResponse as JSON (camelCase, as the API sends it):
`answer_text`, `finish_reason` and friends read it. Pure functions, no Django.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from jobs.text import storable_text_error

# Gemini refuses a request whose inline data passes 20 MB; larger media go as file_data URIs.
MAX_INLINE_BYTES = 20 * 1024 * 1024
MAX_CANDIDATES = 8
MAX_STOP_SEQUENCES = 5
MAX_OUTPUT_TOKENS = 1_000_000
THINKING_LEVELS = ("minimal", "low", "medium", "high")
MEDIA_TYPES = {
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/heic",
    "image/heif",
    "application/pdf",
}
PDF_MIME = "application/pdf"
JSON_MIME = "application/json"
RESPONSE_MIME_TYPES = ("text/plain", JSON_MIME, "text/x.enum")
ROLES = ("user", "model")


_CAPITAL = re.compile(r"(?<!^)([A-Z])")


class ShapeError(ValueError):
    """A request that Gemini would refuse or that we cannot send as asked; `field` is
    its path inside the request ("generation_config.top_k")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def snake(name: str) -> str:
    if name.islower():  # already snake_case: most names, and no regex for them
        return name
    return _CAPITAL.sub(r"_\1", name).lower()


def _fields(value: Any, where: str, known: dict[str, Callable[[Any, str], Any]]) -> dict:
    """`value` as a dict with snake_case keys, each checked by its function; an
    unknown key is refused by name."""
    if not isinstance(value, dict):
        raise ShapeError(where, "must be an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = snake(key)
        path = f"{where}.{name}" if where else name
        check = known.get(name)
        if check is None:
            raise ShapeError(path, "is not a field Gemini knows here")
        if name in out:
            raise ShapeError(path, "is given twice (in camelCase and snake_case)")
        if item is not None:
            out[name] = check(item, path)
    return out


# --- Leaf checks -----------------------------------------------------------------
def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ShapeError(where, "must be a string")
    if problem := storable_text_error(value):
        raise ShapeError(where, problem)
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ShapeError(where, "must be true or false")
    return value


def _whole(low: int, high: int) -> Callable[[Any, str], int]:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ShapeError(where, f"must be a whole number from {low:,} to {high:,}")
        return value

    return check


def _number(low: float, high: float) -> Callable[[Any, str], float]:
    def check(value: Any, where: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            raise ShapeError(where, f"must be a number from {low:g} to {high:g}")
        return value

    return check


def _object(value: Any, where: str) -> dict:
    """A researcher's own JSON object (a schema, a function's arguments): kept as written."""
    if not isinstance(value, dict):
        raise ShapeError(where, "must be an object")
    return value


def _any(value: Any, where: str) -> Any:
    return value


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        text = value.upper() if upper and isinstance(value, str) else value
        if not isinstance(text, str) or (options and text.lower() not in options):
            raise ShapeError(where, f"must be one of {', '.join(options)}")
        return text if upper else text.lower()

    return check


def _list_of(check: Callable[[Any, str], Any], *, most: int | None = None):
    def check_list(value: Any, where: str) -> list:
        if not isinstance(value, list):
            raise ShapeError(where, "must be a list")
        if most is not None and len(value) > most:
            raise ShapeError(where, f"has {len(value)} items; Gemini takes at most {most}")
        return [check(item, f"{where}[{i}]") for i, item in enumerate(value)]

    return check_list


def _json_schema(value: Any, where: str) -> dict:
    """A JSON Schema for the answer, checked as a schema now rather than when the
    answer cannot be validated against it."""
    import jsonschema

    schema = _object(value, where)
    try:
        _check_schema(schema)
    except jsonschema.SchemaError as error:
        path = "".join(f"[{p!r}]" for p in error.path)
        raise ShapeError(where + path, f"is not a valid JSON Schema: {error.message}") from None
    return schema


# The schemas already checked, as JSON text: checking one against its
# metaschema costs milliseconds, and every job of a run, every row's step of a
# pipeline, asks it of the same few. A refusal is never kept.
_CHECKED_SCHEMAS: set[str] = set()
_CHECKED_SCHEMAS_KEPT = 1024


def _check_schema(schema: dict) -> None:
    import jsonschema

    try:
        key = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):  # not JSON (a YAML date): checked, never kept
        key = None
    if key in _CHECKED_SCHEMAS:
        return
    jsonschema.validators.validator_for(schema).check_schema(schema)
    if key is None:
        return
    if len(_CHECKED_SCHEMAS) >= _CHECKED_SCHEMAS_KEPT:
        _CHECKED_SCHEMAS.clear()
    _CHECKED_SCHEMAS.add(key)


# --- Parts and turns ---------------------------------------------------------------
def _blob(value: Any, where: str) -> dict:
    blob = _fields(value, where, {"mime_type": _text, "data": _text, "display_name": _text})
    if "mime_type" not in blob or "data" not in blob:
        raise ShapeError(where, "needs mime_type and data (base64)")
    blob["mime_type"] = blob["mime_type"].lower()
    if blob["mime_type"] not in MEDIA_TYPES and not blob["mime_type"].startswith("text/"):
        raise ShapeError(
            f"{where}.mime_type",
            f"{blob['mime_type']!r} cannot be sent inline; send images "
            f"({', '.join(t for t in sorted(MEDIA_TYPES) if t.startswith('image/'))}), "
            "PDFs or text",
        )
    try:
        base64.b64decode(blob["data"], validate=True)
    except (binascii.Error, ValueError):
        raise ShapeError(f"{where}.data", "is not base64") from None
    return blob


def _file_data(value: Any, where: str) -> dict:
    data = _fields(value, where, {"mime_type": _text, "file_uri": _text, "display_name": _text})
    if "file_uri" not in data:
        raise ShapeError(where, "needs file_uri")
    return data


_PART_FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "text": _text,
    "inline_data": _blob,
    "file_data": _file_data,
    "function_call": _object,
    "function_response": _object,
    "executable_code": _object,
    "code_execution_result": _object,
    "thought": _bool,
    "thought_signature": _text,
    "video_metadata": _object,
    "media_resolution": _any,
}
_PART_DATA = ("text", "inline_data", "file_data", "function_call", "function_response",
              "executable_code", "code_execution_result")  # fmt: skip


def _part(value: Any, where: str) -> dict:
    part = _fields(value, where, _PART_FIELDS)
    data = [name for name in _PART_DATA if name in part]
    if len(data) != 1:
        raise ShapeError(where, "must hold exactly one of text, inline_data, file_data, "
                         "function_call, function_response")  # fmt: skip
    return part


def _content(value: Any, where: str) -> dict:
    if isinstance(value, str):  # a system instruction may be plain text
        return {"parts": [{"text": _text(value, where)}]}
    content = _fields(value, where, {"role": _choice(ROLES), "parts": _list_of(_part)})
    if not content.get("parts"):
        raise ShapeError(f"{where}.parts", "is empty: a turn needs at least one part")
    return content


def _contents(value: Any, where: str) -> list:
    contents = _list_of(_content)(value, where)
    if not contents:
        raise ShapeError(where, "is empty: a request needs at least one turn")
    for turn in contents:
        turn.setdefault("role", "user")
    return contents


# --- Configuration -----------------------------------------------------------------
_THINKING = {
    "thinking_budget": _whole(-1, 32_768),
    "thinking_level": _choice(THINKING_LEVELS),
    "include_thoughts": _bool,
}
_GENERATION: dict[str, Callable[[Any, str], Any]] = {
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "top_k": _whole(1, 1_000),
    "candidate_count": _whole(1, MAX_CANDIDATES),
    "max_output_tokens": _whole(1, MAX_OUTPUT_TOKENS),
    "stop_sequences": _list_of(_text, most=MAX_STOP_SEQUENCES),
    "seed": _whole(-(2**31), 2**31 - 1),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "response_logprobs": _bool,
    "logprobs": _whole(0, 20),
    "response_mime_type": _choice(RESPONSE_MIME_TYPES),
    "response_schema": _object,
    "response_json_schema": _json_schema,
    "response_modalities": _list_of(_choice(("text", "image", "audio"), upper=True)),
    "media_resolution": _choice((), upper=True),
    "thinking_config": lambda value, where: _fields(value, where, _THINKING),
}


def _generation_config(value: Any, where: str) -> dict:
    config = _fields(value, where, _GENERATION)
    thinking = config.get("thinking_config", {})
    if "thinking_budget" in thinking and "thinking_level" in thinking:
        raise ShapeError(f"{where}.thinking_config", "takes a thinking_budget or a "
                         "thinking_level, not both")  # fmt: skip
    schema_given = "response_schema" in config or "response_json_schema" in config
    if schema_given and config.get("response_mime_type") != JSON_MIME:
        if "response_mime_type" in config:
            raise ShapeError(f"{where}.response_mime_type", "must be application/json "
                             "when a response schema is given")  # fmt: skip
        config["response_mime_type"] = JSON_MIME
    if "response_schema" in config and "response_json_schema" in config:
        raise ShapeError(where, "takes response_schema or response_json_schema, not both")
    return config


_FUNCTION = {
    "name": _text,
    "description": _text,
    "parameters": _object,
    "parameters_json_schema": _object,
    "response": _object,
    "response_json_schema": _object,
    "behavior": _any,
}


def _function(value: Any, where: str) -> dict:
    function = _fields(value, where, _FUNCTION)
    if not function.get("name"):
        raise ShapeError(where, "needs a name")
    return function


_TOOL: dict[str, Callable[[Any, str], Any]] = {
    "function_declarations": _list_of(_function),
    "google_search": _object,
    "google_search_retrieval": _object,
    "code_execution": _object,
    "url_context": _object,
}
_SAFETY = {"category": _choice((), upper=True), "threshold": _choice((), upper=True),
           "method": _choice((), upper=True)}  # fmt: skip
_FUNCTION_CALLING = {
    "mode": _choice(("auto", "any", "none", "validated"), upper=True),
    "allowed_function_names": _list_of(_text),
}
_TOOL_CONFIG: dict[str, Callable[[Any, str], Any]] = {
    "function_calling_config": lambda v, w: _fields(v, w, _FUNCTION_CALLING),
    "retrieval_config": _object,
}
_REQUEST: dict[str, Callable[[Any, str], Any]] = {
    "contents": _contents,
    "system_instruction": _content,
    "generation_config": _generation_config,
    "safety_settings": _list_of(lambda v, w: _fields(v, w, _SAFETY)),
    "tools": _list_of(lambda v, w: _fields(v, w, _TOOL)),
    "tool_config": lambda v, w: _fields(v, w, _TOOL_CONFIG),
    "cached_content": _text,
    # A Gemini Batch line may name its model inside the request; the job keeps it apart.
    "model": _text,
}


def normalise(value: Any, where: str = "") -> dict:
    """The request checked and in snake_case; raises ShapeError naming the field.
    `where` prefixes every field named in a refusal ("request")."""
    try:
        request = _fields(value, "", _REQUEST)
    except ShapeError as error:
        field = f"{where}.{error.field}" if where and error.field else where or error.field
        raise ShapeError(field, error.message) from None
    if "contents" not in request:
        raise ShapeError(f"{where}.contents" if where else "contents", "is missing")
    inline = inline_bytes(request)
    if inline > MAX_INLINE_BYTES:
        raise ShapeError(
            where or "contents",
            f"carries {inline / 1_048_576:.1f} MB inline; Gemini's limit is "
            f"{MAX_INLINE_BYTES // 1_048_576} MB. Send larger media as file_data URIs.",
        )
    return request


def simple(prompt: str, *, system_instruction: str = "", generation_config=None) -> dict:
    """The request for one text prompt (the form, the command's --prompt, plain files)."""
    request: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    if system_instruction:
        request["system_instruction"] = {"parts": [{"text": system_instruction}]}
    if generation_config:
        request["generation_config"] = dict(generation_config)
    return request


# --- Reading a request ---------------------------------------------------------------
def parts(request: dict) -> Iterator[tuple[str, dict]]:
    """(role, part) for every part of every turn."""
    for turn in request.get("contents") or []:
        for part in turn.get("parts") or []:
            yield turn.get("role", "user"), part


def _joined(content: dict | None) -> str:
    texts = [part["text"] for part in (content or {}).get("parts") or [] if part.get("text")]
    return "\n\n".join(texts)


def prompt_text(request: dict) -> str:
    """The conversation's text, as the pages show and search it: one turn's text
    alone, several turns as a "User: ..." / "Assistant: ..." transcript."""
    turns = [(t.get("role", "user"), _joined(t)) for t in request.get("contents") or []]
    turns = [(role, text) for role, text in turns if text]
    if all(role == "user" for role, _ in turns):
        return "\n\n".join(text for _, text in turns)
    label = {"user": "User", "model": "Assistant"}
    return "\n\n".join(f"{label[role]}: {text}" for role, text in turns)


def system_text(request: dict) -> str:
    return _joined(request.get("system_instruction"))


def generation(request: dict) -> dict:
    return request.get("generation_config") or {}


def media(request: dict) -> list[dict]:
    """The inline_data and file_data of every turn (not the text)."""
    found = []
    for _, part in parts(request):
        if "inline_data" in part:
            found.append(part["inline_data"])
        elif "file_data" in part:
            found.append(part["file_data"])
    return found


def inline_bytes(request: dict) -> int:
    """Decoded size of all inline data, estimated from the base64 text."""
    return sum(len(blob.get("data", "")) * 3 // 4 for blob in media(request) if "data" in blob)


def answer_schema(request: dict) -> dict | None:
    """The JSON Schema an answer must satisfy, or None when none was asked for. An
    OpenAPI-style response_schema ("type": "OBJECT", "nullable") is read as JSON Schema."""
    config = generation(request)
    if "response_json_schema" in config:
        return config["response_json_schema"]
    if "response_schema" in config:
        return openapi_as_json_schema(config["response_schema"])
    return None


def wants_json(request: dict) -> bool:
    return generation(request).get("response_mime_type") == JSON_MIME


def check_answer(request: dict, text: str) -> tuple[Any, str]:
    """(the answer parsed, "") when JSON was asked for and the answer is JSON that
    satisfies the schema; (parsed or None, why not) when it is not; (None, "") when
    no JSON was asked for."""
    if not wants_json(request):
        return None, ""
    try:
        parsed = json.loads(text)
    except ValueError as error:
        return None, f"The answer is not JSON ({error})."
    schema = answer_schema(request)
    if schema is None:
        return parsed, ""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(parsed))
    if error is None:
        return parsed, ""
    where = "".join(f"[{p!r}]" for p in error.absolute_path) or "the answer"
    return parsed, f"The answer does not match the schema: {where}: {error.message}"[:2000]


def openapi_as_json_schema(schema: Any) -> Any:
    if isinstance(schema, list):
        return [openapi_as_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        name = snake(key)
        if name == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif name == "properties" and isinstance(value, dict):
            out["properties"] = {k: openapi_as_json_schema(v) for k, v in value.items()}
        elif name in ("items", "any_of"):
            out["anyOf" if name == "any_of" else "items"] = openapi_as_json_schema(value)
        elif name in ("nullable", "property_ordering", "format"):
            continue
        else:
            out[key] = value
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


# What the Interactions route cannot carry (google-genai 3.3.0): a request that needs
# any of these goes by generateContent, never with the field dropped.
INTERACTIONS_LACKS_GENERATION = (
    "top_k",
    "candidate_count",
    "response_logprobs",
    "logprobs",
    "presence_penalty",
    "frequency_penalty",
    "response_schema",
    "media_resolution",
)


def interactions_gaps(request: dict) -> list[str]:
    """The fields of `request` the Interactions route has no place for."""
    config = generation(request)
    gaps = [f"generation_config.{name}" for name in INTERACTIONS_LACKS_GENERATION
            if name in config]  # fmt: skip
    thinking = config.get("thinking_config", {})
    gaps += [f"generation_config.thinking_config.{name}" for name in
             ("thinking_budget", "include_thoughts") if name in thinking]  # fmt: skip
    if config.get("response_mime_type") not in (None, JSON_MIME, "text/plain"):
        gaps.append("generation_config.response_mime_type")
    if "tool_config" in request:
        gaps.append("tool_config")
    for tool in request.get("tools") or []:
        gaps += [f"tools[].{name}" for name in tool if name == "google_search_retrieval"]
    if any(len(p) > 1 or "text" not in p for p in (request.get("system_instruction") or {})
           .get("parts", [])):  # fmt: skip
        gaps.append("system_instruction (parts other than text)")
    for role, part in parts(request):
        if {"executable_code", "code_execution_result", "video_metadata"} & part.keys():
            gaps.append("contents[].parts[] (code execution or video metadata)")
        if role == "model" and "thought_signature" in part:
            gaps.append("contents[].parts[].thought_signature")
    if any(s.get("method") for s in request.get("safety_settings") or []):
        gaps.append("safety_settings[].method")
    return sorted(set(gaps))


# --- Reading an answer (a GenerateContentResponse as JSON) ----------------------------
def candidates(response: dict | None) -> list[dict]:
    return list((response or {}).get("candidates") or [])


def candidate_text(candidate: dict) -> str:
    content = candidate.get("content") or {}
    return "".join(
        part.get("text", "") for part in content.get("parts") or [] if not part.get("thought")
    )


def answer_text(response: dict | None) -> str:
    """The first candidate's text, thoughts left out (what the SDK's .text gives)."""
    found = candidates(response)
    return candidate_text(found[0]) if found else ""


def finish_reason(response: dict | None) -> str:
    found = candidates(response)
    return str(found[0].get("finishReason") or "") if found else ""


def function_calls(candidate: dict) -> list[dict]:
    content = candidate.get("content") or {}
    return [part["functionCall"] for part in content.get("parts") or [] if "functionCall" in part]


def usage(response: dict | None) -> dict:
    return (response or {}).get("usageMetadata") or {}
