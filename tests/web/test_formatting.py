"""The words the pages put on times and the chart's scale (jobs/templatetags/dashboard.py):
the relative times static/js/flexdash.js keeps current say what these say."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from jobs.templatetags import dashboard
from jobs.web.queries import MinuteOutcomes


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "just now"),
        (1, "1 second ago"),
        (59, "59 seconds ago"),
        (60, "1 minute ago"),
        (119, "1 minute ago"),
        (3599, "59 minutes ago"),
        (3600, "1 hour ago"),
        (86399, "23 hours ago"),
        (86400, "1 day ago"),
        (3 * 86400 + 5, "3 days ago"),
    ],
)
def test_a_past_moment_reads_in_the_largest_whole_unit(seconds, words):
    assert dashboard.ago_words(seconds) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0, "due now"), (1, "in 1 s"), (59, "in 59 s"), (60, "in 1 min 00 s"), (125, "in 2 min 05 s")],
)
def test_a_retry_counts_down_to_the_second(seconds, words):
    assert dashboard.countdown_words(seconds) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "in 0 s"),
        (40, "in 40 s"),
        (61, "in 2 min"),
        (3600, "in 1 h"),
        (4830, "in 1 h 21 min"),
        (48 * 3600, "in 2 d"),
        (51 * 3600, "in 2 d 3 h"),
    ],
)
def test_a_deadline_counts_down_to_the_minute(seconds, words):
    assert dashboard.left_words(seconds) == words


def test_a_relative_time_is_a_time_element_the_script_can_keep_current():
    moment = timezone.now() - timedelta(seconds=75)

    html = str(dashboard.relative_time(moment))

    assert re.fullmatch(
        r'<time datetime="[\d-]+T[\d:]+\+00:00" title="[\d-]+ [\d:]+ UTC" '
        r'data-relative="ago" data-offset="-7[56]">1 minute ago</time>',
        html,
    ), html
    assert moment.isoformat(timespec="seconds") in html


def test_a_relative_time_ahead_carries_its_seconds_and_style():
    html = str(dashboard.relative_time(timezone.now() + timedelta(seconds=90), "countdown"))
    assert 'data-relative="countdown" data-offset="90"' in html
    assert ">in 1 min 30 s</time>" in html
    assert dashboard.relative_time(None) == "—"


@pytest.mark.parametrize(
    ("minutes", "every", "span"),
    [(15, 5, "15 minutes"), (30, 5, "30 minutes"), (60, 10, "hour"), (180, 30, "3 hours"),
     (360, 60, "6 hours"), (1440, 240, "24 hours"), (47, 10, "47 minutes")],
)  # fmt: skip
def test_the_chart_labels_at_most_six_round_minutes_and_names_its_window(minutes, every, span):
    assert dashboard.label_every(minutes) == every
    assert dashboard.span_words(minutes) == span


@pytest.mark.parametrize("minutes", [15, 60, 180])
def test_no_time_label_runs_off_the_chart(minutes):
    # Ending on the hour, so the last minute, at the right edge, is labelled.
    end = timezone.localtime().replace(minute=0, second=0, microsecond=0)
    series = [MinuteOutcomes(end - timedelta(minutes=i), 1, 0, 0) for i in reversed(range(minutes))]

    chart = dashboard.outcome_chart(series)

    half_label = 25  # "HH:MM" at 18px (a phone's) is about 50 units wide, centred on its tick
    assert chart.x_ticks[-1].label == f"{end:%H:%M}"
    for tick in chart.x_ticks:
        assert half_label <= float(tick.position) <= chart.width - half_label


@pytest.mark.parametrize(
    ("count", "label"),
    [(0, "0"), (3, "3"), (400, "400"), (1000, "1k"), (2000, "2k"), (20000, "20k")],
)
def test_the_chart_scale_shortens_thousands(count, label):
    assert dashboard.count_label(count) == label


def test_a_days_window_is_drawn_in_six_minute_steps_with_every_count_kept():
    end = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    series = [
        MinuteOutcomes(end - timedelta(minutes=i), 1, i % 2, 0) for i in reversed(range(1440))
    ]

    chart = dashboard.outcome_chart(series)

    assert chart.bin_minutes == 6 and chart.span == "24 hours"
    assert len(chart.busy_minutes) <= dashboard.MOST_POINTS + 1
    assert all(m.minute.minute % 6 == 0 for m in chart.busy_minutes[1:])
    assert sum(m.succeeded for m in chart.busy_minutes) == 1440
    assert sum(m.http_503 for m in chart.busy_minutes) == 720
    assert {line.key: line.total for line in chart.lines}["succeeded"] == 1440
    assert [tick.label for tick in chart.x_ticks] == [
        f"{timezone.localtime(end - timedelta(hours=h)):%H:%M}" for h in (20, 16, 12, 8, 4, 0)
    ]
