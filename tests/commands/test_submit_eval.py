# ruff: noqa: E501 (the definitions are YAML, one per line)
"""manage.py submit --eval DEF --file ROWS: an eval run over a dataset, its
compiled definition kept on the run, one job per row per candidate and judge
step; a bad definition creates nothing and says every problem, each naming its
candidate or grader."""

from __future__ import annotations

import pytest
from django.core.management import CommandError

from jobs.models import Job, Run, RunRow, State
from tests.support import submit_command

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ada")]

DEFINITION = """
name: qa-regression
seed: 7
candidates:
  - {model: gemini-2.5-flash}
  - {model: gemini-2.5-flash-lite, name: lite}
prompt: "{{ row.question }}"
graders:
  - name: exact
    check: {type: equals, expected: "{{ row.reference }}", normalize: [lower, strip]}
  - name: judge
    model: gemini-2.5-pro
    prompt: "Question: {{ row.question }} Reference: {{ row.reference }} Answer: {{ answer }}"
    response_schema: {type: object, properties: {score: {type: integer}}, required: [score]}
  - name: versus
    compare: [gemini-2.5-flash, lite]
    model: gemini-2.5-pro
    prompt: "Which answer is better? A: {{ a }} B: {{ b }}"
"""


@pytest.fixture
def files(tmp_path):
    definition = tmp_path / "eval.yaml"
    definition.write_text(DEFINITION, encoding="utf-8")
    rows = tmp_path / "qa.csv"
    rows.write_bytes(b"id,question,reference\nq1,2+2?,4\nq2,Capital of France?,Paris\n")
    return definition, rows


def test_it_creates_an_eval_run_and_prints_its_id_and_jobs(files):
    definition, rows = files
    printed = submit_command(
        "--eval", str(definition), "--file", str(rows), "--max-attempts", "3", "--budget", "4"
    )
    run = Run.objects.get()
    assert printed == {
        "run": run.pk,
        "jobs": list(run.jobs.order_by("id").values_list("id", flat=True)),
    }
    assert run.name == "qa-regression" and str(run.budget_usd) == "4.00"
    assert run.evaluation["name"] == "qa-regression" and run.evaluation["seed"] == 7
    assert [c["label"] for c in run.evaluation["candidates"]] == ["gemini-2.5-flash", "lite"]
    assert [g["kind"] for g in run.evaluation["graders"]] == ["check", "judge", "pairwise"]
    assert list(RunRow.objects.filter(run=run).values_list("custom_id", flat=True)) == ["q1", "q2"]
    jobs = {(job.custom_id, job.step): job for job in run.jobs.all()}
    # Per row: each candidate's answer, the judge over each answer, the pair both ways; no job for the check.
    assert sorted(step for row, step in jobs if row == "q1") == [
        "answer_gemini_2_5_flash",
        "answer_lite",
        "judge_gemini_2_5_flash",
        "judge_lite",
        "versus_ab",
        "versus_ba",
    ]
    assert len(jobs) == 12
    answer = jobs["q1", "answer_lite"]
    assert (answer.model, answer.state, answer.input_text) == (
        "gemini-2.5-flash-lite",
        State.QUEUED,
        "2+2?",
    )
    assert answer.max_attempts == 3
    assert (jobs["q2", "judge_lite"].model, jobs["q2", "judge_lite"].state) == (
        "gemini-2.5-pro",
        State.WAITING,
    )


def test_the_name_flag_is_the_runs(files):
    definition, rows = files
    submit_command("--eval", str(definition), "--file", str(rows), "--name", "nightly eval")
    run = Run.objects.get()
    assert run.name == "nightly eval" and run.evaluation["name"] == "qa-regression"


def test_a_bad_definition_lists_every_problem_by_candidate_and_grader_and_creates_nothing(
    tmp_path, files
):
    _, rows = files
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: broken\n"
        "candidates:\n  - {model: gemini-2.5-flash, colour: blue}\n"
        'prompt: "{{ row.question }}"\n'
        "graders:\n"
        "  - name: exact\n    check: {type: equals}\n"
        "  - name: judge\n    model: gemini-2.5-pro\n    prompt: 'Grade {{ answer }}'\n",
        encoding="utf-8",
    )
    with pytest.raises(CommandError) as refused:
        submit_command("--eval", str(bad), "--file", str(rows))
    message = str(refused.value)
    assert message.startswith(f"{bad}: the eval was refused:\n")
    listed = message.splitlines()[1:]
    assert any(line.startswith("  candidate 1: ") and "colour" in line for line in listed), listed
    assert any(line.startswith("  grader exact: ") and "expected" in line for line in listed)
    assert any(line.startswith("  grader judge: ") and "response_schema" in line for line in listed)
    assert not Run.objects.exists() and not Job.objects.exists() and not RunRow.objects.exists()


def test_a_row_the_answers_cannot_render_refuses_the_table_by_line(tmp_path, files):
    definition, _ = files
    rows = tmp_path / "qa.jsonl"
    rows.write_text('{"id": "a", "question": "x"}\n{"id": "b", "ask": "y"}\n', encoding="utf-8")
    with pytest.raises(
        CommandError, match=r"refused, nothing was created:\n  line 2: step answer_"
    ):
        submit_command("--eval", str(definition), "--file", str(rows))
    assert not Run.objects.exists() and not Job.objects.exists()


def test_an_eval_needs_a_dataset(files):
    definition, _ = files
    with pytest.raises(CommandError, match="give its --file of rows"):
        submit_command("--eval", str(definition), "--prompt", "hi")
    assert not Job.objects.exists()


def test_an_eval_and_a_pipeline_are_not_both_given(files):
    definition, rows = files
    with pytest.raises(CommandError, match="--eval: not allowed with argument --pipeline"):
        submit_command(
            "--pipeline", str(definition), "--eval", str(definition), "--file", str(rows)
        )
    assert not Run.objects.exists()


def test_a_missing_definition_file_is_named(tmp_path, files):
    _, rows = files
    with pytest.raises(CommandError, match=r"nope\.yaml: no such file"):
        submit_command("--eval", str(tmp_path / "nope.yaml"), "--file", str(rows))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--system", "Be brief."], "--system: with --eval, each candidate and judge says it: "
                                    "set system_instruction in the candidate"),
        (["--temperature", "0.3"], "set temperature in the candidate"),
        (["--thinking-level", "low"], "set generation_config.thinking_config.thinking_level in the candidate"),
    ],
)  # fmt: skip
def test_request_settings_are_the_candidates_to_say(files, flags, message):
    definition, rows = files
    with pytest.raises(CommandError, match=message):
        submit_command("--eval", str(definition), "--file", str(rows), *flags)
    assert not Run.objects.exists()
