# ruff: noqa: E501 (the definitions are YAML, one per line)
"""An eval definition checked whole and compiled into pipeline steps."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from jobs.engine.pipelines import DefinitionError
from jobs.engine.submitting import JobSpec
from jobs.models import Job, State
from jobs.runs import eval_definitions
from tests.support import MODEL

SPEC = JobSpec(model=MODEL)
EXAMPLE = """
name: qa-regression
candidates:
  - {model: gemini-2.5-flash}
  - {model: gemini-2.5-flash-lite}
  - {model: gemini-3-flash-preview, generation_config: {thinking_level: low}}
prompt: "{{ row.question }}"
graders:
  - name: exact
    check: {type: equals, expected: "{{ row.reference }}", normalize: [lower, strip]}
  - name: judge
    model: gemini-2.5-pro
    prompt: |
      Question: {{ row.question }}
      Reference answer: {{ row.reference }}
      Candidate answer: {{ answer }}
    response_schema: {type: object, properties: {score: {type: integer}, reason: {type: string}}, required: [score, reason]}
    score: score
  - name: pairwise
    compare: [gemini-2.5-flash, gemini-2.5-flash-lite]
    model: gemini-2.5-pro
    prompt: "Which answer is better? A: {{ a }} B: {{ b }}"
seed: 7
"""


def test_the_issues_example_compiles_to_answers_judges_and_both_orders():
    compiled = eval_definitions.eval_read(EXAMPLE, spec=SPEC)
    steps = {step.name: step for step in compiled.pipeline.steps}
    assert list(steps) == [
        "answer_gemini_2_5_flash",
        "answer_gemini_2_5_flash_lite",
        "answer_gemini_3_flash_preview",
        "judge_gemini_2_5_flash",
        "judge_gemini_2_5_flash_lite",
        "judge_gemini_3_flash_preview",
        "pairwise_ab",
        "pairwise_ba",
    ]
    assert steps["judge_gemini_2_5_flash"].parents == ("answer_gemini_2_5_flash",)
    assert steps["judge_gemini_2_5_flash"].retry_bad_output
    assert steps["judge_gemini_2_5_flash"].model == "gemini-2.5-pro"
    config = steps["answer_gemini_3_flash_preview"].request["generation_config"]
    assert config["thinking_config"] == {"thinking_level": "low"}
    assert set(steps["pairwise_ab"].parents) == {
        "answer_gemini_2_5_flash",
        "answer_gemini_2_5_flash_lite",
    }
    evaluation = compiled.evaluation
    assert evaluation["seed"] == 7
    assert [c["key"] for c in evaluation["candidates"]] == [
        "gemini_2_5_flash",
        "gemini_2_5_flash_lite",
        "gemini_3_flash_preview",
    ]
    kinds = {g["name"]: g["kind"] for g in evaluation["graders"]}
    assert kinds == {"exact": "check", "judge": "judge", "pairwise": "pairwise"}
    pairwise = evaluation["graders"][2]
    assert pairwise["steps"] == {"ab": "pairwise_ab", "ba": "pairwise_ba"}
    assert pairwise["compare"] == ["gemini_2_5_flash", "gemini_2_5_flash_lite"]


def test_a_pairwise_step_reads_the_answers_in_its_own_order():
    compiled = eval_definitions.eval_read(EXAMPLE, spec=SPEC)
    from jobs.engine.pipelines import Answer, render_request

    answers = {
        "answer_gemini_2_5_flash": [Answer("first")],
        "answer_gemini_2_5_flash_lite": [Answer("second")],
    }
    ab = render_request(compiled.pipeline.step("pairwise_ab"), row={}, answers=answers)
    ba = render_request(compiled.pipeline.step("pairwise_ba"), row={}, answers=answers)
    assert ab["contents"][0]["parts"][0]["text"].endswith("A: first B: second")
    assert ba["contents"][0]["parts"][0]["text"].endswith("A: second B: first")
    judge = render_request(
        compiled.pipeline.step("judge_gemini_2_5_flash"),
        row={"question": "q?", "reference": "r"},
        answers=answers,
    )
    assert "Candidate answer: first" in judge["contents"][0]["parts"][0]["text"]


BAD = [
    ("candidates: []\nname: x\nprompt: p\ngraders: [{name: g, check: {type: equals, expected: a}}]",
     "candidates is required"),
    ("name: x\nprompt: p\ncandidates: [{model: gemini-2.5-flash}]", "graders is required"),
    ("name: x\ncandidates: [{model: gemini-2.5-flash}]\ngraders: [{name: g, check: {type: equals, expected: a}}]",
     "prompt is required"),
    ("name: x\nprompt: p\ncandidates: [{model: gemini-2.5-flash, promt: q}]\n"
     "graders: [{name: g, check: {type: equals, expected: a}}]", "did you mean 'prompt'"),
    ("name: x\nprompt: p\ncandidates: [{model: gemini-2.5-flash}, {model: gemini-2.5-flash}]\n"
     "graders: [{name: g, check: {type: equals, expected: a}}]", "is already a candidate"),
    ("name: x\nprompt: p\ncandidates: [{model: gemini-2.5-flash}]\n"
     "graders: [{name: g, check: {type: fuzzy}}]", "check.type must be one of"),
    ("name: x\nprompt: p\ncandidates: [{model: gemini-2.5-flash}]\n"
     "graders: [{name: g, check: {type: regex}}]", "a regex check needs pattern"),
    ("name: x\nprompt: p\ncandidates: [{model: gemini-2.5-flash}]\n"
     "graders: [{name: g, check: {type: equals, expected: '{{ row.a '}}]", "does not parse"),
    ("name: x\nprompt: p\ncandidates: [{model: gemini-2.5-flash}]\n"
     "graders: [{name: g, check: {type: equals, expected: '{{ answer }}'}}]", "only row is known"),
    ("name: x\nprompt: p\ncandidates: [{model: gemini-2.5-flash}]\n"
     "graders: [{name: j, model: gemini-2.5-pro, prompt: 'grade {{ answer }}'}]",
     "a judge needs a response_schema"),
    ("name: x\nprompt: p\ncandidates: [{model: gemini-2.5-flash}]\n"
     "graders: [{name: j, model: gemini-2.5-pro, prompt: 'grade {{ answer }}', score: mark,"
     " response_schema: {type: object, properties: {mark: {type: string}}}}]",
     "does not give as an integer or number"),
    ("name: x\nprompt: p\ncandidates: [{model: gemini-2.5-flash}]\n"
     "graders: [{name: p, compare: [gemini-2.5-flash, gemini-9], model: gemini-2.5-pro, prompt: x}]",
     "'gemini-9' names no candidate"),
    ("name: x\nprompt: p\ncandidates: [{model: gemini-2.5-flash}]\n"
     "graders: [{name: g, check: {type: equals, expected: a}}, {name: g, check: {type: equals, expected: b}}]",
     "the name is used by an earlier grader"),
    ("name: x\nprompt: p\ncandidates: [{model: no-such-model}]\n"
     "graders: [{name: g, check: {type: equals, expected: a}}]", "Unknown model"),
    ("name: x\nprompt: '{{ steps.nope.output }}'\ncandidates: [{model: gemini-2.5-flash}]\n"
     "graders: [{name: g, check: {type: equals, expected: a}}]", "nope"),
]  # fmt: skip


@pytest.mark.parametrize(("definition", "message"), BAD)
def test_a_bad_eval_is_refused_with_the_reason(definition, message):
    with pytest.raises(DefinitionError) as refused:
        eval_definitions.eval_read(definition, spec=SPEC)
    assert message in str(refused.value)


@pytest.mark.django_db
def test_an_eval_run_is_a_pipeline_run_that_keeps_its_definition(ada, tmp_path: Path):
    compiled = eval_definitions.eval_read(EXAMPLE, spec=SPEC)
    table = b"question,reference\nCapital of France?,Paris\nTwo plus two?,4\n"
    run = eval_definitions.eval_run_create(
        compiled=compiled, owner=ada, stream=io.BytesIO(table), filename="qa.csv", spec=SPEC
    )
    assert run.name == "qa-regression"
    assert run.evaluation == compiled.evaluation
    assert run.pipeline == compiled.pipeline.to_json()
    states = Job.objects.filter(run=run).values_list("step", "state")
    answers = [step for step, state in states if state == State.QUEUED]
    assert len(answers) == 6 and all(step.startswith("answer_") for step in answers)
    assert Job.objects.filter(run=run, state=State.WAITING).count() == 2 * 5
    assert run.estimated_cost_usd > 0
