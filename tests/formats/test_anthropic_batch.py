"""An Anthropic Message Batches line is translated into Gemini's request field by
field; a field with no Gemini counterpart refuses the file with the line and the
field named."""

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


def anthropic(params: dict, **line) -> dict:
    return {"custom_id": "c1", "params": params, **line}


# Anthropic Message Batches: translated field by field --------------------------------------

ANTHROPIC_PARAMS = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": [
        {"type": "text", "text": "You are a historian.", "cache_control": {"type": "ephemeral"}}
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look at these."},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                },
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "Notes."},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "found"}],
                },
                {"type": "text", "text": "And?", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ],
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 20,
    "stop_sequences": ["\n\nHuman:"],
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "tools": [
        {
            "name": "lookup",
            "description": "Look up",
            "input_schema": PARAMETERS,
            "cache_control": {"type": "ephemeral"},
        }
    ],
    "tool_choice": {"type": "tool", "name": "lookup"},
    "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    # Accepted and not sent: they change nothing in the answer.
    "metadata": {"user_id": "u"},
    "service_tier": "auto",
    "stream": False,
}
ANTHROPIC_EXPECTED = {
    "contents": [
        user(
            {"text": "Look at these."},
            {"inline_data": {"mime_type": "image/png", "data": PNG}},
            {"inline_data": {"mime_type": "application/pdf", "data": PDF}},
            {"text": "Notes."},
        ),
        {
            "role": "model",
            "parts": [
                {"text": "Let me check."},
                {"function_call": {"name": "lookup", "args": {"q": "x"}}},
            ],
        },
        user(
            {"function_response": {"name": "lookup", "response": {"output": "found"}}},
            {"text": "And?"},
        ),
    ],
    "system_instruction": {"parts": [{"text": "You are a historian."}]},
    "generation_config": {
        "max_output_tokens": 1024,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 20,
        "stop_sequences": ["\n\nHuman:"],
        "thinking_config": {"thinking_budget": 2048},
        "response_mime_type": "application/json",
        "response_json_schema": SCHEMA,
    },
    "tools": [
        {
            "function_declarations": [
                {"name": "lookup", "description": "Look up", "parameters_json_schema": PARAMETERS}
            ]
        }
    ],
    "tool_config": {
        "function_calling_config": {"mode": "ANY", "allowed_function_names": ["lookup"]}
    },
}


def test_anthropic_params_become_gemini_request_field_by_field():
    line = one(anthropic(ANTHROPIC_PARAMS), "anthropic_batch")
    assert line.request == ANTHROPIC_EXPECTED
    assert (line.custom_id, line.model) == ("c1", "claude-sonnet-4-5")


HELLO = {"role": "user", "content": "Hi"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"thinking": {"type": "disabled"}},
            {"generation_config": {"thinking_config": {"thinking_budget": 0}}},
        ),
        (
            {"thinking": {"type": "adaptive"}},
            {"generation_config": {"thinking_config": {"thinking_budget": -1}}},
        ),
        (
            {"tool_choice": {"type": "auto"}},
            {"tool_config": {"function_calling_config": {"mode": "AUTO"}}},
        ),
        (
            {"tool_choice": {"type": "any", "disable_parallel_tool_use": False}},
            {"tool_config": {"function_calling_config": {"mode": "ANY"}}},
        ),
        (
            {"tool_choice": {"type": "none"}},
            {"tool_config": {"function_calling_config": {"mode": "NONE"}}},
        ),
        (
            {"system": "Plain system."},
            {"system_instruction": {"parts": [{"text": "Plain system."}]}},
        ),
        (
            {"output_format": {"type": "json_schema", "schema": SCHEMA}},
            {
                "generation_config": {
                    "response_mime_type": "application/json",
                    "response_json_schema": SCHEMA,
                }
            },
        ),
    ],
)
def test_each_anthropic_setting_lands_on_its_gemini_field(params, expected):
    line = one(anthropic({"messages": [HELLO], **params}), "anthropic_batch")
    assert line.request == {"contents": [user({"text": "Hi"})], **expected}


