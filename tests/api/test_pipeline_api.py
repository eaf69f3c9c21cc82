"""The JSON API's pipelines: a batch uploaded with a definition (as text or a
file part), refused whole with every problem when the definition is bad, its
steps counted by state and cost, and its jobs listed with their step and row."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, Run, RunRow, State
from tests.support import MODEL, make_run, streamed

pytestmark = pytest.mark.django_db

DEFINITION = f"""
name: extract-then-summarise
steps:
  - name: facts
    model: {MODEL}
    prompt: "List the claims in: {{{{ row.text }}}}"
    response_schema: {{type: object, properties: {{claims: {{type: array}}}}}}
  - name: check
    for_each: steps.facts.json.claims
    prompt: "Supported? {{{{ item }}}}"
  - name: summary
    tier: standard
    prompt: "Summarise: {{{{ steps.check.outputs }}}}"
    continue: facts
"""
ROWS = b"id,text\nr1,Otters swim.\nr2,Owls hoot.\n"


def post_pipeline(client: Client, definition=DEFINITION, rows: bytes = ROWS, **fields):
    upload = {"file": SimpleUploadedFile("rows.csv", rows), **fields}
    if isinstance(definition, bytes):
        upload["pipeline"] = SimpleUploadedFile("pipeline.yaml", definition)
    elif definition is not None:
        upload["pipeline"] = definition
    return client.post("/api/batches", upload)


def test_a_table_with_a_definition_becomes_a_pipeline_batch(as_ada, ada):
    response = post_pipeline(as_ada, name="claims", budget_usd="5")
    assert response.status_code == 201, response.content
    batch = response.json()
    run = Run.objects.get()
    assert (batch["id"], batch["name"], batch["jobs"]) == (run.pk, "claims", 6)
    assert run.budget_usd == Decimal("5.00") and run.owner == ada
    assert list(RunRow.objects.filter(run=run).values_list("custom_id", flat=True)) == ["r1", "r2"]
    steps = {step["name"]: step for step in batch["pipeline"]["steps"]}
    assert list(steps) == ["facts", "check", "summary"]
    assert (steps["facts"]["counts"]["queued"], steps["check"]["counts"]["waiting"]) == (2, 2)
    assert steps["check"]["for_each"] == "steps.facts.json.claims"
    assert (steps["summary"]["continues"], steps["summary"]["tier"]) == ("facts", "standard")
    assert steps["summary"]["parents"] == ["facts", "check"]


def test_the_definition_may_come_as_a_file_part_in_json(as_ada):
    definition = {"name": "one", "steps": [{"name": "only", "prompt": "Say {{ row.text }}"}]}
    response = post_pipeline(as_ada, json.dumps(definition).encode(), model=MODEL, tier="standard")
    assert response.status_code == 201, response.content
    (step,) = response.json()["pipeline"]["steps"]
    # A step naming no model or tier takes the batch's.
    assert (step["name"], step["model"], step["tier"], step["jobs"]) == (
        "only",
        MODEL,
        "standard",
        2,
    )


def test_a_bad_definition_lists_every_problem_and_creates_nothing(as_ada):
    bad = """
name: broken
steps:
  - name: facts
    model: gemini-9
    prompt: "{{ row.text"
  - name: summary
    model: gemini-2.5-flash
    prompt: "{{ steps.later.output }}"
