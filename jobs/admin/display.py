"""How the admins write numbers and times an operator reads at a glance:
`time_display` (local time to the second, no microseconds) and
`seconds_display` (a duration rounded to hundredths, "40.13 s"), each a
ModelAdmin method for list_display, inlines and readonly_fields, sortable by
its field in a list."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.db.models import Model
from django.utils import dateformat, timezone

TIME_FORMAT = "Y-m-d H:i:s"


def time_text(value) -> str | None:
    """A stored time in the site's time zone, to the second; None for none
    (the admin shows its empty value)."""
    return None if value is None else dateformat.format(timezone.localtime(value), TIME_FORMAT)


def seconds_text(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f} s"


def time_display(field: str, description: str) -> Callable[[admin.ModelAdmin, Model], str | None]:
    """A ModelAdmin method showing the time `field` to the second (name it
    anything but the field: Django prefers the field)."""

    @admin.display(description=description, ordering=field)
    def display(model_admin: admin.ModelAdmin, obj: Model) -> str | None:
        return time_text(getattr(obj, field))

    return display


def seconds_display(
    field: str, description: str
) -> Callable[[admin.ModelAdmin, Model], str | None]:
    """A ModelAdmin method showing the seconds in `field` rounded, "40.13 s"."""

    @admin.display(description=description, ordering=field)
    def display(model_admin: admin.ModelAdmin, obj: Model) -> str | None:
        return seconds_text(getattr(obj, field))

    return display
