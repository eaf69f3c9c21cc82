"""An eval's checks: graders that need no model. Each grades one answer of one
row as passed (True) or not (False); an answer that is missing, or a row whose
expected value cannot be rendered, is ungraded (None), never a fail.

The check's settings were validated whole when the eval was read
(jobs/runs/eval_definitions.py); here they are only applied.
"""

from __future__ import annotations

import json
import math
import re
import string
from functools import lru_cache
from typing import Any

import jsonschema

from jobs.engine.pipelines import RenderError, render_text

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)
_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


class Ungraded(Exception):
    """The row cannot be graded by this check (its expected value does not render)."""


def normalized(text: str, steps: list[str]) -> str:
    for step in steps:
        if step == "lower":
            text = text.lower()
        elif step == "strip":
            text = text.strip()
        elif step == "collapse_whitespace":
            text = " ".join(text.split())
        elif step == "strip_punctuation":
            text = text.translate(_PUNCTUATION)
    return text


def answer_json(text: str, structured: Any = None) -> Any:
    """The answer as JSON: its structured answer when it has one, else its text parsed
    (a Markdown code fence around it allowed). Raises ValueError when it is not JSON."""
    if structured is not None:
        return structured
    fenced = _FENCE.match(text)
    return json.loads(fenced.group(1) if fenced else text)


def number_in(text: str) -> float | None:
    """The answer as a number: the whole answer when it is one, else the last number
    in it ("... so the total is 1,250." -> 1250)."""
    stripped = text.strip().rstrip(".")
    candidates = [stripped] if _NUMBER.fullmatch(stripped) else _NUMBER.findall(text)
    for found in reversed(candidates):
        try:
            value = float(found.replace(",", ""))
        except ValueError:
            continue
        if math.isfinite(value):
            return value
    return None


def _rendered(check: dict, field: str, row: dict) -> Any:
    value = check[field]
    if not isinstance(value, str):
        return value
    try:
        return render_text(value, row=row, what=f"check.{field}")
    except RenderError as error:
        raise Ungraded(str(error)) from None


def _walk(value: Any, path: str) -> Any:
    for key in path.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif (
            isinstance(value, list)
            and key.lstrip("-").isdigit()
            and -len(value) <= int(key) < len(value)
        ):
            value = value[int(key)]
        else:
            raise KeyError(path)
    return value


def _same(found: Any, expected: Any, steps: list[str]) -> bool:
    if isinstance(found, str) and isinstance(expected, str):
        return normalized(found, steps) == normalized(expected, steps)
    if isinstance(found, bool) or isinstance(expected, bool):
        return str(found).lower() == str(expected).lower()
    if isinstance(found, int | float) and isinstance(expected, int | float | str):
        other = number_in(expected) if isinstance(expected, str) else expected
        return other is not None and float(found) == float(other)
    if isinstance(expected, str):
        return normalized(json.dumps(found, ensure_ascii=False), steps) == normalized(
            expected, steps
        )
    return found == expected


@lru_cache(maxsize=256)
def _validator(schema_text: str):
    schema = json.loads(schema_text)
    return jsonschema.validators.validator_for(schema)(schema)


def check_answer(check: dict, *, text: str, structured: Any = None, row: dict) -> bool:
    """Whether the answer passes `check` (Ungraded when the row's expected value
    cannot be rendered)."""
    kind = check["type"]
    steps = check.get("normalize") or []
    if kind == "equals":
        return normalized(text, steps) == normalized(str(_rendered(check, "expected", row)), steps)
    if kind == "contains":
        return normalized(str(_rendered(check, "value", row)), steps) in normalized(text, steps)
    if kind == "regex":
        flags = 0
        for letter in str(check.get("flags") or ""):
            flags |= _REGEX_FLAGS.get(letter, 0)
        try:
            pattern = re.compile(str(_rendered(check, "pattern", row)), flags)
        except re.error as error:
            raise Ungraded(
                f"check.pattern is not a regular expression for this row: {error}"
            ) from None
        return pattern.search(normalized(text, steps)) is not None
    if kind == "numeric":
        expected = _rendered(check, "expected", row)
        target = number_in(expected) if isinstance(expected, str) else float(expected)
        if target is None:
            raise Ungraded(f"check.expected is not a number for this row: {expected!r}")
        found = number_in(text)
        return found is not None and abs(found - target) <= float(check.get("tolerance", 0))
    try:
        value = answer_json(text, structured)
    except ValueError:
        return False
    if kind == "json_path":
        try:
            found = _walk(value, check["path"])
        except KeyError:
            return False
        return _same(found, _rendered(check, "expected", row), steps)
    if kind == "json_schema":
        schema_text = json.dumps(check["schema"], sort_keys=True)
        return _validator(schema_text).is_valid(value)
    raise ValueError(f"unknown check type {kind!r}")