"""
    response = post_pipeline(as_ada, bad)
    assert response.status_code == 422
    problems = response.json()["errors"]["pipeline"]
    assert len(problems) >= 3, problems
    assert any("facts" in problem for problem in problems)
    assert any("summary" in problem and "later" in problem for problem in problems)
    assert not Run.objects.exists() and not Job.objects.exists()


def test_a_definition_that_is_not_yaml_is_refused(as_ada):
    response = post_pipeline(as_ada, "steps: [unclosed")
    assert response.status_code == 422
    assert response.json()["errors"]["pipeline"]


def test_a_bad_table_is_refused_like_any_file(as_ada):
    response = post_pipeline(as_ada, rows=b"id,text\nr1,one\nr1,two\n")
    assert response.status_code == 422
    assert response.json()["errors"]["file"] == ["line 3: id 'r1' was already used on line 2"]
    assert not Run.objects.exists()


def test_settings_only_a_step_can_say_are_refused_beside_a_definition(as_ada):
    response = post_pipeline(as_ada, system_instruction="Be brief.", temperature="0.5")
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"system_instruction", "temperature"}
    assert not Run.objects.exists()


def test_the_definition_is_sent_once(as_ada):
    upload = {
        "file": SimpleUploadedFile("rows.csv", ROWS),
        "pipeline": [DEFINITION, SimpleUploadedFile("p.yaml", DEFINITION.encode())],
    }
    response = as_ada.post("/api/batches", upload)
    assert response.status_code == 422
    assert "once" in response.json()["errors"]["pipeline"][0]


def test_each_step_is_counted_by_state_and_cost_in_one_query(as_ada):
    batch_id = post_pipeline(as_ada).json()["id"]
    facts = Job.objects.filter(run_id=batch_id, step="facts").order_by("id")
    facts.filter(custom_id="r1").update(state=State.SUCCEEDED, cost_usd=Decimal("0.25"))
    facts.filter(custom_id="r2").update(state=State.FAILED, cost_usd=Decimal("0.5"))
    Job.objects.filter(run_id=batch_id, custom_id="r2").exclude(step="facts").update(
        state=State.SKIPPED
    )
    with CaptureQueriesContext(connection) as queries:
        batch = as_ada.get(f"/api/batches/{batch_id}").json()
    grouped = [q["sql"] for q in queries if "GROUP BY" in q["sql"] and '"step"' in q["sql"]]
    assert len(grouped) == 1
    steps = {step["name"]: step for step in batch["pipeline"]["steps"]}
    assert steps["facts"]["counts"]["succeeded"] == 1 and steps["facts"]["counts"]["failed"] == 1
    assert steps["facts"]["cost_usd"] == "0.75000000"
    assert steps["check"]["counts"] == {
        **{state: 0 for state in State.values},
        "waiting": 1,
        "skipped": 1,
    }
    assert steps["summary"]["cost_usd"] is None


def test_a_plain_batch_has_no_pipeline(as_ada, ada):
    run = make_run(ada)
    assert as_ada.get(f"/api/batches/{run.pk}").json()["pipeline"] is None


def test_a_batchs_jobs_are_listed_row_by_row_with_their_step_item_and_row(as_ada):
    batch_id = post_pipeline(as_ada).json()["id"]
    page = as_ada.get(f"/api/batches/{batch_id}/jobs").json()
    assert page["total"] == 6
    listed = [(job["row"], job["line"], job["step"], job["item"]) for job in page["items"]]
    assert listed == [
        ("r1", 2, "facts", None),
        ("r1", 2, "check", None),
        ("r1", 2, "summary", None),
        ("r2", 3, "facts", None),
        ("r2", 3, "check", None),
        ("r2", 3, "summary", None),
    ]
    assert page["items"][1]["state"] == "waiting"
    only = as_ada.get(f"/api/batches/{batch_id}/jobs?step=facts&limit=1&offset=1").json()
    assert (only["total"], [job["row"] for job in only["items"]]) == (2, ["r2"])
    queued = as_ada.get(f"/api/batches/{batch_id}/jobs?state=queued").json()
    assert {job["step"] for job in queued["items"]} == {"facts"}


def test_a_plain_batchs_jobs_have_no_step(as_ada, ada):
    run = make_run(ada)
    items = as_ada.get(f"/api/batches/{run.pk}/jobs").json()["items"]
    assert [(job["row"], job["step"], job["item"]) for job in items] == [
        ("a", None, None),
        ("b", None, None),
    ]


def test_another_persons_pipeline_is_not_found(as_ada, as_bob):
    batch_id = post_pipeline(as_ada).json()["id"]
    for path in ("", "/jobs", "/results", "/results.csv", "/unfinished"):
        assert as_bob.get(f"/api/batches/{batch_id}{path}").status_code == 404


def test_a_pipelines_downloads_are_one_line_per_row(as_ada):
    batch_id = post_pipeline(as_ada).json()["id"]
    lines = streamed(as_ada.get(f"/api/batches/{batch_id}/results")).decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["r1", "r2"]
    header = streamed(as_ada.get(f"/api/batches/{batch_id}/results.csv")).decode().split("\n")[0]
    assert header.startswith("id,text,facts.state,facts.output,facts.error,facts.json.claims")
    Job.objects.filter(run_id=batch_id, custom_id="r2", step="facts").update(state=State.FAILED)
    again = streamed(as_ada.get(f"/api/batches/{batch_id}/unfinished"))
    assert again == b"id,text\nr2,Owls hoot.\n"
