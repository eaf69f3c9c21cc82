"""Submitting a prompt from the browser."""

from __future__ import annotations

import base64
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from jobs import gemini_shape
from jobs.models import Job, State

pytestmark = pytest.mark.django_db

FIELDS = {
    "prompt": "Summarise the flex tier",
    "model": "gemini-2.5-pro",
    "tier": "flex",
    "system_instruction": "Be brief.",
    "temperature": "0.4",
    "max_output_tokens": "256",
    "max_attempts": "5",
    "fallback_standard": "on",
}


def test_the_form_offers_flex_models_tiers_and_their_prices(signed_in):
    page = signed_in.get("/jobs/new/").content.decode()
    assert '<option value="gemini-2.5-flash" selected>' in page
    assert '<option value="gemini-3.1-pro-preview">' in page
    assert 'value="flex" id="id_tier_0" required checked' in page
    assert "Priority — up to twice the standard price" in page
    # gemini-2.5-flash: standard $0.30 / $2.50, flex half, priority twice.
    assert "$0.15 / $1.25" in page
    assert "$0.30 / $2.50" in page
    assert "$0.60 / $5.00" in page
    assert "twice as much for the same tokens" in page


def test_it_submits_one_queued_job_with_every_setting(signed_in, ada):
    response = signed_in.post("/jobs/new/", FIELDS)
    assert response.status_code == 302
    job = Job.objects.get()
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert (job.owner, job.state, job.input_text) == (ada, State.QUEUED, FIELDS["prompt"])
    assert (job.model, job.tier_requested, job.fallback_standard) == (
        "gemini-2.5-pro",
        "flex",
        True,
    )
    assert (job.system_instruction, job.temperature, job.max_output_tokens, job.max_attempts) == (
        "Be brief.",
        0.4,
        256,
        5,
    )


def test_the_new_job_opens_on_its_own_page_with_the_flash_there(signed_in):
    response = signed_in.post("/jobs/new/", FIELDS, follow=True)
    job = Job.objects.get()
    page = response.content.decode()
    assert response.context["job"] == job
    assert f"<strong>Done:</strong> Job {job.pk} submitted." in page
    # The page follows the job from here: the flash does not claim a state.
    assert "it is queued" not in page
    assert 'id="job-live"' in page


def test_the_new_job_is_in_the_list_at_once(signed_in):
    signed_in.post("/jobs/new/", FIELDS)
    job = Job.objects.get()
    response = signed_in.get("/jobs/")
    assert [row.pk for row in response.context["page"]] == [job.pk]


@override_settings(FLEX_MAX_ATTEMPTS=6)
def test_empty_optional_fields_take_the_defaults(signed_in):
    signed_in.post("/jobs/new/", {"prompt": "hi", "model": "gemini-2.5-flash", "tier": "flex"})
    job = Job.objects.get()
    assert (job.temperature, job.max_output_tokens, job.max_attempts) == (None, None, 6)
    assert job.fallback_standard is False


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt": "   "}, "The prompt is empty."),
        ({"temperature": "3"}, "Temperature must be between 0 and 2."),
        ({"temperature": "warm"}, "Enter a number."),
        ({"max_attempts": "0"}, "Max attempts must be between 1 and 50."),
        ({"max_output_tokens": "0"}, "Max output tokens must be between 1 and 1,000,000."),
        ({"model": "gpt-4o"}, "Select a valid choice."),
    ],
)
def test_errors_show_inline_and_keep_what_was_typed(signed_in, changes, message):
    response = signed_in.post("/jobs/new/", FIELDS | changes)
    page = response.content.decode()
    assert response.status_code == 200
    assert message in page
    assert "The job was not submitted." in page
    assert ">\nBe brief.</textarea>" in page
    if "max_output_tokens" not in changes:
        assert 'value="256"' in page
    assert 'name="fallback_standard" id="id_fallback_standard" checked' in page
    if "prompt" not in changes:
        assert ">\nSummarise the flex tier</textarea>" in page
    assert not Job.objects.exists()


