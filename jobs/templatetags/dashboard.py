"""Formatting for the dashboard pages: money, durations, states, the chart, and
`redacted`, which every page applies to outside text before it is shown."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from jobs.engine import actions
from jobs.models import DeadlinePolicy, State
from jobs.redaction import redact_api_key
from jobs.web.markdown import render_markdown
from jobs.web.queries import MinuteOutcomes

register = template.Library()

# A symbol next to each state's word, so a state reads without colour and at a glance.
_STATE_SYMBOLS = {
    State.QUEUED: "◷",
    State.RUNNING: "▶",
    State.RETRYING: "↻",
    State.SUCCEEDED: "✓",
    State.FAILED: "✗",
    State.CANCELLED: "⊘",
}


@register.simple_tag
def state_badge(state: str) -> SafeString:
    label = State(state).label if state in State.values else state
    return format_html(
        '<span class="state state-{}"><span aria-hidden="true">{}</span> {}</span>',
        state,
        _STATE_SYMBOLS.get(state, "•"),
        label,
    )


@register.filter
def usd(value: Decimal | None) -> str:
    """Costs are fractions of a cent: keep every stored digit, drop trailing zeros."""
    if value is None:
        return "—"
    text = f"{value:,.8f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


@register.filter
def duration(value: timedelta | float | None) -> str:
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds == 0:
        return "0 s"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def more_attempts(grant: tuple[int, int] | None) -> str:
    """What a retry grants (actions.retry_grants): "3 more attempts", "2 to 3 more attempts"."""
    return actions.grant_words(grant)


@register.filter
def seconds_until(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    return max(0, math.ceil((moment - timezone.now()).total_seconds()))


@register.filter
def countdown(moment: datetime | None) -> str:
    """The same words static/js/flexdash.js ticks between polls."""
    seconds = seconds_until(moment)
    if seconds is None:
        return "—"
    if seconds <= 0:
        return "due now"
    if seconds < 60:
        return f"in {seconds} s"
    minutes, secs = divmod(seconds, 60)
    return f"in {minutes} min {secs:02d} s"


@register.filter
def time_left(moment: datetime | None) -> str:
    """A deadline's distance, to the minute once it is a minute away: "in 1 h 20 min"."""
    seconds = seconds_until(moment)
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"in {seconds} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"in {hours} h {minutes} min" if minutes else f"in {hours} h"
    days, hours = divmod(hours, 24)
    return f"in {days} d {hours} h" if hours else f"in {days} d"


@register.filter
def clock(moment: datetime | None) -> str:
    """Local time of day, with the date when it is not today: "14:00", "Tue 3 Jun 14:00"."""
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    if local.date() == timezone.localdate():
        return f"{local:%H:%M}"
    return f"{local:%a} {local.day} {local:%b %H:%M}"


_DEADLINE_ACTION = {
    DeadlinePolicy.KEEP: "keep waiting",
    DeadlinePolicy.CANCEL: "cancel",
    DeadlinePolicy.STANDARD: "move to standard",
}
_DEADLINE_DONE = {
    DeadlinePolicy.KEEP: "kept waiting",
    DeadlinePolicy.CANCEL: "cancelled",
    DeadlinePolicy.STANDARD: "moved to standard",
}


@register.filter
def deadline_action(policy: str) -> str:
    """What happens at the deadline, as the person chose: "move to standard"."""
    return _DEADLINE_ACTION.get(policy, policy)


@register.filter
def deadline_done(policy: str) -> str:
    """What happened at the deadline: "moved to standard"."""
    return _DEADLINE_DONE.get(policy, policy)


@register.filter
def redacted(text: str | None) -> str | None:
    """A prompt, answer, system instruction, error or pause reason without the
    Gemini key. Before `markdown` or a cut, so the key is whole when it is sought."""
    return redact_api_key(text) if isinstance(text, str) else text


@register.filter
def markdown(text: str) -> SafeString:
    return render_markdown(text)


# --- The outcomes chart (server-rendered SVG) -----------------------------------------
@dataclass(frozen=True)
class ChartLine:
    key: str
    label: str
    points: str
    total: int
    swatch_marker: str


@dataclass(frozen=True)
class Marker:
    key: str
    path: str
    title: str


@dataclass(frozen=True)
class Tick:
    position: str  # SVG user units, formatted here rather than by the template's localisation
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    lines: list[ChartLine]
    markers: list[Marker]
    busy_minutes: list[MinuteOutcomes]


_SERIES = (
    ("succeeded", "Successes"),
    ("http_503", "503 capacity"),
    ("http_429", "429 rate limit"),
)
# Minutes between time labels, by the window's length in minutes.
_LABEL_EVERY = {60: 10, 180: 30, 360: 60, 1440: 240}


def _marker_path(key: str, x: float, y: float) -> str:
    """A shape per series (dot, square, triangle), so equal counts in the same
    minute stay visible on top of each other, and the series read without colour."""
    if key == "succeeded":
        return f"M{x - 3:.1f},{y:.1f}a3,3 0 1,0 6,0a3,3 0 1,0 -6,0"
    if key == "http_503":
        return f"M{x - 4.5:.1f},{y - 4.5:.1f}h9v9h-9z"
    return f"M{x:.1f},{y - 6:.1f}l5.5,9.5h-11z"


def _nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 6, 8, 10, 20, 40 ... that is at least value:
    even, so the middle grid line falls on a whole number."""
    magnitude = 1
    while True:
        for step in (2, 4, 6, 8, 10):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


@register.simple_tag
def outcome_chart(series: list[MinuteOutcomes], width: int = 720, height: int = 200) -> Chart:
    left, right, top, bottom = 40, width - 10, 10, height - 24
    peak = max((getattr(m, key) for m in series for key, _ in _SERIES), default=0)
    ymax = _nice_ceiling(max(peak, 1))
    step_x = (right - left) / max(len(series) - 1, 1)

    def y(count: int) -> float:
        return bottom - (bottom - top) * count / ymax

    lines = [
        ChartLine(
            key=key,
            label=label,
            points=" ".join(
                f"{left + i * step_x:.1f},{y(getattr(m, key)):.1f}" for i, m in enumerate(series)
            ),
            total=sum(getattr(m, key) for m in series),
            swatch_marker=_marker_path(key, 16, 6),
        )
        for key, label in _SERIES
    ]
    markers = [
        Marker(
            key=key,
            path=_marker_path(key, left + i * step_x, y(getattr(m, key))),
            title=f"{timezone.localtime(m.minute):%H:%M} {label}: {getattr(m, key)}",
        )
        for key, label in _SERIES
        for i, m in enumerate(series)
        if getattr(m, key)
    ]
    label_every = _LABEL_EVERY.get(len(series), max(len(series) // 6, 1))
    x_ticks = []
    for i, m in enumerate(series):
        local = timezone.localtime(m.minute)
        if (local.hour * 60 + local.minute) % label_every == 0:
            x_ticks.append(Tick(f"{left + i * step_x:.1f}", local.strftime("%H:%M")))
    y_ticks = [Tick(f"{y(v):.1f}", str(v)) for v in (0, ymax // 2, ymax)]
    busy = [m for m in series if m.succeeded or m.http_503 or m.http_429]
    return Chart(
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        lines=lines,
        markers=markers,
        busy_minutes=busy,
    )
