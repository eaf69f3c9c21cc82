"""Writing results: each format's own result lines keyed by the uploaded ids, written
from the answer Gemini sent; a CSV of every job; and the lines that did not succeed,
as they were uploaded, to upload again. All streaming: one `str` line at a time, each
ending in a newline. Every CSV cell goes through spreadsheet_cells.neutralise, so no
spreadsheet computes an id, prompt or answer. A pipeline's table (table_rows.py) is
written as any CSV (export_table), and its rows to run again as they came (export_rows_again)."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from jobs import gemini_shape
from jobs.formats import anthropic_batch, openai_batch
from jobs.formats.csv_lines import CSV_PROMPT_COLUMNS, csv_delimiter
from jobs.formats.result_rows import ResultRow, answer
from jobs.formats.spreadsheet_cells import FORMULA_STARTS, as_uploaded, neutralise, restore
from jobs.formats.table_rows import ID_COLUMNS, TableRow

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
    "finish_reason",
    "cut_at_limit",
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
    "finish_reason",
    "cut_at_limit",
)


def export_results(fmt: str, rows: Iterable[ResultRow]) -> Iterator[str]:
    """One JSON line per finished row, in the uploaded format's own result shape,
    written from the answer as Gemini sent it. Text, JSONL and CSV uploads get
    FlexDash's JSONL (see _flexdash_result)."""
    write = _RESULT_WRITERS[fmt]
    number = 0
    for row in rows:
        if row.finished:
            number += 1
            yield _json_line(write(row, number))


def export_csv(rows: Iterable[ResultRow], json_columns: Sequence[str] = ()) -> Iterator[str]:
    """Every row, finished or not, one CSV record each (quoted when multi-line).
    `json_columns`, the top-level properties of the run's response schema, add an
    `output.<property>` column each: the property's value in the structured answer
    (a string as it is, anything else as compact JSON)."""
    write = _csv_writer()
    yield write([*CSV_COLUMNS, *(f"output.{name}" for name in json_columns)])
    for row in rows:
        cells = [_cell(getattr(row, name)) for name in _CSV_ROW_FIELDS]
        structured = row.output_json if isinstance(row.output_json, dict) else {}
        cells += [_json_cell(structured, name) for name in json_columns]
        yield write(cells)


def export_resubmit(fmt: str, rows: Iterable[ResultRow]) -> Iterator[str]:
    """Every line that did not succeed (failed, cancelled or unfinished), as it was
    uploaded (a CSV's records under their header row), ready to upload again. A line
    that named no id gets the one it ran under (its number in the first file), so the
    second run's results are keyed as the first run's. A job from before lines were
    kept is written from its `legacy_fields` in the format's usual shape."""
    unsucceeded = (row for row in rows if not row.succeeded)
    if fmt == "csv":
        yield from _csv_resubmit(unsucceeded)
        return
    for row in unsucceeded:
        yield _with_id(fmt, row) + "\n" if row.source else _legacy_line(fmt, row)


_ID_FIELDS = {"jsonl": "id", "gemini_batch": "key", "openai_batch": "custom_id",
              "anthropic_batch": "custom_id"}  # fmt: skip


def _with_id(fmt: str, row: ResultRow) -> str:
    """The line as uploaded; one that named no id gets its id as a first field, the
    rest of its text untouched."""
    if fmt not in _ID_FIELDS:
        return row.source
    name = _ID_FIELDS[fmt]
    line = json.loads(row.source)
    if line.get(name) is not None:
        return row.source
    if name in line:  # named as null: a field before it would be overridden
        return json.dumps({**line, name: row.custom_id}, ensure_ascii=False)
    start = row.source.index("{") + 1
    field = f"{json.dumps(name)}: {json.dumps(row.custom_id, ensure_ascii=False)}, "
    return row.source[:start] + field + row.source[start:]


def _csv_resubmit(rows: Iterator[ResultRow]) -> Iterator[str]:
    first = next(rows, None)
    if first is None or not first.source:
        yield _csv_writer()(CSV_PROMPT_COLUMNS)
        if first is not None:
            yield _legacy_line("csv", first)
        yield from (_legacy_line("csv", row) for row in rows)
        return
    records = _CsvRecords(_csv_split(first.source)[0])
    yield records.header + "\n"
    for row in itertools.chain([first], rows):
        yield (records.record(row) if row.source else _legacy_line("csv", row).rstrip("\n")) + "\n"


