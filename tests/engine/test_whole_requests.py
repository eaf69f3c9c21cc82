"""What you send is what runs: whole requests in Gemini's shape reach the wire on both
routes through the real SDK (the simulator's record says what arrived), and the whole
answer comes back: structured output checked, cut answers kept, blocked ones failed in
words, function calls, candidates, thought and image tokens billed."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from jobs import gemini_shape, sizes
from jobs.engine import pricing
from jobs.models import Attempt, ErrorKind, Job, Outcome, State
from tests.support import MODEL, send_due_jobs, submit, wire_requests

ROUTES = ["interactions", "generate_content"]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 1}},
    "required": ["city", "population"],
}


@pytest.fixture(params=ROUTES)
def route(request, settings):
    settings.GEMINI_API = request.param
    return request.param


def _unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:10]}"


def _request(prompt: str, **generation) -> dict:
    return gemini_shape.simple(prompt, generation_config=generation)


def _wire(url: str, marker: str) -> dict:
    """The last request the simulator received whose text holds `marker`."""
    mine = [r for r in wire_requests(url, 50) if marker in json.dumps(r["body"])]
    assert mine, f"no request with {marker!r} reached the simulator"
    return mine[-1]


def _snake_keys(value: dict) -> dict:
    return {gemini_shape.snake(key): item for key, item in value.items()}


def _run(simulator, route: str, *jobs: Job) -> list[str]:
    decisions = send_due_jobs(simulator.url, route, limit=len(jobs))
    for job in jobs:
        job.refresh_from_db()
    return decisions


def test_every_generation_setting_reaches_the_wire(db, ada, simulator, route):
    prompt = _unique("Name three rivers")
    request = _request(
        prompt,
        temperature=0.4,
        top_p=0.9,
        seed=7,
        stop_sequences=["END"],
        max_output_tokens=300,
        thinking_config={"thinking_level": "low"},
    )
    request["system_instruction"] = {"parts": [{"text": "Answer tersely."}]}
    request["safety_settings"] = [
        {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}
    ]
    (job,) = submit(ada, request)
    _run(simulator, route, job)
    wire = _wire(simulator.url, prompt)
    body = wire["body"]
    assert job.state == State.SUCCEEDED
    if route == "interactions":
        assert wire["route"] == "interactions"
        assert body["input"] == prompt
        assert body["system_instruction"] == "Answer tersely."
        assert body["generation_config"] == {
            "temperature": 0.4,
            "top_p": 0.9,
            "seed": 7,
            "stop_sequences": ["END"],
            "max_output_tokens": 300,
            "thinking_level": "low",
        }
        assert body["safety_settings"] == [{"type": "hate_speech", "threshold": "block_only_high"}]
    else:
        assert wire["route"] == "generateContent"
        config = body["generationConfig"]
        assert config["temperature"] == 0.4 and config["topP"] == 0.9 and config["seed"] == 7
        assert config["stopSequences"] == ["END"] and config["maxOutputTokens"] == 300
        # The SDK writes the thinking config's own keys in snake_case; Gemini reads both.
        assert _snake_keys(config["thinkingConfig"]) == {"thinking_level": "LOW"}
        assert body["systemInstruction"]["parts"] == [{"text": "Answer tersely."}]
        assert body["safetySettings"] == [
            {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}
        ]
    # Thinking was on: the thought tokens are reported, kept and billed as output.
    assert job.thought_tokens > 0
    assert job.response["usageMetadata"]["thoughtsTokenCount"] == job.thought_tokens


def test_a_field_only_generate_content_carries_picks_that_route(db, ada, simulator, route):
    prompt = _unique("Sample widely")
    (job,) = submit(ada, _request(prompt, top_k=5, candidate_count=2))
    _run(simulator, route, job)
    wire = _wire(simulator.url, prompt)
    assert wire["route"] == "generateContent"
    assert wire["body"]["generationConfig"]["topK"] == 5
    assert Attempt.objects.get(job=job).route == "generate_content"
    # Both candidates are kept; the job's text is the first one's.
    assert len(job.response["candidates"]) == 2
    assert job.result_text == gemini_shape.candidate_text(job.response["candidates"][0])


def test_structured_output_is_parsed_and_checked(db, ada, simulator, route):
    prompt = _unique("The largest city of Peru")
    request = _request(prompt, response_mime_type="application/json", response_json_schema=SCHEMA)
    (job,) = submit(ada, request)
    _run(simulator, route, job)
    body = _wire(simulator.url, prompt)["body"]
    if route == "interactions":
        assert body["response_format"]["schema"] == SCHEMA
        assert body["response_mime_type"] == "application/json"
    else:
        assert body["generationConfig"]["responseJsonSchema"] == SCHEMA
        assert body["generationConfig"]["responseMimeType"] == "application/json"
    assert job.state == State.SUCCEEDED and job.output_problem == ""
    assert set(job.output_json) == {"city", "population"}
    assert json.loads(job.result_text) == job.output_json


def test_an_answer_that_breaks_the_schema_is_flagged_or_retried_by_choice(
    db, ada, simulator, route
):
    schema_request = {"response_mime_type": "application/json", "response_json_schema": SCHEMA}
    flagged_prompt = _unique("[sim:bad-json] flag it")
    (flagged,) = submit(ada, _request(flagged_prompt, **schema_request))
    _run(simulator, route, flagged)
    assert flagged.state == State.SUCCEEDED
    assert flagged.output_problem.startswith("The answer does not match the schema")
    assert flagged.bad_outputs == 1

    retried_prompt = _unique("[sim:bad-json] retry it")
    (retried,) = submit(
        ada, _request(retried_prompt, **schema_request), retry_bad_output=True, max_attempts=2
    )
    assert _run(simulator, route, retried) == ["retry"]
    assert retried.state == State.RETRYING and retried.bad_outputs == 1
    attempt = Attempt.objects.get(job=retried)
    assert (attempt.outcome, attempt.error_kind) == (Outcome.WILL_RETRY, ErrorKind.BAD_OUTPUT)
    # The broken answer was billed: its tokens and cost stay on the job.
    first_cost, first_tokens = retried.cost_usd, retried.output_tokens
    assert first_cost > 0 and first_tokens > 0
    Job.objects.filter(pk=retried.pk).update(next_attempt_at=retried.updated_at)
    # Out of attempts, the last broken answer succeeds, flagged, with both answers billed.
    assert _run(simulator, route, retried) == ["succeeded"]
    assert retried.state == State.SUCCEEDED and retried.bad_outputs == 2
    assert retried.output_problem and retried.cost_usd > first_cost
    assert retried.output_tokens > first_tokens


def test_an_answer_cut_at_the_token_limit_succeeds_flagged_on_both_routes(
    db, ada, simulator, route
):
    (job,) = submit(ada, _unique("[sim:max-tokens] Tell a long story"), max_output_tokens=40)
    _run(simulator, route, job)
    assert job.state == State.SUCCEEDED
    assert job.cut_at_limit and job.finish_reason == "MAX_TOKENS"
    assert job.result_text and job.output_tokens > 0 and job.cost_usd > 0


def test_a_blocked_answer_fails_with_the_reason_in_words(db, ada, simulator, route):
    (job,) = submit(ada, _unique("[sim:safety] something dangerous"))
    _run(simulator, route, job)
    assert job.state == State.FAILED
    assert "safety" in job.last_error.lower() or "failed" in job.last_error.lower()
    if route == "generate_content":
        assert "Blocked by Gemini's safety filter (finish reason SAFETY)" in job.last_error


def test_a_blocked_prompt_fails_saying_the_prompt_was_refused(db, ada, simulator, settings):
    settings.GEMINI_API = "generate_content"
    (job,) = submit(ada, _unique("[sim:prompt-blocked] refuse me"))
    _run(simulator, "generate_content", job)
    assert job.state == State.FAILED
    assert "The prompt was refused" in job.last_error


def test_images_and_turns_reach_the_wire_and_images_count_as_tokens(db, ada, simulator, route):
    prompt = _unique("What is in this picture?")
    request = {
        "contents": [
            {"role": "user", "parts": [{"text": "Hello"}]},
            {"role": "model", "parts": [{"text": "Hi, send the picture."}]},
            {
                "role": "user",
                "parts": [
                    {"text": prompt},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                ],
            },
        ]
    }
    (job,) = submit(ada, request)
    assert job.media_tokens == sizes.IMAGE_TOKENS
    _run(simulator, route, job)
    body = _wire(simulator.url, prompt)["body"]
    if route == "interactions":
        assert [step["type"] for step in body["input"]] == [
            "user_input",
            "model_output",
            "user_input",
        ]
        assert body["input"][2]["content"][1] == {
            "type": "image",
            "mime_type": "image/png",
            "data": PNG,
        }
    else:
        assert [turn["role"] for turn in body["contents"]] == ["user", "model", "user"]
        assert _snake_keys(body["contents"][2]["parts"][1]["inlineData"]) == {
            "mime_type": "image/png",
            "data": PNG,
        }
    assert job.state == State.SUCCEEDED
    assert job.input_tokens >= sizes.IMAGE_TOKENS


def test_a_function_call_comes_back_in_the_answer(db, ada, simulator, route):
    prompt = _unique("[sim:function-call] What is the weather in Lima?")
    request = _request(prompt)
    request["tools"] = [
        {
            "function_declarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parameters_json_schema": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ]
    (job,) = submit(ada, request)
    _run(simulator, route, job)
    body = _wire(simulator.url, prompt)["body"]
    if route == "interactions":
        assert body["tools"][0]["type"] == "function" and body["tools"][0]["name"] == "get_weather"
    else:
        assert body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert job.state == State.SUCCEEDED
    (call,) = gemini_shape.function_calls(job.response["candidates"][0])
    assert call["name"] == "get_weather" and "city" in call["args"]


def test_a_thinking_budget_goes_by_generate_content_and_thoughts_are_billed(
    db, ada, simulator, route
):
    prompt = _unique("Think it over")
    (job,) = submit(ada, _request(prompt, thinking_config={"thinking_budget": 128}))
    _run(simulator, route, job)
    wire = _wire(simulator.url, prompt)
    assert wire["route"] == "generateContent"
    assert _snake_keys(wire["body"]["generationConfig"]["thinkingConfig"]) == {
        "thinking_budget": 128
    }
    assert job.thought_tokens > 0
    cost, standard = pricing.job_costs(
        model=MODEL,
        tier="flex",
        input_tokens=job.input_tokens,
        output_tokens=job.output_tokens + job.thought_tokens,
    )
    assert (job.cost_usd, job.standard_cost_usd) == (cost, standard)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"contents": [{"parts": [{"txt": "x"}]}]}, "request.contents[0].parts[0].txt"),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topK": "many"}},
            "request.generation_config.top_k",
        ),
        (
            {"contents": [{"parts": [{"inline_data": {"mime_type": "video/mp4", "data": PNG}}]}]},
            "request.contents[0].parts[0].inline_data.mime_type",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generation_config": {"response_json_schema": {"type": "nonsense"}},
            },
            "request.generation_config.response_json_schema",
        ),
    ],
)
def test_a_bad_request_names_the_field_and_creates_nothing(db, ada, request_, field):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        submit(ada, request_)
    assert field in refused.value.message_dict["request"][0]
    assert not Job.objects.exists()


def test_a_plain_prompt_stores_no_second_copy_of_its_request(db, ada):
    (plain,) = submit(ada, "Just text", temperature=0.2, max_output_tokens=10)
    assert plain.request is None
    assert plain.gemini_request() == _request("Just text", temperature=0.2, max_output_tokens=10)
    (rich,) = submit(ada, "With a seed", generation_config={"seed": 3})
    assert rich.request["generation_config"] == {"seed": 3}
    assert rich.model == MODEL


def test_a_request_keeps_the_order_it_was_written_in(db, ada):
    # PostgreSQL's jsonb would give keys back shortest first; Gemini answers a schema's
    # properties in the order given, so the request is kept as written.
    schema = {
        "type": "object",
        "properties": {"zeta_long_name": {"type": "string"}, "a": {"type": "string"}},
    }
    (job,) = submit(
        ada, _request("Order", response_mime_type="application/json", response_json_schema=schema)
    )
    job.refresh_from_db()
    sent = job.gemini_request()["generation_config"]["response_json_schema"]
    assert list(sent["properties"]) == ["zeta_long_name", "a"]
    assert list(sent) == ["type", "properties"]
