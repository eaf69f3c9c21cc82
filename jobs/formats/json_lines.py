"""What one line of a prompt file means: a PromptLine carrying the whole request in
Gemini's own shape (jobs.gemini_shape), or a LineError naming the field in the file's
own terms. FlexDash's JSONL and Gemini Batch lines live here; OpenAI and Anthropic
lines are translated in openai_batch and anthropic_batch with the helpers below.

Before a line is decoded, json_shape_problem checks it is not nested or wide enough
to exhaust the stack or the memory of the process reading it.
"""

from __future__ import annotations

import itertools
import re
from array import array
from dataclasses import dataclass
from typing import Any

from jobs import gemini_shape
from jobs.text import storable_text_error

MAX_ID_CHARS = 255
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

JSONL_FIELDS = ("id", "prompt", "system_instruction", "model", "temperature",
                "max_output_tokens", "generation_config", "request")  # fmt: skip
GEMINI_FIELDS = ("key", "request")
# What a JSONL line gives beside its prompt, and gives inside a whole request instead.
_PROMPT_SETTINGS = ("prompt", "system_instruction", "temperature", "max_output_tokens",
                    "generation_config")  # fmt: skip


@dataclass(frozen=True)
class PromptLine:
    """One line of a file: its whole request, checked. The caller applies the run's
    defaults (model, system instruction, temperature, max tokens)."""

    line: int  # 1-based; for CSV the record's first line
    custom_id: str  # "" when the line names none: the caller uses str(line)
    request: dict  # Gemini's request, gemini_shape.normalise'd, without "model"
    model: str | None  # the line's own model, "models/" taken off
    # The line as uploaded, without its line ending, for the resubmit file. A CSV
    # record comes after its header row and a line break: alone it means nothing.
    source: str

    @property
    def prompt(self) -> str:
        return gemini_shape.prompt_text(self.request)

    @property
    def system_instruction(self) -> str:
        return gemini_shape.system_text(self.request)

    @property
    def temperature(self) -> float | None:
        return gemini_shape.generation(self.request).get("temperature")

    @property
    def max_output_tokens(self) -> int | None:
        return gemini_shape.generation(self.request).get("max_output_tokens")


class LineError(Exception):
    """One line's problem: recorded against the line, and reading goes on."""


class Origins:
    """Which field of the file each part of a built request came from, so that
    Gemini's refusal of `generation_config.top_p` reads as one of `body.top_p`."""

    def __init__(self) -> None:
        self._paths: dict[str, tuple[str, bool]] = {}

    def note(self, gemini_path: str, file_path: str, *, whole: bool = False) -> None:
        """`whole`: every field inside gemini_path is file_path too (a part built from
        one field of the file, such as a data: URL, has no fields of its own there)."""
        self._paths[gemini_path] = (file_path, whole)

    def name(self, field: str) -> str:
        """The file's name for `field`: its longest noted prefix replaced."""
        noted = [p for p in self._paths if field == p or field.startswith((p + ".", p + "["))]
        if not noted:
            return field
        prefix = max(noted, key=len)
        file_path, whole = self._paths[prefix]
        return file_path if whole else file_path + field[len(prefix) :]


def checked_request(request: Any, origins: Origins | None = None, where: str = "") -> dict:
    """gemini_shape.normalise, its refusal a LineError in the file's terms."""
    try:
        return gemini_shape.normalise(request, where)
    except gemini_shape.ShapeError as error:
        field = origins.name(error.field) if origins else error.field
        raise LineError(f"{field} {error.message}" if field else error.message) from None


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


