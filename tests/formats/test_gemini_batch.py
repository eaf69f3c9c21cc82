"""A Gemini Batch line's request runs whole: every field kept, respelled in snake_case,
and a field Gemini would refuse named with its line."""

from __future__ import annotations

import io

import pytest

from jobs import gemini_shape
from jobs.formats import FileRejected, parse
from tests.formats.files import (
    PARAMETERS,
    PNG,
    SCHEMA,
    jsonl,
    one,
    refusal,
    user,
)

# Gemini Batch: the request whole ----------------------------------------------------------

GEMINI_REQUEST = {
    "model": "models/gemini-2.5-pro",
    "contents": [
        {
            "role": "user",
            "parts": [
                {"text": "Describe both."},
                {"inlineData": {"mimeType": "image/png", "data": PNG}},
                {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/a.pdf"}},
            ],
        },
        {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": "x"}}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "lookup", "response": {"output": "y"}}}],
        },
    ],
    "systemInstruction": {"parts": [{"text": "Be brief."}]},
    "generationConfig": {
        "temperature": 0.3,
        "topP": 0.9,
        "topK": 40,
        "seed": 7,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "maxOutputTokens": 500,
        "responseLogprobs": True,
        "logprobs": 3,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.2,
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
    },
    "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}],
    "tools": [
        {
            "functionDeclarations": [
                {"name": "lookup", "description": "Look up", "parametersJsonSchema": PARAMETERS}
            ]
        },
        {"googleSearch": {}},
    ],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}},
    "cachedContent": "cachedContents/abc",
}
GEMINI_EXPECTED = {
    "contents": [
        user(
            {"text": "Describe both."},
            {"inline_data": {"mime_type": "image/png", "data": PNG}},
            {"file_data": {"mime_type": "application/pdf", "file_uri": "gs://bucket/a.pdf"}},
        ),
        {"role": "model", "parts": [{"function_call": {"name": "lookup", "args": {"q": "x"}}}]},
        user({"function_response": {"name": "lookup", "response": {"output": "y"}}}),
    ],
    "system_instruction": {"parts": [{"text": "Be brief."}]},
    "generation_config": {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,
        "seed": 7,
        "stop_sequences": ["END"],
        "candidate_count": 2,
        "max_output_tokens": 500,
        "response_logprobs": True,
        "logprobs": 3,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "response_mime_type": "application/json",
        "response_json_schema": SCHEMA,
        "thinking_config": {"thinking_budget": 1024, "include_thoughts": True},
    },
    "safety_settings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}],
    "tools": [
        {
            "function_declarations": [
                {"name": "lookup", "description": "Look up", "parameters_json_schema": PARAMETERS}
            ]
        },
        {"google_search": {}},
    ],
    "tool_config": {
        "function_calling_config": {"mode": "ANY", "allowed_function_names": ["lookup"]}
    },
    "cached_content": "cachedContents/abc",
}


def test_a_gemini_batch_request_is_kept_whole_in_snake_case_and_its_model_apart():
    line = one({"key": "g1", "request": GEMINI_REQUEST}, "gemini_batch")
    assert line.request == GEMINI_EXPECTED
    assert (line.custom_id, line.model) == ("g1", "gemini-2.5-pro")
    assert line.prompt == "Describe both."  # the turns of function calls hold no text
    assert (line.system_instruction, line.temperature, line.max_output_tokens) == (
        "Be brief.",
        0.3,
        500,
    )


