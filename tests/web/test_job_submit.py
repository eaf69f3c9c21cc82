"""Submitting a prompt from the browser."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

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
