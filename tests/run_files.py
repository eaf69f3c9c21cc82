"""Prompt files in each upload format, for the run tests: a few (id, prompt)
lines written the way a researcher's own tools write them."""

from __future__ import annotations

import csv
import io
import json

EXTENSIONS = {
    "text": "txt",
    "jsonl": "jsonl",
    "csv": "csv",
    "gemini_batch": "jsonl",
    "openai_batch": "jsonl",
    "anthropic_batch": "jsonl",
}


def _line(fmt: str, custom_id: str, prompt: str, model: str | None) -> dict:
    if fmt == "jsonl":
        return {"id": custom_id, "prompt": prompt, **({"model": model} if model else {})}
    if fmt == "gemini_batch":
        request = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
        return {"key": custom_id, "request": {**request, **({"model": model} if model else {})}}
    if fmt == "openai_batch":
        body = {"model": model or "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}
        return {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": body,
        }
    if fmt == "anthropic_batch":
        params = {
            "model": model or "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": prompt}],
        }
        return {"custom_id": custom_id, "params": params}
    raise ValueError(fmt)


def prompt_file(
    fmt: str, lines: list[tuple[str, str]], *, model: str | None = None
) -> tuple[str, bytes]:
    """(file name, content) holding the (id, prompt) lines in format `fmt`. Plain
    text has no ids: its lines are known by their numbers. OpenAI and Anthropic
    lines always name a model, as those files must (one flex does not run unless
    `model` is given)."""
    name = f"prompts-{fmt}.{EXTENSIONS[fmt]}"
    if fmt == "text":
        return name, "".join(f"{prompt}\n" for _, prompt in lines).encode()
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["id", "prompt", "model"])
        writer.writerows([custom_id, prompt, model or ""] for custom_id, prompt in lines)
        return name, buffer.getvalue().encode()
    text = "".join(json.dumps(_line(fmt, cid, prompt, model)) + "\n" for cid, prompt in lines)
    return name, text.encode()


def json_lines(content: bytes) -> list[dict]:
    return [json.loads(line) for line in content.decode().splitlines() if line.strip()]


def line_id(fmt: str, line: dict) -> str:
    """The id a result line is keyed by, in each format's result shape."""
    return line["key"] if fmt == "gemini_batch" else line.get("custom_id", line.get("id"))


def answer_of(fmt: str, line: dict) -> str:
    """The answer text a result line carries, in each format's result shape."""
    if fmt == "gemini_batch":
        return line["response"]["candidates"][0]["content"]["parts"][0]["text"]
    if fmt == "openai_batch":
        return line["response"]["body"]["choices"][0]["message"]["content"]
    if fmt == "anthropic_batch":
        return line["result"]["message"]["content"][0]["text"]
    return line["output"]
