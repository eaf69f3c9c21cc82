"""A run's downloads, streamed: its results in the uploaded format's result
shape, the same as CSV, and the unfinished lines to upload again. The run
pages and the API answer with these same responses. A pipeline run's are one
line per row of its table (pipeline_downloads.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from django.http import StreamingHttpResponse

from jobs import formats
from jobs.models import FINISHED_STATES, Job, Run, State
from jobs.redaction import redact_api_key
from jobs.runs import pipeline_downloads, structured

EXPORT_CHUNK = 2000

_CONTENT_TYPES = {
    "jsonl": "application/jsonl; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}


def _download(lines, *, run: Run, what: str, extension: str) -> StreamingHttpResponse:
    """Stream the lines as they are produced: a big run is never built in memory."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", run.name).strip("-.") or "run"
    response = StreamingHttpResponse(
        (line.encode() for line in lines), content_type=_CONTENT_TYPES[extension]
    )
    response["Content-Disposition"] = (
        f'attachment; filename="run-{run.pk}-{stem[:80]}-{what}.{extension}"'
    )
    return response


def results(run: Run) -> StreamingHttpResponse:
    """The finished lines in the uploaded format's result shape (always JSONL); a
    pipeline's rows, each with every step's answer."""
    if run.pipeline:
        lines = pipeline_downloads.results_lines(run)
        return _download(lines, run=run, what="results", extension="jsonl")
    rows = result_rows(run)
    return _download(
        formats.export_results(run.source_format, rows), run=run, what="results", extension="jsonl"
    )


def results_csv(run: Run) -> StreamingHttpResponse:
    """Every line as a CSV row; with a response schema, one column per field of it.
    A pipeline's rows, with each step's state, answer and its schema's fields."""
    if run.pipeline:
        lines = pipeline_downloads.results_csv_lines(run)
        return _download(lines, run=run, what="results", extension="csv")
    rows = result_rows(run)
    lines = formats.export_csv(rows, json_columns=structured.schema_fields(run))
    return _download(lines, run=run, what="results", extension="csv")


def unfinished(run: Run) -> StreamingHttpResponse:
    """The lines without an answer, in the uploaded format, to upload again; of a
    pipeline, the rows with a step that failed, was cancelled or was skipped."""
    if run.pipeline:
        extension = {"text": "txt", "csv": "csv"}.get(pipeline_downloads.table_format(run), "jsonl")
        lines = pipeline_downloads.rows_again_lines(run)
        return _download(lines, run=run, what="rows-to-run-again", extension=extension)
    extension = {"text": "txt", "csv": "csv"}.get(run.source_format, "jsonl")
    lines = formats.export_resubmit(run.source_format, resubmit_lines(run))
    return _download(lines, run=run, what="unfinished", extension=extension)


# --- The rows, in file order -------------------------------------------------------
_ROW_FIELDS = (
    "custom_id",
    "input_text",
    "state",
    "attempts",
    "http_503",
    "http_429",
    "input_tokens",
    "output_tokens",
    "thought_tokens",
    "cost_usd",
    "result_text",
    "last_error",
    "model",
    "response_id",
    "response",
    "finish_reason",
    "cut_at_limit",
    "output_json",
    "output_problem",
    "finished_at",
)


def _redacted(value):
    """Any JSON value with the Gemini key out of its text (decoded again only when
    the key was there)."""
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False)
    cleaned = redact_api_key(text)
    return value if cleaned == text else json.loads(cleaned)


def _result_row(values: dict) -> formats.ResultRow:
    cost = values["cost_usd"]
    finished_at = values["finished_at"]
    return formats.ResultRow(
        custom_id=values["custom_id"],
        prompt=redact_api_key(values["input_text"]),
        state=values["state"],
        attempts=values["attempts"],
        http_503=values["http_503"],
        http_429=values["http_429"],
        input_tokens=values["input_tokens"],
        output_tokens=values["output_tokens"],
        thought_tokens=values["thought_tokens"],
        cost_usd="" if cost is None else f"{cost:f}",
        output_text=redact_api_key(values["result_text"]),
        error=redact_api_key(values["last_error"]),
        model=values["model"],
        response_id=values["response_id"],
        finished=values["state"] in FINISHED_STATES,
        succeeded=values["state"] == State.SUCCEEDED,
        response=_redacted(values["response"]),
        finish_reason=values["finish_reason"],
        cut_at_limit=values["cut_at_limit"],
        output_json=_redacted(values["output_json"]),
        output_problem=values["output_problem"],
        created=int(finished_at.timestamp()) if finished_at else 0,
        source=redact_api_key(values.get("source_line", "")),
        legacy_fields=_redacted_request(values.get("request_fields") or {}),
    )


def result_rows(run: Run) -> Iterator[formats.ResultRow]:
    """Every job of the run in file order, fetched EXPORT_CHUNK rows at a time."""
    rows = Job.objects.filter(run=run).order_by("id").values(*_ROW_FIELDS)
    for values in rows.iterator(chunk_size=EXPORT_CHUNK):
        yield _result_row(values)


def resubmit_lines(run: Run) -> Iterator[formats.ResultRow]:
    """The lines without an answer (failed, cancelled or still unfinished), in
    file order, each with the line as it was uploaded."""
    rows = (
        Job.objects.filter(run=run)
        .exclude(state=State.SUCCEEDED)
        .order_by("id")
        .values(*_ROW_FIELDS, "source_line", "request_fields")
    )
    for values in rows.iterator(chunk_size=EXPORT_CHUNK):
        yield _result_row(values)


def _redacted_request(fields: dict) -> dict:
    """A line's request_fields with the key out of its prompt and system instruction."""
    texts = ("prompt", "system_instruction")
    return {name: redact_api_key(v) if name in texts else v for name, v in fields.items()}
