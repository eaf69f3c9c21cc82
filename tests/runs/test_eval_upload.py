# ruff: noqa: E501 (the definitions are YAML, one per line)
"""An eval on the upload page: the dataset with an eval definition file, its
preview (each candidate's and grader's jobs, model and cost on flex and on
standard, checks free, the totals), the confirmation that creates the eval run
from what was staged, and a bad definition refused with nothing staged."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.engine import pricing
from jobs.engine.submitting import JobSpec
from jobs.models import Job, Run, RunRow, State
from jobs.runs import eval_definitions, pipeline_runs
from jobs.templatetags.dashboard import usd
from tests.support import MODEL, as_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_in_tmp")]

TABLE = (
    b"id,question,reference\nq1,2+2?,4\nq2,Capital of France?,Paris\nq3,Largest planet?,Jupiter\n"
)
# No seed: one is drawn when the definition is read, so the run keeps the preview's only if it was staged.
DEFINITION = """
name: qa-regression
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


def upload(client, definition: str = DEFINITION, *, filename="eval.yaml", **fields):
    data = {"model": MODEL, "tier": "flex", "max_attempts": "8", **fields}
    data["file"] = SimpleUploadedFile("qa.csv", TABLE)
    data["eval_file"] = SimpleUploadedFile(filename, definition.encode())
    return client.post("/runs/new/", data)


def row_of(page: str, row_id: str) -> list[str]:
    """The cells of the preview's row with this id, as text."""
    row = page.split(f'id="{row_id}"')[1].split("</tr>")[0]
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
    ]


def staged_files(settings) -> list[Path]:
    return list((Path(settings.VAR_DIR) / "uploads").rglob("*.*"))


def expected_steps() -> dict[str, pipeline_runs.StepEstimate]:
    """The pipeline preview's own figures for this table and definition."""
    compiled = eval_definitions.eval_read(DEFINITION, spec=JobSpec(model=MODEL, max_attempts=8))
    preview = pipeline_runs.pipeline_preview(
        stream=io.BytesIO(TABLE), filename="qa.csv", pipeline=compiled.pipeline
    )
    return {estimate.step.name: estimate for estimate in preview.steps}


def figures(*estimates: pipeline_runs.StepEstimate) -> list[str]:
    """Jobs, on flex, on standard, as the page shows them."""
    flex = sum(pricing.tier_cost(e.standard_usd, "flex") for e in estimates)
    standard = sum(e.standard_usd for e in estimates)
    return [str(sum(e.jobs for e in estimates)), usd(flex), usd(standard)]


def test_the_preview_shows_each_candidate_and_grader_with_its_jobs_model_and_costs(client, ada):
    response = upload(as_user(client, ada))
    assert response.status_code == 302, response.content.decode()
    page = client.get(response["Location"]).content.decode()
    steps = expected_steps()

    assert "Preview the eval" in page and "The eval: qa-regression" in page
    flash = row_of(page, "candidate-gemini_2_5_flash")
    assert flash[1:3] == ["gemini-2.5-flash", "flex"]
    assert flash[3:] == figures(steps["answer_gemini_2_5_flash"]) and flash[3] == "3"
    lite = row_of(page, "candidate-lite")
    assert lite[0].startswith("lite") and lite[1] == "gemini-2.5-flash-lite"
    assert lite[3:] == figures(steps["answer_lite"])

    judge = row_of(page, "grader-judge")
    assert judge[1:3] == ["judge", "gemini-2.5-pro"]
    # One judge job per row per candidate, priced as its two steps together (rough: from stand-ins).
    jobs, flex, standard = figures(steps["judge_gemini_2_5_flash"], steps["judge_lite"])
    assert judge[3:] == [jobs, f"{flex} rough", standard] and jobs == "6"
    versus = row_of(page, "grader-versus")
    assert versus[1:3] == ["pairwise", "gemini-2.5-pro"]
    assert "both orders" in versus[0] and versus[3] == "6"
    jobs, flex, standard = figures(steps["versus_ab"], steps["versus_ba"])
    assert versus[3:] == [jobs, f"{flex} rough", standard]
    exact = row_of(page, "grader-exact")
    assert exact[1:] == ["check", "—", "0", "free: no model is called"]

    every = list(steps.values())
    assert page.split('id="eval-jobs">')[1].split("<")[0] == "18"
    assert page.split('id="eval-flex">')[1].split("<")[0] == figures(*every)[1]
    assert page.split('id="eval-standard">')[1].split("<")[0] == figures(*every)[2]
    assert "Create the eval: 3 rows, 2 candidates, 3 graders" in page
    assert not Run.objects.exists()


def test_confirming_creates_the_eval_run_from_what_was_staged(client, ada, settings):
    preview_url = upload(as_user(client, ada), name="Nightly")["Location"]
    page = client.get(preview_url).content.decode()
    seed = int(page.split('id="eval-seed">')[1].split("<")[0])
    # The definition is not read again on confirming: the staged compiled eval is the run's.
    response = client.post(preview_url)
    run = Run.objects.get()
    assert response["Location"] == f"/runs/{run.pk}/"
    assert run.name == "Nightly"
    assert run.evaluation["name"] == "qa-regression" and run.evaluation["seed"] == seed
    assert [c["step"] for c in run.evaluation["candidates"]] == [
        "answer_gemini_2_5_flash",
        "answer_lite",
    ]
    assert [g["name"] for g in run.evaluation["graders"]] == ["exact", "judge", "versus"]
    assert RunRow.objects.filter(run=run).count() == 3
    counts = {}
    for step, state in run.jobs.values_list("step", "state"):
        counts[step, state] = counts.get((step, state), 0) + 1
    assert counts == {
        ("answer_gemini_2_5_flash", State.QUEUED): 3,
        ("answer_lite", State.QUEUED): 3,
        ("judge_gemini_2_5_flash", State.WAITING): 3,
        ("judge_lite", State.WAITING): 3,
        ("versus_ab", State.WAITING): 3,
        ("versus_ba", State.WAITING): 3,
    }
    assert set(run.jobs.filter(step="answer_lite").values_list("model", flat=True)) == {
        "gemini-2.5-flash-lite"
    }
    assert not staged_files(settings)
    assert client.post(preview_url).status_code == 404
    assert Run.objects.count() == 1
    shown = client.get(response["Location"]).content.decode()
    assert "Eval “Nightly” created: 3 rows, 2 candidates, 18 jobs" in shown


