"""The simulator reads whole Gemini requests: driven by the real google-genai SDK on both routes
against a simulator in this process, it records each body as it reached the wire, reads turns,
images and documents, answers JSON to a schema, counts thought, image and document tokens,
gives several candidates, honours the token limit and stop sequences, and obeys the answer
directives. The pure pieces (schema instances, token counts) are tested on their own below."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

import jsonschema
import pydantic
import pytest
from aiohttp.test_utils import TestServer
from google import genai
from google.genai import _interactions, errors, types

from jobs.simulator import FlexSimulator, SimConfig
from jobs.simulator.answers import pdf_pages, thought_tokens
from jobs.simulator.errors import ApiError
from jobs.simulator.schemas import schema_instance, schema_violation
from tests.images import jpeg, png, webp_lossless

MODEL = "gemini-2.5-flash"
KEY = "test-key"
ROUTES = ["interactions", "generateContent"]
PREFIX = "Simulated answer to: "
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
THREE_PAGE_PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Count 3 >> endobj\n"
    b"3 0 obj << /Type /Page >> endobj\n4 0 obj << /Type/Page >> endobj\n"
    b"5 0 obj << /Type /Page /Parent 2 0 R >> endobj\n%%EOF"
)


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Child(pydantic.BaseModel):
    colour: Colour
    age: Annotated[int, pydantic.Field(ge=3, le=5)]


class Family(pydantic.BaseModel):
    name: str | None
    children: Annotated[list[Child], pydantic.Field(min_length=2)]
    score: Annotated[float, pydantic.Field(ge=0.1, le=0.5)]
    verified: bool


WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
    },
}


@dataclass
class Served:
    simulator: FlexSimulator
    url: str


@pytest.fixture(scope="module")
def sim() -> Iterator[Served]:
    """One simulator in this process, served on its own event loop thread so that each test
    can drive it with the SDK and read its record in between."""
    simulator = FlexSimulator(SimConfig(api_key=KEY))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = TestServer(simulator.app())
    asyncio.run_coroutine_threadsafe(server.start_server(), loop).result()
    try:
        yield Served(simulator, str(server.make_url("")).rstrip("/"))
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    return request.param


def _client(url: str) -> genai.client.AsyncClient:
    options = types.HttpOptions(
        base_url=url,
        api_version="v1beta",
        timeout=10_000,
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key=KEY, http_options=options).aio


def generate(sim: Served, contents: Any, **config: Any) -> types.GenerateContentResponse:
    async def go() -> types.GenerateContentResponse:
        async with _client(sim.url) as client:
            return await client.models.generate_content(
                model=MODEL, contents=contents, config=types.GenerateContentConfig(**config)
            )

    return asyncio.run(go())


def interact(sim: Served, input: Any, **options: Any) -> Any:
    async def go() -> Any:
        async with _client(sim.url) as client:
            return await client.interactions.create(model=MODEL, input=input, **options)

    return asyncio.run(go())


def refused(sim: Served, route: str, prompt: str, **options: Any) -> tuple[int, str]:
    """The HTTP status and Google status of a request the simulator refuses."""
    if route == "interactions":
        with pytest.raises(_interactions.APIStatusError) as caught:
            interact(sim, prompt, **options)
        return caught.value.status_code, caught.value.body["error"]["status"]
    with pytest.raises(errors.APIError) as caught:
        generate(sim, prompt, **options)
    return caught.value.code, caught.value.status


@dataclass
class Said:
    """An answer from either route, in one shape."""

    text: str
    finish: str
    input_tokens: int
    output_tokens: int
    thought_tokens: int
    total_tokens: int


def say(sim: Served, route: str, prompt: Any, **options: Any) -> Said:
    """Ask `prompt` on `route`; `options` are generateContent config fields, which the
    Interactions call gets as its `generation_config` (those it has) or as its own fields."""
    if route == "interactions":
        own = {k: options.pop(k) for k in ("response_format", "tools") if k in options}
        interaction = interact(sim, prompt, generation_config=options, **own)
        usage = interaction.usage
        return Said(
            interaction.output_text,
            interaction.status,
            usage.total_input_tokens,
            usage.total_output_tokens,
            usage.total_thought_tokens,
            usage.total_tokens,
        )
    response = generate(sim, prompt, **options)
    usage = response.usage_metadata
    return Said(
        response.text,
        response.candidates[0].finish_reason.value,
        usage.prompt_token_count,
        usage.candidates_token_count,
        usage.thoughts_token_count,
        usage.total_token_count,
    )


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:12]}"


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


# --- What reached the wire -----------------------------------------------------------------
def test_each_request_body_is_recorded_as_it_reached_the_wire(sim, route):
    prompt = unique("Record me")
    say(sim, route, prompt, temperature=0.25, stop_sequences=["END"])
    (recorded,) = sim.simulator.requests(last=1)
    assert (recorded["route"], recorded["model"]) == (route, MODEL)
    body = recorded["body"]
    if route == "interactions":
        assert body["generation_config"] == {"temperature": 0.25, "stop_sequences": ["END"]}
        assert body["input"] == prompt
    else:
        assert body["generationConfig"] == {"temperature": 0.25, "stopSequences": ["END"]}
        assert body["contents"] == [{"role": "user", "parts": [{"text": prompt}]}]
    assert get_json(f"{sim.url}/_sim/requests?last=1") == (200, [recorded])


def test_refused_requests_are_recorded_too_and_reset_forgets_them(sim, route):
    sim.simulator.reset()
    prompt = unique("[sim:503x1]")
    assert refused(sim, route, prompt)[0] == 503
    say(sim, route, prompt)
    code, recorded = get_json(f"{sim.url}/_sim/requests")
    assert code == 200
    assert [entry["route"] for entry in recorded] == [route, route]
    assert recorded == sim.simulator.requests()

    urllib.request.urlopen(urllib.request.Request(f"{sim.url}/_sim/reset", method="POST"))
    assert sim.simulator.requests() == []


def test_only_the_latest_requests_are_kept():
    simulator = FlexSimulator(SimConfig(keep_requests=3))

    async def go() -> None:
        async with TestServer(simulator.app()) as server, _client(str(server.make_url(""))) as c:
            for n in range(5):
                await c.models.generate_content(model=MODEL, contents=f"prompt {n}")

    asyncio.run(go())
    texts = [r["body"]["contents"][0]["parts"][0]["text"] for r in simulator.requests()]
    assert texts == ["prompt 2", "prompt 3", "prompt 4"]
    assert len(simulator.requests(last=2)) == 2
    assert simulator.requests(last=0) == []


def test_last_must_be_a_whole_number(sim):
    code, body = get_json(f"{sim.url}/_sim/requests?last=some")
    assert code == 400 and body["error"]


# --- Turns, images and documents -----------------------------------------------------------
def test_directives_and_the_answer_come_from_the_user_turns_only(sim, route):
    first, model_said, second = unique("First question"), "Earlier [sim:nonsense]", "And then?"
    if route == "interactions":
        steps = [
            {"type": "user_input", "content": [{"type": "text", "text": first}]},
            {"type": "model_output", "content": [{"type": "text", "text": model_said}]},
            {"type": "user_input", "content": [{"type": "text", "text": second}]},
        ]
        answer = say(sim, route, steps)
    else:
        turns = [
            types.Content(role="user", parts=[types.Part.from_text(text=first)]),
            types.Content(role="model", parts=[types.Part.from_text(text=model_said)]),
            types.Content(role="user", parts=[types.Part.from_text(text=second)]),
        ]
        answer = say(sim, route, turns)
    assert answer.text == f"{PREFIX}{first}\n{second}"
    assert answer.input_tokens == tokens(first + model_said + second)


def test_each_image_and_document_page_costs_258_input_tokens(sim, route):
    prompt = unique("Describe these")
    if route == "interactions":
        interaction = interact(
            sim,
            [
                {"type": "text", "text": prompt},
                {"type": "image", "data": base64.b64encode(PNG).decode(), "mime_type": "image/png"},
                {
                    "type": "document",
                    "data": base64.b64encode(THREE_PAGE_PDF).decode(),
                    "mime_type": "application/pdf",
                },
                {"type": "document", "uri": "https://example.com/a.pdf", "mime_type": "text/csv"},
            ],
        )
        total = interaction.usage.total_input_tokens
        by_modality = {m.modality: m.tokens for m in interaction.usage.input_tokens_by_modality}
        text, image, document = "text", "image", "document"
    else:
        response = generate(
            sim,
            [
                prompt,
                types.Part.from_bytes(data=PNG, mime_type="image/png"),
                types.Part.from_bytes(data=THREE_PAGE_PDF, mime_type="application/pdf"),
                types.Part.from_uri(file_uri="gs://bucket/a.csv", mime_type="text/csv"),
            ],
        )
        total = response.usage_metadata.prompt_token_count
        details = response.usage_metadata.prompt_tokens_details
        by_modality = {d.modality: d.token_count for d in details}
        text, image, document = (types.MediaModality[m] for m in ("TEXT", "IMAGE", "DOCUMENT"))
    assert by_modality == {text: tokens(prompt), image: 258, document: 3 * 258 + 258}
    assert total == tokens(prompt) + 5 * 258


@pytest.mark.parametrize(
    ("image", "mime_type", "image_tokens"),
    [
        (png(2000, 1500), "image/png", 6 * 258),  # 768 px crops: 3 x 2
        (jpeg(768, 768), "image/jpeg", 4 * 258),  # 512 px crops: 2 x 2
        (webp_lossless(384, 384), "image/webp", 258),  # small: one image
    ],
    ids=["png", "jpeg", "webp"],
)
def test_an_inline_image_costs_gemini_2s_tiles_for_its_size(
    sim, route, image, mime_type, image_tokens
):
    prompt = unique("Describe it")
    data = base64.b64encode(image).decode()
    if route == "interactions":
        picture = {"type": "image", "data": data, "mime_type": mime_type}
        usage = interact(sim, [{"type": "text", "text": prompt}, picture]).usage
        total = usage.total_input_tokens
        by_modality = {m.modality: m.tokens for m in usage.input_tokens_by_modality}
        text, picture_modality = "text", "image"
    else:
        part = types.Part.from_bytes(data=image, mime_type=mime_type)
        usage = generate(sim, [prompt, part]).usage_metadata
        total = usage.prompt_token_count
        by_modality = {d.modality: d.token_count for d in usage.prompt_tokens_details}
        text, picture_modality = types.MediaModality.TEXT, types.MediaModality.IMAGE
    assert by_modality == {text: tokens(prompt), picture_modality: image_tokens}
    assert total == tokens(prompt) + image_tokens


# --- JSON to a schema ----------------------------------------------------------------------
def test_json_answers_satisfy_the_schema_given_in_either_dialect(sim, route):
    prompt = unique("A family, please")
    schema = Family.model_json_schema()
    if route == "interactions":
        json_format = {"type": "text", "mime_type": "application/json", "schema": schema}
        answer = say(sim, route, prompt, response_format=json_format)
    else:
        answer = say(
            sim, route, prompt, response_mime_type="application/json", response_json_schema=schema
        )
    family = json.loads(answer.text)
    jsonschema.validate(family, schema)
    assert len(family["children"]) == 2
    assert answer.output_tokens == tokens(answer.text)


def test_json_answers_satisfy_gemini_s_own_schema_and_parse_on_generate_content(sim):
    response = generate(
        sim, unique("A family"), response_mime_type="application/json", response_schema=Family
    )
    recorded = sim.simulator.requests(last=1)[0]["body"]["generationConfig"]["responseSchema"]
    assert recorded["type"] == "OBJECT", "the SDK sent Gemini's upper-case schema"
    assert isinstance(response.parsed, Family)
    assert Family.model_validate_json(response.text) == response.parsed


def test_json_without_a_schema_wraps_the_answer(sim, route):
    prompt = unique("Just JSON")
    if route == "interactions":
        text = interact(sim, prompt, response_mime_type="application/json").output_text
    else:
        text = generate(sim, prompt, response_mime_type="application/json").text
    assert json.loads(text) == {"answer": PREFIX + prompt}


# --- Thoughts, candidates, limits ----------------------------------------------------------
@pytest.mark.parametrize(
    ("thinking", "thoughts"),
    [
        ({"thinking_budget": 10}, 10),
        ({"thinking_budget": 1000}, 64),
        ({"thinking_budget": -1}, 64),
        ({"thinking_budget": 0}, 0),
        ({"thinking_level": "LOW"}, 16),
        ({"thinking_level": "HIGH"}, 256),
    ],
)
def test_thinking_reports_thought_tokens_in_the_total(sim, thinking, thoughts):
    config = types.ThinkingConfig(**thinking)
    answer = say(sim, "generateContent", unique("Think"), thinking_config=config)
    assert answer.thought_tokens == thoughts
    assert answer.total_tokens == answer.input_tokens + answer.output_tokens + thoughts


@pytest.mark.parametrize(("level", "thoughts"), [("low", 16), ("medium", 64), ("high", 256)])
def test_an_interaction_s_thinking_level_reports_thought_tokens(sim, level, thoughts):
    answer = say(sim, "interactions", unique("Think"), thinking_level=level)
    assert answer.thought_tokens == thoughts
    assert answer.total_tokens == answer.input_tokens + answer.output_tokens + thoughts


def test_candidate_count_gives_that_many_distinct_candidates(sim):
    prompt = unique("Three ways")
    response = generate(sim, prompt, candidate_count=3)
    texts = [candidate.content.parts[0].text for candidate in response.candidates]
    assert texts == [PREFIX + prompt, f"{PREFIX}{prompt} (2)", f"{PREFIX}{prompt} (3)"]
    assert [candidate.index for candidate in response.candidates] == [0, 1, 2]
    assert response.usage_metadata.candidates_token_count == sum(map(tokens, texts))


def test_more_than_eight_candidates_is_invalid(sim):
    assert refused(sim, "generateContent", unique("Nine"), candidate_count=9) == (
        400,
        "INVALID_ARGUMENT",
    )


def test_max_output_tokens_cuts_the_answer_at_the_limit(sim, route):
    prompt = unique("Tell me everything")
    answer = say(sim, route, prompt, max_output_tokens=5)
    assert answer.text == (PREFIX + prompt)[:20]
    assert answer.finish == {"interactions": "incomplete", "generateContent": "MAX_TOKENS"}[route]
    assert answer.output_tokens == 5


def test_a_stop_sequence_cuts_the_answer_before_it(sim, route):
    prompt = unique("alpha STOP beta")
    answer = say(sim, route, prompt, stop_sequences=["never", "STOP"])
    assert answer.text == PREFIX + "alpha "
    assert answer.finish in ("completed", "STOP")


# --- The answer directives -----------------------------------------------------------------
def test_max_tokens_directive_cuts_the_answer_to_half_or_to_the_limit(sim, route):
    prompt = unique("[sim:max-tokens] Go on")
    whole = PREFIX + prompt.replace("[sim:max-tokens]", "").strip()
    half = say(sim, route, prompt)
    assert half.text == whole[: tokens(whole) // 2 * 4]
    assert half.finish == {"interactions": "incomplete", "generateContent": "MAX_TOKENS"}[route]
    assert half.output_tokens == tokens(half.text)
    assert half.total_tokens == half.input_tokens + half.output_tokens
    assert say(sim, route, prompt, max_output_tokens=3).text == whole[:12]


def test_safety_directive_blocks_the_answer(sim, route):
    successes = sim.simulator.stats()["successes"]
    prompt = unique("[sim:safety]")
    if route == "interactions":
        interaction = interact(sim, prompt)
        assert (interaction.status, interaction.output_text) == ("failed", "")
        assert "safety" in interaction.errors[0].message
    else:
        response = generate(sim, prompt)
        (candidate,) = response.candidates
        assert candidate.finish_reason == types.FinishReason.SAFETY
        assert candidate.content is None and response.text is None
        assert [rating.blocked for rating in candidate.safety_ratings] == [True]
    assert sim.simulator.stats()["successes"] == successes


def test_prompt_blocked_directive_gives_no_candidates(sim, route):
    prompt = unique("[sim:prompt-blocked]")
    if route == "interactions":
        interaction = interact(sim, prompt)
        assert interaction.status == "failed"
        assert "prompt was blocked" in interaction.errors[0].message
    else:
        response = generate(sim, prompt)
        assert response.candidates is None
        assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
        assert response.usage_metadata.prompt_token_count == tokens(prompt)


def test_bad_json_directive_breaks_the_schema(sim, route):
    prompt = unique("[sim:bad-json]")
    schema = Family.model_json_schema()
    if route == "interactions":
        json_format = {"type": "text", "mime_type": "application/json", "schema": schema}
        text = say(sim, route, prompt, response_format=json_format).text
    else:
        text = generate(
            sim, prompt, response_mime_type="application/json", response_json_schema=schema
        ).text
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(text), schema)


def test_bad_json_directive_without_a_schema_is_not_json(sim, route):
    prompt = unique("[sim:bad-json]")
    if route == "interactions":
        text = interact(sim, prompt, response_mime_type="application/json").output_text
    else:
        text = generate(sim, prompt, response_mime_type="application/json").text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_function_call_directive_calls_the_first_declared_function(sim, route):
    prompt = unique("[sim:function-call] Weather in Paris?")
    successes = sim.simulator.stats()["successes"]
    if route == "interactions":
        tools = [{"type": "function", **WEATHER}, {"type": "function", "name": "other"}]
        interaction = interact(sim, prompt, tools=tools)
        assert interaction.status == "requires_action"
        (step,) = interaction.steps
        assert (step.type, step.name) == ("function_call", "get_weather")
        assert step.id
        arguments = step.arguments
    else:
        declaration = types.FunctionDeclaration(**{**WEATHER, "parameters": None})
        declaration.parameters_json_schema = WEATHER["parameters"]
        response = generate(sim, prompt, tools=[types.Tool(function_declarations=[declaration])])
        assert response.candidates[0].finish_reason == types.FinishReason.STOP
        (call,) = response.function_calls
        assert call.name == "get_weather"
        arguments = call.args
    jsonschema.validate(arguments, WEATHER["parameters"])
    assert arguments["unit"] == "celsius"
    assert sim.simulator.stats()["successes"] == successes + 1


def test_function_call_reads_gemini_s_own_parameters_schema(sim):
    parameters = types.Schema(
        type="OBJECT",
        properties={"city": types.Schema(type="STRING"), "days": types.Schema(type="INTEGER")},
        required=["city"],
    )
    declaration = types.FunctionDeclaration(name="get_weather", parameters=parameters)
    response = generate(
        sim,
        unique("[sim:function-call]"),
        tools=[types.Tool(function_declarations=[declaration])],
    )
    (call,) = response.function_calls
    assert set(call.args) == {"city", "days"} and isinstance(call.args["days"], int)


def test_function_call_directive_without_functions_is_invalid(sim, route):
    assert refused(sim, route, unique("[sim:function-call]")) == (400, "INVALID_ARGUMENT")


# --- The pure pieces -----------------------------------------------------------------------
def test_instance_of_gemini_s_schema_honours_order_enum_bounds_and_snake_keys():
    schema = {
        "type": "OBJECT",
        "properties": {
            "b": {"type": "ARRAY", "items": {"type": "INTEGER", "minimum": 3}, "min_items": 2},
            "a": {"type": "STRING", "enum": ["x", "y"], "format": "enum"},
            "c": {"type": "STRING", "nullable": True},
        },
        "property_ordering": ["a", "b", "c"],
        "required": ["a"],
    }
    value = schema_instance(schema, "seed")
    assert list(value) == ["a", "b", "c"]
    assert value["a"] == "x" and value["b"] == [3, 3] and isinstance(value["c"], str)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "integer", "exclusiveMinimum": 1}, 2),
        ({"type": "integer", "maximum": -4}, -4),
        ({"type": "number", "maximum": 0.5}, 0.5),
        ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.5}, 0.25),
        ({"type": "string", "format": "date-time"}, "2025-01-01T00:00:00Z"),
        ({"type": "string", "maxLength": 3}, "val"),
        ({"type": ["null", "string"]}, None),
        ({"anyOf": [{"type": "boolean"}, {"type": "string"}]}, True),
        ({"type": "array", "items": {"type": "string"}, "maxItems": 0}, []),
        ({"const": 7}, 7),
    ],
)
def test_instance_of_one_json_schema(schema, expected):
    assert schema_instance(schema, "seed") == expected
    jsonschema.validate(expected, schema)


def test_a_bounded_integer_varies_with_the_seed_within_its_bounds():
    schema = {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 10}},
    }
    scores = {schema_instance(schema, f"prompt {n}")["score"] for n in range(200)}
    assert scores == set(range(1, 11))
    assert schema_instance(schema, "prompt 7") == schema_instance(schema, "prompt 7")
    assert schema_instance({"type": "integer", "minimum": 4, "maximum": 4}, "x") == 4


def test_strings_derive_from_the_seed_and_array_items_differ():
    schema = {"type": "array", "items": {"type": "string"}, "minItems": 2, "uniqueItems": True}
    first, other = schema_instance(schema, "one"), schema_instance(schema, "two")
    assert first != other and schema_instance(schema, "one") == first
    jsonschema.validate(first, schema)


def test_a_recursive_schema_ends_and_one_too_deep_is_refused():
    tree = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"label": {"type": "string"}, "kids": {"$ref": "#/$defs/Kids"}},
                "required": ["label"],
            },
            "Kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
        },
        "$ref": "#/$defs/Node",
    }
    jsonschema.validate(schema_instance(tree, "seed"), tree)
    endless = {"type": "object", "properties": {"me": {"$ref": "#"}}, "required": ["me"]}
    with pytest.raises(ApiError) as caught:
        schema_instance(endless, "seed")
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "schema",
    [
        Family.model_json_schema(),
        {"type": "object", "properties": {"n": {"type": "integer"}}},
        {"type": "object", "properties": {"o": {"type": "object"}}},
        {"type": "object"},
        {"type": "array", "items": {"type": "string"}},
    ],
)
def test_a_violation_breaks_its_schema(schema):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(schema_violation(schema, "seed"), schema)


def test_pdf_pages_are_page_objects_and_at_least_one():
    assert pdf_pages(THREE_PAGE_PDF) == 3
    assert pdf_pages(b"%PDF-1.4 /Type /Pages") == 1
    assert pdf_pages(b"not a pdf") == 1


@pytest.mark.parametrize(
    ("budget", "level", "expected"),
    [
        (None, None, 0),
        (0, None, 0),
        (32, None, 32),
        (500, None, 64),
        (-1, None, 64),
        (None, "minimal", 4),
        (None, "MEDIUM", 64),
        (None, "xhigh", 1024),
        (None, "THINKING_LEVEL_UNSPECIFIED", 0),
    ],
)
def test_thought_tokens_by_budget_and_level(budget, level, expected):
    assert thought_tokens(budget=budget, level=level) == expected


@pytest.mark.parametrize(("budget", "level"), [(-2, None), ("lots", None), (None, "extreme")])
def test_a_bad_thinking_budget_or_level_is_invalid(budget, level):
    with pytest.raises(ApiError) as caught:
        thought_tokens(budget=budget, level=level)
    assert caught.value.status == 400
