"""The eval builder (runs/new/eval/): an eval definition made field by field,
checked by eval_check as the upload checks a file, its problems shown at their
rows with nothing typed lost, rows added by a button, its YAML read back by
eval_read to the same definition, and handed to the upload page as `eval_text`
for the usual preview."""

from __future__ import annotations

import html
import re

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import QueryDict

from jobs.models import Run
from jobs.runs import eval_definitions
from jobs.runs.builders import builder_spec
from jobs.runs.eval_builder import EvalBuilder
from tests.support import as_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_in_tmp")]

URL = "/runs/new/eval/"
TABLE = b"id,question,reference\nq1,2+2?,4\nq2,Capital of France?,Paris\n"


def builder_data(*, candidates=(), checks=(), judges=(), pairs=(), **top) -> dict[str, str]:
    """What the page posts: the eval's fields and each section's rows (dicts of
    their fields), with the management forms, as a browser sends them."""
    data = {"name": "qa", "prompt": "{{ row.question }}", **top}
    for prefix, rows in (
        ("candidates", candidates),
        ("checks", checks),
        ("judges", judges),
        ("pairs", pairs),
    ):
        data[f"{prefix}-TOTAL_FORMS"] = str(len(rows))
        data[f"{prefix}-INITIAL_FORMS"] = "0"
        for index, row in enumerate(rows):
            if prefix == "judges":
                row = {"score_min": "1", "score_max": "10", **row}
            for field, value in row.items():
                data[f"{prefix}-{index}-{field}"] = value
    return data


TWO = ({"model": "gemini-2.5-flash"}, {"model": "gemini-2.5-flash-lite", "name": "lite"})


def built(data: dict):
    result = EvalBuilder(data).build(spec=builder_spec())
    assert result is not None
    return result


def check_of(**fields) -> dict:
    return built(builder_data(candidates=TWO, checks=[{"name": "c", **fields}])).mapping["graders"][
        0
    ]["check"]


def section(page: str, row_id: str) -> str:
    """The page's fieldset of one row (e.g. judges-0)."""
    return page.split(f'id="{row_id}"')[1].split("</fieldset>")[0]


def test_it_offers_empty_rows_and_is_linked_from_the_upload_page(client, ada):
    upload = as_user(client, ada).get("/runs/new/").content.decode()
    assert 'href="/runs/new/eval/"' in upload and "Or build one here" in upload
    page = client.get(URL).content.decode()
    assert "Build an eval" in page
    assert 'id="candidates-0"' in page and 'id="candidates-1"' in page
    assert 'id="candidates-2"' not in page
    assert 'id="checks-0"' in page and 'id="judges-0"' in page and 'id="pairs-0"' not in page
    for label in ("Add a candidate", "Add a check", "Add a judge", "Add a pairwise comparison"):
        assert f">{label}</button>" in page
    assert "<script>" not in page  # the pages run under a Content-Security-Policy


def test_it_needs_a_login(client):
    assert client.get(URL)["Location"].startswith("/accounts/login/")


# --- The mapping ----------------------------------------------------------------------
def test_each_check_type_takes_only_its_own_fields():
    typed = {
        "expected": "{{ row.reference }}",
        "value": "Paris",
        "pattern": r"\d+",
        "path": "answer.value",
        "tolerance": "0.5",
        "schema": '{"type": "object"}',
    }
    assert check_of(check_type="equals", **typed) == {
        "type": "equals",
        "expected": "{{ row.reference }}",
    }
    assert check_of(check_type="contains", **typed) == {"type": "contains", "value": "Paris"}
    assert check_of(check_type="regex", **typed) == {"type": "regex", "pattern": r"\d+"}
    assert check_of(check_type="json_path", **typed) == {
        "type": "json_path",
        "path": "answer.value",
        "expected": "{{ row.reference }}",
    }
    assert check_of(check_type="json_schema", **typed) == {
        "type": "json_schema",
        "schema": {"type": "object"},
    }


def test_a_numeric_check_writes_its_expected_value_as_a_number_when_it_is_one():
    assert check_of(check_type="numeric", expected="42", tolerance="0.5") == {
        "type": "numeric",
        "expected": 42,
        "tolerance": 0.5,
    }
    assert check_of(check_type="numeric", expected="{{ row.reference }}") == {
        "type": "numeric",
        "expected": "{{ row.reference }}",
    }