def jsonl_line(number: int, line: dict, source: str) -> PromptLine:
    """FlexDash's JSONL: a `prompt` with its settings (a `generation_config` merged
    in), or a whole Gemini `request` instead of the prompt."""
    known_fields(line, JSONL_FIELDS, "a JSONL line")
    model = line_model(line.get("model"), "model")
    if line.get("request") is not None:
        if given := [name for name in _PROMPT_SETTINGS if line.get(name) is not None]:
            raise LineError(f"'{given[0]}' goes inside 'request' when a whole request is given")
        request = checked_request(line["request"], where="request")
        inner = line_model(request.pop("model", None), "request.model")
        if model and inner and model != inner:
            raise LineError(f"'model' ({model}) and request.model ({inner}) differ; give one")
        return PromptLine(number, line_id(line, "id"), request, model or inner, source)
    prompt = line.get("prompt")
    if not isinstance(prompt, str):
        raise LineError(
            "no 'prompt' text (or whole Gemini 'request')"
            if prompt is None
            else "'prompt' must be a string"
        )
    origins = Origins()
    origins.note("contents", "prompt")
    origins.note("contents[0].parts[0].text", "prompt")
    origins.note("system_instruction.parts[0].text", "system_instruction")
    config = line.get("generation_config")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        raise LineError("generation_config must be an object")
    origins.note("generation_config", "generation_config")
    config = dict(config)
    for name in ("temperature", "max_output_tokens"):
        if line.get(name) is None:
            continue
        if name in map(gemini_shape.snake, config):
            raise LineError(f"'{name}' is given twice: beside the prompt and in generation_config")
        config[name] = line[name]
        origins.note(f"generation_config.{name}", name)
    request = gemini_shape.simple(
        prompt,
        system_instruction=text_field(line.get("system_instruction"), "system_instruction"),
        generation_config=config,
    )
    return PromptLine(number, line_id(line, "id"), checked_request(request, origins), model, source)


def gemini_line(number: int, line: dict, source: str) -> PromptLine:
    """A Gemini Batch line: the request is taken whole, every field kept."""
    known_fields(line, GEMINI_FIELDS, "a Gemini Batch line")
    request = line.get("request")
    if not isinstance(request, dict):
        raise LineError("'request' must be an object with 'contents'")
    request = checked_request(request, where="request")
    model = line_model(request.pop("model", None), "request.model")
    return PromptLine(number, line_id(line, "key"), request, model, source)


def known_fields(value: dict, known: tuple[str, ...], what: str, where: str = "") -> None:
    """Refuse, by name, a field `value` has that `known` does not list."""
    for name in value:
        if name not in known:
            path = f"{where}.{name}" if where else f"'{name}'"
            raise LineError(f"{path} is not a field of {what} ({', '.join(known)})")


def line_id(line: dict, name: str) -> str:
    value = line.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise LineError(f"'{name}' must be a string")
    return str(value)


def text_field(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise LineError(f"'{name}' must be a string")
    return value


def line_model(value: Any, name: str) -> str | None:
    return text_field(value, name).strip().removeprefix("models/") or None


def content_problem(p: PromptLine, max_prompt_chars: int) -> str | None:
    """What would stop this line from being stored and run, whatever its format. (Each
    text part was checked storable as the request was: gemini_shape.normalise.)"""
    blank, inline = True, False
    for _, part in gemini_shape.parts(p.request):
        blank = blank and "text" in part and not part["text"].strip()
        inline = inline or "inline_data" in part
    if blank:
        return "the prompt is empty"
    prompt, system = p.prompt, p.system_instruction
    if len(prompt) > max_prompt_chars:
        return f"the prompt is {len(prompt):,} characters; the limit is {max_prompt_chars:,}"
    if len(system) > max_prompt_chars:
        return (
            f"the system instruction is {len(system):,} characters; "
            f"the limit is {max_prompt_chars:,}"
        )
    if inline and (size := gemini_shape.inline_bytes(p.request)) > gemini_shape.MAX_INLINE_BYTES:
        return (
            f"the images and documents come to {size / 1_048_576:.1f} MB; Gemini takes "
            f"{gemini_shape.MAX_INLINE_BYTES // 1_048_576} MB inline"
        )
    if len(p.custom_id) > MAX_ID_CHARS:
        return f"the id is {len(p.custom_id):,} characters; the limit is {MAX_ID_CHARS}"
    for name, text in (("id", p.custom_id), ("model", p.model or "")):
        if problem := storable_text_error(text):
            return f"the {name} {problem}"
    return None