def test_an_anthropic_tool_result_marked_as_an_error_is_answered_as_one():
    messages = [
        HELLO,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": True}
            ],
        },
    ]
    line = one(anthropic({"messages": messages}), "anthropic_batch")
    assert line.request["contents"][2] == user(
        {"function_response": {"name": "f", "response": {"error": "boom"}}}
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mcp_servers": [{"type": "url"}]}, "params.mcp_servers has no Gemini counterpart"),
        ({"container": "c1"}, "params.container has no Gemini counterpart"),
        ({"context_management": {}}, "params.context_management has no Gemini counterpart"),
        (
            {"output_config": {"effort": "low"}},
            "params.output_config.effort has no Gemini counterpart",
        ),
        ({"thinking": {"type": "enabled"}}, "params.thinking.budget_tokens is missing"),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 40_000}},
            "params.thinking.budget_tokens must be a whole number from -1 to 32,768",
        ),
        (
            {"thinking": {"type": "sometimes"}},
            "params.thinking.type must be enabled, disabled or adaptive",
        ),
        ({"top_k": 0}, "params.top_k must be a whole number from 1 to 1,000"),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "params.tools[0] is Anthropic's 'web_search_20250305' tool; only custom tools "
            "(name, input_schema) have a Gemini counterpart",
        ),
        (
            {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
            "params.tool_choice.disable_parallel_tool_use has no Gemini counterpart (Gemini may "
            "always call several functions at once)",
        ),
        (
            {"stream": True},
            "params.stream true has no Gemini counterpart (a batch line's answer comes whole)",
        ),
    ],
)
def test_an_anthropic_param_without_a_gemini_counterpart_refuses_the_line_by_name(params, message):
    assert (
        refusal(anthropic({"messages": [HELLO], **params}), "anthropic_batch")
        == f"line 1: {message}"
    )


def _blocks(*blocks: dict) -> dict:
    return {"role": "user", "content": list(blocks)}


@pytest.mark.parametrize(
    ("message", "refused"),
    [
        (
            _blocks(
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
            ),
            "params.messages[0].content[0].source is a web address: nothing is fetched; send the "
            "image as base64 data",
        ),
        (
            _blocks({"type": "document", "source": {"type": "file", "file_id": "file_1"}}),
            "params.messages[0].content[0].source names a file stored at Anthropic, which Gemini "
            "cannot read; send the document as base64 data",
        ),
        (
            _blocks(
                {
                    "type": "document",
                    "title": "T",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                }
            ),
            "params.messages[0].content[0].title has no Gemini counterpart",
        ),
        (
            _blocks(
                {
                    "type": "document",
                    "citations": {"enabled": True},
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                }
            ),
            "params.messages[0].content[0].citations has no Gemini counterpart",
        ),
        (
            _blocks(
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/gif", "data": "R0lGOD=="},
                }
            ),
            "params.messages[0].content[0].source 'image/gif' cannot be sent inline; send images "
            "(image/heic, image/heif, image/jpeg, image/png, image/webp), PDFs or text",
        ),
        (
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}],
            },
            "params.messages[0].content[0] is 'thinking'; here a block is text, tool_use",
        ),
        (
            {"role": "system", "content": "x"},
            "params.messages[0] has role 'system'; a message is from the user or assistant",
        ),
        (
            _blocks({"type": "tool_result", "tool_use_id": "nope", "content": "x"}),
            "params.messages[0].content[0].tool_use_id 'nope' names no tool call earlier in the "
            "conversation",
        ),
    ],
)
def test_an_anthropic_block_that_cannot_be_sent_is_named(message, refused):
    assert (
        refusal(anthropic({"messages": [message, HELLO]}), "anthropic_batch")
        == f"line 1: {refused}"
    )


def test_an_anthropic_tool_result_with_an_image_is_refused():
    messages = [
        HELLO,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
        },
        _blocks(
            {
                "type": "tool_result",
                "tool_use_id": "t1",
                "content": [{"type": "image", "source": {}}],
            }
        ),
    ]
    assert refusal(anthropic({"messages": messages}), "anthropic_batch") == (
        "line 1: params.messages[2].content[0].content[0] is not text; a function's answer "
        "goes to Gemini as text"
    )