def test_normalize_checkboxes_become_the_checks_normalize_list():
    data = builder_data(
        candidates=TWO,
        checks=[{"name": "exact", "check_type": "equals", "expected": "{{ row.reference }}"}],
    )
    data["checks-0-normalize"] = ["lower", "strip"]
    posted = QueryDict(mutable=True)
    for key, value in data.items():
        posted.setlist(key, value if isinstance(value, list) else [value])
    check = built(posted).mapping["graders"][0]["check"]
    assert check == {
        "type": "equals",
        "expected": "{{ row.reference }}",
        "normalize": ["lower", "strip"],
    }


def test_candidates_carry_their_model_name_temperature_and_thinking_level():
    result = built(
        builder_data(
            candidates=[
                {"model": "gemini-2.5-flash", "temperature": "0.2"},
                {"model": "gemini-3-flash-preview", "name": "thinker", "thinking_level": "low"},
            ],
            checks=[{"name": "exact", "check_type": "equals", "expected": "x"}],
            system_instruction="Answer briefly.",
            seed="7",
        )
    )
    assert result.mapping["candidates"] == [
        {"model": "gemini-2.5-flash", "temperature": 0.2},
        {
            "model": "gemini-3-flash-preview",
            "name": "thinker",
            "generation_config": {"thinking_level": "low"},
        },
    ]
    assert result.mapping["seed"] == 7 and result.mapping["system_instruction"] == "Answer briefly."
    steps = {step.name: step for step in result.compiled.pipeline.steps}
    thinking = steps["answer_thinker"].request["generation_config"]["thinking_config"]
    assert thinking == {"thinking_level": "low"}
    assert steps["answer_gemini_2_5_flash"].request["generation_config"]["temperature"] == 0.2


def test_a_judge_with_a_scale_asks_for_a_score_in_that_range_and_a_reason():
    result = built(
        builder_data(
            candidates=TWO,
            judges=[
                {
                    "name": "judge",
                    "model": "gemini-2.5-pro",
                    "prompt": "Grade {{ answer }}",
                    "score_min": "1",
                    "score_max": "5",
                }
            ],
        )
    )
    assert result.mapping["graders"] == [
        {
            "name": "judge",
            "model": "gemini-2.5-pro",
            "prompt": "Grade {{ answer }}",
            "response_schema": {
                "type": "object",
                "properties": {
                    "score": {"type": "integer", "minimum": 1, "maximum": 5},
                    "reason": {"type": "string"},
                },
                "required": ["score", "reason"],
            },
        }
    ]
    grader = result.compiled.evaluation["graders"][0]
    assert grader["scale"] == [1, 5] and set(grader["steps"]) == {"gemini_2_5_flash", "lite"}


def test_a_pairwise_grader_compares_two_candidates_by_name_or_model():
    result = built(
        builder_data(
            candidates=TWO,
            pairs=[
                {
                    "name": "versus",
                    "first": "gemini-2.5-flash",
                    "second": "lite",
                    "model": "gemini-2.5-pro",
                    "prompt": "A: {{ a }} B: {{ b }}",
                }
            ],
        )
    )
    assert result.mapping["graders"] == [
        {
            "name": "versus",
            "compare": ["gemini-2.5-flash", "lite"],
            "model": "gemini-2.5-pro",
            "prompt": "A: {{ a }} B: {{ b }}",
        }
    ]
    grader = result.compiled.evaluation["graders"][0]
    assert grader["compare"] == ["gemini_2_5_flash", "lite"]


def test_rows_left_as_offered_are_no_part_of_the_eval():
    data = builder_data(
        candidates=[*TWO, {}],
        checks=[{"name": "exact", "check_type": "equals", "expected": "x"}, {}],
        judges=[{}],  # its offered scale, 1 to 10, untouched
    )
    result = built(data)
    assert len(result.mapping["candidates"]) == 2
    assert [g["name"] for g in result.mapping["graders"]] == ["exact"]


