"""What the format tests share: files made and read in memory, and result rows in every
state an export has to handle."""

from __future__ import annotations

import base64
import io
import json

import pytest

from jobs.formats import FileRejected, PromptLine, ResultRow, parse


def parse_bytes(data: bytes, fmt: str | None = None, **options) -> list[PromptLine]:
    return list(parse(io.BytesIO(data), fmt, **options))


def rejection(data: bytes, fmt: str | None = None, **options) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        parse_bytes(data, fmt, **options)
    return caught.value


def jsonl(*lines: object) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def one(line: dict, fmt: str) -> PromptLine:
    """The one PromptLine a single-line file of `fmt` holds."""
    (prompt_line,) = parse_bytes(jsonl(line), fmt)
    return prompt_line


def refusal(line: dict, fmt: str) -> str:
    """Why a single-line file of `fmt` is refused, as the person reads it."""
    (message,) = rejection(jsonl(line), fmt).messages()
    return message


def result_row(custom_id: str, state: str, **fields) -> ResultRow:
    values = {
        "custom_id": custom_id,
        "prompt": f"Prompt {custom_id}",
        "state": state,
        "attempts": 2,
        "http_503": 1,
        "http_429": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "thought_tokens": 0,
        "cost_usd": "",
        "output_text": "",
        "error": "",
        "model": "gemini-2.5-flash",
        "response_id": "",
        "finished": state in ("succeeded", "failed", "cancelled"),
        "succeeded": state == "succeeded",
    }
    if state == "succeeded":
        values |= {
            "input_tokens": 12,
            "output_tokens": 30,
            "thought_tokens": 5,
            "cost_usd": "0.000040",
            "output_text": f"Answer to {custom_id}\nsecond line",
            "response_id": f"resp-{custom_id}",
        }
    elif state == "failed":
        values["error"] = "Capacity (503) on every attempt"
    return ResultRow(**(values | fields))


# Media and schemas the request tests send.
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
PDF = base64.b64encode(b"%PDF-1.4 /Type /Pages /Type /Page /Type /Page %%EOF").decode()
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
    "required": ["label"],
}
PARAMETERS = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def user(*parts: dict) -> dict:
    """A user turn of Gemini's request."""
    return {"role": "user", "parts": list(parts)}