class _CsvRecords:
    """A CSV's records under the header row they were read by, as uploaded, but with a
    cell a spreadsheet would compute marked as text, and the id each ran under given to
    a record without one (and a header without an id column, one)."""

    def __init__(self, header: str) -> None:
        self.delimiter = csv_delimiter(header)
        self._write = _csv_writer(self.delimiter)
        cells = self._cells(header)
        columns = [name.strip().lower() for name in cells]
        self.id_column = columns.index("id") if "id" in columns else None
        if self.id_column is None:
            cells = ["id", *cells]
        self.header = self._as_uploaded(header, cells, changed=self.id_column is None)

    def _cells(self, record: str) -> list[str]:
        return next(csv.reader(io.StringIO(record + "\n"), delimiter=self.delimiter), [])

    def _as_uploaded(self, record: str, cells: list[str], *, changed: bool) -> str:
        if not changed and not any(cell.startswith(FORMULA_STARTS) for cell in cells):
            return record
        return self._write(map(as_uploaded, cells), neutralised=True).rstrip("\n")

    def record(self, row: ResultRow) -> str:
        record = _csv_split(row.source)[1]
        cells = self._cells(record)
        if self.id_column is None:
            return self._as_uploaded(record, [row.custom_id, *cells], changed=True)
        if self.id_column < len(cells) and cells[self.id_column].strip():
            return self._as_uploaded(record, cells, changed=False)
        cells += [""] * (self.id_column + 1 - len(cells))
        cells[self.id_column] = row.custom_id
        return self._as_uploaded(record, cells, changed=True)


