"""A pipeline run's downloads, one line per row of its table: every step's
answer (JSONL, or CSV with the parsed answers' fields as columns), and the rows
with a step that failed, was cancelled or was skipped, as they were uploaded, to
run again with the same definition.

Streamed row by row: a chunk of rows (keyset over line_number), then that
chunk's jobs in one query on (run, line_number); never the whole run at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, F, IntegerField, QuerySet, Value, When

from jobs import formats, gemini_shape
from jobs.engine.pipelines import Pipeline, Step
from jobs.formats import writing
from jobs.models import Job, Run, RunRow, State
from jobs.redaction import redact_api_key

# Rows per fetch; a fanned-out step may give each of them up to MAX_ITEMS jobs.
EXPORT_ROWS = 200
# A row to run again: one of its steps ended without an answer.
UNANSWERED_STATES = (State.FAILED, State.CANCELLED, State.SKIPPED)
# A fanned-out step's state, from its items': the first of these any item is in.
_SUMMARY_ORDER = (
    State.FAILED,
    State.CANCELLED,
    State.SKIPPED,
    State.RUNNING,
    State.RETRYING,
    State.QUEUED,
    State.WAITING,
    State.SUCCEEDED,
)
_ROW_FIELDS = ("line_number", "custom_id", "values", "source_line")
_JOB_FIELDS = ("line_number", "step", "item", "state", "result_text", "output_json", "last_error")


def pipeline_of(run: Run) -> Pipeline:
    return Pipeline.from_json(run.pipeline)


def in_row_order(run: Run, jobs: QuerySet[Job]) -> QuerySet[Job]:
    """`jobs` of the run in file order: row by row, each row's steps in the
    definition's order, a fanned-out step's items in list order."""
    if not run.pipeline:
        return jobs.order_by("line_number", "id")
    names = [step.name for step in pipeline_of(run).steps]
    step_order = Case(
        *(When(step=name, then=Value(index)) for index, name in enumerate(names)),
        default=Value(len(names)),
        output_field=IntegerField(),
    )
    # A fan-out's placeholder (no item yet) first, as SQLite and PostgreSQL alike.
    return jobs.order_by("line_number", step_order, F("item").asc(nulls_first=True), "id")


# --- The rows and their answers ---------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """One job's answer as the downloads show it (the Gemini key never)."""

    item: int | None
    state: str
    output: str
    json: Any
    error: str


@dataclass(frozen=True)
class RowAnswers:
    row: formats.TableRow
    steps: dict[str, list[Answer]]  # step name -> its jobs, in item order


def _redacted(value: Any) -> Any:
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False)
    cleaned = redact_api_key(text)
    return value if cleaned == text else json.loads(cleaned)


def _table_row(values: dict) -> formats.TableRow:
    return formats.TableRow(
        line=values["line_number"],
        custom_id=values["custom_id"],
        values=values["values"],
        source=values["source_line"],
    )


def _row_chunks(rows: QuerySet[RunRow]) -> Iterator[list[dict]]:
    """The rows in line order, EXPORT_ROWS at a time, each fetch after the last line seen."""
    last = -1
    while chunk := list(
        rows.filter(line_number__gt=last).order_by("line_number").values(*_ROW_FIELDS)[:EXPORT_ROWS]
    ):
        yield chunk
        last = chunk[-1]["line_number"]


def row_answers(run: Run) -> Iterator[RowAnswers]:
    """Every row of the run, in file order, with each step's answers."""
    for chunk in _row_chunks(RunRow.objects.filter(run=run)):
        jobs = Job.objects.filter(
            run=run,
            line_number__gte=chunk[0]["line_number"],
            line_number__lte=chunk[-1]["line_number"],
        ).values(*_JOB_FIELDS)
        by_line: dict[int, dict[str, list[Answer]]] = {}
        for job in jobs.iterator(chunk_size=EXPORT_ROWS * 4):
            steps = by_line.setdefault(job["line_number"], {})
            steps.setdefault(job["step"], []).append(
                Answer(
                    item=job["item"],
                    state=job["state"],
                    output=redact_api_key(job["result_text"]),
                    json=_redacted(job["output_json"]),
                    error=redact_api_key(job["last_error"]),
                )
            )
        for values in chunk:
            steps = by_line.get(values["line_number"], {})
            for answers in steps.values():
                answers.sort(key=lambda answer: -1 if answer.item is None else answer.item)
            yield RowAnswers(_table_row(values), steps)


def rows_to_run_again(run: Run) -> Iterator[formats.TableRow]:
    """The rows with a step that failed, was cancelled or was skipped, in file
    order: the lines with such a job, a chunk at a time, then those rows."""
    unanswered = Job.objects.filter(run=run, state__in=UNANSWERED_STATES)
    last = -1
    while lines := list(
        unanswered.filter(line_number__gt=last)
        .order_by("line_number")
        .values_list("line_number", flat=True)
        .distinct()[:EXPORT_ROWS]
    ):
        rows = RunRow.objects.filter(run=run, line_number__in=lines).order_by("line_number")
        yield from (_table_row(values) for values in rows.values(*_ROW_FIELDS))
        last = lines[-1]


