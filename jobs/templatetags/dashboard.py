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
from django.utils.safestring import SafeString, mark_safe

from jobs.engine import actions
from jobs.models import DeadlinePolicy, State
from jobs.redaction import redact_api_key
from jobs.web.markdown import render_markdown
from jobs.web.queries import MinuteOutcomes

register = template.Library()

# A symbol next to each state's word, so a state reads without colour and at a glance.
_STATE_SYMBOLS = {
    State.WAITING: "⋯",
    State.QUEUED: "◷",
    State.RUNNING: "▶",
    State.RETRYING: "↻",
    State.SUCCEEDED: "✓",
    State.FAILED: "✗",
    State.CANCELLED: "⊘",
    State.SKIPPED: "↷",
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


def seconds_since(moment: datetime) -> int:
    return max(0, math.floor((timezone.now() - moment).total_seconds()))


# --- Relative times: the words here and in static/js/flexdash.js must agree ------------
def ago_words(seconds: int) -> str:
    """How long ago: "just now", "1 second ago", "12 minutes ago", "3 hours ago", "2 days ago"."""
    if seconds < 1:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return f"{seconds} second{'' if seconds == 1 else 's'} ago"


def countdown_words(seconds: int) -> str:
    """To the second, for a retry: "due now", "in 8 s", "in 2 min 05 s"."""
    if seconds <= 0:
        return "due now"
    if seconds < 60:
        return f"in {seconds} s"
    minutes, secs = divmod(seconds, 60)
    return f"in {minutes} min {secs:02d} s"


def left_words(seconds: int) -> str:
    """To the minute once a minute away, for a deadline: "in 40 s", "in 1 h 20 min"."""
    if seconds < 60:
        return f"in {max(seconds, 0)} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"in {hours} h {minutes} min" if minutes else f"in {hours} h"
    days, hours = divmod(hours, 24)
    return f"in {days} d {hours} h" if hours else f"in {days} d"


_RELATIVE_STYLES = {"ago": ago_words, "countdown": countdown_words, "left": left_words}


@register.filter
def countdown(moment: datetime | None) -> str:
    """A retry's distance in words, without the <time> (relative_time gives both)."""
    seconds = seconds_until(moment)
    return "—" if seconds is None else countdown_words(seconds)


@register.filter
def time_left(moment: datetime | None) -> str:
    """A deadline's distance in words, without the <time> (relative_time gives both)."""
    seconds = seconds_until(moment)
    return "—" if seconds is None else left_words(seconds)


@register.filter
def relative_time(moment: datetime | None, style: str = "ago") -> SafeString | str:
    """`moment` in words relative to now, as a <time> that static/js/flexdash.js
    keeps current after the page (or its fragment) stops polling. style: "ago"
    (a past moment), "countdown" (a retry, to the second) or "left" (a deadline).

    data-offset is the seconds from now to the moment by the server's clock: the
    script counts from when it first sees the element, so a browser whose clock
    is off still says what the server would."""
    if moment is None:
        return "—"
    offset = -seconds_since(moment) if style == "ago" else seconds_until(moment)
    return format_html(
        '<time datetime="{}" title="{}" data-relative="{}" data-offset="{}">{}</time>',
        moment.isoformat(timespec="seconds"),
        f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}",
        style,
        offset,
        _RELATIVE_STYLES[style](abs(offset)),
    )


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
    # Up to MOST_POINTS markers per series and table rows: written here in
    # one pass, where the template's loop cost as much as the rest of the page.
    markers: SafeString
    busy_minutes: list[MinuteOutcomes]
    busy_rows: SafeString
    span: str  # the window in words, after "the last"
    bin_minutes: int = 1  # minutes per point (a day's window is drawn in 6-minute steps)


_SERIES = (
    ("succeeded", "Successes"),
    ("http_503", "503 capacity"),
    ("http_429", "429 rate limit"),
)
# Minutes between time labels: the first that leaves at most _MOST_LABELS.
_LABEL_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 240, 480, 720, 1440)
_MOST_LABELS = 6
# Room right of the plot for half a centred "HH:MM" at the ticks' largest
# size (18px, on a phone; static/css/flexdash.css).
_RIGHT_MARGIN = 28


def label_every(minutes: int) -> int:
    """Minutes between the time labels of a window `minutes` long: 10 for an
    hour, 30 for three hours, 5 for a quarter of an hour."""
    return next((step for step in _LABEL_STEPS if minutes <= step * _MOST_LABELS), 1440)


