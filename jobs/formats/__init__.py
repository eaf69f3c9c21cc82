"""Prompt files in, result files out: the six shapes researchers already hold.

Pure streaming functions, no Django. `parse` reads a binary stream line by line and
yields PromptLines; the exporters yield one `str` line at a time, so neither an upload
nor a download is ever held whole.

A bad file is refused as a whole, but only once the damage is known: `parse` may
already have yielded PromptLines when it raises FileRejected at the end, so the caller
inserts inside one transaction and rolls back on that exception. After the first error
nothing more is yielded; the rest of the file is only checked, to list more errors.

Modules: `reading` (detection, streaming, limits, text and CSV), `json_lines` (what one
line of each JSON format means), `writing` (results, CSV, resubmit files),
`spreadsheet_cells` (CSV cells marked as text so no spreadsheet runs them as formulas).
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
from jobs.formats.writing import (
    ResultRow,
    export_csv,
    export_resubmit,
    export_results,
    request_fields,
)

__all__ = [
    "FORMATS",
    "FORMAT_LABELS",
    "MAX_ERRORS",
    "MAX_ID_CHARS",
    "FileRejected",
    "PromptLine",
    "ResultRow",
    "detect_format",
    "export_csv",
    "export_resubmit",
    "export_results",
    "file_too_large",
    "json_shape_problem",
    "parse",
    "request_fields",
]