def test_a_bad_definition_lists_every_problem_by_candidate_and_grader_and_stages_nothing(
    client, ada, settings
):
    bad = """
name: broken
candidates:
  - {model: gemini-2.5-flash, colour: blue}
prompt: "{{ row.question }}"
graders:
  - name: exact
    check: {type: equals}
  - name: judge
    model: gemini-2.5-pro
    prompt: "Grade {{ answer }}"
"""
    response = upload(as_user(client, ada), bad)
    assert response.status_code == 200
    page = response.content.decode()
    banner = page.split('id="definition-problems"')[1].split("</div>")[0]
    assert "The eval definition was refused; nothing was created." in banner
    items = re.findall(r"<li>(.*?)</li>", banner, re.S)
    assert any(item.startswith("candidate 1: ") and "colour" in item for item in items), items
    assert any(item.startswith("grader exact: ") for item in items)
    assert any(item.startswith("grader judge: ") and "response_schema" in item for item in items)
    assert not staged_files(settings)
    assert not Run.objects.exists() and not Job.objects.exists()


def test_a_row_the_answers_cannot_render_refuses_the_dataset(client, ada, settings):
    data = {"model": MODEL, "tier": "flex", "max_attempts": "8"}
    data["file"] = SimpleUploadedFile(
        "qa.jsonl", b'{"id": "a", "question": "x"}\n{"id": "b", "ask": "y"}\n'
    )
    data["eval_file"] = SimpleUploadedFile("eval.yaml", DEFINITION.encode())
    page = as_user(client, ada).post("/runs/new/", data).content.decode()
    rejected = page.split('id="rejected"')[1].split("</div>")[0]
    assert "line 2: step answer_" in rejected
    assert not staged_files(settings) and not Run.objects.exists()


def test_a_pipeline_and_an_eval_are_not_given_together(client, ada, settings):
    pipeline = "name: p\nsteps:\n  - {name: only, prompt: 'Say {{ row.question }}'}\n"
    page = upload(as_user(client, ada), pipeline_text=pipeline).content.decode()
    assert "Give a pipeline or an eval definition, not both." in page
    assert not staged_files(settings) and not Run.objects.exists()


def test_an_eval_definition_file_is_yaml_or_json(client, ada, settings):
    page = upload(as_user(client, ada), filename="eval.txt").content.decode()
    assert "An eval definition is a .yaml, .yml or .json file; this one is not." in page
    assert not staged_files(settings) and not Run.objects.exists()


def test_a_steps_tier_other_than_flex_is_priced_as_chosen_too(client, ada):
    definition = DEFINITION.replace(
        "{model: gemini-2.5-flash-lite, name: lite}",
        "{model: gemini-2.5-flash-lite, name: lite, tier: standard}",
    )
    page = client.get(upload(as_user(client, ada), definition)["Location"]).content.decode()
    assert row_of(page, "candidate-lite")[2] == "standard"
    assert 'id="eval-as-chosen"' in page


def upload_text(client, text: str, **fields):
    """The dataset with the eval definition typed or pasted in the box (as the eval
    builder's continue form posts it), no file."""
    data = {"model": MODEL, "tier": "flex", "max_attempts": "8", "eval_text": text, **fields}
    data["file"] = SimpleUploadedFile("qa.csv", TABLE)
    return client.post("/runs/new/", data)


def test_an_eval_definition_typed_in_the_box_is_previewed_as_a_file_is(client, ada):
    response = upload_text(as_user(client, ada), DEFINITION)
    assert response.status_code == 302, response.content.decode()
    page = client.get(response["Location"]).content.decode()
    assert "Preview the eval" in page and "The eval: qa-regression" in page
    assert "Create the eval: 3 rows, 2 candidates, 3 graders" in page


def test_an_eval_given_as_a_file_and_in_the_box_is_refused_plainly(client, ada, settings):
    eval_file = SimpleUploadedFile("eval.yaml", DEFINITION.encode())
    page = upload_text(as_user(client, ada), DEFINITION, eval_file=eval_file).content.decode()
    assert "Give the eval definition as a file or in the box, not both." in page
    assert '<details class="eval-definition" open>' in page
    assert not staged_files(settings) and not Run.objects.exists()


def test_an_eval_in_the_box_is_not_given_with_a_pipeline(client, ada, settings):
    pipeline = "name: p\nsteps:\n  - {name: only, prompt: 'Say {{ row.question }}'}\n"
    page = upload_text(as_user(client, ada), DEFINITION, pipeline_text=pipeline).content.decode()
    assert "Give a pipeline or an eval definition, not both." in page
    assert not staged_files(settings)


def test_a_refused_eval_in_the_box_is_named_an_eval_and_kept_to_correct(client, ada, settings):
    page = upload_text(as_user(client, ada), "name: broken\n").content.decode()
    assert "The eval definition was refused; nothing was created." in page
    assert "the eval: candidates is required" in page
    assert "name: broken\n</textarea>" in page
    assert not staged_files(settings)
