"""An OpenAI Batch line is translated into Gemini's request field by field; a field
with no Gemini counterpart refuses the file with the line and the field named."""

from __future__ import annotations

import pytest

from tests.formats.files import (
    PARAMETERS,
    PDF,
    PNG,
    SCHEMA,
    one,
    refusal,
    user,
)

CHAT_URL = "/v1/chat/completions"
ASK = {"role": "user", "content": "Hi"}


def openai(body: dict, **line) -> dict:
    return {"custom_id": "o1", "method": "POST", "url": CHAT_URL, "body": body, **line}


# OpenAI Batch: translated field by field ---------------------------------------------------

OPENAI_BODY = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in JSON."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {
                    "type": "image_url",
                    "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "auto"},
                },
                {
                    "type": "file",
                    "file": {
                        "filename": "a.pdf",
                        "file_data": f"data:application/pdf;base64,{PDF}",
                    },
                },
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "cat"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "count", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "Two cats."},
        {"role": "user", "content": "Sure?"},
    ],
    "temperature": 0.2,
    "top_p": 0.8,
    "seed": 42,
    "stop": ["END", "STOP"],
    "max_completion_tokens": 300,
    "n": 2,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "logprobs": True,
    "top_logprobs": 5,
    "reasoning_effort": "low",
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "answer", "strict": True, "schema": SCHEMA},
    },
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look up",
                "parameters": PARAMETERS,
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "count"}},
    ],
    "tool_choice": "required",
    "parallel_tool_calls": True,
    "stream": False,
    "modalities": ["text"],
    # Accepted and not sent: they change nothing in the answer.
    "user": "u1",
    "metadata": {"study": "a"},
    "store": False,
    "service_tier": "flex",
    "safety_identifier": "s",
    "prompt_cache_key": "k",
    "logit_bias": None,  # null is a field left out
}
OPENAI_EXPECTED = {
    "contents": [
        user(
            {"text": "What is in these?"},
            {"inline_data": {"mime_type": "image/png", "data": PNG}},
            {"inline_data": {"mime_type": "application/pdf", "data": PDF}},
        ),
        {
            "role": "model",
            "parts": [
                {"function_call": {"name": "lookup", "args": {"q": "cat"}}},
                {"function_call": {"name": "count", "args": {}}},
            ],
        },
        user(
            {"function_response": {"name": "lookup", "response": {"output": "a cat"}}},
            {"function_response": {"name": "count", "response": {"output": "two"}}},
        ),
        {"role": "model", "parts": [{"text": "Two cats."}]},
        user({"text": "Sure?"}),
    ],
    "system_instruction": {"parts": [{"text": "Be terse."}, {"text": "Answer in JSON."}]},
    "generation_config": {
        "temperature": 0.2,
        "top_p": 0.8,
        "seed": 42,
        "stop_sequences": ["END", "STOP"],
        "max_output_tokens": 300,
        "candidate_count": 2,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "response_logprobs": True,
        "logprobs": 5,
        "thinking_config": {"thinking_level": "low"},
        "response_mime_type": "application/json",
        "response_json_schema": SCHEMA,
    },
    "tools": [
        {
            "function_declarations": [
                {"name": "lookup", "description": "Look up", "parameters_json_schema": PARAMETERS},
                {"name": "count"},
            ]
        }
    ],
    "tool_config": {"function_calling_config": {"mode": "ANY"}},
}