def test_the_yaml_reads_back_to_the_same_definition():
    data = builder_data(
        candidates=[
            *TWO,
            {"model": "gemini-3-flash-preview", "thinking_level": "high", "temperature": "1"},
        ],
        checks=[
            {"name": "exact", "check_type": "equals", "expected": "{{ row.reference }}"},
            {"name": "close", "check_type": "numeric", "expected": "4", "tolerance": "0.5"},
            {
                "name": "shape",
                "check_type": "json_schema",
                "schema": '{"type": "object", "properties": {"a": {"type": "string"}}}',
            },
        ],
        judges=[
            {
                "name": "judge",
                "model": "gemini-2.5-pro",
                "score_min": "0",
                "score_max": "3",
                "prompt": "Question: {{ row.question }}\nAnswer: {{ answer }}\nGrade: 'strict'",
            }
        ],
        pairs=[
            {
                "name": "duel",
                "first": "gemini-2.5-flash",
                "second": "lite",
                "model": "gemini-2.5-pro",
                "prompt": "A: {{ a }}\nB: {{ b }}",
            }
        ],
        seed="11",
        system_instruction="Be brief.\nNo preamble.",
    )
    result = built(data)
    assert yaml.safe_load(result.text) == result.mapping
    again = eval_definitions.eval_read(result.text, spec=builder_spec())
    assert again.evaluation == result.compiled.evaluation
    assert again.pipeline.to_json() == result.compiled.pipeline.to_json()
    # A browser posts the YAML back with CRLF line ends: still the same definition.
    crlf = eval_definitions.eval_read(result.text.replace("\n", "\r\n"), spec=builder_spec())
    assert crlf.pipeline.to_json() == result.compiled.pipeline.to_json()


# --- The page: problems at their rows, nothing lost -------------------------------------
def test_problems_are_shown_at_their_rows_with_what_was_typed(client, ada):
    data = builder_data(
        candidates=TWO,
        checks=[{"name": "digits", "check_type": "regex", "pattern": "([0-9]+"}],
        judges=[{"name": "judge", "model": "gemini-2.5-pro", "prompt": ""}],
        pairs=[
            {
                "name": "duel",
                "first": "lite",
                "second": "nobody",
                "model": "gemini-2.5-pro",
                "prompt": "A: {{ a }} B: {{ b }}",
            }
        ],
        action="check",
    )
    page = as_user(client, ada).post(URL, data).content.decode()
    problems = page.split('id="builder-problems"')[1].split("</div>")[0]
    assert "3 problems" in problems
    regex = section(page, "checks-0")
    assert "Grader digits: check.pattern is not a regular expression" in regex
    assert 'value="([0-9]+"' in regex and "row-problem" in page.split('id="checks-0"')[0][-80:]
    judge = section(page, "judges-0")
    assert "Grader judge: a judge needs a prompt" in judge
    assert '<option value="gemini-2.5-pro" selected>' in judge
    duel = section(page, "pairs-0")
    assert "Grader duel: compare: &#x27;nobody&#x27; names no candidate" in duel
    assert 'value="nobody"' in duel and 'value="lite"' in duel
    assert "{{ row.question }}</textarea>" in page  # the eval's prompt, kept too
    assert 'id="eval-built"' not in page and not Run.objects.exists()


def test_a_problem_names_the_row_as_the_page_numbers_it(client, ada):
    # The first candidate row is left as offered: eval_check's "candidate 1" is the page's 2nd.
    data = builder_data(
        candidates=[{}, {"name": "no model"}, TWO[0]],
        action="check",
        checks=[{"check_type": "equals", "expected": "x"}],
    )
    page = as_user(client, ada).post(URL, data).content.decode()
    assert "Candidate 2: a candidate is a mapping with a model" in section(page, "candidates-1")
    assert "Check 1: name is required" in section(page, "checks-0")


def test_the_eval_fields_own_problems_are_shown_at_them(client, ada):
    data = builder_data(
        candidates=TWO,
        name="",
        prompt="",
        action="check",
        checks=[{"name": "exact", "check_type": "equals", "expected": "x"}],
    )
    page = as_user(client, ada).post(URL, data).content.decode()
    before, after = page.split('id="id_name"')
    name = before.rsplit('<div class="field', 1)[1] + after.split("</div>")[0]
    assert "has-error" in name and "Name is required (a short text)" in name
    assert "Prompt is required (a template over row)" in page


def test_a_value_the_form_cannot_read_is_marked_and_kept(client, ada):
    data = builder_data(
        candidates=[{"model": "gemini-2.5-flash", "temperature": "warm"}, TWO[1]],
        checks=[{"name": "shape", "check_type": "json_schema", "schema": "{not json"}],
        action="check",
    )
    page = as_user(client, ada).post(URL, data).content.decode()
    assert "Enter a number." in section(page, "candidates-0")
    assert 'value="warm"' in section(page, "candidates-0")
    assert "{not json</textarea>" in section(page, "checks-0")
    assert 'id="builder-problems"' in page and 'id="eval-built"' not in page


