"""A run's downloads, streamed: its results in the uploaded format's result
shape, the same as CSV, and the unfinished lines to upload again. The run
pages and the API answer with these same responses."""

from __future__ import annotations

import re

from django.http import StreamingHttpResponse

from jobs import formats
from jobs.models import Run
from jobs.runs import queries as run_queries
from jobs.runs import structured

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
    """The finished lines in the uploaded format's result shape (always JSONL)."""
    rows = run_queries.result_rows(run)
    return _download(
        formats.export_results(run.source_format, rows), run=run, what="results", extension="jsonl"
    )


def results_csv(run: Run) -> StreamingHttpResponse:
    """Every line as a CSV row; with a response schema, one column per field of it."""
    rows = run_queries.result_rows(run)
    lines = formats.export_csv(rows, json_columns=structured.schema_fields(run))
    return _download(lines, run=run, what="results", extension="csv")


def unfinished(run: Run) -> StreamingHttpResponse:
    """The lines without an answer, in the uploaded format, to upload again."""
    extension = {"text": "txt", "csv": "csv"}.get(run.source_format, "jsonl")
    lines = formats.export_resubmit(run.source_format, run_queries.resubmit_lines(run))
    return _download(lines, run=run, what="unfinished", extension=extension)
