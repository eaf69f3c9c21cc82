"""Building Gemini's request from another API's fields (OpenAI's, Anthropic's): the
turns, the system instruction, the generation config and the tools, each part
remembering the field of the file it came from, so every refusal names that field."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from jobs.formats.json_lines import LineError, Origins, checked_request

_DATA_URL = re.compile(r"data:([^;,]+)((?:;[^;,]*)*?);base64,", re.IGNORECASE)


class Translation:
    """One line's request as it is built; `request()` checks it whole."""

    def __init__(self) -> None:
        self.origins = Origins()
        self.contents: list[dict] = []
        self.system: list[dict] = []
        self.config: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}  # tools, tool_config
        self.function_names: dict[str, str] = {}  # a tool call's id -> its function's name
        self._joinable = False

    def setting(self, name: str, value: Any, path: str) -> None:
        """A generation_config field, from the file's `path`."""
        self.config[name] = value
        self.origins.note(f"generation_config.{name}", path)

    def thinking(self, name: str, value: Any, path: str) -> None:
        self.config.setdefault("thinking_config", {})[name] = value
        self.origins.note(f"generation_config.thinking_config.{name}", path)

    def system_part(self, part: dict, path: str) -> None:
        self.origins.note(f"system_instruction.parts[{len(self.system)}]", path, whole=True)
        self.system.append(part)

    def turn(self, role: str, parts: list[tuple[dict, str]], path: str, *, join=False) -> None:
        """A turn of (part, the file's path for it) pairs; with `join`, added to the
        previous turn when that was joined too (function responses, one turn for all)."""
        if join and self._joinable:
            index = len(self.contents) - 1
        else:
            index = len(self.contents)
            self.contents.append({"role": role, "parts": []})
            self.origins.note(f"contents[{index}]", path)
        self._joinable = join
        # Gemini refuses an empty text part: beside a tool call (an assistant message
        # copied back with content ""), it is left out.
        if any(part != {"text": ""} for part, _ in parts):
            parts = [(part, part_path) for part, part_path in parts if part != {"text": ""}]
        turn = self.contents[index]["parts"]
        for part, part_path in parts:
            self.origins.note(f"contents[{index}].parts[{len(turn)}]", part_path, whole=True)
            turn.append(part)

    def function_call(self, call_id: Any, name: Any, args: Any, path: str) -> dict:
        """A function_call part; its id is remembered to name the function's answer."""
        if not isinstance(name, str) or not name:
            raise LineError(f"{path} needs the function's name")
        if isinstance(call_id, str) and call_id:
            self.function_names[call_id] = name
        return {"function_call": {"name": name, "args": args}}

    def function_response(self, call_id: Any, output: str, path: str, *, error=False) -> dict:
        if call_id not in self.function_names:
            raise LineError(f"{path} {call_id!r} names no tool call earlier in the conversation")
        key = "error" if error else "output"  # the keys Gemini reads a function's answer by
        name = self.function_names[call_id]
        return {"function_response": {"name": name, "response": {key: output}}}

    def request(self, messages_path: str) -> dict:
        if not any(turn["role"] == "user" for turn in self.contents):
            raise LineError(f"{messages_path} has no user message")
        self.origins.note("contents", messages_path)
        request: dict[str, Any] = {"contents": self.contents}
        if self.system:
            request["system_instruction"] = {"parts": self.system}
        if self.config:
            request["generation_config"] = self.config
        return checked_request(request | self.extra, self.origins)


def data_url_blob(url: Any, path: str, what: str) -> dict:
    """An inline_data blob from a data: URL; a web address is refused, never fetched."""
    if not isinstance(url, str):
        raise LineError(f"{path} must be a data: URL")
    if url.lower().startswith(("http://", "https://")):
        raise LineError(f"{path} is a web address: nothing is fetched; send the {what} "
                        "as a data: URL (data:<type>;base64,...)")  # fmt: skip
    match = _DATA_URL.match(url)
    if not match:
        raise LineError(f"{path} must be a data: URL with base64 data (data:<type>;base64,...)")
    return {"inline_data": {"mime_type": match[1].strip().lower(), "data": url[match.end() :]}}


def function_declaration(name: Any, description: Any, schema: Any) -> dict:
    declaration = {"name": name, "description": description, "parameters_json_schema": schema}
    return {key: value for key, value in declaration.items() if value is not None}


def declarations(t: Translation, found: list[tuple[dict, str, str]]) -> None:
    """Function declarations, all in one Gemini tool (as Gemini asks): (declaration,
    the file's path for it, the file's path for its parameters' schema) each."""
    for index, (_, path, schema_path) in enumerate(found):
        where = f"tools[0].function_declarations[{index}]"
        t.origins.note(where, path)
        t.origins.note(f"{where}.parameters_json_schema", schema_path)
    t.extra["tools"] = [{"function_declarations": [found_one[0] for found_one in found]}]


def function_calling(t: Translation, mode: str, path: str, name: Any = None) -> None:
    config: dict[str, Any] = {"mode": mode}
    if name is not None:
        if not isinstance(name, str) or not name:
            raise LineError(f"{path} needs the function's name")
        config["allowed_function_names"] = [name]
    t.extra["tool_config"] = {"function_calling_config": config}
    t.origins.note("tool_config", path)


def arguments(text: Any, path: str) -> dict:
    """OpenAI's function arguments: a JSON object written as a string."""
    if not isinstance(text, str):
        raise LineError(f"{path} must be a JSON object written as a string")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise LineError(f"{path} is not JSON") from None
    if not isinstance(value, dict):
        raise LineError(f"{path} must be a JSON object")
    return value


def one_of(value: Any, path: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise LineError(f"{path} must be {', '.join(options[:-1])} or {options[-1]}")
    return value


Translator = Callable[["Translation", Any, str], None]


def translate_fields(
    t: Translation, fields: dict, where: str, translators: dict[str, Translator], ignored
) -> None:
    """Every field of `fields` (a line's body or params) through its translator. A null
    field is one left out, as both APIs read it; an ignored one, and the model (the job
    keeps it apart), change nothing; one with no translator refuses the line by name."""
    for name, value in fields.items():
        if value is None or name in ignored or name == "model":
            continue
        translate = translators.get(name)
        if translate is None:
            raise LineError(f"{where}.{name} has no Gemini counterpart")
        translate(t, value, f"{where}.{name}")


def setting(gemini_name: str) -> Callable[[Translation, Any, str], None]:
    """A field that is a generation_config field of another name."""
    return lambda t, value, path: t.setting(gemini_name, value, path)


def only(default: Any, why: str) -> Callable[[Translation, Any, str], None]:
    """A field whose one accepted value is what Gemini does anyway."""

    def check(t: Translation, value: Any, path: str) -> None:
        if value != default:
            raise LineError(f"{path} {json.dumps(value)} has no Gemini counterpart ({why})")

    return check
