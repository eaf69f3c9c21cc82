"""What a CSV file's records mean: each row under its header a PromptLine of one text
prompt with its settings, its source the header row and the record as they appeared."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from jobs import gemini_shape
from jobs.formats.json_lines import LineError, Origins, PromptLine, checked_request
from jobs.formats.spreadsheet_cells import restore

if TYPE_CHECKING:
    from jobs.formats.reading import _Errors

CSV_PROMPT_COLUMNS = (
    "id",
    "prompt",
    "model",
    "system_instruction",
    "temperature",
    "max_output_tokens",
)
# Where Gemini's refusal of a CSV row's request points in the row.
_CSV_ORIGINS = Origins()
for _gemini_path, _column in (
    ("contents", "prompt"),
    ("contents[0].parts[0].text", "prompt"),
    ("system_instruction.parts[0].text", "system_instruction"),
    ("generation_config.temperature", "temperature"),
    ("generation_config.max_output_tokens", "max_output_tokens"),
):
    _CSV_ORIGINS.note(_gemini_path, _column)


def read_csv(
    lines: Iterator[tuple[int, str]], errors: _Errors, max_prompt_chars: int
) -> Iterator[PromptLine]:
    # The limit is process-wide, so only ever raise it; lengths are checked per prompt.
    if csv.field_size_limit() < max_prompt_chars + 2:
        csv.field_size_limit(max_prompt_chars + 2)
    source = _Numbered(lines)
    header = next((text for text in source if text.strip()), None)
    if header is None:
        return
    header_line = source.number
    source.taken.clear()
    delimiter = csv_delimiter(header)
    reader = csv.reader(itertools.chain([header], source), delimiter=delimiter, strict=True)
    try:
        columns = [name.strip().lower() for name in next(reader)]
    except csv.Error as exc:
        errors.stop(header_line, f"the header row is not valid CSV ({exc})")
    header_text = without_line_end(header + source.record())
    if "prompt" not in columns:
        found = ", ".join(repr(name) for name in columns)
        errors.stop(header_line, f"the header row has no 'prompt' column (it has {found})")
    index = {name: columns.index(name) for name in CSV_PROMPT_COLUMNS if name in columns}
    while True:
        number = source.number + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            source.record()
            errors.add(number, f"not valid CSV ({exc}; is a quote left open?)")
            continue
        record = source.record()
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            errors.add(
                number,
                f"{len(row)} fields but the header has {len(columns)}; "
                f"quote fields that contain {delimiter!r}",
            )
            continue
        # A resubmit file's cells were neutralised for spreadsheets: take the mark off.
        cells = {name: restore(row[i]) if i < len(row) else "" for name, i in index.items()}
        config = {
            name: value
            for name, value in (
                ("temperature", _csv_number(cells, "temperature", float)),
                ("max_output_tokens", _csv_number(cells, "max_output_tokens", int)),
            )
            if value is not None
        }
        request = gemini_shape.simple(
            cells["prompt"],
            system_instruction=cells.get("system_instruction", ""),
            generation_config=config,
        )
        try:
            request = checked_request(request, _CSV_ORIGINS)
        except LineError as exc:
            errors.add(number, str(exc))
            continue
        model = cells.get("model", "").strip().removeprefix("models/") or None
        # The record alone means nothing: its source starts with the header it is read by.
        yield PromptLine(number, cells.get("id", "").strip(), request, model,
                         f"{header_text}\n{record}")  # fmt: skip


class _Numbered:
    """Feeds csv.reader text lines, remembering the number of the last one given."""

    def __init__(self, lines: Iterator[tuple[int, str]]) -> None:
        self._lines = lines
        self.number = 0
        self.taken: list[str] = []  # csv.reader reads no further than the record it gives

    def __iter__(self) -> _Numbered:
        return self

    def __next__(self) -> str:
        self.number, text = next(self._lines)
        self.taken.append(text)
        return text

    def record(self) -> str:
        """The text given since the last call: the record just read, as it appeared."""
        text = "".join(self.taken)
        self.taken.clear()
        return without_line_end(text)


def without_line_end(text: str) -> str:
    return text.removesuffix("\n").removesuffix("\r")


def csv_delimiter(header: str) -> str:
    return next((d for d in ",\t;" if d in header), ",")


def _csv_number(cells: dict[str, str], name: str, kind: type) -> Any:
    """The cell as a number, None when blank, or the text itself for the check to refuse."""
    cell = cells.get(name, "").strip()
    if not cell:
        return None
    try:
        return kind(cell)
    except ValueError:
        return cell
