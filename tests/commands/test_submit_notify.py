"""manage.py submit --notify-*: a run from --file asks to be told what the flags
say, over the account page's defaults; a bad threshold, or a flag beside a
single prompt (which has no run), is refused and creates nothing."""

from __future__ import annotations

import pytest
from django.core.management import CommandError

from jobs.models import Job, NoticeSettings, Run
from tests.support import submit_command

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("one\ntwo\n")
    return str(path)


def test_the_flags_set_the_runs_notifications_over_the_defaults(ada, prompts):
    NoticeSettings.objects.create(user=ada, on_finished=True, on_paused=True)
    printed = submit_command(
        "--file",
        prompts,
        "--no-notify-finished",
        "--notify-budget",
        "--notify-failures",
        "10 or 5%",
    )
    run = Run.objects.get(pk=printed["run"])
    assert (run.notify_finished, run.notify_budget, run.notify_paused) == (False, True, True)
    assert (run.notify_failed_jobs, run.notify_failed_percent) == (10, 5)


def test_without_flags_the_run_takes_the_defaults(ada, prompts):
    NoticeSettings.objects.create(user=ada, on_finished=True, on_failed_jobs=3)
    run = Run.objects.get(pk=submit_command("--file", prompts)["run"])
    assert run.notify_finished and run.notify_failed_jobs == 3 and not run.notify_budget


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--notify-failures", "lots"], "--notify-failures: “lots” is not a threshold"),
        (
            ["--prompt", "hi", "--notify-finished"],
            "--notify-finished: notifications belong to a run",
        ),
    ],
)
def test_a_bad_choice_is_refused_and_nothing_is_created(ada, prompts, args, words):
    source = [] if "--prompt" in args else ["--file", prompts]
    with pytest.raises(CommandError, match=words):
        submit_command(*source, *args)
    assert not Run.objects.exists() and not Job.objects.exists()
