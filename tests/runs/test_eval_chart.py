"""The eval chart's arithmetic: each grader on its own scale, a dot at the
figure and a bar over its interval, and the charts stacked for the download."""

from __future__ import annotations

from jobs.runs import eval_chart
from jobs.runs.eval_chart import LEFT, RIGHT, WIDTH

PLOT = WIDTH - RIGHT - LEFT


def drawn(kind: str, scale=None, lines=None) -> eval_chart.Chart:
    return eval_chart.chart(
        slug="g",
        title="g",
        description="",
        kind=kind,
        scale=scale,
        lines=lines or [("big", "75% (60 to 88%)", 0.75, 0.6, 0.88)],
        tick_text=str,
    )


def test_a_pass_rate_is_drawn_from_0_to_1_with_its_interval_as_a_bar():
    (line,) = drawn("check").lines
    assert line.dot_x == round(LEFT + 0.75 * PLOT, 1)
    assert (line.low_x, line.high_x) == (round(LEFT + 0.6 * PLOT, 1), round(LEFT + 0.88 * PLOT, 1))


def test_a_judge_is_drawn_on_its_own_scale_or_whole_numbers_around_its_figures():
    on_scale = drawn("judge", [1, 10], [("big", "", 5.5, 5, 6)]).lines[0]
    assert on_scale.dot_x == round(LEFT + 0.5 * PLOT, 1)
    assert eval_chart.bounds("judge", None, [2.4, 3.1, 3.9]) == (2, 4)
    assert eval_chart.bounds("judge", None, []) == (0, 1)


def test_a_candidate_without_grades_or_an_interval_has_no_dot_or_no_bar():
    none, one = drawn(
        "check", lines=[("a", "—", None, None, None), ("b", "1", 1.0, None, None)]
    ).lines
    assert (none.dot_x, none.low_x) == (None, None)
    assert one.dot_x == LEFT + PLOT and one.low_x is None


def test_pairwise_marks_even_and_the_download_stacks_the_charts():
    pair = drawn("pairwise")
    assert pair.reference_x == round(LEFT + 0.5 * PLOT, 1)
    placed, width, height = eval_chart.stacked([drawn("check"), pair])
    assert width == WIDTH
    assert placed[1].y >= placed[0].y + placed[0].chart.height
    assert height >= placed[1].y + pair.height
