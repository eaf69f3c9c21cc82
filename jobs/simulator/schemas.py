"""A small JSON value a response or parameters schema accepts, and one that breaks it.

Two schema dialects reach the simulator: Gemini's OpenAPI subset (generateContent
`responseSchema` and function `parameters`: upper-case types such as "OBJECT", `nullable`,
`propertyOrdering`) and JSON Schema (`responseJsonSchema`, `parametersJsonSchema`, the
Interactions `schema` and `parameters`: lower-case types, `$ref` into `$defs`). One reader serves
both: types are read in any case and keys in either spelling (`lookup`), since the SDK sends some
in snake_case (`min_items`, `property_ordering`) and Google accepts both.

The instance (`schema_instance`):
- an object has every listed property, required or not (only the required ones below depth
  `FULL_DEPTH`, so a recursive schema ends), in `propertyOrdering` order when given;
- an array has `minItems` items, at least 1 (0 below `FULL_DEPTH`), at most `maxItems`;
- a string is its first `enum` value, an example of its `format`, or "<name>-<digest>" (the
  property's name and 8 hex digits of the seed's SHA-256, the seed being the prompt), padded or cut
  to `minLength`/`maxLength`;
- an integer with both bounds (a judge's 1 to 10 score) is a value between them picked by the seed's
  digest, so a grade varies with the prompt, as a real judge's does; any other integer or
  number is 1 if its bounds allow, else the nearest value they do; a boolean is true;
  `anyOf`/`oneOf` and a list of types take the first option; `allOf` merges its parts.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

from jobs.simulator.errors import ApiError

MAX_DEPTH = 32
"""A schema nested deeper than this is refused with a 400, as Google refuses ones too complex."""
FULL_DEPTH = 4
"""From this depth on only required properties and `minItems` items are built."""
FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00",
    "email": "sim@example.com",
    "uri": "https://example.com/sim",
    "uuid": "00000000-0000-4000-8000-000000000000",
}

_CAPITAL = re.compile(r"[A-Z]")


def lookup(mapping: Mapping[str, Any], key: str) -> Any:
    """`mapping[key]` for a camelCase key, or its snake_case spelling, or None."""
    if key in mapping:
        return mapping[key]
    return mapping.get(_CAPITAL.sub(lambda capital: "_" + capital[0].lower(), key))


def schema_instance(schema: Mapping[str, Any], seed: str) -> Any:
    return _Builder(schema, seed).value(schema, "value", 0)


def schema_violation(schema: Mapping[str, Any], seed: str) -> Any:
    """A value `schema` refuses, as far as it refuses anything: for an object, its instance
    without its first required property (or with its first property of a wrong type); for
    anything else, an object."""
    builder = _Builder(schema, seed)
    root = builder.resolved(schema, 0)
    if _type(root) != "object":
        return {"unexpected": True}
    value = builder.value(root, "value", 0)
    required = lookup(root, "required") or []
    properties = lookup(root, "properties") or {}
    if required:
        del value[required[0]]
    elif properties:
        first = next(iter(properties))
        wrong_object = _type(builder.resolved(properties[first], 1)) != "object"
        value[first] = {"unexpected": True} if wrong_object else "unexpected"
    else:
        return ["unexpected"]
    value["unexpected"] = True
    return value


class _Builder:
    def __init__(self, root: Mapping[str, Any], seed: str) -> None:
        self.root = root
        self.digest = hashlib.sha256(seed.encode()).hexdigest()[:8]

    def resolved(self, schema: Any, depth: int) -> Mapping[str, Any]:
        """`schema` with its `$ref` (a JSON pointer into the root schema) followed."""
        while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
            depth += 1
            _check_depth(depth)
            schema = _pointed(self.root, schema["$ref"])
        return schema if isinstance(schema, Mapping) else {}

    def value(self, schema: Any, name: str, depth: int) -> Any:
        _check_depth(depth)
        schema = self.resolved(schema, depth)
        if "const" in schema:
            return schema["const"]
        if enum := schema.get("enum"):
            return enum[0]
        for key in ("anyOf", "oneOf"):
            if options := lookup(schema, key):
                return self.value(options[0], name, depth + 1)
        if parts := lookup(schema, "allOf"):
            return self.value(self.merged(schema, parts, depth), name, depth + 1)
        kind = _type(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind in ("integer", "number"):
            return _number(schema, integer=kind == "integer", digest=self.digest)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.string(schema, name)

    def merged(self, schema: Mapping[str, Any], parts: list[Any], depth: int) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k not in ("allOf", "all_of")}
        properties = dict(lookup(merged, "properties") or {})
        required = list(lookup(merged, "required") or [])
        for part in parts:
            part = self.resolved(part, depth + 1)
            properties.update(lookup(part, "properties") or {})
            required += lookup(part, "required") or []
            merged = {**part, **merged}
        return {**merged, "properties": properties, "required": required}

    def object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = lookup(schema, "properties") or {}
        required = list(lookup(schema, "required") or [])
        if depth < FULL_DEPTH:
            order = list(lookup(schema, "propertyOrdering") or [])
            names = [*order, *properties, *required]
        else:
            names = required
        return {
            name: self.value(properties.get(name, {}), name, depth + 1)
            for name in dict.fromkeys(names)
        }

    def array(self, schema: Mapping[str, Any], name: str, depth: int) -> list[Any]:
        prefix = lookup(schema, "prefixItems") or []
        items = lookup(schema, "items")
        count = max(_count(lookup(schema, "minItems")) or 0, 1 if depth < FULL_DEPTH else 0)
        if (most := _count(lookup(schema, "maxItems"))) is not None:
            count = min(count, most)
        return [
            self.value(prefix[n] if n < len(prefix) else items or {}, f"{name}-{n + 1}", depth + 1)
            for n in range(count)
        ]

    def string(self, schema: Mapping[str, Any], name: str) -> str:
        if (example := FORMATS.get(str(schema.get("format")))) is not None:
            return example
        text = f"{name}-{self.digest}"
        text = text.ljust(_count(lookup(schema, "minLength")) or 0, "x")
        if (longest := _count(lookup(schema, "maxLength"))) is not None:
            text = text[:longest]
        return text


def _pointed(root: Mapping[str, Any], ref: str) -> Any:
    """What a local `$ref` such as "#/$defs/Item" points to in `root`."""
    if not ref.startswith("#"):
        raise ApiError(400, f"Unsupported $ref {ref!r}: only references inside the schema work.")
    target: Any = root
    for step in filter(None, ref[1:].split("/")):
        step = step.replace("~1", "/").replace("~0", "~")
        if isinstance(target, list) and step.isdigit() and int(step) < len(target):
            target = target[int(step)]
        elif isinstance(target, Mapping) and step in target:
            target = target[step]
        else:
            raise ApiError(400, f"The schema's $ref {ref!r} points to nothing.")
    return target


def _check_depth(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ApiError(400, f"The schema is nested more than {MAX_DEPTH} levels deep.")


def _type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    if isinstance(kind, str):
        return kind.lower()
    if "properties" in schema:
        return "object"
    if "items" in schema or lookup(schema, "prefixItems"):
        return "array"
    return "string"


def _count(value: Any) -> int | None:
    """A count such as minItems; proto JSON may send it as a string."""
    return None if value is None or isinstance(value, bool) else int(float(value))


def _bound(schema: Mapping[str, Any], key: str, exclusive_key: str) -> tuple[float | None, bool]:
    """A bound and whether it is exclusive: JSON Schema gives an exclusive one as a number of its
    own, draft 4 as a flag beside the inclusive one."""
    inclusive, exclusive = lookup(schema, key), lookup(schema, exclusive_key)
    if isinstance(exclusive, bool):
        return (None if inclusive is None else float(inclusive)), exclusive
    if exclusive is not None:
        return float(exclusive), True
    return (None if inclusive is None else float(inclusive)), False


def _number(schema: Mapping[str, Any], *, integer: bool, digest: str) -> int | float:
    low, low_open = _bound(schema, "minimum", "exclusiveMinimum")
    high, high_open = _bound(schema, "maximum", "exclusiveMaximum")
    if integer:
        if low is not None:
            low = math.floor(low) + 1 if low_open else math.ceil(low)
        if high is not None:
            high = math.ceil(high) - 1 if high_open else math.floor(high)
        low_open = high_open = False
        if low is not None and high is not None and low <= high:
            return int(low + int(digest, 16) % (high - low + 1))

    def allowed(value: float) -> bool:
        above = low is None or value > low or (value == low and not low_open)
        below = high is None or value < high or (value == high and not high_open)
        return above and below

    for value in (1, low, high):
        if value is not None and allowed(value):
            return value
    if low is not None and high is not None:
        return (low + high) / 2
    return low + 1 if low is not None else high - 1  # type: ignore[operator]