# --- Adding rows ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("prefix", "before"), [("candidates", 2), ("checks", 1), ("judges", 1), ("pairs", 0)]
)
def test_the_add_buttons_offer_one_more_row_and_keep_what_was_typed(client, ada, prefix, before):
    rows = {
        "candidates": [*TWO],
        "checks": [{"name": "exact"}],
        "judges": [{"name": "j"}],
        "pairs": [],
    }
    data = builder_data(**rows, name="kept-name", action=f"add-{prefix}")
    page = as_user(client, ada).post(URL, data).content.decode()
    assert f'id="{prefix}-{before}"' in page and f'id="{prefix}-{before + 1}"' not in page
    assert f'name="{prefix}-TOTAL_FORMS" value="{before + 1}"' in page
    assert 'value="kept-name"' in page and 'value="lite"' in page
    assert 'id="builder-problems"' not in page and "field-error" not in page  # not checked yet


def test_an_added_row_left_as_offered_is_left_out(client, ada):
    data = builder_data(
        candidates=TWO,
        checks=[{"name": "exact", "check_type": "equals", "expected": "x"}],
        action="add-judges",
    )
    page = as_user(client, ada).post(URL, data).content.decode()
    assert 'name="judges-0-score_min" value="1"' in page  # the offered scale, as at first
    posted = dict(re.findall(r'name="(judges-0-score_m(?:in|ax))" value="(\d+)"', page))
    result = built({**data, **posted, "judges-TOTAL_FORMS": "1"})
    assert [g["name"] for g in result.mapping["graders"]] == ["exact"]


def test_no_more_rows_than_an_eval_takes(client, ada):
    candidates = [{"model": "gemini-2.5-flash", "name": f"c{n}"} for n in range(8)]
    page = (
        as_user(client, ada)
        .post(URL, builder_data(candidates=candidates, action="add-candidates"))
        .content.decode()
    )
    assert 'id="candidates-7"' in page and 'id="candidates-8"' not in page
    assert ">Add a candidate</button>" not in page and "At most 8." in page


# --- The definition, downloaded and handed to the upload -------------------------------
def complete() -> dict:
    return builder_data(
        candidates=TWO,
        checks=[{"name": "exact", "check_type": "equals", "expected": "{{ row.reference }}"}],
        judges=[{"name": "judge", "model": "gemini-2.5-pro", "prompt": "Grade {{ answer }}"}],
        action="check",
    )


def test_a_complete_definition_is_shown_as_yaml_with_its_download(client, ada):
    page = as_user(client, ada).post(URL, complete()).content.decode()
    assert "The definition is complete: qa" in page and 'id="builder-problems"' not in page
    shown = page.split('<pre id="eval-yaml" class="definition-yaml">')[1].split("</pre>")[0]
    shown = html.unescape(shown)
    assert yaml.safe_load(shown)["candidates"][1] == {
        "model": "gemini-2.5-flash-lite",
        "name": "lite",
    }
    assert 'value="download" class="secondary">Download eval.yaml</button>' in page

    response = client.post(URL, {**complete(), "action": "download"})
    assert response["Content-Disposition"] == 'attachment; filename="eval.yaml"'
    assert response.content.decode() == shown


def continue_fields(page: str) -> dict[str, str]:
    """The hidden fields of the page's continue form, as the browser would post them."""
    form = page.split('id="eval-continue"')[1].split("</form>")[0]
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form)
        if name != "csrfmiddlewaretoken"
    }


def test_continuing_with_a_table_leads_to_the_eval_preview(client, ada):
    page = as_user(client, ada).post(URL, complete()).content.decode()
    fields = continue_fields(page)
    assert fields["tier"] == "flex" and yaml.safe_load(fields["eval_text"])["name"] == "qa"
    assert 'action="/runs/new/"' in page.split('id="eval-continue"')[0][-200:]
    response = client.post("/runs/new/", {**fields, "file": SimpleUploadedFile("qa.csv", TABLE)})
    assert response.status_code == 302, response.content.decode()
    preview = client.get(response["Location"]).content.decode()
    assert "Preview the eval" in preview and "The eval: qa" in preview
    assert 'id="candidate-lite"' in preview and 'id="grader-judge"' in preview
    assert "Create the eval: 2 rows, 2 candidates, 2 graders" in preview
    assert not Run.objects.exists()