def test_an_openai_body_becomes_gemini_request_field_by_field():
    line = one(openai(OPENAI_BODY), "openai_batch")
    assert line.request == OPENAI_EXPECTED
    assert (line.custom_id, line.model) == ("o1", "gpt-4o")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"stop": "END"}, {"generation_config": {"stop_sequences": ["END"]}}),
        ({"max_tokens": 64}, {"generation_config": {"max_output_tokens": 64}}),
        (
            {"max_tokens": 64, "max_completion_tokens": 64},
            {"generation_config": {"max_output_tokens": 64}},
        ),
        ({"response_format": {"type": "text"}}, {}),
        (
            {"response_format": {"type": "json_object"}},
            {"generation_config": {"response_mime_type": "application/json"}},
        ),
        ({"tool_choice": "auto"}, {"tool_config": {"function_calling_config": {"mode": "AUTO"}}}),
        ({"tool_choice": "none"}, {"tool_config": {"function_calling_config": {"mode": "NONE"}}}),
        (
            {"tool_choice": {"type": "function", "function": {"name": "lookup"}}},
            {
                "tool_config": {
                    "function_calling_config": {"mode": "ANY", "allowed_function_names": ["lookup"]}
                }
            },
        ),
        (
            {"reasoning_effort": "minimal"},
            {"generation_config": {"thinking_config": {"thinking_level": "minimal"}}},
        ),
        (
            {"reasoning_effort": "high"},
            {"generation_config": {"thinking_config": {"thinking_level": "high"}}},
        ),
    ],
)
def test_each_openai_setting_lands_on_its_gemini_field(body, expected):
    line = one(openai({"messages": [ASK], **body}), "openai_batch")
    assert line.request == {"contents": [user({"text": "Hi"})], **expected}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"logit_bias": {"50256": -100}}, "body.logit_bias has no Gemini counterpart"),
        ({"audio": {"voice": "alloy"}}, "body.audio has no Gemini counterpart"),
        ({"prediction": {"type": "content"}}, "body.prediction has no Gemini counterpart"),
        ({"web_search_options": {}}, "body.web_search_options has no Gemini counterpart"),
        ({"verbosity": "low"}, "body.verbosity has no Gemini counterpart"),
        ({"functions": [{"name": "f"}]}, "body.functions has no Gemini counterpart"),
        (
            {"parallel_tool_calls": False},
            "body.parallel_tool_calls false has no Gemini counterpart "
            "(Gemini may always call several functions at once)",
        ),
        (
            {"modalities": ["text", "audio"]},
            'body.modalities ["text", "audio"] has no Gemini counterpart '
            "(FlexDash asks for text answers)",
        ),
        (
            {"stream": True},
            "body.stream true has no Gemini counterpart (a batch line's answer comes whole)",
        ),
        ({"top_p": 1.5}, "body.top_p must be a number from 0 to 1"),
        ({"n": 9}, "body.n must be a whole number from 1 to 8"),
        ({"stop": ["a", "b", "c", "d", "e", "f"]}, "body.stop has 6 items; Gemini takes at most 5"),
        ({"stop": 5}, "body.stop must be a list"),
        (
            {"reasoning_effort": "xhigh"},
            "body.reasoning_effort must be one of minimal, low, medium, high",
        ),
        (
            {"max_tokens": 10, "max_completion_tokens": 20},
            "body.max_completion_tokens differs from the other token limit given; give one",
        ),
        (
            {"response_format": {"type": "xml"}},
            "body.response_format.type must be text, json_object or json_schema",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a"}}},
            "body.response_format.json_schema needs a schema",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"schema": SCHEMA, "description": "d"},
                }
            },
            "body.response_format.json_schema.description is not a field of a json_schema "
            "(name, schema, strict)",
        ),
        (
            {"tools": [{"type": "custom", "custom": {"name": "x"}}]},
            "body.tools[0] is a 'custom' tool; only function tools have a Gemini counterpart",
        ),
        (
            {"tools": [{"type": "function", "function": {"description": "no name"}}]},
            "body.tools[0].function needs a name",
        ),
        ({"tool_choice": "sometimes"}, "body.tool_choice must be auto, none or required"),
        (
            {"tool_choice": {"type": "allowed_tools", "allowed_tools": {}}},
            "body.tool_choice must be auto, none, required or "
            '{"type": "function", "function": {"name": ...}}',
        ),
    ],
)
def test_an_openai_field_without_a_gemini_counterpart_refuses_the_line_by_name(body, message):
    assert refusal(openai({"messages": [ASK], **body}), "openai_batch") == f"line 1: {message}"


