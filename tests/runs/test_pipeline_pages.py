"""A pipeline in the browser's pages: the upload with a definition, its
preview (each step's estimate and the first row's prompts), the confirmation,
the run page's per-step counts and rows-by-steps grid with its filter, a row's
page, a pipeline job's page, and who may see what."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from jobs.models import Job, Run, RunRow, State
from tests.support import HTMX, MODEL, as_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_in_tmp")]

# How the preview shows an answer not known yet.
STAND_IN = "\u2039steps.facts.output\u203a"
TABLE = b"id,text\nr1,The sky is blue.\nr2,Water is wet.\nr3,Fire is cold.\n"
TWO_STEPS = """
name: facts-then-summary
steps:
  - name: facts
    prompt: "List the claims in: {{ row.text }}"
  - name: summary
    model: gemini-2.5-pro
    prompt: "Summarise these claims: {{ steps.facts.output }}"
"""


def upload(
    client, table: bytes = TABLE, *, definition: str = TWO_STEPS, filename="rows.csv", **fields
):
    data = {"model": MODEL, "tier": "flex", "max_attempts": "8", **fields}
    data["file"] = SimpleUploadedFile(filename, table)
    if definition:
        data["pipeline_text"] = definition
    return client.post("/runs/new/", data)


def created(client, ada, **fields) -> Run:
    preview_url = upload(as_user(client, ada), **fields)["Location"]
    client.post(preview_url)
    return Run.objects.get()


def grid_cells(page: str) -> dict[str, dict[str, str]]:
    """row id -> step -> the cell's state, read from the grid's HTML."""
    grid = page.split('id="pipeline-grid"')[1].split("</table>")[0]
    cells: dict[str, dict[str, str]] = {}
    for row in re.findall(r'<tr id="row-\d+".*?</tr>', grid, re.S):
        row_id = re.search(r'class="id-cell"><a [^>]*>([^<]*)</a>', row).group(1)
        cells[row_id] = dict(re.findall(r'data-step="([^"]+)" data-state="([^"]+)"', row))
    return cells


def settle(run: Run, row_id: str, step: str, state: str, **fields) -> Job:
    job = Job.objects.get(run=run, custom_id=row_id, step=step)
    Job.objects.filter(pk=job.pk).update(state=state, finished_at=timezone.now(), **fields)
    return job


# --- Upload, preview, confirm ------------------------------------------------------
def test_it_lists_every_problem_of_a_bad_definition_and_creates_nothing(client, ada, settings):
    bad = """
steps:
  - name: facts
    prompt: "List the claims in: {{ row.text }"
  - name: summary
    prompt: "{{ steps.later.output }}"
    colour: blue
