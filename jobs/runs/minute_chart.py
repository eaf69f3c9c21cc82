"""The run page's small chart of answers and errors per minute, laid out as
numbers for an SVG: each bar's rectangles as attributes (x, y, width, height),
so the page needs no inline style, which its CSP forbids. Pure arithmetic."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

WIDTH = 320
HEIGHT = 120
LEFT = 30  # room for the y axis' figures
RIGHT = 4
TOP = 8
BOTTOM = 20  # room for the minutes under the bars
BAR_SHARE = 0.7  # of each minute's slot; the rest is the gap between bars
MAX_LABELS = 5
# Room for this many minutes whatever the run's age: a young run's few bars
# keep their width and stand at the left, as the minutes to come will follow.
MIN_SLOTS = 10


class Minute(Protocol):
    minute: datetime
    succeeded: int
    errors: int


@dataclass(frozen=True)
class Bar:
    minute: datetime
    succeeded: int
    errors: int
    x: float
    width: float
    succeeded_y: float
    succeeded_height: float
    errors_y: float
    errors_height: float
    labelled: bool  # its minute is written under it

    @property
    def label_x(self) -> float:
        return round(self.x + self.width / 2, 1)


@dataclass(frozen=True)
class MinuteChart:
    bars: list[Bar]
    top_value: int  # the figure at the top of the y axis
    succeeded: int
    errors: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM

    @property
    def label_y(self) -> int:
        return self.height - 6

    @property
    def busiest(self) -> Bar | None:
        return max(self.bars, key=lambda bar: bar.succeeded + bar.errors, default=None)


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least `value` (1 for 0)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5):
        if value <= step * power:
            return step * power
    return 10 * power


def minute_chart(minutes: Sequence[Minute]) -> MinuteChart:
    """Stacked bars, answers at the bottom and errors above them, on a y axis
    from 0 to a round figure; at most MAX_LABELS minutes written, the last
    always (it is the current minute)."""
    top_value = nice_ceiling(max((m.succeeded + m.errors for m in minutes), default=0))
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - RIGHT - LEFT) / max(len(minutes), MIN_SLOTS)
    every = math.ceil(len(minutes) / MAX_LABELS) or 1
    bars = []
    for index, minute in enumerate(minutes):
        succeeded_height = plot_height * minute.succeeded / top_value
        errors_height = plot_height * minute.errors / top_value
        base = HEIGHT - BOTTOM
        bars.append(
            Bar(
                minute=minute.minute,
                succeeded=minute.succeeded,
                errors=minute.errors,
                x=round(LEFT + slot * index + slot * (1 - BAR_SHARE) / 2, 1),
                width=round(slot * BAR_SHARE, 1),
                succeeded_y=round(base - succeeded_height, 1),
                succeeded_height=round(succeeded_height, 1),
                errors_y=round(base - succeeded_height - errors_height, 1),
                errors_height=round(errors_height, 1),
                labelled=(len(minutes) - 1 - index) % every == 0,
            )
        )
    return MinuteChart(
        bars=bars,
        top_value=top_value,
        succeeded=sum(m.succeeded for m in minutes),
        errors=sum(m.errors for m in minutes),
    )