def _json_line(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"


def _csv_writer(delimiter: str = ",") -> Callable[..., str]:
    """The one way a CSV row is written here: each cell as text, neutralised (unless
    the cells are as uploaded, marks and all)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")

    def write(values: Iterable[Any], *, neutralised: bool = False) -> str:
        cells = ("" if value is None else str(value) for value in values)
        writer.writerow(cells if neutralised else map(neutralise, cells))
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    return write


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _json_cell(structured: dict, name: str) -> str:
    if name not in structured:
        return ""
    value = structured[name]
    return value if isinstance(value, str) else _compact(value)


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _csv_split(source: str) -> tuple[str, str]:
    """A CSV line's source as (header row, record), each as it was uploaded: the header
    is the first record csv reads from it, as the upload's reader did."""
    lines = source.split("\n")
    taken = 0

    def feed() -> Iterator[str]:
        nonlocal taken
        for line in lines:
            taken += 1
            yield line + "\n"

    try:
        next(csv.reader(feed(), delimiter=csv_delimiter(lines[0])))
    except (csv.Error, StopIteration):
        taken = 1
    return "\n".join(lines[:taken]), "\n".join(lines[taken:])


# --- A pipeline's table ------------------------------------------------------------------
def export_table(columns: Sequence[str], records: Iterable[Sequence[Any]]) -> Iterator[str]:
    """Any table as CSV: the header, then each record, every cell as text, neutralised."""
    write = _csv_writer()
    yield write(columns)
    for record in records:
        yield write(record)


def export_rows_again(fmt: str, rows: Iterable[TableRow], columns: Sequence[str]) -> Iterator[str]:
    """A pipeline table's rows as they were uploaded, ready to run again: a CSV's
    records under a header of the table's `columns` (the names its header gave), a
    JSON line or a line of text as it came. A row that named no id gets the one it
    ran under (its line in the first file), so the second run's rows are keyed as
    the first's; a line of text has nowhere to say it."""
    if fmt == "csv":
        yield from _csv_rows_again(iter(rows), list(columns))
        return
    for row in rows:
        yield (row.source if fmt == "text" else _json_row_with_id(row)) + "\n"


def _id_column(columns: Sequence[str]) -> str | None:
    return next((name for name in ID_COLUMNS if name in columns), None)


def _named_its_id(row: TableRow, name: str | None) -> bool:
    value = row.values.get(name) if name else None
    return value is not None and str(value).strip() != ""


def _json_row_with_id(row: TableRow) -> str:
    name = _id_column(list(row.values))
    if _named_its_id(row, name):
        return row.source
    if name is not None:  # named, but blank or null: a field before it would be overridden
        return json.dumps({**row.values, name: row.custom_id}, ensure_ascii=False)
    start = row.source.index("{") + 1
    field = f'"id": {json.dumps(row.custom_id, ensure_ascii=False)}, '
    return row.source[:start] + field + row.source[start:]


def _csv_rows_again(rows: Iterator[TableRow], columns: list[str]) -> Iterator[str]:
    first = next(rows, None)
    delimiter = _table_delimiter(first, columns) if first is not None else ","
    write = _csv_writer(delimiter)
    id_column = _id_column(columns)
    header = columns if id_column else ["id", *columns]
    yield write(map(as_uploaded, header), neutralised=True)
    if first is None:
        return
    for row in itertools.chain([first], rows):
        cells = _record_cells(row.source, delimiter)
        changed = not _named_its_id(row, id_column)
        if id_column is None:
            cells = [row.custom_id, *cells]
        elif changed:
            at = columns.index(id_column)
            cells += [""] * (at + 1 - len(cells))
            cells[at] = row.custom_id
        if not changed and not any(cell.startswith(FORMULA_STARTS) for cell in cells):
            yield row.source + "\n"
        else:
            yield write(map(as_uploaded, cells), neutralised=True)


def _record_cells(record: str, delimiter: str) -> list[str]:
    return next(csv.reader(io.StringIO(record + "\n"), delimiter=delimiter), [])


def _table_delimiter(row: TableRow, columns: list[str]) -> str:
    """The delimiter the table was read with: the one that reads the row's record as
    the values it was stored with (tried in the order the reader detects them)."""
    expected = [row.values.get(name, "") for name in columns]
    for delimiter in ",\t;":
        try:
            cells = _record_cells(row.source, delimiter)
        except csv.Error:
            continue
        read = [restore(cell) for cell in cells] + [""] * (len(columns) - len(cells))
        if read == expected:
            return delimiter
    return csv_delimiter(row.source)


# --- Result lines ----------------------------------------------------------------------
def _flexdash_result(row: ResultRow, _: int) -> dict:
    """FlexDash's result line: the first answer's text, how it ended, its structured
    form, and, when the answer holds them, every candidate's text and the function calls."""
    result: dict[str, Any] = {
        "id": row.custom_id,
        "state": row.state,
        "model": row.model,
        "output": row.output_text,
        "error": row.error,
        "finish_reason": row.finish_reason,
        "cut_at_limit": row.cut_at_limit,
        "output_problem": row.output_problem,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "thought_tokens": row.thought_tokens,
        "cost_usd": row.cost_usd or None,
    }
    if row.output_json is not None:
        result["output_json"] = row.output_json
    found = gemini_shape.candidates(row.response)
    if len(found) > 1:
        result["candidates"] = [gemini_shape.candidate_text(c) for c in found]
    if found and (calls := gemini_shape.function_calls(found[0])):
        result["function_calls"] = calls
    return result


def _gemini_result(row: ResultRow, _: int) -> dict:
    """The response as Gemini sent it (a blocked prompt's too), or the error."""
    response = None if row.cancelled else answer(row)
    if response is not None:
        return {"key": row.custom_id, "response": response}
    code, status = (499, "CANCELLED") if row.cancelled else (500, "UNKNOWN")
    return {
        "key": row.custom_id,
        "error": {"code": code, "message": row.error_message, "status": status},
    }


_RESULT_WRITERS: dict[str, Callable[[ResultRow, int], dict]] = {
    "text": _flexdash_result,
    "jsonl": _flexdash_result,
    "csv": _flexdash_result,
    "gemini_batch": _gemini_result,
    "openai_batch": openai_batch.openai_result,
    "anthropic_batch": anthropic_batch.anthropic_result,
}


# --- Lines of jobs from before lines were kept --------------------------------------------
def _legacy_line(fmt: str, row: ResultRow) -> str:
    fields = row.legacy_fields
    if fmt == "text":
        return fields["prompt"] + "\n"
    if fmt == "csv":
        cells = [row.custom_id, *(fields.get(name, "") for name in CSV_PROMPT_COLUMNS[1:])]
        return _csv_writer()(cells)
    return _json_line(_LEGACY_WRITERS[fmt](row.custom_id, fields))


def _legacy_jsonl(custom_id: str, fields: dict) -> dict:
    return {"id": custom_id, **fields}


def _legacy_gemini(custom_id: str, fields: dict) -> dict:
    request = gemini_shape.simple(
        fields["prompt"],
        system_instruction=fields.get("system_instruction", ""),
        generation_config={
            name: fields[name] for name in ("temperature", "max_output_tokens") if name in fields
        },
    )
    if model := fields.get("model"):
        request["model"] = f"models/{model}"
    return {"key": custom_id, "request": request}


_LEGACY_WRITERS: dict[str, Callable[[str, dict], dict]] = {
    "jsonl": _legacy_jsonl,
    "gemini_batch": _legacy_gemini,
    "openai_batch": openai_batch.legacy_line,
    "anthropic_batch": anthropic_batch.legacy_line,
}
