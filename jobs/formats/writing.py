"""Writing results: each format's own result lines keyed by the uploaded ids, a CSV of
every job, and the lines that did not succeed in the uploaded format to upload again.
All streaming: one `str` line at a time, each ending in a newline. Every CSV cell goes
through spreadsheet_cells.neutralise, so no spreadsheet computes an id, prompt or answer."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jobs.formats.json_lines import OPENAI_CHAT_URL, PromptLine
from jobs.formats.reading import CSV_PROMPT_COLUMNS
from jobs.formats.spreadsheet_cells import neutralise

CSV_COLUMNS = (
    "id",
    "state",
    "attempts",
    "http_503",
    "http_429",
    "input_tokens",
    "output_tokens",
    "thought_tokens",
    "cost_usd",
    "prompt",
    "output",
)

# The ResultRow attribute behind each CSV column.
_CSV_ROW_FIELDS = (
    "custom_id",
    "state",
    "attempts",
    "http_503",
    "http_429",
    "input_tokens",
    "output_tokens",
    "thought_tokens",
    "cost_usd",
    "prompt",
    "output_text",
)
CANCELLED = "cancelled"


@dataclass(frozen=True)
class ResultRow:
    """One job of a run as the exports need it; the caller builds it from the Job."""

    custom_id: str
    prompt: str
    state: str
    attempts: int
    http_503: int
    http_429: int
    input_tokens: int
    output_tokens: int
    thought_tokens: int
    cost_usd: str  # a plain decimal ("0.00000000", never "0E-8"), "" if none
    output_text: str
    error: str
    model: str
    response_id: str
    finished: bool
    succeeded: bool


def request_fields(p: PromptLine) -> dict:
    """What export_resubmit needs to write the line again (the prompt and its settings:
    ResultRow carries only the prompt's text); empty settings are left out to keep it small."""
    fields: dict[str, Any] = {"prompt": p.prompt}
    if p.system_instruction:
        fields["system_instruction"] = p.system_instruction
    for name in ("model", "temperature", "max_output_tokens"):
        if (value := getattr(p, name)) is not None:
            fields[name] = value
    return fields


def export_results(fmt: str, rows: Iterable[ResultRow]) -> Iterator[str]:
    """One JSON line per finished row, in the uploaded format's own result shape. Text,
    JSONL and CSV uploads get FlexDash's JSONL: id, state, model, output, error,
    input_tokens, output_tokens, thought_tokens, cost_usd (a decimal string, or null)."""
    write = _RESULT_WRITERS[fmt]
    number = 0
    for row in rows:
        if row.finished:
            number += 1
            yield _json_line(write(row, number))


def export_csv(rows: Iterable[ResultRow]) -> Iterator[str]:
    """Every row, finished or not, one CSV record each (quoted when multi-line)."""
    write = _csv_writer()
    yield write(CSV_COLUMNS)
    for row in rows:
        yield write(getattr(row, name) for name in _CSV_ROW_FIELDS)


def export_resubmit(fmt: str, lines: Iterable[tuple[ResultRow, dict]]) -> Iterator[str]:
    """Every line that did not succeed (failed, cancelled or unfinished), in the uploaded
    format and under its id, ready to upload again. The dict is request_fields()."""
    if fmt == "csv":
        write_csv = _csv_writer()
        yield write_csv(CSV_PROMPT_COLUMNS)
    for row, fields in lines:
        if row.succeeded:
            continue
        if fmt == "text":
            yield fields["prompt"] + "\n"
        elif fmt == "csv":
            yield write_csv([row.custom_id, *(fields.get(n, "") for n in CSV_PROMPT_COLUMNS[1:])])
        else:
            yield _json_line(_RESUBMIT_WRITERS[fmt](row.custom_id, fields))


def _json_line(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"


def _csv_writer() -> Callable[[Iterable[Any]], str]:
    """The one way a CSV row is written here: each cell as text, neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def write(values: Iterable[Any]) -> str:
        writer.writerow(neutralise("" if value is None else str(value)) for value in values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    return write


def _cancelled(row: ResultRow) -> bool:
    return row.state == CANCELLED


def _flexdash_result(row: ResultRow, _: int) -> dict:
    return {
        "id": row.custom_id,
        "state": row.state,
        "model": row.model,
        "output": row.output_text,
        "error": row.error,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "thought_tokens": row.thought_tokens,
        "cost_usd": row.cost_usd or None,
    }


def _gemini_result(row: ResultRow, _: int) -> dict:
    if not row.succeeded:
        code, status = (499, "CANCELLED") if _cancelled(row) else (500, "UNKNOWN")
        return {
            "key": row.custom_id,
            "error": {"code": code, "message": _error(row), "status": status},
        }
    total = row.input_tokens + row.output_tokens + row.thought_tokens
    return {
        "key": row.custom_id,
        "response": {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": row.output_text}]},
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": row.input_tokens,
                "candidatesTokenCount": row.output_tokens,
                "thoughtsTokenCount": row.thought_tokens,
                "totalTokenCount": total,
            },
            "modelVersion": row.model,
            "responseId": row.response_id,
        },
    }


def _openai_result(row: ResultRow, number: int) -> dict:
    line: dict[str, Any] = {"id": f"batch_req_{number}", "custom_id": row.custom_id}
    if not row.succeeded:
        code = "batch_cancelled" if _cancelled(row) else "request_failed"
        return {**line, "response": None, "error": {"code": code, "message": _error(row)}}
    # OpenAI counts reasoning tokens inside completion_tokens; Gemini bills thoughts as output.
    completion = row.output_tokens + row.thought_tokens
    body = {
        "id": row.response_id,
        "object": "chat.completion",
        "model": row.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": row.output_text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": row.input_tokens,
            "completion_tokens": completion,
            "total_tokens": row.input_tokens + completion,
            "completion_tokens_details": {"reasoning_tokens": row.thought_tokens},
        },
    }
    response = {"status_code": 200, "request_id": row.response_id, "body": body}
    return {**line, "response": response, "error": None}


def _anthropic_result(row: ResultRow, _: int) -> dict:
    if _cancelled(row):
        result: dict[str, Any] = {"type": "canceled"}
    elif not row.succeeded:
        error = {"type": "api_error", "message": _error(row)}
        result = {"type": "errored", "error": {"type": "error", "error": error}}
    else:
        message = {
            "id": row.response_id,
            "type": "message",
            "role": "assistant",
            "model": row.model,
            "content": [{"type": "text", "text": row.output_text}],
            "stop_reason": "end_turn",
            # Anthropic counts thinking inside output_tokens, as Gemini bills it.
            "usage": {
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens + row.thought_tokens,
            },
        }
        result = {"type": "succeeded", "message": message}
    return {"custom_id": row.custom_id, "result": result}


def _error(row: ResultRow) -> str:
    return row.error or ("The job was cancelled." if _cancelled(row) else "The job failed.")


_RESULT_WRITERS: dict[str, Callable[[ResultRow, int], dict]] = {
    "text": _flexdash_result,
    "jsonl": _flexdash_result,
    "csv": _flexdash_result,
    "gemini_batch": _gemini_result,
    "openai_batch": _openai_result,
    "anthropic_batch": _anthropic_result,
}


def _jsonl_request(custom_id: str, fields: dict) -> dict:
    return {"id": custom_id, **fields}


def _gemini_request(custom_id: str, fields: dict) -> dict:
    request: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": fields["prompt"]}]}]
    }
    if system := fields.get("system_instruction"):
        request["system_instruction"] = {"parts": [{"text": system}]}
    config = {name: fields[name] for name in ("temperature", "max_output_tokens") if name in fields}
    if config:
        request["generation_config"] = config
    if model := fields.get("model"):
        request["model"] = f"models/{model}"
    return {"key": custom_id, "request": request}


def _openai_request(custom_id: str, fields: dict) -> dict:
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


def _anthropic_request(custom_id: str, fields: dict) -> dict:
    params: dict[str, Any] = {"model": fields["model"]} if "model" in fields else {}
    if "max_output_tokens" in fields:
        params["max_tokens"] = fields["max_output_tokens"]
    if system := fields.get("system_instruction"):
        params["system"] = system
    params["messages"] = [{"role": "user", "content": fields["prompt"]}]
    if "temperature" in fields:
        params["temperature"] = fields["temperature"]
    return {"custom_id": custom_id, "params": params}


_RESUBMIT_WRITERS: dict[str, Callable[[str, dict], dict]] = {
    "jsonl": _jsonl_request,
    "gemini_batch": _gemini_request,
    "openai_batch": _openai_request,
    "anthropic_batch": _anthropic_request,
}
