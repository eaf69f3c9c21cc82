"""The pipeline builder (runs/new/pipeline/): a pipeline definition made step by
step, checked by definition_check as the upload checks a file, its problems
shown at their steps with nothing typed lost, steps added by a button, its YAML
read back to the same pipeline, and handed to the upload page as
`pipeline_text` with its settings for the usual preview."""

from __future__ import annotations

import html
import re

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.engine import pipelines
from jobs.models import Run, State
from jobs.runs.builders import builder_spec
from jobs.runs.pipeline_builder import PipelineBuilder
from tests.support import as_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_in_tmp")]

URL = "/runs/new/pipeline/"
TABLE = b"id,text\nr1,The sky is blue.\nr2,Water is wet.\n"
CLAIMS = (
    '{"type": "object", "properties": {"claims": {"type": "array", "items": {"type": "string"}}}}'
)


def builder_data(*steps: dict, **top) -> dict[str, str]:
    """What the page posts: the pipeline's fields and its steps (dicts of their
    fields), with the management form, as a browser sends them."""
    data = {"name": "claims", "model": "gemini-2.5-flash", "tier": "flex", **top}
    data["steps-TOTAL_FORMS"] = str(len(steps))
    data["steps-INITIAL_FORMS"] = "0"
    for index, step in enumerate(steps):
        for field, value in step.items():
            data[f"steps-{index}-{field}"] = value
    return data


EXTRACT = {
    "name": "extract",
    "prompt": "List the claims in: {{ row.text }}",
    "response_schema": CLAIMS,
}
CHECK = {
    "name": "check",
    "for_each": "steps.extract.json.claims",
    "model": "gemini-2.5-pro",
    "prompt": "Is this true? {{ item }}",
}


def built(data: dict):
    builder = PipelineBuilder(data)
    result = builder.build(spec=builder_spec())
    assert result is not None, builder.problems
    return result


def problems_of(data: dict) -> list[str]:
    builder = PipelineBuilder(data)
    assert builder.build(spec=builder_spec()) is None
    return builder.problems


def section(page: str, row_id: str) -> str:
    """The page's fieldset of one step (e.g. steps-0)."""
    return page.split(f'id="{row_id}"')[1].split("</fieldset>")[0]


def test_it_offers_two_empty_steps_and_is_linked_from_the_upload_page(client, ada):
    upload = as_user(client, ada).get("/runs/new/").content.decode()
    assert 'href="/runs/new/pipeline/" id="pipeline-builder-link">Or build one here' in upload
    page = client.get(URL).content.decode()
    assert "Build a pipeline" in page
    assert 'id="steps-0"' in page and 'id="steps-1"' in page and 'id="steps-2"' not in page
    assert ">Add a step</button>" in page
    assert '<option value="gemini-2.5-flash" selected>' in page  # the pipeline's model
    assert "null</textarea>" not in page  # an empty schema box is empty
    assert "<script>" not in page  # the pages run under a Content-Security-Policy


def test_it_needs_a_login(client):
    assert client.get(URL)["Location"].startswith("/accounts/login/")


# --- The mapping ----------------------------------------------------------------------
def test_steps_carry_their_prompt_settings_schema_fan_out_and_conversation():
    result = built(
        builder_data(
            EXTRACT,
            {**CHECK, "tier": "standard", "temperature": "0.2", "thinking_level": "low"},
            {
                "name": "reply",
                "continues": "extract",
                "prompt": "Now say which is most surprising.",
                "system_instruction": "Be brief.",
            },
            max_attempts="6",
        )
    )
    assert result.mapping == {
        "name": "claims",
        "model": "gemini-2.5-flash",
        "tier": "flex",
        "max_attempts": 6,
        "steps": [
            {
                "name": "extract",
                "prompt": "List the claims in: {{ row.text }}",
                "response_schema": yaml.safe_load(CLAIMS),
            },
            {
                "name": "check",
                "model": "gemini-2.5-pro",
                "tier": "standard",
                "for_each": "steps.extract.json.claims",
                "prompt": "Is this true? {{ item }}",
                "temperature": 0.2,
                "generation_config": {"thinking_config": {"thinking_level": "low"}},
            },
            {
                "name": "reply",
                "continue": "extract",
                "prompt": "Now say which is most surprising.",
                "system_instruction": "Be brief.",
            },
        ],
    }
    steps = {step.name: step for step in result.pipeline.steps}
    assert steps["extract"].model == "gemini-2.5-flash" and steps["extract"].max_attempts == 6
    assert steps["check"].tier == "standard" and steps["check"].parents == ("extract",)
    assert steps["check"].request["generation_config"]["thinking_config"] == {
        "thinking_level": "low"
    }
    assert steps["reply"].continues == "extract"


