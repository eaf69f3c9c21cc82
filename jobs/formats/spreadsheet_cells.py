"""CSV cells that a spreadsheet reads as text, never as a formula (OWASP's CSV
injection advice), and the reader's way back to the exact text.

A cell that starts with = + - @, a tab or a carriage return gets a leading `'`,
which spreadsheets show as text. Ids, prompts and answers are text, so `-2` is
neutralised too. So that a resubmit file read back gives every prompt exactly,
the mark is reversible: it also goes before a cell that already starts with
`'`s and then one of those characters, and the reader takes exactly one `'` off
such a cell, whoever wrote it (a spreadsheet saves `'=x` typed as text as `=x`,
which reads back unchanged).
"""

from __future__ import annotations

import re

TEXT_MARK = "'"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# The cells neutralise() marks: any run of `'`s, then a character that starts a formula.
_MARKED = re.compile(f"{TEXT_MARK}*[{re.escape(''.join(FORMULA_STARTS))}]")


def neutralise(cell: str) -> str:
    """The cell as written: marked as text if a spreadsheet would compute it."""
    return TEXT_MARK + cell if _MARKED.match(cell) else cell


def as_uploaded(cell: str) -> str:
    """A cell of an uploaded record, written again: marked only if a spreadsheet would
    compute it as it stands (a cell already marked reads back the same unmarked)."""
    return TEXT_MARK + cell if cell.startswith(FORMULA_STARTS) else cell


def restore(cell: str) -> str:
    """The cell as it was before neutralise() (a cell it never marks is unchanged)."""
    if cell.startswith(TEXT_MARK) and _MARKED.match(cell, 1):
        return cell[1:]
    return cell