def span_words(minutes: int) -> str:
    """A window's length: "15 minutes", "hour", "3 hours" (after "the last")."""
    if minutes % 60:
        return f"{minutes} minute{'' if minutes == 1 else 's'}"
    hours = minutes // 60
    return "hour" if hours == 1 else f"{hours} hours"


def _marker_path(key: str, x: float, y: float) -> str:
    """A shape per series (dot, square, triangle), so equal counts in the same
    minute stay visible on top of each other, and the series read without colour."""
    if key == "succeeded":
        return f"M{x - 3:.1f},{y:.1f}a3,3 0 1,0 6,0a3,3 0 1,0 -6,0"
    if key == "http_503":
        return f"M{x - 4.5:.1f},{y - 4.5:.1f}h9v9h-9z"
    return f"M{x:.1f},{y - 6:.1f}l5.5,9.5h-11z"


def count_label(count: int) -> str:
    """A count on the chart's scale, short enough for its left margin: "400", "2k", "10k"."""
    return f"{count / 1000:g}k" if count >= 1000 else str(count)


def _nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 6, 8, 10, 20, 40 ... that is at least value:
    even, so the middle grid line falls on a whole number."""
    magnitude = 1
    while True:
        for step in (2, 4, 6, 8, 10):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


# The most points a chart draws: a 720-unit plot shows no more, and a day of
# busy minutes drawn one by one (4,320 markers, a 1,440-row table) made the
# overview's poll cost five times a quiet one's.
MOST_POINTS = 240


def binned(
    series: list[MinuteOutcomes], most: int = MOST_POINTS
) -> tuple[list[MinuteOutcomes], int]:
    """The series in steps of whole minutes, at most `most` of them, each
    step starting on a multiple of its length since midnight UTC (so steps
    of 2 or 6 minutes line up with the labelled hours; the first may start
    later, with the series); counts summed."""
    size = max(1, math.ceil(len(series) / most))
    if size == 1:
        return series, 1
    steps: dict[int, list] = {}
    for m in series:
        key = int(m.minute.timestamp()) // 60 // size
        step = steps.setdefault(key, [m.minute, 0, 0, 0])
        step[1] += m.succeeded
        step[2] += m.http_503
        step[3] += m.http_429
    return [MinuteOutcomes(*step) for step in steps.values()], size


@register.simple_tag
def outcome_chart(series: list[MinuteOutcomes], width: int = 720, height: int = 200) -> Chart:
    minutes = len(series)
    series, size = binned(series)
    left, right, top, bottom = 40, width - _RIGHT_MARGIN, 14, height - 24
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
    zone = timezone.get_current_timezone()
    local = [m.minute.astimezone(zone) for m in series]
    hours = [f"{at:%H:%M}" for at in local]
    x = [left + i * step_x for i in range(len(series))]
    # Every value here is a number, a time or one of _SERIES' constant words:
    # nothing to escape, so the markers and rows are joined as plain text
    # (format_html per element cost more than the rest of the chart).
    markers = mark_safe(
        "".join(
            f'<path class="marker marker-{key}" d="{_marker_path(key, x[i], y(count))}">'
            f"<title>{hours[i]} {label}: {count:d}</title></path>"
            for key, label in _SERIES
            for i, m in enumerate(series)
            if (count := getattr(m, key))
        )
    )
    every = label_every(minutes)
    x_ticks = [
        Tick(f"{left + i * step_x:.1f}", hours[i])
        for i, at in enumerate(local)
        if (at.hour * 60 + at.minute) % every == 0
    ]
    y_ticks = [Tick(f"{y(v):.1f}", count_label(v)) for v in (0, ymax // 2, ymax)]
    busy = [
        (m, at)
        for m, at in zip(series, local, strict=True)
        if m.succeeded or m.http_503 or m.http_429
    ]
    busy_rows = mark_safe(
        "".join(
            f'<tr><th scope="row"><time datetime="{at.isoformat()}">{at:%H:%M}</time></th>'
            f'<td class="num">{m.succeeded:d}</td><td class="num">{m.http_503:d}</td>'
            f'<td class="num">{m.http_429:d}</td></tr>'
            for m, at in busy
        )
    )
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
        busy_minutes=[m for m, _ in busy],
        busy_rows=busy_rows,
        span=span_words(minutes),
        bin_minutes=size,
    )