"""
    response = upload(as_user(client, ada), definition=bad)
    assert response.status_code == 200
    page = response.content.decode()
    problems = page.split('id="definition-problems"')[1].split("</ul>")[0]
    items = re.findall(r"<li>(.*?)</li>", problems, re.S)
    assert len(items) >= 3
    assert any("facts" in item for item in items)
    assert sum("summary" in item for item in items) >= 2
    assert not Run.objects.exists()
    assert not list((Path(settings.VAR_DIR) / "uploads").rglob("*.upload"))


def test_it_refuses_a_definition_file_that_is_not_yaml_or_json(client, ada):
    data = {"model": MODEL, "tier": "flex", "max_attempts": "8"}
    data["file"] = SimpleUploadedFile("rows.csv", TABLE)
    data["pipeline_file"] = SimpleUploadedFile("steps.txt", TWO_STEPS.encode())
    page = as_user(client, ada).post("/runs/new/", data).content.decode()
    assert "A pipeline definition is a .yaml, .yml or .json file" in page
    assert not Run.objects.exists()


def test_it_takes_the_definition_as_a_file_or_typed_not_both(client, ada):
    data = {"model": MODEL, "tier": "flex", "max_attempts": "8", "pipeline_text": TWO_STEPS}
    data["file"] = SimpleUploadedFile("rows.csv", TABLE)
    data["pipeline_file"] = SimpleUploadedFile("steps.yml", TWO_STEPS.encode())
    page = as_user(client, ada).post("/runs/new/", data).content.decode()
    assert "Give the definition as a file or in the box, not both." in page
    assert not Run.objects.exists()


def test_the_preview_shows_each_steps_estimate_and_the_first_rows_prompts(client, ada):
    data = {"model": MODEL, "tier": "flex", "max_attempts": "8"}
    data["file"] = SimpleUploadedFile("rows.csv", TABLE)
    data["pipeline_file"] = SimpleUploadedFile("steps.yaml", TWO_STEPS.encode())
    response = as_user(client, ada).post("/runs/new/", data)
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()

    assert '<dd id="row-count">3</dd>' in page
    assert '<dd id="job-count">6</dd>' in page
    estimates = page.split('id="step-estimates"')[1].split("</table>")[0]
    facts = estimates.split('id="estimate-facts"')[1].split("</tr>")[0]
    summary = estimates.split('id="estimate-summary"')[1].split("</tr>")[0]
    assert "gemini-2.5-flash" in facts and "flex" in facts and "rough" not in facts
    assert "gemini-2.5-pro" in summary and "rough" in summary
    assert re.search(r'<td class="num">3</td>', facts)
    first = page.split('id="first-row"')[1].split("</ol>")[0]
    assert "List the claims in: The sky is blue." in first
    assert f"Summarise these claims: {STAND_IN}" in first
    assert not Run.objects.exists()


def test_confirming_the_preview_creates_the_pipeline(client, ada):
    preview_url = upload(as_user(client, ada), name="Claims")["Location"]
    response = client.post(preview_url)
    run = Run.objects.get()
    assert response["Location"] == f"/runs/{run.pk}/"
    assert run.name == "Claims" and run.pipeline["name"] == "facts-then-summary"
    assert RunRow.objects.filter(run=run).count() == 3
    states = sorted(run.jobs.values_list("step", "state"))
    assert states == [("facts", State.QUEUED)] * 3 + [("summary", State.WAITING)] * 3
    # Confirmed once: the staged table is gone.
    assert client.post(preview_url).status_code == 404
    assert Run.objects.count() == 1
    page = client.get(response["Location"]).content.decode()
    assert "Pipeline “Claims” created: 3 rows, 6 jobs" in page


# --- The run page ------------------------------------------------------------------
def test_the_run_page_counts_each_steps_jobs_by_state_with_its_cost(client, ada):
    run = created(client, ada)
    settle(run, "r2", "facts", State.SUCCEEDED, cost_usd="0.001")
    settle(run, "r3", "facts", State.FAILED, last_error="HTTP 400")
    settle(run, "r3", "summary", State.SKIPPED, last_error="step facts failed: HTTP 400")

    page = client.get(f"/runs/{run.pk}/").content.decode()
    facts = page.split('id="step-facts"')[1].split("</tr>")[0]
    summary = page.split('id="step-summary"')[1].split("</tr>")[0]
    assert 'id="step-facts-bar" max="3" value="2"' in facts
    assert "2 / 3" in facts
    states = facts.split('id="step-facts-states"')[1]
    assert re.search(r"Queued</span> 1", states)
    assert re.search(r"Succeeded</span> 1", states)
    assert re.search(r"Failed</span> 1", states)
    assert '<td class="num" id="step-facts-cost">$0.001</td>' in facts
    assert re.search(r"Waiting on earlier steps</span> 2", summary)
    assert re.search(r"Skipped \(an earlier step failed\)</span> 1", summary)
    assert 'id="step-summary-bar" max="3" value="1"' in summary


def test_the_grid_has_a_row_per_table_row_and_a_cell_per_step_opening_its_job(client, ada):
    run = created(client, ada)
    settle(run, "r2", "facts", State.SUCCEEDED)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert grid_cells(page) == {
        "r1": {"facts": "queued", "summary": "waiting"},
        "r2": {"facts": "succeeded", "summary": "waiting"},
        "r3": {"facts": "queued", "summary": "waiting"},
    }
    job = Job.objects.get(run=run, custom_id="r2", step="facts")
    assert f'<a href="/jobs/{job.pk}/"><span class="state state-succeeded">' in page
    # The poll asks for the grid alone, which is the same fragment.
    fragment = client.get(f"/runs/{run.pk}/", headers={**HTMX, "HX-Target": "pipeline-grid"})
    body = fragment.content.decode()
    assert body.count('id="pipeline-grid"') == 1 and "every 2s" in body
    assert grid_cells(body) == grid_cells(page)


def test_the_filter_keeps_the_rows_with_a_failed_or_skipped_step(client, ada):
    run = created(client, ada)
    settle(run, "r1", "facts", State.SUCCEEDED)
    settle(run, "r1", "summary", State.SUCCEEDED)
    settle(run, "r2", "facts", State.FAILED)
    settle(run, "r2", "summary", State.SKIPPED)
    settle(run, "r3", "facts", State.SUCCEEDED)
    settle(run, "r3", "summary", State.FAILED)

    page = client.get(f"/runs/{run.pk}/?problems=1").content.decode()
    assert list(grid_cells(page)) == ["r2", "r3"]
    settle(run, "r2", "facts", State.SUCCEEDED)
    settle(run, "r2", "summary", State.SUCCEEDED)
    page = client.get(f"/runs/{run.pk}/?problems=1").content.decode()
    assert list(grid_cells(page)) == ["r3"]


def test_the_grid_pages_by_line_number(client, ada, monkeypatch):
    monkeypatch.setattr("jobs.runs.pipeline_queries.ROWS_PER_PAGE", 2)
    run = created(client, ada)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert list(grid_cells(page)) == ["r1", "r2"]
    later = re.search(r'href="\?after=(\d+)" rel="next"', page).group(1)
    page = client.get(f"/runs/{run.pk}/?after={later}").content.decode()
    assert list(grid_cells(page)) == ["r3"]
    assert 'rel="next"' not in page
    earlier = re.search(r'href="\?before=(\d+)" rel="prev"', page).group(1)
    page = client.get(f"/runs/{run.pk}/?before={earlier}").content.decode()
    assert list(grid_cells(page)) == ["r1", "r2"]


def test_a_row_page_lists_the_rows_jobs_by_step(client, ada):
    run = created(client, ada)
    # The CSV's header is line 1: row r2 is line 3.
    page = client.get(f"/runs/{run.pk}/rows/3/").content.decode()
    assert "Water is wet." in page
    for job in Job.objects.filter(run=run, custom_id="r2"):
        assert f'href="/jobs/{job.pk}/"' in page
    assert client.get(f"/runs/{run.pk}/rows/99/").status_code == 404


def test_another_users_pipeline_run_is_not_found(client, ada, bob):
    run = created(client, ada)
    as_user(client, bob)
    assert client.get(f"/runs/{run.pk}/").status_code == 404
    assert client.get(f"/runs/{run.pk}/?problems=1", headers=HTMX).status_code == 404
    assert client.get(f"/runs/{run.pk}/rows/1/").status_code == 404
    job = Job.objects.filter(run=run).first()
    assert client.get(f"/jobs/{job.pk}/").status_code == 404


# --- A pipeline job's page ---------------------------------------------------------
def test_a_waiting_jobs_page_names_its_step_row_and_what_it_waits_on(client, ada):
    run = created(client, ada)
    job = Job.objects.get(run=run, custom_id="r2", step="summary")
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    place = page.split('id="pipeline-place"')[1].split("</section>")[0]
    assert "<code>summary</code>" in place
    assert f'href="/runs/{run.pk}/?row=3">r2</a>' in place
    assert "(line 3)" in place
    assert "Waiting on step <code>facts</code>" in place
    # The link back opens the grid at that row alone.
    grid = client.get(f"/runs/{run.pk}/?row=3").content.decode()
    assert list(grid_cells(grid)) == ["r2"]


def test_a_skipped_jobs_page_says_why(client, ada):
    run = created(client, ada)
    settle(run, "r1", "facts", State.FAILED, last_error="HTTP 400: bad request")
    job = settle(run, "r1", "summary", State.SKIPPED, last_error="step facts failed: HTTP 400")
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "step facts failed: HTTP 400" in page.split('id="pipeline-skipped"')[1]


def test_a_fanned_out_steps_cell_counts_its_items_and_opens_the_rows_jobs(client, ada):
    table = b'{"id": "r1", "claims": ["a", "b", "c", "d"]}\n{"id": "r2", "claims": []}\n'
    definition = """