@override_settings(FLEX_MAX_PROMPT_CHARS=20)
def test_a_prompt_over_the_limit_is_refused_with_the_limit(signed_in):
    response = signed_in.post("/jobs/new/", FIELDS | {"prompt": "x" * 21})
    assert "The prompt is 21 characters; the limit is 20" in response.content.decode()
    assert not Job.objects.exists()


def test_submitting_requires_the_csrf_token(ada):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ada)
    assert client.post("/jobs/new/", FIELDS).status_code == 403
    assert not Job.objects.exists()

    token = client.get("/jobs/new/").context["csrf_token"]
    response = client.post("/jobs/new/", FIELDS | {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    assert Job.objects.count() == 1


# --- The whole request: structured output, generation settings, attachments -----------
# A 1x1 PNG, and the start of a PDF: what the page reads is the content, not the name.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def upload(name: str, content: bytes, content_type: str = "application/octet-stream"):
    return SimpleUploadedFile(name, content, content_type=content_type)


def test_every_setting_reaches_the_request_exactly(signed_in):
    fields = FIELDS | {
        "output": "json",
        "json_schema": json.dumps(SCHEMA),
        "retry_bad_output": "on",
        "thinking_level": "high",
        "seed": "42",
        "stop_sequences": "END\n\n###\n",
        "top_p": "0.9",
        "top_k": "40",
        "attachments": [upload("map.png", PNG, "image/png"), upload("notes.pdf", PDF)],
    }
    response = signed_in.post("/jobs/new/", fields)
    assert response.status_code == 302, response.content.decode()
    job = Job.objects.get()
    assert job.gemini_request() == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Summarise the flex tier"},
                    {"inline_data": {"mime_type": "image/png", "data": base64_of(PNG)}},
                    {"inline_data": {"mime_type": "application/pdf", "data": base64_of(PDF)}},
                ],
            }
        ],
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "generation_config": {
            "temperature": 0.4,
            "max_output_tokens": 256,
            "top_p": 0.9,
            "top_k": 40,
            "seed": 42,
            "stop_sequences": ["END", "###"],
            "thinking_config": {"thinking_level": "high"},
            "response_mime_type": "application/json",
            "response_json_schema": SCHEMA,
        },
    }
    assert job.retry_bad_output is True
    # The columns the pages filter and sort on are read from it.
    assert (job.input_text, job.system_instruction, job.temperature, job.max_output_tokens) == (
        "Summarise the flex tier",
        "Be brief.",
        0.4,
        256,
    )


def base64_of(content: bytes) -> str:
    return base64.b64encode(content).decode()


def test_a_thinking_budget_and_json_without_a_schema_are_sent_as_chosen(signed_in):
    fields = FIELDS | {"output": "json", "thinking_budget": "0"}
    signed_in.post("/jobs/new/", fields)
    config = Job.objects.get().gemini_request()["generation_config"]
    assert config["thinking_config"] == {"thinking_budget": 0}
    assert config["response_mime_type"] == "application/json"
    assert "response_json_schema" not in config


def test_a_plain_prompt_is_kept_in_its_columns_alone(signed_in):
    signed_in.post("/jobs/new/", FIELDS)
    job = Job.objects.get()
    # Nothing beyond the columns: the request is rebuilt from them when sent.
    assert job.request is None
    assert job.gemini_request()["generation_config"] == {
        "temperature": 0.4,
        "max_output_tokens": 256,
    }


