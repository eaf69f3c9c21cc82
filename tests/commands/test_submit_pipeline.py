"""manage.py submit --pipeline DEF --file ROWS: a pipeline run over a table,
its steps' defaults from --model, --tier and --max-attempts; a bad definition or
table creates nothing and says every problem. And manage.py jobs --json --batch:
every job of one run with its step, item, row and line."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job, Run, RunRow, State
from tests.support import MODEL, make_run, submit, submit_command

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ada")]

DEFINITION = """
name: extract-then-summarise
steps:
  - name: facts
    prompt: "List the claims in: {{ row.text }}"
    response_schema: {type: object, properties: {claims: {type: array}}}
  - name: check
    for_each: steps.facts.json.claims
    model: gemini-2.5-pro
    prompt: "Supported? {{ item }}"
  - name: summary
    tier: standard
    prompt: "Summarise: {{ steps.check.outputs }}"
"""


@pytest.fixture
def files(tmp_path):
    definition = tmp_path / "pipeline.yaml"
    definition.write_text(DEFINITION, encoding="utf-8")
    rows = tmp_path / "rows.csv"
    rows.write_bytes(b"id,text\nr1,Otters swim.\nr2,Owls hoot.\n")
    return definition, rows


def test_it_creates_a_pipeline_run_and_prints_its_jobs(files):
    definition, rows = files
    printed = submit_command(
        "--pipeline", str(definition), "--file", str(rows), "--model", MODEL,
        "--max-attempts", "3", "--budget", "2.50", "--no-notify-finished", "--deadline", "+2h",
    )  # fmt: skip
    run = Run.objects.get()
    assert printed == {
        "run": run.pk,
        "jobs": list(run.jobs.order_by("id").values_list("id", flat=True)),
    }
    assert (run.name, run.pipeline["name"], str(run.budget_usd)) == (
        "extract-then-summarise",
        "extract-then-summarise",
        "2.50",
    )
    assert run.notify_finished is False and run.deadline_at is not None
    assert list(RunRow.objects.filter(run=run).values_list("custom_id", flat=True)) == ["r1", "r2"]
    jobs = {(job.custom_id, job.step): job for job in run.jobs.all()}
    assert len(jobs) == 6
    # A step naming no model or tier takes the command's; one naming its own keeps it.
    assert (jobs["r1", "facts"].model, jobs["r1", "facts"].tier_requested) == (MODEL, "flex")
    assert jobs["r1", "check"].model == "gemini-2.5-pro"
    assert jobs["r1", "summary"].tier_requested == "standard"
    assert {job.max_attempts for job in jobs.values()} == {3}
    assert (jobs["r1", "facts"].state, jobs["r1", "summary"].state) == ("queued", "waiting")


def test_the_name_and_tier_flags_are_the_runs(files):
    definition, rows = files
    submit_command("--pipeline", str(definition), "--file", str(rows), "--name", "nightly",
                   "--tier", "priority")  # fmt: skip
    run = Run.objects.get()
    assert run.name == "nightly"
    assert run.jobs.get(custom_id="r1", step="facts").tier_requested == "priority"


def test_a_bad_definition_lists_every_problem_and_creates_nothing(tmp_path, files):
    _, rows = files
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nsteps:\n  - name: facts\n    prompt: '{{ row.text'\n"
        "  - name: summary\n    prompt: '{{ steps.nowhere.output }}'\n    colour: blue\n",
        encoding="utf-8",
    )
    with pytest.raises(CommandError) as refused:
        submit_command("--pipeline", str(bad), "--file", str(rows))
    message = str(refused.value)
    assert message.startswith(f"{bad}: the pipeline was refused:\n")
    listed = message.splitlines()[1:]
    assert len(listed) >= 3, listed
    assert any("facts" in line for line in listed)
    assert any("nowhere" in line for line in listed)
    assert any("colour" in line for line in listed)
    assert not Run.objects.exists() and not Job.objects.exists()


def test_a_bad_table_is_refused_as_a_file_is(tmp_path, files):
    definition, _ = files
    rows = tmp_path / "rows.csv"
    rows.write_bytes(b"id,text\nr1,one\nr1,two\n")
    with pytest.raises(CommandError) as refused:
        submit_command("--pipeline", str(definition), "--file", str(rows))
    assert str(refused.value) == (
        f"{rows}: refused, nothing was created:\n  line 3: id 'r1' was already used on line 2"
    )
    assert not Run.objects.exists()


def test_a_row_a_first_step_cannot_render_is_refused_by_line(tmp_path, files):
    definition, _ = files
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"id": "a", "text": "x"}\n{"id": "b", "body": "y"}\n', encoding="utf-8")
    with pytest.raises(CommandError, match=r"refused, nothing was created:\n  line 2: step facts"):
        submit_command("--pipeline", str(definition), "--file", str(rows))
    assert not Run.objects.exists()


def test_a_pipeline_needs_a_table(files):
    definition, _ = files
    with pytest.raises(CommandError, match="give its --file of rows"):
        submit_command("--pipeline", str(definition), "--prompt", "hi")


def test_a_missing_definition_file_is_named(tmp_path, files):
    _, rows = files
    with pytest.raises(CommandError, match=r"nope\.yaml: no such file"):
        submit_command("--pipeline", str(tmp_path / "nope.yaml"), "--file", str(rows))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--system", "Be brief."], "--system: with --pipeline, each step says it: set "
                                    "system_instruction in the step"),
        (["--temperature", "0.3"], "set temperature in the step"),
        (["--seed", "7"], "set generation_config.seed in the step"),
    ],
)  # fmt: skip
def test_request_settings_are_the_steps_to_say(files, flags, message):
    definition, rows = files
    with pytest.raises(CommandError, match=message):
        submit_command("--pipeline", str(definition), "--file", str(rows), *flags)
    assert not Run.objects.exists()


# --- manage.py jobs --json --batch ----------------------------------------------------------
def job_lines(*args: str) -> list[dict]:
    out = StringIO()
    call_command("jobs", "--json", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_jobs_lists_every_job_of_a_pipeline_run_row_by_row_in_step_order(files):
    definition, rows = files
    run_id = submit_command("--pipeline", str(definition), "--file", str(rows))["run"]
    submit(Run.objects.get().owner, "not in the run")
    # The fan-out expanded for r1: its placeholder became item 0, a later job item 1.
    check = Job.objects.get(run_id=run_id, custom_id="r1", step="check")
    Job.objects.filter(pk=check.pk).update(item=0, state=State.QUEUED)
    check.pk, check.item = None, 1
    check.save()
    listed = [
        (record["row"], record["line"], record["step"], record["item"], record["status"])
        for record in job_lines("--batch", str(run_id))
    ]
    assert listed == [
        ("r1", 2, "facts", None, "queued"),
        ("r1", 2, "check", 0, "queued"),
        ("r1", 2, "check", 1, "waiting"),
        ("r1", 2, "summary", None, "waiting"),
        ("r2", 3, "facts", None, "queued"),
        ("r2", 3, "check", None, "waiting"),
        ("r2", 3, "summary", None, "waiting"),
    ]
    assert {record["run"] for record in job_lines("--batch", str(run_id))} == {run_id}


def test_jobs_of_a_plain_run_and_alone_have_no_step(ada):
    run = make_run(ada)
    submit(ada, "alone")
    records = job_lines()
    assert [(r["run"], r["step"], r["item"], r["row"], r["line"]) for r in records] == [
        (run.pk, None, None, "a", 1),
        (run.pk, None, None, "b", 2),
        (None, None, None, None, None),
    ]
    assert [r["row"] for r in job_lines("--batch", str(run.pk))] == ["a", "b"]


def test_jobs_of_an_unknown_run_is_an_error():
    with pytest.raises(CommandError, match="No run 999"):
        call_command("jobs", "--json", "--batch", "999")