def test_a_gemini_batch_conversation_reads_as_a_transcript_on_the_pages():
    request = {
        "contents": [
            user({"text": "Translate: cat"}),
            {"role": "model", "parts": [{"text": "chat"}]},
            user({"text": "Translate: dog"}),
        ]
    }
    line = one({"key": "t", "request": request}, "gemini_batch")
    assert line.prompt == "User: Translate: cat\n\nAssistant: chat\n\nUser: Translate: dog"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            {"contents": [user({"text": "a"})], "generationConfig": {"topK": 1.5}},
            "request.generation_config.top_k must be a whole number from 1 to 1,000",
        ),
        (
            {"contents": [user({"text": "a"})], "generationConfig": {"creativity": 1}},
            "request.generation_config.creativity is not a field Gemini knows here",
        ),
        (
            {"contents": [user({"inline_data": {"mime_type": "audio/mp3", "data": "AAAA"}})]},
            "request.contents[0].parts[0].inline_data.mime_type 'audio/mp3' cannot be sent "
            "inline; send images (image/heic, image/heif, image/jpeg, image/png, image/webp), "
            "PDFs or text",
        ),
        (
            {"contents": [user({"inline_data": {"mime_type": "image/png", "data": "no!"}})]},
            "request.contents[0].parts[0].inline_data.data is not base64",
        ),
        (
            {"contents": [{"role": "system", "parts": [{"text": "a"}]}]},
            "request.contents[0].role must be one of user, model",
        ),
        (
            {
                "contents": [user({"text": "a"})],
                "toolConfig": {"functionCallingConfig": {"mode": 1}},
            },
            "request.tool_config.function_calling_config.mode must be one of auto, any, none, "
            "validated",
        ),
        ({"systemInstruction": "a"}, "request.contents is missing"),
    ],
)
def test_a_gemini_batch_field_gemini_would_refuse_is_named(request_, message):
    assert refusal({"key": "g", "request": request_}, "gemini_batch") == f"line 1: {message}"


def test_a_gemini_batch_response_schema_that_is_no_schema_is_named():
    config = {"responseMimeType": "application/json", "responseJsonSchema": {"type": "objekt"}}
    message = refusal(
        {"key": "g", "request": {"contents": [user({"text": "a"})], "generationConfig": config}},
        "gemini_batch",
    )
    assert message.startswith(
        "line 1: request.generation_config.response_json_schema['type'] is not a valid JSON Schema"
    )


def test_a_gemini_batch_line_with_fields_beside_key_and_request_is_refused():
    line = {"key": "g", "request": {"contents": [user({"text": "a"})]}, "metadata": {"a": 1}}
    assert refusal(line, "gemini_batch") == (
        "line 1: 'metadata' is not a field of a Gemini Batch line (key, request)"
    )


def test_media_over_gemini_inline_limit_is_refused_with_the_advice_to_send_uris():
    big = "AAAA" * (gemini_shape.MAX_INLINE_BYTES // 3 + 2)
    line = {
        "key": "g",
        "request": {"contents": [user({"inline_data": {"mime_type": "image/png", "data": big}})]},
    }
    assert refusal(line, "gemini_batch") == (
        "line 1: request carries 20.0 MB inline; Gemini's limit is 20 MB. "
        "Send larger media as file_data URIs."
    )


def test_a_request_of_an_image_alone_is_not_empty_but_one_of_blank_text_is():
    image = {
        "key": "a",
        "request": {"contents": [user({"inline_data": {"mime_type": "image/png", "data": PNG}})]},
    }
    blank = {"key": "b", "request": {"contents": [user({"text": "  "}, {"text": "\n"})]}}
    assert one(image, "gemini_batch").prompt == ""
    assert refusal(blank, "gemini_batch") == "line 1: the prompt is empty"


def test_nothing_is_yielded_after_a_refused_field_and_the_rest_is_still_checked():
    lines = [
        {"key": "1", "request": {"contents": [user({"text": "fine"})]}},
        {
            "key": "2",
            "request": {"contents": [user({"text": "a"})], "generationConfig": {"seed": "x"}},
        },
        {"key": "3", "request": {"contents": [user({"text": "not yielded"})]}},
        {"key": "4", "request": {"contents": [user({"text": "a"})], "tools": [{"bash": {}}]}},
    ]
    yielded = []
    with pytest.raises(FileRejected) as caught:
        for line in parse(io.BytesIO(jsonl(*lines)), "gemini_batch"):
            yielded.append(line.custom_id)
    assert yielded == ["1"]
    assert caught.value.messages() == [
        "line 2: request.generation_config.seed must be a whole number from -2,147,483,648 to "
        "2,147,483,647",
        "line 4: request.tools[0].bash is not a field Gemini knows here",
    ]