def _image(url: str, **extra) -> dict:
    return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url, **extra}}]}


@pytest.mark.parametrize(
    ("message", "refused"),
    [
        (
            _image("https://example.com/cat.png"),
            "body.messages[0].content[0].image_url.url is a web address: nothing is fetched; "
            "send the image as a data: URL (data:<type>;base64,...)",
        ),
        (
            _image(f"data:image/png;base64,{PNG}", detail="high"),
            "body.messages[0].content[0].image_url.detail 'high' has no Gemini counterpart for "
            "one image; leave it out or send auto",
        ),
        (
            _image("data:image/png,rawbytes"),
            "body.messages[0].content[0].image_url.url must be a data: URL with base64 data "
            "(data:<type>;base64,...)",
        ),
        (
            _image("data:image/png;base64,@@@"),
            "body.messages[0].content[0].image_url.url is not base64",
        ),
        (
            _image("data:image/gif;base64,R0lGOD=="),
            "body.messages[0].content[0].image_url.url 'image/gif' cannot be sent inline; send "
            "images (image/heic, image/heif, image/jpeg, image/png, image/webp), PDFs or text",
        ),
        (
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}
                ],
            },
            "body.messages[0].content[0] is audio; FlexDash sends text, images and PDFs",
        ),
        (
            {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]},
            "body.messages[0].content[0].file.file_id names a file stored at OpenAI, which Gemini "
            "cannot read; send the file as file_data (a data: URL)",
        ),
        (
            {"role": "user", "content": "Hi", "name": "ada"},
            "body.messages[0].name has no Gemini counterpart",
        ),
        (
            {"role": "function", "content": "x", "name": "f"},
            "body.messages[0] has role 'function'; a message is from the system, developer, user, "
            "assistant or tool",
        ),
        (
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
            "body.messages[0].content[0] is 'image_url'; this message holds text only",
        ),
        (
            {"role": "user", "content": []},
            "body.messages[0].content must be a string or a list of content parts",
        ),
    ],
)
def test_an_openai_message_part_that_cannot_be_sent_is_named(message, refused):
    assert refusal(openai({"messages": [message, ASK]}), "openai_batch") == f"line 1: {refused}"


def test_openai_defaults_given_aloud_are_not_sent_so_they_pick_no_route():
    line = one(openai({"messages": [ASK], "n": 1, "logprobs": False}), "openai_batch")
    assert line.request == {"contents": [user({"text": "Hi"})]}


def test_an_empty_assistant_text_beside_tool_calls_is_left_out():
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [ASK, {"role": "assistant", "content": "", "tool_calls": [call]}]
    line = one(openai({"messages": messages}), "openai_batch")
    assert line.request["contents"][1] == {
        "role": "model",
        "parts": [{"function_call": {"name": "f", "args": {}}}],
    }


def test_openai_tool_calls_need_json_arguments_and_tool_answers_an_earlier_call():
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    messages = [ASK, {"role": "assistant", "tool_calls": [call]}]
    assert refusal(openai({"messages": messages}), "openai_batch") == (
        "line 1: body.messages[1].tool_calls[0].function.arguments is not JSON"
    )
    messages = [ASK, {"role": "tool", "tool_call_id": "nope", "content": "x"}]
    assert refusal(openai({"messages": messages}), "openai_batch") == (
        "line 1: body.messages[1].tool_call_id 'nope' names no tool call earlier in the "
        "conversation"
    )


def test_an_openai_line_with_fields_beside_its_four_is_refused():
    assert refusal(openai({"messages": [ASK]}, extra=1), "openai_batch") == (
        "line 1: 'extra' is not a field of an OpenAI Batch line (custom_id, method, url, body)"
    )
