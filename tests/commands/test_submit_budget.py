"""manage.py submit --budget: a run from --file gets the budget; a bad one,
or one for a single prompt (which has no run), is refused and creates nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import CommandError

from jobs.models import BudgetUse, Job, Run
from tests.support import submit_command

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ada")]


def test_a_file_becomes_a_run_with_its_budget(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("one\ntwo\n")
    printed = submit_command("--file", str(path), "--budget", "12.50")
    run = Run.objects.get(pk=printed["run"])
    assert run.budget_usd == Decimal("12.50")
    assert BudgetUse.objects.get(run=run).spent_usd == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--budget", "ten"], "--budget: The budget must be an amount in USD"),
        (["--budget", "0"], "--budget: The budget must be more than $0."),
        (["--budget", "0.001"], "--budget: The budget is in dollars and cents"),
    ],
)
def test_a_bad_budget_is_refused_and_nothing_is_created(tmp_path, args, words):
    path = tmp_path / "prompts.txt"
    path.write_text("one\n")
    with pytest.raises(CommandError, match="^" + words.replace("$", r"\$")):
        submit_command("--file", str(path), *args)
    assert not Run.objects.exists() and not Job.objects.exists()


def test_a_single_prompt_takes_no_budget_of_its_own():
    with pytest.raises(CommandError, match="--budget: a budget belongs to a run"):
        submit_command("--prompt", "hello", "--budget", "5")
    assert not Job.objects.exists()
