"""jobs/runs/minute_chart.py: the run page's bars, answers under errors, on a
round y axis, laid out as SVG attributes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.runs.minute_chart import BOTTOM, HEIGHT, TOP, minute_chart, nice_ceiling
from jobs.runs.queries import RunMinute

START = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)


def minutes(*counts: tuple[int, int]) -> list[RunMinute]:
    return [
        RunMinute(START + timedelta(minutes=n), succeeded, errors)
        for n, (succeeded, errors) in enumerate(counts)
    ]


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (10, 10), (11, 20), (480, 500)]
)
def test_the_y_axis_ends_at_a_round_figure(value, ceiling):
    assert nice_ceiling(value) == ceiling


def test_answers_stand_on_the_axis_and_errors_on_them():
    chart = minute_chart(minutes((0, 0), (6, 4)))
    assert (chart.top_value, chart.succeeded, chart.errors) == (10, 6, 4)
    empty, busy = chart.bars
    assert (empty.succeeded_height, empty.errors_height) == (0, 0)
    plot = HEIGHT - BOTTOM - TOP
    assert busy.succeeded_height == round(plot * 0.6, 1)
    assert busy.succeeded_y + busy.succeeded_height == HEIGHT - BOTTOM
    assert busy.errors_y + busy.errors_height == pytest.approx(busy.succeeded_y)
    assert busy.errors_y == pytest.approx(TOP)
    assert chart.busiest is busy


def test_bars_do_not_overlap_and_at_most_five_minutes_are_written_the_last_always():
    chart = minute_chart(minutes(*[(1, 0)] * 10))
    for left, right in zip(chart.bars, chart.bars[1:], strict=False):
        assert left.x + left.width < right.x
    assert chart.bars[-1].x + chart.bars[-1].width <= chart.right
    labelled = [bar for bar in chart.bars if bar.labelled]
    assert len(labelled) == 5 and labelled[-1] is chart.bars[-1]
