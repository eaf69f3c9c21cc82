"""manage.py eval [--json] RUN_ID: the leaderboard on the command line."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from jobs.runs import leaderboard
from tests.runs.test_leaderboard import graded_eval  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db


def _eval(*args) -> str:
    out = io.StringIO()
    call_command("eval", *args, stdout=out)
    return out.getvalue()


def test_json_prints_the_leaderboard_the_api_returns(graded_eval):  # noqa: F811
    run, *_ = graded_eval
    assert json.loads(_eval("--json", str(run.pk))) == leaderboard.leaderboard(run).as_json()


def test_the_table_ranks_each_grader_with_its_interval_and_seed(graded_eval):  # noqa: F811
    run, *_ = graded_eval
    text = _eval(str(run.pk))
    assert "arithmetic (run" in text and "40 rows, finished" in text
    assert "seed 11" in text
    assert "    1  big                          75.0% (" in text
    assert "    2  small" in text
    assert "duel: big beats small 68.8%" in text
    assert "flipped with the order on 15 of 40 rows" in text


def test_a_run_that_is_no_eval_or_missing_is_refused(graded_eval):  # noqa: F811
    run, *_ = graded_eval
    with pytest.raises(CommandError, match="No run 999999"):
        _eval("999999")
    run.evaluation = None
    run.save(update_fields=["evaluation"])
    with pytest.raises(CommandError, match="is not an eval"):
        _eval(str(run.pk))
