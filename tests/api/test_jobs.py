"""The JSON API: tokens, isolation, every action's effect on stored state."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from jobs.engine import actions, tokens
from jobs.models import Attempt, ErrorKind, Job, Outcome, State
from tests.support import MODEL, api_client, make_job, post_json, submit

pytestmark = pytest.mark.django_db


# --- Tokens ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer fd_not-a-real-token", "Token fd_x", "Basic YWxpY2U6cHc="],
)
def test_it_refuses_requests_without_a_valid_token(ada, header):
    submit(ada, "secret plans")
    client = Client(headers={"Authorization": header} if header else {})
    response = client.get("/api/jobs")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]
    assert "secret plans" not in response.content.decode()


def test_it_refuses_a_revoked_token(ada):
    row, token = tokens.api_token_create(user=ada, name="old script")
    tokens.api_token_revoke(token=row)
    response = Client(headers={"Authorization": f"Bearer {token}"}).get("/api/jobs")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_it_refuses_the_token_of_a_deactivated_user(ada):
    _, token = tokens.api_token_create(user=ada, name="script")
    ada.is_active = False
    ada.save()
    response = Client(headers={"Authorization": f"Bearer {token}"}).get("/api/jobs")
    assert response.status_code == 401


def test_it_ignores_the_session_login(ada):
    client = Client()
    client.force_login(ada)
    assert client.get("/api/jobs").status_code == 401


def test_it_records_when_a_token_was_last_used(ada):
    row, token = tokens.api_token_create(user=ada, name="script")
    assert row.last_used_at is None
    Client(headers={"Authorization": f"Bearer {token}"}).get("/api/jobs")
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_it_writes_last_used_at_most_once_a_minute(ada):
    row, token = tokens.api_token_create(user=ada, name="script")
    client = Client(headers={"Authorization": f"Bearer {token}"})
    client.get("/api/jobs")
    row.refresh_from_db()
    first = row.last_used_at
    client.get("/api/jobs")
    row.refresh_from_db()
    assert row.last_used_at == first


def test_it_needs_no_csrf_token_for_scripts(ada):
    _, token = tokens.api_token_create(user=ada, name="script")
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {token}"})
    response = post_json(client, "/api/jobs", {"prompt": "hi", "model": MODEL})
    assert response.status_code == 201


def test_the_openapi_document_needs_a_login_or_a_token(ada, as_ada):
    assert Client().get("/api/openapi.json").status_code == 401
    assert as_ada.get("/api/openapi.json").status_code == 200
    browser = Client()
    browser.force_login(ada)
    document = browser.get("/api/openapi.json").json()
    assert set(document["paths"]) == {
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/cancel",
        "/api/jobs/{job_id}/retry",
        "/api/batches",
        "/api/batches/{batch_id}",
        "/api/batches/{batch_id}/results",
        "/api/batches/{batch_id}/results.csv",
        "/api/batches/{batch_id}/unfinished",
        "/api/batches/{batch_id}/jobs",
        "/api/capacity",
        "/api/evals/{eval_id}",
    }


# --- Creating ----------------------------------------------------------------------
def test_it_creates_a_queued_job_with_every_setting(ada, as_ada):
    response = post_json(
        as_ada,
        "/api/jobs",
        {
            "prompt": "Summarise the flex tier.",
            "model": "gemini-2.5-pro",
            "tier": "standard",
            "max_attempts": 3,
            "fallback_standard": True,
            "system_instruction": "Be brief.",
            "temperature": 0.5,
            "max_output_tokens": 256,
        },
    )
    assert response.status_code == 201
    [created] = response.json()["jobs"]
    job = Job.objects.get(pk=created["id"])
    assert job.owner == ada
    assert job.state == State.QUEUED
    assert job.input_text == "Summarise the flex tier."
    assert (job.model, job.tier_requested, job.max_attempts) == ("gemini-2.5-pro", "standard", 3)
    assert job.fallback_standard
    assert job.system_instruction == "Be brief."
    assert (job.temperature, job.max_output_tokens) == (0.5, 256)
    assert created["status"] == "queued"
    assert created["prompt"] == "Summarise the flex tier."
    assert created["owner"] == "ada"


def test_it_creates_one_job_per_prompt(ada, as_ada):
    response = post_json(as_ada, "/api/jobs", {"prompts": ["one", "two", "three"]})
    assert response.status_code == 201
    assert len(response.json()["jobs"]) == 3
    assert sorted(Job.objects.filter(owner=ada).values_list("input_text", flat=True)) == [
        "one",
        "three",
        "two",
    ]


def test_it_uses_the_default_model_and_attempts(as_ada, settings):
    settings.FLEX_MAX_ATTEMPTS = 6
    [created] = post_json(as_ada, "/api/jobs", {"prompt": "hi"}).json()["jobs"]
    assert (created["model"], created["tier_requested"], created["max_attempts"]) == (
        "gemini-2.5-flash",
        "flex",
        6,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({}, "prompt"),
        ({"prompts": []}, "prompt"),
        ({"prompt": "a", "prompts": ["b"]}, "prompt"),
        ({"prompts": ["fine", ""]}, "prompt"),
        ({"prompt": "hi", "model": "gpt-4o"}, "model"),
        ({"prompt": "hi", "tier": "turbo"}, "tier"),
        ({"prompt": "hi", "max_attempts": 0}, "max_attempts"),
        ({"prompt": "hi", "max_attempts": 51}, "max_attempts"),
        ({"prompt": "hi", "max_attempts": "many"}, "max_attempts"),
        ({"prompt": "hi", "temperature": 2.5}, "temperature"),
        ({"prompt": "hi", "temperature": "warm"}, "temperature"),
        ({"prompt": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"prompt": 42}, "prompt"),
        ({"prompts": "one"}, "prompts"),
        ({"prompts": [1, 2]}, "prompts.0"),
        ({"prompt": "hi", "fallback_standard": "sometimes"}, "fallback_standard"),
        ({"prompt": "hi", "system_instruction": "nul \x00 here"}, "system_instruction"),
        ({"prompt": "hi", "model": None}, "model"),
        ({"promt": "typo"}, "promt"),
        (["a list"], "body"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_creates_nothing(as_ada, body, field):
    response = post_json(as_ada, "/api/jobs", body)
    assert response.status_code == 422, response.content
    answer = response.json()
    assert field in answer["errors"], answer
    assert field in answer["detail"]
    assert not Job.objects.exists()


def test_a_body_that_is_not_json_is_refused(as_ada):
    response = as_ada.post("/api/jobs", "{not json", content_type="application/json")
    assert 400 <= response.status_code < 500
    assert not Job.objects.exists()


@override_settings(FLEX_MAX_PROMPT_CHARS=100)
def test_a_prompt_over_the_size_limit_says_what_the_limit_is(as_ada):
    response = post_json(as_ada, "/api/jobs", {"prompt": "x" * 101})
    assert response.status_code == 422
    [message] = response.json()["errors"]["prompt"]
    assert "101 characters" in message
    assert "limit is 100" in message


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_over_the_upload_limit_is_a_413(as_ada):
    response = post_json(as_ada, "/api/jobs", {"prompt": "x" * 2000})
    assert response.status_code == 413
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]
    assert not Job.objects.exists()


def test_an_image_near_geminis_20_mb_inline_limit_fits_in_the_body(as_ada):
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * (19 * 1024 * 1024)).decode()
    request = {
        "contents": [
            {
                "parts": [
                    {"text": "What is it?"},
                    {"inlineData": {"mimeType": "image/png", "data": image}},
                ]
            }
        ]
    }
    response = post_json(as_ada, "/api/jobs", {"model": MODEL, "request": request})
    assert response.status_code == 201, response.content[:300]
    (job,) = Job.objects.all()
    assert job.gemini_request()["contents"][0]["parts"][1]["inline_data"]["data"] == image


# --- Reading ---------------------------------------------------------------------
def test_the_list_is_newest_first_with_a_total(ada, as_ada):
    jobs = [submit(ada, f"prompt {n}")[0] for n in range(5)]
    answer = as_ada.get("/api/jobs", {"limit": 2, "offset": 1}).json()
    assert answer["total"] == 5
    assert (answer["limit"], answer["offset"]) == (2, 1)
    assert [item["id"] for item in answer["items"]] == [jobs[3].pk, jobs[2].pk]


def test_the_list_filters_by_state_model_and_prompt_text(ada, as_ada):
    [cancelled] = submit(ada, "about otters")
    actions.job_cancel(job=cancelled)
    [pro] = submit(ada, "about owls", model="gemini-2.5-pro")
    [plain] = submit(ada, "About OTTERS again")

    def ids(**query):
        return {item["id"] for item in as_ada.get("/api/jobs", query).json()["items"]}

    assert ids(state="cancelled") == {cancelled.pk}
    assert ids(model="gemini-2.5-pro") == {pro.pk}
    assert ids(q="otters") == {cancelled.pk, plain.pk}
    assert ids(q="otters", state="queued") == {plain.pk}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"state": "sleeping"}, "state"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"q": "nul \x00"}, "q"),
    ],
)
def test_bad_filters_are_a_422_naming_the_field(as_ada, query, field):
    response = as_ada.get("/api/jobs", query)
    assert response.status_code == 422
    assert field in response.json()["errors"]


def test_the_detail_has_the_job_and_its_attempts(ada, as_ada):
    [job] = submit(ada, "hello")
    started = timezone.now()
    Attempt.objects.create(
        job=job,
        number=1,
        started_at=started,
        finished_at=started,
        latency_seconds=1.5,
        tier_requested="flex",
        http_status=503,
        google_status="UNAVAILABLE",
        retry_after_seconds=7.0,
        error_kind=ErrorKind.CAPACITY,
        error_message="The model is overloaded.",
        outcome=Outcome.WILL_RETRY,
    )
    Job.objects.filter(pk=job.pk).update(
        state=State.SUCCEEDED, attempts=2, http_503=1, result_text="Hi!", cost_usd="0.00001250"
    )
    answer = as_ada.get(f"/api/jobs/{job.pk}").json()
    assert answer["status"] == "succeeded"
    assert answer["output_text"] == "Hi!"
    assert answer["cost_usd"] == "0.00001250"
    assert (answer["attempts"], answer["http_503"]) == (2, 1)
    [attempt] = answer["attempt_log"]
    assert attempt["http_status"] == 503
    assert attempt["google_status"] == "UNAVAILABLE"
    assert attempt["retry_after_seconds"] == 7.0
    assert attempt["error_kind"] == "capacity"
    assert attempt["outcome"] == "will_retry"


def test_a_job_that_does_not_exist_is_a_404(as_ada):
    response = as_ada.get("/api/jobs/999999")
    assert response.status_code == 404
    assert response.json()["detail"] == "No job 999999."


@pytest.mark.parametrize("job_id", ["0", "abc", "99999999999999999999999"])
def test_an_impossible_job_id_is_a_4xx(as_ada, job_id):
    assert 400 <= as_ada.get(f"/api/jobs/{job_id}").status_code < 500


# --- Acting ---------------------------------------------------------------------
def test_cancel_cancels_a_queued_job(ada, as_ada):
    [job] = submit(ada, "hello")
    response = as_ada.post(f"/api/jobs/{job.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    job.refresh_from_db()
    assert job.state == State.CANCELLED
    assert job.finished_at is not None


def test_cancel_of_a_finished_job_is_a_409_and_changes_nothing(ada, as_ada):
    [job] = submit(ada, "hello")
    Job.objects.filter(pk=job.pk).update(state=State.SUCCEEDED)
    response = as_ada.post(f"/api/jobs/{job.pk}/cancel")
    assert response.status_code == 409
    assert "only queued or retrying" in response.json()["detail"]
    job.refresh_from_db()
    assert job.state == State.SUCCEEDED


def test_retry_requeues_a_failed_job_with_its_attempts_again(ada, as_ada):
    [job] = submit(ada, "hello", max_attempts=2)
    Job.objects.filter(pk=job.pk).update(state=State.FAILED, attempts=2, next_attempt_at=None)
    response = as_ada.post(f"/api/jobs/{job.pk}/retry")
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.state == State.QUEUED
    assert job.max_attempts == 2 + 2
    assert job.next_attempt_at <= timezone.now()


def test_retry_of_a_queued_job_is_a_409(ada, as_ada):
    [job] = submit(ada, "hello")
    response = as_ada.post(f"/api/jobs/{job.pk}/retry")
    assert response.status_code == 409
    assert "only failed or retrying" in response.json()["detail"]


def test_actions_need_post(ada, as_ada):
    [job] = submit(ada, "hello")
    assert as_ada.get(f"/api/jobs/{job.pk}/cancel").status_code == 405
    job.refresh_from_db()
    assert job.state == State.QUEUED


# --- Isolation -------------------------------------------------------------------
def test_another_researchers_job_is_a_404_everywhere(ada, as_bob):
    [job] = submit(ada, "ada's secret")
    Job.objects.filter(pk=job.pk).update(state=State.RETRYING)
    for response in (
        as_bob.get(f"/api/jobs/{job.pk}"),
        as_bob.post(f"/api/jobs/{job.pk}/cancel"),
        as_bob.post(f"/api/jobs/{job.pk}/retry"),
    ):
        assert response.status_code == 404
        assert response.json()["detail"] == f"No job {job.pk}."
    job.refresh_from_db()
    assert job.state == State.RETRYING
    listing = as_bob.get("/api/jobs").json()
    assert listing["total"] == 0
    assert as_bob.get("/api/jobs", {"user": "ada"}).json()["total"] == 0
    assert "ada's secret" not in as_bob.get("/api/jobs", {"q": "secret"}).content.decode()


def test_staff_see_and_act_on_everyones_jobs_and_filter_by_user(ada, bob, staff):
    [adas] = submit(ada, "from ada")
    [bobs] = submit(bob, "from bob")
    as_staff = api_client(staff)
    assert as_staff.get("/api/jobs").json()["total"] == 2
    answer = as_staff.get("/api/jobs", {"user": "bob"}).json()
    assert [(item["id"], item["owner"]) for item in answer["items"]] == [(bobs.pk, "bob")]
    assert as_staff.get(f"/api/jobs/{adas.pk}").status_code == 200
    assert as_staff.post(f"/api/jobs/{adas.pk}/cancel").status_code == 200
    adas.refresh_from_db()
    assert adas.state == State.CANCELLED


# --- Secrets ----------------------------------------------------------------------
def test_no_answer_contains_the_gemini_key(ada, as_ada, settings):
    marker = "AIza-test-marker-key-0123456789"
    settings.GEMINI_API_KEY = marker
    [job] = submit(ada, "hello")
    Job.objects.filter(pk=job.pk).update(
        state=State.FAILED, last_error=f"HTTP 400: API key {marker} not valid"
    )
    Attempt.objects.create(
        job=job,
        number=1,
        tier_requested="flex",
        error_message=f"API key {marker} not valid",
        outcome=Outcome.FAILED,
    )
    answers = [
        as_ada.get("/api/openapi.json"),
        as_ada.get("/api/jobs"),
        as_ada.get(f"/api/jobs/{job.pk}"),
        as_ada.post(f"/api/jobs/{job.pk}/cancel"),
        as_ada.post(f"/api/jobs/{job.pk}/retry"),
        post_json(as_ada, "/api/jobs", {"prompt": "hi"}),
        post_json(as_ada, "/api/jobs", {"prompt": ""}),
        Client().get("/api/jobs"),
    ]
    assert {response.status_code for response in answers} == {200, 201, 401, 409, 422}
    for response in answers:
        assert marker not in response.content.decode()


def test_a_job_says_its_state_and_still_its_status(ada, as_ada):
    job = make_job(ada, State.FAILED)
    answer = as_ada.get(f"/api/jobs/{job.pk}").json()
    assert answer["state"] == answer["status"] == "failed"
    listed = as_ada.get("/api/jobs?state=failed").json()["items"]
    assert [(item["id"], item["state"], item["status"]) for item in listed] == [
        (job.pk, "failed", "failed")
    ]


def test_the_document_marks_status_deprecated(as_ada):
    schemas = as_ada.get("/api/openapi.json").json()["components"]["schemas"]
    properties = schemas["JobOut"]["properties"]
    assert "state" in schemas["JobOut"]["required"]
    assert properties["status"]["deprecated"] is True
    assert "state" in properties["status"]["description"]


def test_a_free_answer_costs_a_plain_zero(as_ada, ada):
    (job,) = submit(ada, "Say nothing")
    Job.objects.filter(pk=job.pk).update(
        state=State.SUCCEEDED, cost_usd=Decimal(0), standard_cost_usd=Decimal("0E-8")
    )
    answer = as_ada.get(f"/api/jobs/{job.pk}").json()
    assert (answer["cost_usd"], answer["standard_cost_usd"]) == ("0.00000000", "0.00000000")


# --- Whole requests in Gemini's shape -----------------------------------------------------
PNG_DATA = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
SNAKE_REQUEST = {
    "contents": [
        {"role": "user", "parts": [{"text": "Hello"}]},
        {"role": "model", "parts": [{"text": "Hi! Ask away."}]},
        {
            "role": "user",
            "parts": [
                {"text": "Which city is this?"},
                {"inline_data": {"mime_type": "image/png", "data": PNG_DATA}},
            ],
        },
    ],
    "system_instruction": {"parts": [{"text": "Answer in JSON."}]},
    "generation_config": {
        "temperature": 0.3,
        "top_k": 20,
        "seed": 9,
        "thinking_config": {"thinking_budget": 512},
        "response_mime_type": "application/json",
        "response_json_schema": SCHEMA,
    },
    "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
}
CAMEL_REQUEST = {
    "contents": [
        {"role": "user", "parts": [{"text": "Hello"}]},
        {"role": "model", "parts": [{"text": "Hi! Ask away."}]},
        {
            "role": "user",
            "parts": [
                {"text": "Which city is this?"},
                {"inlineData": {"mimeType": "image/png", "data": PNG_DATA}},
            ],
        },
    ],
    "systemInstruction": {"parts": [{"text": "Answer in JSON."}]},
    "generationConfig": {
        "temperature": 0.3,
        "topK": 20,
        "seed": 9,
        "thinkingConfig": {"thinkingBudget": 512},
        "responseMimeType": "application/json",
        # A schema is the researcher's own: its keys are kept as written, never respelled.
        "responseJsonSchema": SCHEMA,
    },
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
}


@pytest.mark.parametrize("request_body", [SNAKE_REQUEST, CAMEL_REQUEST], ids=["snake", "camel"])
def test_a_whole_request_is_kept_in_geminis_shape_in_either_spelling(ada, as_ada, request_body):
    response = post_json(
        as_ada,
        "/api/jobs",
        {"request": request_body, "model": "gemini-2.5-pro", "retry_bad_output": True},
    )
    assert response.status_code == 201, response.content
    [created] = response.json()["jobs"]
    job = Job.objects.get(pk=created["id"])
    assert job.gemini_request() == SNAKE_REQUEST
    assert (job.model, job.retry_bad_output, job.temperature) == ("gemini-2.5-pro", True, 0.3)
    assert job.system_instruction == "Answer in JSON."
    assert job.input_text == "User: Hello\n\nAssistant: Hi! Ask away.\n\nUser: Which city is this?"
    # The answer to the creation summarises inline data ...
    image = created["request"]["contents"][2]["parts"][1]["inline_data"]
    assert image == {"mime_type": "image/png", "bytes": 70}
    assert created["retry_bad_output"] is True
    # ... the job itself gives back what was sent, data and all.
    assert as_ada.get(f"/api/jobs/{job.pk}").json()["request"] == SNAKE_REQUEST


def test_generation_config_goes_with_text_prompts(ada, as_ada):
    body = {
        "prompts": ["one", "two"],
        "temperature": 0.1,
        "generation_config": {
            "topP": 0.8,
            "stop_sequences": ["END"],
            "responseMimeType": "application/json",
            "response_json_schema": SCHEMA,
        },
    }
    assert post_json(as_ada, "/api/jobs", body).status_code == 201
    for job in Job.objects.filter(owner=ada):
        assert job.gemini_request()["generation_config"] == {
            "temperature": 0.1,
            "top_p": 0.8,
            "stop_sequences": ["END"],
            "response_mime_type": "application/json",
            "response_json_schema": SCHEMA,
        }


def _refusal(as_ada, body) -> dict:
    response = post_json(as_ada, "/api/jobs", body)
    assert response.status_code == 422, response.content
    assert not Job.objects.exists()
    return response.json()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {
                "request": {
                    "contents": [
                        {
                            "parts": [
                                {"text": "x"},
                                {"inline_data": {"mime_type": "image/gif", "data": PNG_DATA}},
                            ]
                        }
                    ]
                }
            },
            "request",
            "request.contents[0].parts[1].inline_data.mime_type: 'image/gif' cannot be sent inline",
        ),
        (
            {
                "request": {
                    "contents": [{"parts": [{"text": "x"}]}],
                    "generationConfig": {"topK": 0},
                }
            },
            "request",
            "request.generation_config.top_k: must be a whole number from 1 to 1,000.",
        ),
        (
            {
                "request": {
                    "contents": [{"parts": [{"text": "x"}]}],
                    "generation_config": {"response_json_schema": {"type": "strin"}},
                }
            },
            "request",
            "request.generation_config.response_json_schema['type']: is not a valid JSON Schema",
        ),
        (
            {"request": {"contents": [{"parts": [{"text": "x"}]}], "frobnicate": 1}},
            "request",
            "request.frobnicate: is not a field Gemini knows here.",
        ),
        ({"request": {"contents": []}}, "request", "request.contents: is empty"),
        ({"request": {}}, "request", "request.contents: is missing."),
        (
            {"request": {"contents": [{"parts": [{"text": "x"}]}], "model": "gemini-2.5-pro"}},
            "request",
            "request.model: 'gemini-2.5-pro' is not the job's model 'gemini-2.5-flash'",
        ),
        (
            {"request": {"contents": [{"parts": [{"text": "x"}]}]}, "temperature": 0.2},
            "temperature",
            "A whole request carries its own settings: send this as "
            "request.generation_config.temperature.",
        ),
        (
            {
                "request": {"contents": [{"parts": [{"text": "x"}]}]},
                "generation_config": {"seed": 1},
            },
            "generation_config",
            "send this as request.generation_config.",
        ),
        (
            {"request": {"contents": [{"parts": [{"text": "x"}]}]}, "prompt": "y"},
            "request",
            "Send one of prompt, prompts or request, not prompt and request.",
        ),
        (
            {
                "prompt": "x",
                "generation_config": {
                    "thinking_config": {"thinking_budget": 10, "thinking_level": "low"}
                },
            },
            "generation_config",
            "takes a thinking_budget or a thinking_level, not both",
        ),
        (
            {"prompt": "x", "max_output_tokens": 5, "generation_config": {"maxOutputTokens": 9}},
            "generation_config",
            "generation_config.max_output_tokens is also given as max_output_tokens",
        ),
        ({"prompt": "x", "request": None, "retry_bad_output": "often"}, "retry_bad_output", ""),
        ({"request": "contents"}, "request", ""),
    ],
)
def test_a_refused_request_names_the_field_and_creates_nothing(as_ada, body, field, message):
    answer = _refusal(as_ada, body)
    assert field in answer["errors"], answer
    assert message in " ".join(answer["errors"][field])


def test_a_job_gives_its_whole_answer(ada, as_ada):
    response = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": '{"city": "Par'}]},
                "finishReason": "MAX_TOKENS",
            },
        ],
        "usageMetadata": {
            "promptTokenCount": 5,
            "candidatesTokenCount": 4,
            "thoughtsTokenCount": 3,
        },
    }
    job = make_job(
        ada,
        request={
            "contents": [{"role": "user", "parts": [{"text": "Explain flex"}]}],
            "generation_config": {
                "response_mime_type": "application/json",
                "response_json_schema": SCHEMA,
            },
        },
        response=response,
        finish_reason="MAX_TOKENS",
        cut_at_limit=True,
        output_problem="The answer is not JSON: Unterminated string",
        bad_outputs=1,
        result_text='{"city": "Par',
    )
    for answer in (
        as_ada.get(f"/api/jobs/{job.pk}").json(),
        as_ada.get("/api/jobs").json()["items"][0],
    ):
        assert answer["response"] == response
        assert answer["request"]["generation_config"]["response_json_schema"] == SCHEMA
        assert (answer["finish_reason"], answer["cut_at_limit"]) == ("MAX_TOKENS", True)
        assert answer["output_json"] is None
        assert answer["output_problem"] == "The answer is not JSON: Unterminated string"
        assert (answer["bad_outputs"], answer["retry_bad_output"]) == (1, False)


def test_a_structured_answer_is_given_parsed(ada, as_ada):
    job = make_job(ada, output_json={"city": "Paris", "rivers": ["Seine"]})
    answer = as_ada.get(f"/api/jobs/{job.pk}").json()
    assert answer["output_json"] == {"city": "Paris", "rivers": ["Seine"]}
    assert answer["request"] == {
        "contents": [{"role": "user", "parts": [{"text": "Explain flex"}]}]
    }
    assert answer["response"] is None and answer["finish_reason"] == ""


def test_the_key_is_redacted_from_requests_answers_and_structured_output(ada, as_ada, settings):
    marker = "AIza-test-marker-key-0123456789"
    settings.GEMINI_API_KEY = marker
    job = make_job(
        ada,
        request={
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": f"key {marker}"},
                        {"inline_data": {"mime_type": "image/png", "data": PNG_DATA}},
                    ],
                }
            ]
        },
        response={"candidates": [{"content": {"parts": [{"text": marker}]}}]},
        output_json={"key": marker},
        output_problem=f"bad {marker}",
    )
    for url in (f"/api/jobs/{job.pk}", "/api/jobs"):
        text = as_ada.get(url).content.decode()
        assert marker not in text
    whole = as_ada.get(f"/api/jobs/{job.pk}").json()
    assert whole["request"]["contents"][0]["parts"][1]["inline_data"]["data"] == PNG_DATA


def test_the_document_describes_the_request_and_its_summary(as_ada):
    schemas = as_ada.get("/api/openapi.json").json()["components"]["schemas"]
    assert "camelCase or snake_case" in schemas["JobIn"]["properties"]["request"]["description"]
    summary = schemas["JobOut"]["properties"]["request"]["description"]
    assert "{`mime_type`, `bytes`}" in summary
    for name in (
        "response",
        "finish_reason",
        "cut_at_limit",
        "output_json",
        "output_problem",
        "bad_outputs",
    ):
        assert name in schemas["JobOut"]["properties"]
