"""What one JSON line of each format means: JSONL, Gemini Batch, OpenAI Batch and
Anthropic Message Batches lines become PromptLines, or raise LineError naming the field.

Before a line is decoded, json_shape_problem checks it is not nested or wide enough
to exhaust the stack or the memory of the process reading it.

Multi-turn conversations (assistant messages, Gemini "model" turns) run as one prompt:
the turns are joined as a "User: ..." / "Assistant: ..." transcript, a blank line
between turns; user-only conversations are joined without labels.
"""

from __future__ import annotations

import itertools
import math
import re
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jobs.text import storable_text_error

MAX_ID_CHARS = 255
OPENAI_CHAT_URL = "/v1/chat/completions"
# The same bounds jobs.engine.submitting.job_spec_errors applies to a single job.
MAX_TEMPERATURE = 2.0
MAX_OUTPUT_TOKENS = 1_000_000
# json.loads recurses once per level of nesting (100,000 levels overflow the
# stack) and makes every value a Python object (an empty {} costs 64 bytes for
# its 3 bytes of text): a line is checked against both before it is decoded.
# A prompt line needs a few levels and a few values per turn of its
# conversation; these leave room for any conversation a prompt can hold.
MAX_JSON_DEPTH = 64
MAX_JSON_VALUES = 100_000
_JSON_STRING = re.compile(r'"[^"]*"')
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


@dataclass(frozen=True)
class PromptLine:
    """One prompt as the file gives it; the caller applies the run's defaults."""

    line: int  # 1-based; for CSV the record's first line
    custom_id: str  # "" when the line names none: the caller uses str(line)
    prompt: str
    system_instruction: str
    model: str | None
    temperature: float | None
    max_output_tokens: int | None


class LineError(Exception):
    """One line's problem: recorded against the line, and reading goes on."""


def json_shape_problem(text: str) -> str | None:
    """Why `text` must not be given to json.loads: nested deeper than
    MAX_JSON_DEPTH, or more than MAX_JSON_VALUES values. Brackets and commas
    inside strings do not count. Every step runs in C over at most a copy or two
    of the text, so even a line of millions of values is refused in a fraction
    of a second, in memory proportional to its length."""
    openers = text.count("{") + text.count("[")
    if openers <= MAX_JSON_DEPTH and openers + text.count(",") < MAX_JSON_VALUES:
        return None  # even counting what is inside strings, well within both
    # Without escaped backslashes and quotes, a string is a quote, anything but a
    # quote, and a quote; what is left between the strings is the structure.
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    structure = _JSON_STRING.sub("", unescaped).encode()
    openers = structure.count(b"{") + structure.count(b"[")
    if openers > MAX_JSON_DEPTH:
        steps = array("b", structure.translate(_DEPTH_STEPS, _NOT_BRACKETS))
        if max(itertools.accumulate(steps)) > MAX_JSON_DEPTH:
            return f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels"
    # Each value but the first of a list or an object follows a comma.
    if openers + structure.count(b",") + 1 > MAX_JSON_VALUES:
        return f"the JSON has more than {MAX_JSON_VALUES:,} values"
    return None


def jsonl_line(number: int, line: dict) -> PromptLine:
    prompt = line.get("prompt")
    if not isinstance(prompt, str):
        raise LineError("no 'prompt' text" if prompt is None else "'prompt' must be a string")
    return PromptLine(
        number,
        _id(line, "id"),
        prompt,
        _string(line.get("system_instruction"), "system_instruction"),
        _model(line.get("model"), "model"),
        checked_temperature(line.get("temperature"), "temperature"),
        checked_max_tokens(line.get("max_output_tokens"), "max_output_tokens"),
    )


def gemini_line(number: int, line: dict) -> PromptLine:
    request = line.get("request")
    if not isinstance(request, dict):
        raise LineError("'request' must be an object with 'contents'")
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        raise LineError("no request.contents[].parts[].text")
    turns = []
    for i, content in enumerate(contents):
        where = f"request.contents[{i}]"
        role = content.get("role", "user") if isinstance(content, dict) else None
        if role not in ("user", "model"):
            raise LineError(f"{where} must be a user or model turn")
        turns.append(("assistant" if role == "model" else "user", _gemini_text(content, where)))
    system = _either(request, "system_instruction", "systemInstruction")
    config = _either(request, "generation_config", "generationConfig") or {}
    if not isinstance(config, dict):
        raise LineError("request.generation_config must be an object")
    model = _model(request.get("model"), "request.model")
    return PromptLine(
        number,
        _id(line, "key"),
        _join_turns(turns),
        "" if system is None else _gemini_text(system, "request.system_instruction"),
        model.removeprefix("models/") if model else None,
        checked_temperature(config.get("temperature"), "generation_config.temperature"),
        checked_max_tokens(
            _either(config, "max_output_tokens", "maxOutputTokens"),
            "generation_config.max_output_tokens",
        ),
    )


