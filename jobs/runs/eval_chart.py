"""An eval's chart, one small one per grader: each candidate's score as a dot
with its 95% interval as a bar through it, on the grader's scale, laid out as
numbers for an SVG (templates/runs/includes/eval_chart.svg), so the page
needs no inline style and the download no script. Pure arithmetic."""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH = 440
LEFT = 130  # room for the candidates' names
RIGHT = 120  # room for each figure written beside its bar
TOP = 6
ROW = 22
AXIS = 24  # room for the scale under the bars
LABEL_CHARS = 18
# Stacked in the download: a line saying what the intervals are, then each chart
# under its own heading, with this much room between them.
CAPTION = 22
HEADING = 20
GAP = 10


@dataclass(frozen=True)
class Line:
    """One candidate on one chart: its dot (None without a mean) and its bar
    (None without an interval), and the figure written beside them."""

    label: str
    figure: str
    y: float
    dot_x: float | None
    low_x: float | None
    high_x: float | None

    @property
    def text_y(self) -> float:
        return round(self.y + 4, 1)


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Chart:
    slug: str  # for the ids of its title and description
    title: str
    description: str
    lines: list[Line]
    ticks: list[Tick]
    reference_x: float | None  # pairwise: the line at even (50%)
    width: int = WIDTH
    left: int = LEFT
    right: int = WIDTH - RIGHT

    @property
    def height(self) -> int:
        return TOP + ROW * max(len(self.lines), 1) + AXIS

    @property
    def axis_y(self) -> int:
        return TOP + ROW * max(len(self.lines), 1)

    @property
    def tick_label_y(self) -> int:
        return self.axis_y + 16

    @property
    def figure_x(self) -> int:
        return self.right + 8

    @property
    def label_x(self) -> int:
        return self.left - 8


@dataclass(frozen=True)
class Placed:
    """A chart at its place in the stacked download, under its heading."""

    chart: Chart
    heading_y: int
    y: int


def bounds(kind: str, scale: list[float] | None, ends: list[float]) -> tuple[float, float]:
    """The chart's scale: 0 to 1 for a pass rate or a win rate; a judge's own
    scale when its schema gives one, else whole numbers around its figures."""
    if kind in ("check", "pairwise"):
        return 0.0, 1.0
    if scale:
        return float(scale[0]), float(scale[1])
    if not ends:
        return 0.0, 1.0
    low, high = math.floor(min(ends)), math.ceil(max(ends))
    return (low, high) if high > low else (low, low + 1)


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def chart(
    *,
    slug: str,
    title: str,
    description: str,
    kind: str,
    scale: list[float] | None,
    lines: list[tuple[str, str, float | None, float | None, float | None]],
    tick_text,
) -> Chart:
    """`lines`: per candidate (label, figure, mean, low, high), top to bottom;
    `tick_text` writes a value of the scale as the axis shows it."""
    ends = [v for _, _, *values in lines for v in values if v is not None]
    low, high = bounds(kind, scale, ends)

    def x(value: float | None) -> float | None:
        if value is None:
            return None
        share = min(max((value - low) / (high - low), 0.0), 1.0)
        return round(LEFT + share * (WIDTH - RIGHT - LEFT), 1)

    placed = [
        Line(_short(label), figure, TOP + ROW * index + ROW / 2, x(mean), x(lo), x(hi))
        for index, (label, figure, mean, lo, hi) in enumerate(lines)
    ]
    middle = (low + high) / 2
    ticks = [Tick(x(value), tick_text(value)) for value in (low, middle, high)]
    return Chart(
        slug=slug,
        title=title,
        description=description,
        lines=placed,
        ticks=ticks,
        reference_x=x(0.5) if kind == "pairwise" else None,
    )


def stacked(charts: list[Chart]) -> tuple[list[Placed], int, int]:
    """The charts one under another, for the download, below its caption line:
    each with its place, and the whole drawing's width and height."""
    placed, y = [], CAPTION
    for each in charts:
        placed.append(Placed(each, y + HEADING - 6, y + HEADING))
        y += HEADING + each.height + GAP
    return placed, WIDTH, y
