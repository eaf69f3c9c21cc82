"""A pipeline's table: every row of an uploaded file as plain data, in any run format.

Unlike `parse`, nothing here is a prompt: a CSV record is its cells under the header's
names, a JSON line (FlexDash's, or any batch API's) its top-level keys, a line of plain
text `{"text": line}`. The streaming, limits and all-or-nothing refusal are reading.py's:
rows are yielded while none is bad, and FileRejected lists the problems at the end.
"""

from __future__ import annotations

import codecs
import csv
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

from jobs.formats.csv_lines import _Numbered, csv_delimiter, without_line_end
from jobs.formats.json_lines import MAX_ID_CHARS, line_id
from jobs.formats.reading import (
    _CHUNK_BYTES,
    FORMATS,
    FileRejected,
    _Errors,
    _json_reader,
    _raw_lines,
    _read_head,
    _StopReading,
    _text_lines,
)
from jobs.formats.spreadsheet_cells import restore

# A row's id is the first of these columns it has.
ID_COLUMNS = ("id", "custom_id", "key")
_JSON_SUFFIXES = ("jsonl", "json", "ndjson")


@dataclass(frozen=True)
class TableRow:
    """One row of the table: what `row.<column>` reads in a pipeline's templates."""

    line: int  # 1-based; a CSV record's first line
    custom_id: str  # its 'id', 'custom_id' or 'key' value, else str(line)
    values: dict  # column -> value: CSV cells as strings, JSON values as parsed
    source: str  # the line as uploaded, without its line end (CSV: the record alone)


def parse_rows(
    stream: BinaryIO,
    fmt: str | None = None,
    *,
    filename: str = "",
    max_bytes: int,
    max_lines: int,
    max_line_bytes: int,
) -> Iterator[TableRow]:
    """Yield the file's rows one by one; raise FileRejected when the file ends (or reading
    stops) if anything was wrong. `fmt` is one of formats.FORMATS (every JSON-lines format
    is read alike); None detects it from the name and the first line."""
    head = _read_head(stream)
    if fmt is None:
        fmt = _row_format(head, filename)
    elif fmt not in FORMATS:
        raise ValueError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}.")
    errors = _Errors()
    first_line_with: dict[str, int] = {}
    count = 0
    chunks = itertools.chain([head], iter(partial(stream.read, _CHUNK_BYTES), b""))
    lines = _text_lines(_raw_lines(chunks, errors, max_bytes, max_line_bytes), errors)
    readers: dict[str, _Rows] = {"text": _text_rows, "csv": partial(_csv_rows, max_bytes=max_bytes)}
    reader = readers.get(fmt, _json_rows)
    try:
        for row in reader(lines, errors):
            count += 1
            if count > max_lines:
                errors.stop(None, f"The file has more than {max_lines:,} rows; split it.")
            if len(row.custom_id) > MAX_ID_CHARS:
                errors.add(row.line, f"the id is {len(row.custom_id):,} characters; "
                                     f"the limit is {MAX_ID_CHARS}")  # fmt: skip
                continue
            first = first_line_with.setdefault(row.custom_id, row.line)
            if first != row.line:
                errors.add(row.line, f"id {row.custom_id!r} was already used on line {first}")
            elif not errors.total:
                yield row
    except _StopReading:
        pass
    if not errors.total and not count:
        errors.found.append((None, "The file has no rows."))
        errors.total = 1
    if errors.total:
        raise FileRejected(errors.found, errors.total)


def _row_format(head: bytes, filename: str) -> str:
    """ "csv", "jsonl" or "text". Undecodable bytes are left for the reading to refuse,
    line by line."""
    suffix = filename.lower().rpartition(".")[2] if "." in filename else ""
    if suffix in ("csv", "tsv"):
        return "csv"
    if suffix == "txt":
        return "text"
    text = head.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="replace")
    first = next((line.strip() for line in text.split("\n") if line.strip()), "")
    if first.startswith("{") or suffix in _JSON_SUFFIXES:
        return "jsonl"
    if first and len(next(csv.reader([first], delimiter=csv_delimiter(first)))) > 1:
        return "csv"
    return "text"


_Rows = Callable[[Iterator[tuple[int, str]], _Errors], Iterator[TableRow]]


def _text_rows(lines: Iterator[tuple[int, str]], errors: _Errors) -> Iterator[TableRow]:
    for number, text in lines:
        line = without_line_end(text)
        if line.strip():
            yield TableRow(number, str(number), {"text": line}, line)


def _json_row(number: int, values: dict, source: str) -> TableRow:
    name = next((name for name in ID_COLUMNS if name in values), None)
    custom_id = line_id(values, name).strip() if name else ""
    return TableRow(number, custom_id or str(number), values, source)


# reading.py's JSON-lines loop (blank lines, nesting, bad JSON, non-objects, a LineError
# from line_id), building a row where `parse` builds a prompt.
_read_json_lines = _json_reader(_json_row)


def _json_rows(lines: Iterator[tuple[int, str]], errors: _Errors) -> Iterator[TableRow]:
    return _read_json_lines(lines, errors, 0)


def _csv_rows(
    lines: Iterator[tuple[int, str]], errors: _Errors, *, max_bytes: int
) -> Iterator[TableRow]:
    # The limit is process-wide, so only ever raise it: no cell is longer than the file.
    if csv.field_size_limit() < max_bytes + 2:
        csv.field_size_limit(max_bytes + 2)
    source = _Numbered(lines)
    header = next((text for text in source if text.strip()), None)
    if header is None:
        return
    header_line = source.number
    source.taken.clear()
    delimiter = csv_delimiter(header)
    reader = csv.reader(itertools.chain([header], source), delimiter=delimiter, strict=True)
    try:
        columns = [name.strip() for name in next(reader)]
    except csv.Error as exc:
        errors.stop(header_line, f"the header row is not valid CSV ({exc})")
    source.record()
    _check_header(columns, header_line, errors)
    id_column = next((name for name in ID_COLUMNS if name in columns), None)
    while True:
        number = source.number + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            source.record()
            errors.add(number, f"not valid CSV ({exc}; is a quote left open?)")
            continue
        record = source.record()
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(columns):
            errors.add(
                number,
                f"{len(cells)} fields but the header has {len(columns)}; "
                f"quote fields that contain {delimiter!r}",
            )
            continue
        # A resubmit file's cells were neutralised for spreadsheets: take the mark off.
        values = {
            name: restore(cells[i]) if i < len(cells) else "" for i, name in enumerate(columns)
        }
        custom_id = values[id_column].strip() if id_column else ""
        yield TableRow(number, custom_id or str(number), values, record)


def _check_header(columns: list[str], number: int, errors: _Errors) -> None:
    """Every column needs a name of its own: templates read a row by its column names."""
    unnamed = [str(i) for i, name in enumerate(columns, 1) if not name]
    repeated = sorted({name for name in columns if name and columns.count(name) > 1})
    if unnamed:
        errors.add(number, f"the header row leaves column {', '.join(unnamed)} without a name")
    if repeated:
        named = ", ".join(repr(name) for name in repeated)
        errors.add(number, f"the header row names {named} more than once")
    if unnamed or repeated:
        raise _StopReading