def _gemini_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise LineError(f"no {where}.parts[].text")
    texts = []
    for i, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            raise LineError(f"{where}.parts[{i}] is not text; only text prompts can run")
        texts.append(part["text"])
    return _join(texts)


def openai_line(number: int, line: dict) -> PromptLine:
    if line.get("method", "POST") != "POST":
        raise LineError("'method' must be POST")
    if line.get("url") != OPENAI_CHAT_URL:
        raise LineError(f"'url' must be {OPENAI_CHAT_URL!r} (found {line.get('url')!r})")
    body = line.get("body")
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        raise LineError("no body.messages")
    system, turns = _messages(messages, "body.messages", ("system", "developer"))
    newer = body.get("max_completion_tokens") is not None
    tokens_field = "max_completion_tokens" if newer else "max_tokens"
    return PromptLine(
        number,
        _id(line, "custom_id"),
        _join_turns(turns),
        _join(system),
        _model(body.get("model"), "body.model"),
        checked_temperature(body.get("temperature"), "body.temperature"),
        checked_max_tokens(body.get(tokens_field), f"body.{tokens_field}"),
    )


def anthropic_line(number: int, line: dict) -> PromptLine:
    params = line.get("params")
    messages = params.get("messages") if isinstance(params, dict) else None
    if not isinstance(messages, list) or not messages:
        raise LineError("no params.messages")
    _, turns = _messages(messages, "params.messages", ())
    system = params.get("system")
    return PromptLine(
        number,
        _id(line, "custom_id"),
        _join_turns(turns),
        "" if system is None else _content_text(system, "params.system"),
        _model(params.get("model"), "params.model"),
        checked_temperature(params.get("temperature"), "params.temperature"),
        checked_max_tokens(params.get("max_tokens"), "params.max_tokens"),
    )


def _messages(
    messages: list, where: str, system_roles: tuple[str, ...]
) -> tuple[list[str], list[tuple[str, str]]]:
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant", *system_roles):
            roles = ", ".join(("user", "assistant", *system_roles))
            raise LineError(f"{where}[{i}] has role {role!r}; only {roles} messages can run")
        text = _content_text(message.get("content"), f"{where}[{i}].content")
        if role in system_roles:
            system.append(text)
        else:
            turns.append((role, text))
    return system, turns


def _content_text(content: Any, where: str) -> str:
    """OpenAI and Anthropic content: a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise LineError(f"{where} must be a string or a list of text blocks")
    texts = []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind != "text" or not isinstance(block.get("text"), str):
            raise LineError(f"{where}[{i}] is {kind or 'not a block'!r}; only text can run")
        texts.append(block["text"])
    return _join(texts)


def _join(texts: Iterable[str]) -> str:
    return "\n\n".join(text for text in texts if text)


def _join_turns(turns: list[tuple[str, str]]) -> str:
    if not any(role == "user" for role, _ in turns):
        raise LineError("no user message")
    if all(role == "user" for role, _ in turns):
        return _join(text for _, text in turns)
    return _join(f"{role.capitalize()}: {text}" for role, text in turns)


def _either(mapping: dict, snake: str, other: str) -> Any:
    value = mapping.get(snake)
    return mapping.get(other) if value is None else value


def _id(line: dict, name: str) -> str:
    value = line.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise LineError(f"'{name}' must be a string")
    return str(value)


def _string(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise LineError(f"'{name}' must be a string")
    return value


def _model(value: Any, name: str) -> str | None:
    return _string(value, name).strip() or None


def checked_temperature(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= MAX_TEMPERATURE
    ):
        raise LineError(f"{name} must be a number between 0 and {MAX_TEMPERATURE:g}")
    return float(value)


def checked_max_tokens(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OUTPUT_TOKENS:
        raise LineError(f"{name} must be a whole number between 1 and {MAX_OUTPUT_TOKENS:,}")
    return value


def content_problem(p: PromptLine, max_prompt_chars: int) -> str | None:
    """What would stop this prompt from being stored and run, whatever its format."""
    if not p.prompt.strip():
        return "the prompt is empty"
    if len(p.prompt) > max_prompt_chars:
        return f"the prompt is {len(p.prompt):,} characters; the limit is {max_prompt_chars:,}"
    if len(p.system_instruction) > max_prompt_chars:
        return (
            f"the system instruction is {len(p.system_instruction):,} characters; "
            f"the limit is {max_prompt_chars:,}"
        )
    if len(p.custom_id) > MAX_ID_CHARS:
        return f"the id is {len(p.custom_id):,} characters; the limit is {MAX_ID_CHARS}"
    fields = (
        ("id", p.custom_id),
        ("prompt", p.prompt),
        ("system instruction", p.system_instruction),
        ("model", p.model or ""),
    )
    for name, text in fields:
        if problem := storable_text_error(text):
            return f"the {name} {problem}"
    return None
