# ruff: noqa: E501 (the definitions are YAML, one per line)
"""The JSON API's evals: a batch uploaded with an eval definition (as text or a
file part) is an eval run, its JSON saying so; a bad definition is refused whole
with every problem, by candidate or grader, under `eval`; a pipeline and an
eval are not sent together."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from jobs.models import Job, Run, RunRow, State
from tests.support import MODEL

pytestmark = pytest.mark.django_db

DEFINITION = """
name: qa-regression
seed: 11
candidates:
  - {model: gemini-2.5-flash}
  - {model: gemini-2.5-flash-lite, name: lite}
prompt: "{{ row.question }}"
graders:
  - name: exact
    check: {type: contains, value: "{{ row.reference }}"}
  - name: judge
    model: gemini-2.5-pro
    prompt: "Question: {{ row.question }} Reference: {{ row.reference }} Answer: {{ answer }}"
    response_schema: {type: object, properties: {score: {type: integer}}, required: [score]}
  - name: versus
    compare: [lite, gemini-2.5-flash]
    model: gemini-2.5-pro
    prompt: "Which answer is better? A: {{ a }} B: {{ b }}"
"""
ROWS = (
    b"id,question,reference\nq1,2+2?,4\nq2,Capital of France?,Paris\nq3,Largest planet?,Jupiter\n"
)


def post_eval(client: Client, definition=DEFINITION, rows: bytes = ROWS, **fields):
    upload = {"file": SimpleUploadedFile("qa.csv", rows), **fields}
    if isinstance(definition, bytes):
        upload["eval"] = SimpleUploadedFile("eval.yaml", definition)
    elif definition is not None:
        upload["eval"] = definition
    return client.post("/api/batches", upload)


def test_a_dataset_with_an_eval_definition_becomes_an_eval_batch(as_ada, ada):
    response = post_eval(as_ada, budget_usd="3")
    assert response.status_code == 201, response.content
    batch = response.json()
    run = Run.objects.get()
    assert (batch["id"], batch["name"], batch["jobs"]) == (run.pk, "qa-regression", 18)
    assert run.evaluation["seed"] == 11
    assert run.evaluation["candidates"] == batch["evaluation"]["candidates"]
    evaluation = batch["evaluation"]
    assert (evaluation["name"], evaluation["seed"]) == ("qa-regression", 11)
    assert evaluation["candidates"] == [
        {
            "key": "gemini_2_5_flash",
            "label": "gemini-2.5-flash",
            "model": "gemini-2.5-flash",
            "step": "answer_gemini_2_5_flash",
        },
        {"key": "lite", "label": "lite", "model": "gemini-2.5-flash-lite", "step": "answer_lite"},
    ]
    graders = {grader["name"]: grader for grader in evaluation["graders"]}
    assert graders["exact"]["kind"] == "check" and graders["exact"]["steps"] == {}
    assert graders["exact"]["check"]["type"] == "contains"
    assert graders["judge"] | {"check": None} == {
        "name": "judge", "kind": "judge", "model": "gemini-2.5-pro", "score": "score",
        "compare": None, "verdict": None, "check": None,
        "steps": {"gemini_2_5_flash": "judge_gemini_2_5_flash", "lite": "judge_lite"},
    }  # fmt: skip
    assert graders["versus"]["compare"] == ["lite", "gemini_2_5_flash"]
    assert graders["versus"]["steps"] == {"ab": "versus_ab", "ba": "versus_ba"}
    # The pipeline it ran as: every candidate's answers queued, every grade waiting on them.
    steps = {step["name"]: step for step in batch["pipeline"]["steps"]}
    assert steps["answer_lite"]["counts"]["queued"] == 3
    assert steps["answer_lite"]["model"] == "gemini-2.5-flash-lite"
    assert steps["judge_lite"]["counts"]["waiting"] == 3
    assert steps["judge_lite"]["parents"] == ["answer_lite"]
    assert set(steps["versus_ab"]["parents"]) == {"answer_lite", "answer_gemini_2_5_flash"}
    assert RunRow.objects.filter(run=run).count() == 3
    assert (
        Job.objects.filter(run=run, step="answer_gemini_2_5_flash", state=State.QUEUED).count() == 3
    )


def test_the_definition_may_come_as_a_file_part_in_json(as_ada):
    definition = {
        "name": "one",
        "candidates": [{"model": MODEL}],
        "prompt": "Say {{ row.question }}",
        "graders": [{"name": "has_four", "check": {"type": "contains", "value": "4"}}],
    }
    response = post_eval(as_ada, json.dumps(definition).encode(), tier="standard")
    assert response.status_code == 201, response.content
    batch = response.json()
    assert batch["evaluation"]["name"] == "one"
    (step,) = batch["pipeline"]["steps"]
    # A candidate naming no tier takes the batch's; a check makes no job.
    assert (step["name"], step["tier"], step["jobs"]) == ("answer_gemini_2_5_flash", "standard", 3)


def test_an_eval_batch_says_so_when_listed_and_fetched(as_ada):
    batch_id = post_eval(as_ada).json()["id"]
    fetched = as_ada.get(f"/api/batches/{batch_id}").json()
    assert fetched["evaluation"]["name"] == "qa-regression"
    (listed,) = as_ada.get("/api/batches").json()["items"]
    assert listed["evaluation"]["seed"] == 11


def test_a_plain_batch_and_a_pipeline_are_not_evals(as_ada):
    plain = as_ada.post("/api/batches", {"file": SimpleUploadedFile("p.txt", b"hi\n")}).json()
    assert plain["evaluation"] is None
    pipeline = "name: p\nsteps:\n  - {name: only, prompt: 'Say {{ row.text }}'}\n"
    upload = {"file": SimpleUploadedFile("p.txt", b"hi\n"), "pipeline": pipeline}
    assert as_ada.post("/api/batches", upload).json()["evaluation"] is None


def test_a_bad_definition_lists_every_problem_by_candidate_and_grader_and_creates_nothing(as_ada):
    bad = """