def test_steps_left_as_offered_are_no_part_of_the_pipeline():
    result = built(builder_data({}, EXTRACT, {}, CHECK))
    assert [step.name for step in result.pipeline.steps] == ["extract", "check"]


def test_the_yaml_reads_back_to_the_same_pipeline():
    data = builder_data(
        EXTRACT,
        CHECK,
        {
            "name": "verdict",
            "prompt": "Claims: {{ steps.extract.output }}\nChecks: {{ steps.check.outputs }}\n'x'",
            "system_instruction": "One line.\nNo preamble.",
        },
        tier="standard",
    )
    result, spec = built(data), builder_spec()
    assert yaml.safe_load(result.text) == result.mapping
    again = pipelines.definition_check(pipelines.definition_load(result.text), defaults=spec)
    assert again.to_json() == result.pipeline.to_json()
    # A browser posts the YAML back with CRLF line ends: still the same pipeline.
    crlf = pipelines.definition_load(result.text.replace("\n", "\r\n"))
    assert pipelines.definition_check(crlf, defaults=spec).to_json() == result.pipeline.to_json()


# --- Problems, in the page's words ------------------------------------------------------
def test_a_problem_names_the_step_as_the_page_numbers_it():
    # The first step is left as offered: definition_check's "step 1" is the page's 2nd.
    problems = problems_of(builder_data({}, {"prompt": "Hello"}, {"name": "2bad", "prompt": "x"}))
    assert "Step 2: needs a name" in problems
    bad_name = "Step 3: the name '2bad' must be letters, digits and _"
    assert any(problem.startswith(bad_name) for problem in problems)


def test_the_checks_own_words_reach_the_page_for_every_kind_of_problem():
    problems = problems_of(
        builder_data(
            {"name": "a", "prompt": "{{ steps.b.output }}"},
            {"name": "b", "prompt": "{{ steps.a.output }}"},
            {"name": "c", "for_each": "steps.a.json.items", "prompt": "{{ item }}"},
            {"name": "d", "prompt": "{{ steps.nobody.output }}"},
            {"name": "e", "prompt": "{% if %}"},
            name="",
        )
    )
    assert "The pipeline needs a name (text)" in problems
    assert "Steps a and b refer to each other (a cycle)" in problems
    assert (
        "Step c: for_each names steps.a.json.items, but step a has no response_schema, "
        "so its answer is not known to hold a list"
    ) in problems
    assert "Step d: refers to steps.nobody, which is no step of this pipeline" in problems
    assert any(p.startswith("Step e: the prompt does not parse") for p in problems)


def test_problems_are_shown_at_their_steps_with_what_was_typed(client, ada):
    data = builder_data(
        EXTRACT,
        {**CHECK, "for_each": "steps.extract.json.facts"},
        {"name": "late", "prompt": "{{ steps.later.output }}"},
        {"name": "later", "prompt": "Hi"},
        action="check",
    )
    page = as_user(client, ada).post(URL, data).content.decode()
    problems = page.split('id="builder-problems"')[1].split("</div>")[0]
    assert "2 problems" in problems
    check = section(page, "steps-1")
    assert "Step check: for_each names steps.extract.json.facts, but step extract&#x27;s " in check
    assert "response_schema has no property facts" in check
    assert 'value="steps.extract.json.facts"' in check
    assert '<option value="gemini-2.5-pro" selected>' in check
    assert "row-problem" in page.split('id="steps-1"')[0][-80:]
    late = section(page, "steps-2")
    assert "Step late: refers to steps.later, a later step" in late
    assert "{{ steps.later.output }}</textarea>" in late
    assert "row-problem" not in page.split('id="steps-0"')[0][-80:]
    assert 'id="pipeline-built"' not in page and not Run.objects.exists()


def test_a_cycle_is_shown_at_each_of_its_steps(client, ada):
    data = builder_data(
        {"name": "a", "prompt": "{{ steps.b.output }}"},
        {"name": "b", "prompt": "{{ steps.a.output }}"},
        action="check",
    )
    page = as_user(client, ada).post(URL, data).content.decode()
    for row in ("steps-0", "steps-1"):
        assert "Steps a and b refer to each other (a cycle)" in section(page, row)


def test_the_pipelines_own_fields_show_their_problems_at_them(client, ada):
    data = builder_data(EXTRACT, name="", max_attempts="0", action="check")
    page = as_user(client, ada).post(URL, data).content.decode()
    before, after = page.split('id="id_name"')
    name = before.rsplit('<div class="field', 1)[1] + after.split("</div>")[0]
    assert "has-error" in name and "Needs a name (text)" in name
    before, after = page.split('id="id_max_attempts"')
    attempts = before.rsplit('<div class="field', 1)[1] + after.split("</div>")[0]
    assert "has-error" in attempts and "greater than or equal to 1" in attempts
    # The pipeline's max attempts is one problem at its field, not one at every step.
    assert "Max attempts must be" not in section(page, "steps-0")


