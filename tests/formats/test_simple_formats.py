"""FlexDash's own JSONL (a prompt with its settings, or a whole Gemini request), CSV
and plain text become Gemini requests; what cannot be sent is named."""

from __future__ import annotations

import pytest

from tests.formats.files import (
    SCHEMA,
    one,
    parse_bytes,
    refusal,
    rejection,
    user,
)
from tests.formats.test_gemini_batch import GEMINI_EXPECTED, GEMINI_REQUEST

# FlexDash's JSONL ------------------------------------------------------------------------------


def test_a_jsonl_line_may_carry_a_whole_gemini_request_instead_of_a_prompt():
    line = one(
        {"id": "j1", "model": "models/gemini-2.5-pro", "request": GEMINI_REQUEST | {"model": None}},
        "jsonl",
    )
    assert line.request == GEMINI_EXPECTED
    assert (line.custom_id, line.model) == ("j1", "gemini-2.5-pro")
    inner = one(
        {"id": "j2", "request": {"model": "gemini-2.5-flash", "contents": [user({"text": "a"})]}},
        "jsonl",
    )
    assert inner.model == "gemini-2.5-flash"


def test_a_jsonl_generation_config_is_merged_beside_the_prompt():
    line = one(
        {
            "prompt": "Classify.",
            "temperature": 0.1,
            "generation_config": {
                "topK": 5,
                "responseMimeType": "application/json",
                "responseJsonSchema": SCHEMA,
            },
        },
        "jsonl",
    )
    assert line.request == {
        "contents": [user({"text": "Classify."})],
        "generation_config": {
            "top_k": 5,
            "response_mime_type": "application/json",
            "response_json_schema": SCHEMA,
            "temperature": 0.1,
        },
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            {"prompt": "a", "top_p": 0.5},
            "'top_p' is not a field of a JSONL line (id, prompt, system_instruction, model, "
            "temperature, max_output_tokens, generation_config, request)",
        ),
        (
            {"prompt": "a", "temperature": 0.1, "generation_config": {"temperature": 0.2}},
            "'temperature' is given twice: beside the prompt and in generation_config",
        ),
        (
            {"prompt": "a", "generation_config": {"topK": 0}},
            "generation_config.top_k must be a whole number from 1 to 1,000",
        ),
        ({"prompt": "a", "generation_config": 3}, "generation_config must be an object"),
        (
            {"prompt": "a", "request": {"contents": [user({"text": "b"})]}},
            "'prompt' goes inside 'request' when a whole request is given",
        ),
        (
            {"request": {"contents": []}},
            "request.contents is empty: a request needs at least one turn",
        ),
        (
            {"model": "a", "request": {"model": "b", "contents": [user({"text": "b"})]}},
            "'model' (a) and request.model (b) differ; give one",
        ),
        ({"id": "x"}, "no 'prompt' text (or whole Gemini 'request')"),
    ],
)
def test_a_jsonl_field_that_cannot_be_sent_is_named(line, message):
    assert refusal(line, "jsonl") == f"line 1: {message}"


# CSV and text ---------------------------------------------------------------------------------


def test_a_csv_setting_gemini_would_refuse_names_its_column():
    data = b"prompt,temperature,max_output_tokens\na,3,\nb,,2.5\n"
    assert rejection(data, "csv").messages() == [
        "line 2: temperature must be a number from 0 to 2",
        "line 3: max_output_tokens must be a whole number from 1 to 1,000,000",
    ]


def test_a_csv_model_and_a_text_line_become_simple_requests():
    (row,) = parse_bytes(b"prompt,model\nHi,models/gemini-2.5-pro\n", "csv")
    assert (row.request, row.model) == ({"contents": [user({"text": "Hi"})]}, "gemini-2.5-pro")
    (text,) = parse_bytes(b"Hi there\r\n", "text")
    assert (text.request, text.source) == ({"contents": [user({"text": "Hi there"})]}, "Hi there")