name: check-each
steps:
  - name: check
    for_each: row.claims
    prompt: "Is this true? {{ item }}"
"""
    preview_url = upload(as_user(client, ada), table, definition=definition, filename="rows.jsonl")[
        "Location"
    ]
    client.post(preview_url)
    run = Run.objects.get()
    items = list(Job.objects.filter(run=run, custom_id="r1").order_by("item"))
    assert [job.item for job in items] == [0, 1, 2, 3]
    Job.objects.filter(pk__in=[job.pk for job in items[:3]]).update(state=State.SUCCEEDED)

    page = client.get(f"/runs/{run.pk}/").content.decode()
    row = page.split('id="row-1"')[1].split("</tr>")[0]
    assert "3 of 4 ✓" in row
    assert f'href="/runs/{run.pk}/rows/1/#step-check"' in row
    assert "no items" in page.split('id="row-2"')[1].split("</tr>")[0]
    job_page = client.get(f"/jobs/{items[1].pk}/").content.decode()
    assert "(counted from 0, of 4 in <code>row.claims</code>)" in job_page


def test_a_continuing_jobs_page_says_how_it_was_sent(client, ada):
    definition = TWO_STEPS + "    continue: facts\n"
    run = created(client, ada, definition=definition)
    sent_after = settle(run, "r1", "summary", State.SUCCEEDED, continues_interaction="v1_abc")
    resent = settle(run, "r2", "summary", State.SUCCEEDED)
    page = client.get(f"/jobs/{sent_after.pk}/").content.decode()
    assert "<code>previous_interaction_id</code> <code>v1_abc</code>" in page
    page = client.get(f"/jobs/{resent.pk}/").content.decode()
    assert "with the earlier turns resent" in page.split('id="pipeline-continues"')[1]


def test_the_run_pages_poll_renders_each_steps_progress(client, ada):
    run = created(client, ada)
    settle(run, "r1", "facts", State.SUCCEEDED)
    response = client.get(f"/runs/{run.pk}/", headers={**HTMX, "HX-Target": "run-live"})
    body = response.content.decode()
    assert body.count('id="run-live"') == 1 and 'id="pipeline-grid"' not in body
    assert 'id="step-facts-bar" max="3" value="1"' in body


def test_a_plain_jobs_page_has_no_pipeline_block(client, ada):
    from tests.support import make_job

    job = make_job(ada)
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="pipeline-place"' not in page