def test_an_image_may_go_without_text_and_its_type_comes_from_its_content(signed_in):
    fields = FIELDS | {"prompt": "", "attachments": [upload("scan.bin", PNG, "text/plain")]}
    assert signed_in.post("/jobs/new/", fields).status_code == 302
    (turn,) = Job.objects.get().gemini_request()["contents"]
    assert turn["parts"] == [{"inline_data": {"mime_type": "image/png", "data": base64_of(PNG)}}]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"output": "json", "json_schema": '{"type": "object",}'},
            "The schema is not JSON: Illegal trailing comma before end of object "
            "(line 1, column 18).",
        ),
        ({"output": "json", "json_schema": "[1, 2]"}, "A JSON Schema is an object"),
        (
            {"output": "json", "json_schema": '{"type": "strin"}'},
            "The schema at [&#x27;type&#x27;] is not a valid JSON Schema: &#x27;strin&#x27; is "
            "not valid under any of the given schemas.",
        ),
        (
            {"output": "text", "json_schema": json.dumps(SCHEMA)},
            "A schema needs the answer as JSON: choose JSON above, or clear the schema.",
        ),
        ({"retry_bad_output": "on"}, "Only a JSON answer can break a schema"),
        (
            {"thinking_level": "low", "thinking_budget": "512"},
            "Choose a thinking level or a thinking budget, not both.",
        ),
        (
            {"thinking_budget": "99999"},
            "The thinking budget must be a whole number from -1 to 32,768.",
        ),
        ({"thinking_level": "extreme"}, "Select a valid choice."),
        (
            {"stop_sequences": "a\nb\nc\nd\ne\nf"},
            "Gemini takes at most 5 stop sequences; there are 6.",
        ),
        ({"top_p": "1.5"}, "Top-p must be a number from 0 to 1."),
        ({"top_k": "0"}, "Top-k must be a whole number from 1 to 1,000."),
        ({"seed": str(2**31)}, "The seed must be a whole number from"),
        (
            {"attachments": [upload("cat.png", b"GIF89a not a png", "image/png")]},
            "cat.png is not a PNG, JPEG, WebP, HEIC or HEIF image or a PDF: its content is none "
            "of these, whatever its name says.",
        ),
        ({"attachments": [upload("empty.png", b"", "image/png")]}, "empty.png is empty."),
    ],
)
def test_a_bad_request_setting_is_refused_on_its_field_and_nothing_is_created(
    signed_in, changes, message
):
    response = signed_in.post("/jobs/new/", FIELDS | changes)
    page = response.content.decode()
    assert response.status_code == 200
    assert "The job was not submitted." in page
    assert message in page
    assert ">\nSummarise the flex tier</textarea>" in page
    assert not Job.objects.exists()


def test_attachments_over_geminis_inline_limit_are_refused_with_the_way_round(
    signed_in, monkeypatch
):
    monkeypatch.setattr(gemini_shape, "MAX_INLINE_BYTES", 2 * 1_048_576)
    big = PNG + b"\0" * 1_300_000
    fields = FIELDS | {"attachments": [upload("a.png", big), upload("b.png", big)]}
    page = signed_in.post("/jobs/new/", fields).content.decode()
    assert (
        "The attachments come to 2.5 MB; Gemini takes at most 2 MB inline in one request. "
        "Larger media must come as file_data URIs, e.g. via the API."
    ) in page
    assert not Job.objects.exists()


def test_an_empty_prompt_without_attachments_is_still_the_prompts_problem(signed_in):
    page = signed_in.post("/jobs/new/", FIELDS | {"prompt": "", "top_k": "3"}).content.decode()
    assert "The prompt is empty." in page
    assert not Job.objects.exists()


def test_the_settings_sections_open_when_they_hold_something(signed_in):
    closed = signed_in.get("/jobs/new/").content.decode()
    assert '<details class="advanced">\n    <summary>Answer as JSON, with a schema' in closed
    assert '<details class="advanced">\n    <summary>More generation settings' in closed
    page = signed_in.post("/jobs/new/", FIELDS | {"top_k": "0", "output": "json"}).content.decode()
    assert '<details class="advanced" open>\n    <summary>Answer as JSON, with a schema' in page
    assert '<details class="advanced" open>\n    <summary>More generation settings' in page
    assert 'enctype="multipart/form-data"' in page


def test_a_refused_form_asks_for_its_files_again(signed_in):
    fields = FIELDS | {"top_k": "0", "attachments": [upload("map.png", PNG)]}
    page = signed_in.post("/jobs/new/", fields).content.decode()
    assert "Choose the files again: a browser does not keep them when a form comes back." in page
    assert "Choose the files again" not in signed_in.get("/jobs/new/").content.decode()