def table_format(run: Run) -> str:
    """How the table was uploaded: "csv", "text" or "jsonl" (every JSON-lines format
    is read alike). A run that did not keep its format is told by its file's name,
    else by its first row's shape."""
    if run.source_format in ("csv", "text"):
        return run.source_format
    if run.source_format:
        return "jsonl"
    suffix = run.source_name.lower().rpartition(".")[2]
    if suffix in ("csv", "tsv", "txt"):
        return "text" if suffix == "txt" else "csv"
    first = RunRow.objects.filter(run=run).order_by("line_number").first()
    if first is None or first.source_line.lstrip().startswith("{"):
        return "jsonl"
    return "text" if first.values == {"text": first.source_line} else "csv"


def row_columns(run: Run, fmt: str) -> list[str]:
    """The table's column names: a CSV's (or a text file's) are every row's, so the
    first row says them; JSON lines may each have their own keys, so every row is
    read for them (first seen first), a chunk at a time."""
    rows = RunRow.objects.filter(run=run)
    if fmt in ("csv", "text"):
        first = rows.order_by("line_number").values_list("values", flat=True).first()
        return list(first or {})
    columns: dict[str, None] = {}
    for chunk in _row_chunks(rows):
        for values in chunk:
            columns.update(dict.fromkeys(values["values"]))
    return list(columns)


# --- JSONL -----------------------------------------------------------------------------
def _fanned_state(answers: list[Answer]) -> str:
    states = {answer.state for answer in answers}
    return next((state for state in _SUMMARY_ORDER if state in states), State.SUCCEEDED)


def _step_entry(step: Step, answers: list[Answer]) -> dict:
    if not step.fans_out:
        answer = answers[0] if answers else None
        return {
            "state": answer.state if answer else None,
            "output": answer.output if answer else "",
            "json": answer.json if answer else None,
            "error": answer.error if answer else "",
        }
    # Until the list it fans out over is known, one placeholder job (no item) stands for it.
    placeholder = next((answer for answer in answers if answer.item is None), None)
    items = [answer for answer in answers if answer.item is not None]
    return {
        "state": placeholder.state if placeholder else _fanned_state(items),
        "error": placeholder.error if placeholder else "",
        "outputs": [answer.output for answer in items],
        "jsons": [answer.json for answer in items],
        "states": [answer.state for answer in items],
        "errors": [answer.error for answer in items],
    }


def results_lines(run: Run) -> Iterator[str]:
    """One JSON line per row: its id, its values, and each step's answer."""
    pipeline = pipeline_of(run)
    for answered in row_answers(run):
        line = {
            "id": answered.row.custom_id,
            "row": _redacted(answered.row.values),
            "steps": {
                step.name: _step_entry(step, answered.steps.get(step.name, []))
                for step in pipeline.steps
            },
        }
        yield json.dumps(line, ensure_ascii=False) + "\n"


# --- CSV -------------------------------------------------------------------------------
def json_fields(step: Step) -> list[str]:
    """The top-level properties of the step's response schema; [] without one."""
    schema = gemini_shape.answer_schema(step.request) or {}
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return list(properties) if isinstance(properties, dict) else []


def _cell(value: Any) -> str:
    """Text as it is, anything else as compact JSON, None as empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _field(answer: Answer, name: str) -> Any:
    return answer.json.get(name) if isinstance(answer.json, dict) else None


def _step_columns(step: Step, fields: list[str]) -> list[str]:
    columns = ["state", "output", "error", *(("states", "errors") if step.fans_out else ())]
    columns += [f"json.{name}" for name in fields]
    return [f"{step.name}.{column}" for column in columns]


def _step_cells(step: Step, fields: list[str], answers: list[Answer]) -> list[str]:
    """The cells of _step_columns. A fanned-out step's as its JSONL entry: its state
    and the reason it was skipped as text, its items' answers as JSON lists."""
    entry = _step_entry(step, answers)
    if step.fans_out:
        items = [answer for answer in answers if answer.item is not None]
        return [
            entry["state"],
            _cell(entry["outputs"]),
            entry["error"],
            _cell(entry["states"]),
            _cell(entry["errors"]),
            *(_cell([_field(answer, name) for answer in items]) for name in fields),
        ]
    answer = answers[0] if answers else None
    return [
        entry["state"] or "",
        entry["output"],
        entry["error"],
        *(_cell(_field(answer, name) if answer else None) for name in fields),
    ]


def results_csv_lines(run: Run) -> Iterator[str]:
    """One CSV record per row: its id and columns, then per step its state, answer,
    error and one column per field of its response schema (a fanned-out step's
    answers as JSON lists, in item order, with each item's state and error)."""
    pipeline = pipeline_of(run)
    columns = [name for name in row_columns(run, table_format(run)) if name != "id"]
    fields = {step.name: json_fields(step) for step in pipeline.steps}
    header = ["id", *columns]
    for step in pipeline.steps:
        header += _step_columns(step, fields[step.name])

    def records() -> Iterator[list[str]]:
        for answered in row_answers(run):
            values = _redacted(answered.row.values)
            record = [answered.row.custom_id, *(_cell(values.get(name)) for name in columns)]
            for step in pipeline.steps:
                answers = answered.steps.get(step.name, [])
                record += _step_cells(step, fields[step.name], answers)
            yield record

    return writing.export_table(header, records())


def rows_again_lines(run: Run) -> Iterator[str]:
    fmt = table_format(run)
    columns = row_columns(run, fmt) if fmt == "csv" else []
    return writing.export_rows_again(fmt, rows_to_run_again(run), columns)
