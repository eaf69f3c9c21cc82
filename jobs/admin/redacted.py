"""Outside text in the admin, without the Gemini key: `redacted_display` makes a
read-only display of a text field (a prompt, an answer, an error, a pause reason)
that the admins show in place of the field itself. Read-only, because a form
field would have to hold the real text, key included, to keep it on save."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.db.models import Model

from jobs.redaction import redact_api_key


def redacted_display(field: str, description: str) -> Callable[[admin.ModelAdmin, Model], str]:
    """A ModelAdmin method showing `field` redacted, for readonly_fields, fieldsets
    and list_display (name it anything but the field: Django prefers the field)."""

    @admin.display(description=description)
    def display(model_admin: admin.ModelAdmin, obj: Model) -> str:
        return redact_api_key(getattr(obj, field))

    return display
