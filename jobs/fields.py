"""Model fields of our own: JSON kept as the text it was written as."""

from __future__ import annotations

import json
from typing import Any

from django.db import models


class JSONTextField(models.TextField):
    """A JSON value stored as its text. PostgreSQL's jsonb (Django's JSONField)
    gives an object's keys back shortest first; a request must go out as it was
    written, and Gemini answers a JSON Schema's properties in the order given.
    SQL NULL is "none"; nothing here is queried inside, only read and written whole."""

    description = "JSON, stored as text in the order written"

    def from_db_value(self, value: str | None, expression, connection) -> Any:
        return None if value is None else json.loads(value)

    def to_python(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def value_to_string(self, obj: models.Model) -> str:
        return self.get_prep_value(self.value_from_object(obj)) or ""