def test_a_value_the_form_cannot_read_is_marked_and_kept(client, ada):
    data = builder_data(
        {**EXTRACT, "response_schema": "{not json"},
        {"name": "two", "prompt": "x", "temperature": "warm"},
        action="check",
    )
    page = as_user(client, ada).post(URL, data).content.decode()
    assert "{not json</textarea>" in section(page, "steps-0")
    assert "Enter a number." in section(page, "steps-1")
    assert 'value="warm"' in section(page, "steps-1")
    assert 'id="builder-problems"' in page and 'id="pipeline-built"' not in page


def test_no_steps_at_all_is_said_so(client, ada):
    page = as_user(client, ada).post(URL, builder_data({}, {}, action="check")).content.decode()
    assert "The pipeline needs steps: a list of at least one step" in page


# --- Adding steps -----------------------------------------------------------------------
def test_the_add_button_offers_one_more_step_and_keeps_what_was_typed(client, ada):
    data = builder_data(EXTRACT, CHECK, name="kept-name", action="add-steps")
    page = as_user(client, ada).post(URL, data).content.decode()
    assert 'id="steps-2"' in page and 'id="steps-3"' not in page
    assert 'name="steps-TOTAL_FORMS" value="3"' in page
    assert 'value="kept-name"' in page and "Is this true? {{ item }}</textarea>" in page
    assert 'id="builder-problems"' not in page and "field-error" not in page  # not checked yet


def test_no_more_steps_than_a_pipeline_takes(client, ada):
    steps = [{"name": f"s{n}", "prompt": "x"} for n in range(pipelines.MAX_STEPS)]
    page = as_user(client, ada).post(URL, builder_data(*steps, action="add-steps")).content
    page = page.decode()
    assert f'id="steps-{pipelines.MAX_STEPS - 1}"' in page
    assert f'id="steps-{pipelines.MAX_STEPS}"' not in page
    assert ">Add a step</button>" not in page and f"At most {pipelines.MAX_STEPS}." in page


# --- The definition, downloaded and handed to the upload -------------------------------
def complete() -> dict:
    return builder_data(EXTRACT, CHECK, tier="standard", max_attempts="4", action="check")


def test_a_complete_definition_is_shown_with_its_steps_and_yaml_and_downloads(client, ada):
    page = as_user(client, ada).post(URL, complete()).content.decode()
    assert "The definition is complete: claims" in page and 'id="builder-problems"' not in page
    check = page.split('id="built-check"')[1].split("</tr>")[0]
    assert "gemini-2.5-pro" in check and "<code>extract</code>" in check
    assert "once per item of <code>steps.extract.json.claims</code>" in check
    assert "nothing: it starts at once" in page.split('id="built-extract"')[1].split("</tr>")[0]
    shown = html.unescape(page.split('<pre id="pipeline-yaml" class="definition-yaml">')[1])
    shown = shown.split("</pre>")[0]
    assert yaml.safe_load(shown)["steps"][1]["for_each"] == "steps.extract.json.claims"

    response = client.post(URL, {**complete(), "action": "download"})
    assert response["Content-Disposition"] == 'attachment; filename="pipeline.yaml"'
    assert response.content.decode() == shown


def continue_fields(page: str) -> dict[str, str]:
    """The hidden fields of the page's continue form, as the browser would post them."""
    form = page.split('id="pipeline-continue"')[1].split("</form>")[0]
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form)
        if name != "csrfmiddlewaretoken"
    }


def test_continuing_with_a_table_leads_to_the_pipeline_preview_and_creates_it(client, ada):
    page = as_user(client, ada).post(URL, complete()).content.decode()
    fields = continue_fields(page)
    assert fields["tier"] == "standard" and fields["max_attempts"] == "4"
    assert fields["model"] == "gemini-2.5-flash"
    assert yaml.safe_load(fields["pipeline_text"])["name"] == "claims"
    response = client.post("/runs/new/", {**fields, "file": SimpleUploadedFile("t.csv", TABLE)})
    assert response.status_code == 302, response.content.decode()
    preview = client.get(response["Location"]).content.decode()
    assert '<dd id="row-count">2</dd>' in preview and '<dd id="step-count">2</dd>' in preview
    assert "standard" in preview.split('id="estimate-extract"')[1].split("</tr>")[0]
    assert not Run.objects.exists()
    client.post(response["Location"])
    run = Run.objects.get()
    assert run.name == "claims" and run.pipeline["name"] == "claims"
    extract = run.jobs.filter(step="extract")
    assert extract.count() == 2 and {job.state for job in extract} == {State.QUEUED}
    assert {job.max_attempts for job in extract} == {4}