name: broken
candidates:
  - {model: gemini-2.5-flash, colour: blue}
prompt: "{{ row.question }}"
graders:
  - name: exact
    check: {type: equals}
  - name: versus
    compare: [gemini-2.5-flash, gemini-9]
    model: gemini-2.5-pro
    prompt: "A: {{ a }} B: {{ b }}"
"""
    response = post_eval(as_ada, bad)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"eval"}
    problems = errors["eval"]
    assert any(p.startswith("candidate 1: ") and "colour" in p for p in problems), problems
    assert any(p.startswith("grader exact: ") and "expected" in p for p in problems)
    assert any(p.startswith("grader versus: ") and "gemini-9" in p for p in problems)
    assert not Run.objects.exists() and not Job.objects.exists() and not RunRow.objects.exists()


def test_a_definition_that_is_not_yaml_is_refused(as_ada):
    response = post_eval(as_ada, b"candidates: [unclosed")
    assert response.status_code == 422
    assert response.json()["errors"]["eval"]
    assert not Run.objects.exists()


def test_a_pipeline_and_an_eval_are_not_sent_together(as_ada):
    pipeline = "name: p\nsteps:\n  - {name: only, prompt: 'Say {{ row.question }}'}\n"
    response = post_eval(as_ada, pipeline=pipeline)
    assert response.status_code == 422
    assert response.json()["errors"] == {
        "eval": ["Send a pipeline or an eval, not both: an eval runs as a pipeline of its own."]
    }
    assert not Run.objects.exists()


def test_the_definition_is_sent_once(as_ada):
    upload = {
        "file": SimpleUploadedFile("qa.csv", ROWS),
        "eval": [DEFINITION, SimpleUploadedFile("e.yaml", DEFINITION.encode())],
    }
    response = as_ada.post("/api/batches", upload)
    assert response.status_code == 422
    assert response.json()["errors"]["eval"] == ["Send the eval once: as text or as a file."]


def test_settings_only_a_candidate_can_say_are_refused_beside_an_eval(as_ada):
    response = post_eval(as_ada, system_instruction="Be brief.", max_output_tokens="100")
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"system_instruction", "max_output_tokens"}
    assert "set it in the candidate" in errors["system_instruction"][0]
    assert not Run.objects.exists()


def test_a_row_the_answers_cannot_render_refuses_the_dataset_by_line(as_ada):
    rows = b'{"id": "a", "question": "x"}\n{"id": "b", "ask": "y"}\n'
    response = as_ada.post(
        "/api/batches", {"file": SimpleUploadedFile("qa.jsonl", rows), "eval": DEFINITION}
    )
    assert response.status_code == 422
    (problem,) = response.json()["errors"]["file"]
    assert problem.startswith("line 2: step answer_")
    assert not Run.objects.exists() and not Job.objects.exists()


def test_the_api_document_describes_the_eval_field_and_the_evaluation(as_ada):
    document = as_ada.get("/api/openapi.json").json()
    form = document["paths"]["/api/batches"]["post"]["requestBody"]["content"]
    fields = form["multipart/form-data"]["schema"]["properties"]
    assert "eval" in fields and "by candidate or grader" in json.dumps(fields["eval"])
    schemas = document["components"]["schemas"]
    assert "evaluation" in schemas["BatchOut"]["properties"]
    assert set(schemas["EvaluationOut"]["properties"]) == {"name", "seed", "candidates", "graders"}


@pytest.mark.parametrize(
    "grader",
    [
        "{name: judge, model: gemini-2.5-pro, prompt: p, response_schema: {properties: [1]}}",
        "{name: judge, model: gemini-2.5-pro, prompt: p, response_schema: {properties: {score: 3}}}",
        "{name: judge, model: gemini-2.5-pro, prompt: p, score: [1], response_schema: {properties: {score: {type: integer}}}}",
        "{name: judge, compare: [gemini-2.5-flash, lite], model: gemini-2.5-pro, prompt: p, response_schema: [1]}",
        "{name: judge, compare: [gemini-2.5-flash, lite], model: gemini-2.5-pro, prompt: p, verdict: [1]}",
        "{name: judge, check: {type: equals, expected: x, normalize: [[lower]]}}",
        "{name: judge, check: {type: [equals]}}",
    ],
)
def test_a_grader_of_the_wrong_shape_is_refused_by_name_not_failed_on(as_ada, grader):
    definition = (
        "name: shapes\ncandidates: [{model: gemini-2.5-flash}, {model: gemini-2.5-flash-lite, name: lite}]\n"
        f'prompt: "{{{{ row.question }}}}"\ngraders: [{grader}]\n'
    )
    response = post_eval(as_ada, definition)
    assert response.status_code == 422
    (problem,) = response.json()["errors"]["eval"]
    assert problem.startswith("grader judge: ")
    assert not Run.objects.exists()
