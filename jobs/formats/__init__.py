"""Prompt files in, result files out: the six shapes researchers already hold.

Pure streaming functions, no Django. `parse` reads a binary stream line by line and
yields PromptLines; the exporters yield one `str` line at a time, so neither an upload
nor a download is ever held whole.

A bad file is refused as a whole, but only once the damage is known: `parse` may
already have yielded PromptLines when it raises FileRejected at the end, so the caller
inserts inside one transaction and rolls back on that exception. After the first error
nothing more is yielded; the rest of the file is only checked, to list more errors.

Every line becomes one request in Gemini's own shape (jobs.gemini_shape), whatever its
format: a field that cannot be translated refuses the line, by name. Result files are
written from the answer Gemini sent; the resubmit file is the lines as uploaded.

Modules: `reading` (detection, streaming, limits, plain text), `json_lines` (a line's
PromptLine; FlexDash's JSONL and Gemini Batch lines), `csv_lines` (CSV records),
`translating` (building a request
from another API's fields), `openai_batch` and `anthropic_batch` (their lines read and
their results written), `result_rows` (ResultRow and what an answer says), `writing`
(results, CSV, resubmit files), `spreadsheet_cells` (CSV cells marked as text so no
spreadsheet runs them as formulas).
"""

from jobs.formats.json_lines import MAX_ID_CHARS, PromptLine, json_shape_problem
from jobs.formats.reading import (
    FORMAT_LABELS,
    FORMATS,
    MAX_ERRORS,
    FileRejected,
    detect_format,
    file_too_large,
    parse,
)
from jobs.formats.result_rows import ResultRow
from jobs.formats.table_rows import TableRow, parse_rows
from jobs.formats.writing import export_csv, export_resubmit, export_results

__all__ = [
    "FORMATS",
    "FORMAT_LABELS",
    "MAX_ERRORS",
    "MAX_ID_CHARS",
    "FileRejected",
    "PromptLine",
    "ResultRow",
    "TableRow",
    "detect_format",
    "export_csv",
    "export_resubmit",
    "export_results",
    "file_too_large",
    "json_shape_problem",
    "parse",
    "parse_rows",
]
