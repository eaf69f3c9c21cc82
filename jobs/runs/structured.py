"""A run's structured answers: the response schema's top-level fields, the first
answers as a table of them (the run page), and the CSV's one column per field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jobs import gemini_shape
from jobs.models import Job, Run, State
from jobs.redaction import redact_api_key

PREVIEW_ROWS = 10


@dataclass(frozen=True)
class StructuredRow:
    job_id: int
    custom_id: str
    cells: list[str]
    problem: str


@dataclass(frozen=True)
class StructuredPreview:
    columns: list[str]
    rows: list[StructuredRow]


# The lines looked at for a response schema: a run's lines usually share one,
# and a run of 50,000 plain prompts (no stored request) is not read whole.
SCHEMA_LINES = 100


def schema_fields(run: Run) -> list[str]:
    """The top-level properties of the response schema of the first of the run's
    first SCHEMA_LINES lines that has one; [] when they ask for no JSON."""
    first_lines = Job.objects.filter(run=run).order_by("line_number", "id")[:SCHEMA_LINES]
    first = (
        Job.objects.filter(pk__in=first_lines.values("pk"), request__isnull=False)
        .order_by("line_number", "id")
        .only("request", "input_text", "system_instruction", "temperature", "max_output_tokens")
        .first()
    )
    if first is None:
        return []
    schema = gemini_shape.answer_schema(first.gemini_request()) or {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return list(properties) if isinstance(properties, dict) else []


def cell(value: Any) -> str:
    """One field of a structured answer as a table or CSV cell: text as it is,
    anything else as compact JSON; the Gemini key never."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return redact_api_key(text)


def preview(run: Run, *, limit: int = PREVIEW_ROWS) -> StructuredPreview | None:
    """The run's first structured answers as a table of the schema's fields, or
    None when the run asks for no structured output or none has come yet."""
    columns = schema_fields(run)
    if not columns:
        return None
    answered = (
        Job.objects.filter(run=run, state=State.SUCCEEDED, output_json__isnull=False)
        .order_by("id")
        .values_list("id", "custom_id", "output_json", "output_problem")[:limit]
    )
    rows = [
        StructuredRow(
            job_id=job_id,
            custom_id=custom_id,
            cells=[cell(answer.get(name)) if isinstance(answer, dict) else "" for name in columns],
            problem=problem,
        )
        for job_id, custom_id, answer, problem in answered
    ]
    return StructuredPreview(columns=columns, rows=rows) if rows else None
