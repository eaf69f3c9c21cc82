"""Result files are the real answers: each format's result line is written from the
GenerateContentResponse Gemini sent, every candidate, finish reason, function call
and token count of it, and the CSV has a column per property of a structured answer."""

from __future__ import annotations

import csv
import io
import json

from jobs.formats import export_csv, export_results
from tests.formats.files import result_row

SAFETY_RATINGS = [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
USAGE = {
    "promptTokenCount": 100,
    "candidatesTokenCount": 20,
    "thoughtsTokenCount": 50,
    "cachedContentTokenCount": 60,
    "totalTokenCount": 170,
}
# Two candidates: the first with a thought summary and its text in two parts, the
# second cut at the token limit.
TWO_ANSWERS = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Weighing the options...", "thought": True},
                    {"text": "Paris"},
                    {"text": " is the capital."},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
            "safetyRatings": SAFETY_RATINGS,
            "citationMetadata": {
                "citations": [{"startIndex": 0, "endIndex": 5, "uri": "https://x"}]
            },
        },
        {
            "content": {"role": "model", "parts": [{"text": "It is Par"}]},
            "finishReason": "MAX_TOKENS",
            "index": 1,
        },
    ],
    "usageMetadata": USAGE,
    "modelVersion": "gemini-2.5-flash-001",
    "responseId": "resp-abc",
}
A_CALL = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Let me look."},
                    {"functionCall": {"name": "lookup", "args": {"q": "Paris"}}},
                    {"functionCall": {"id": "fc-2", "name": "count", "args": {}}},
                ],
            },
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
    "modelVersion": "gemini-2.5-pro",
    "responseId": "resp-call",
}
CUT = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": "Once upon a"}]},
            "finishReason": "MAX_TOKENS",
        }
    ],
    "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 11},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "resp-cut",
}
BLOCKED = {
    "candidates": [{"finishReason": "SAFETY", "safetyRatings": SAFETY_RATINGS}],
    "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "resp-blocked",
}
PROMPT_BLOCKED = {
    "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
    "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "resp-prompt",
}
LOGPROBS = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": "Yes"}]},
            "finishReason": "STOP",
            "logprobsResult": {
                "chosenCandidates": [{"token": "Yes", "logProbability": -0.1}],
                "topCandidates": [
                    {
                        "candidates": [
                            {"token": "Yes", "logProbability": -0.1},
                            {"token": "No", "logProbability": -2.5},
                        ]
                    }
                ],
            },
        }
    ],
    "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1, "totalTokenCount": 5},
}


def answered(custom_id: str, response: dict, state: str = "succeeded", **fields):
    return result_row(custom_id, state, response=response, created=1_764_600_000, **fields)


def only_line(fmt: str, row) -> dict:
    (line,) = export_results(fmt, [row])
    return json.loads(line)


# Gemini Batch ------------------------------------------------------------------------------


def test_gemini_results_are_the_response_exactly_as_it_came():
    for response in (TWO_ANSWERS, A_CALL, CUT, LOGPROBS):
        assert only_line("gemini_batch", answered("g1", response)) == {
            "key": "g1",
            "response": response,
        }


def test_a_blocked_answer_or_prompt_is_written_as_gemini_sent_it():
    blocked = answered("g1", BLOCKED, "failed", error="Blocked for safety.")
    prompt = answered("g2", PROMPT_BLOCKED, "failed", error="The prompt was blocked.")
    assert only_line("gemini_batch", blocked) == {"key": "g1", "response": BLOCKED}
    assert only_line("gemini_batch", prompt) == {"key": "g2", "response": PROMPT_BLOCKED}


# OpenAI Batch ------------------------------------------------------------------------------


def test_openai_results_are_chat_completions_with_every_candidate_and_the_real_usage():
    line = only_line("openai_batch", answered("o1", TWO_ANSWERS))
    assert line["error"] is None
    assert line["response"]["status_code"] == 200
    assert line["response"]["body"] == {
        "id": "resp-abc",
        "object": "chat.completion",
        "created": 1_764_600_000,
        "model": "gemini-2.5-flash-001",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris is the capital."},
                "logprobs": None,
                "finish_reason": "stop",
            },
            {
                "index": 1,
                "message": {"role": "assistant", "content": "It is Par"},
                "logprobs": None,
                "finish_reason": "length",
            },
        ],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 70,
            "total_tokens": 170,
            "prompt_tokens_details": {"cached_tokens": 60},
            "completion_tokens_details": {"reasoning_tokens": 50},
        },
    }


def test_an_openai_result_of_a_function_call_carries_tool_calls():
    (choice,) = only_line("openai_batch", answered("o1", A_CALL))["response"]["body"]["choices"]
    assert choice == {
        "index": 0,
        "message": {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "call_0_0",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "Paris"}'},
                },
                {
                    "id": "fc-2",
                    "type": "function",
                    "function": {"name": "count", "arguments": "{}"},
                },
            ],
        },
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    only_calls = {
        "candidates": [
            {
                "content": {"parts": A_CALL["candidates"][0]["content"]["parts"][1:]},
                "finishReason": "STOP",
            }
        ]
    }
    (choice,) = only_line("openai_batch", answered("o2", only_calls))["response"]["body"]["choices"]
    assert choice["message"]["content"] is None


def test_openai_finish_reasons_say_why_the_answer_ended():
    def reason(response):
        return only_line("openai_batch", answered("o", response, "failed"))["response"]["body"][
            "choices"
        ][0]["finish_reason"]

    assert reason(CUT) == "length"
    assert reason(BLOCKED) == "content_filter"
    for gemini in ("RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"):
        assert reason({"candidates": [{"finishReason": gemini}]}) == "content_filter"
    assert reason({"candidates": [{"finishReason": "OTHER"}]}) == "stop"


def test_a_blocked_openai_answer_has_empty_content_and_a_blocked_prompt_is_an_error():
    body = only_line("openai_batch", answered("o1", BLOCKED, "failed"))["response"]["body"]
    assert body["choices"][0]["message"] == {"role": "assistant", "content": ""}
    line = only_line(
        "openai_batch",
        answered(
            "o2", PROMPT_BLOCKED, "failed", error="The prompt was blocked (PROHIBITED_CONTENT)."
        ),
    )
    assert line["response"] is None
    assert line["error"] == {
        "code": "request_failed",
        "message": "The prompt was blocked (PROHIBITED_CONTENT).",
    }


def test_openai_logprobs_come_from_gemini_logprobs_result():
    (choice,) = only_line("openai_batch", answered("o1", LOGPROBS))["response"]["body"]["choices"]
    assert choice["logprobs"] == {
        "content": [
            {
                "token": "Yes",
                "logprob": -0.1,
                "bytes": [89, 101, 115],
                "top_logprobs": [
                    {"token": "Yes", "logprob": -0.1, "bytes": [89, 101, 115]},
                    {"token": "No", "logprob": -2.5, "bytes": [78, 111]},
                ],
            }
        ],
        "refusal": None,
    }


# Anthropic Message Batches -----------------------------------------------------------------


def test_anthropic_results_are_messages_of_the_first_candidate_with_the_real_usage():
    line = only_line("anthropic_batch", answered("c1", TWO_ANSWERS))
    assert line == {
        "custom_id": "c1",
        "result": {
            "type": "succeeded",
            "message": {
                "id": "resp-abc",
                "type": "message",
                "role": "assistant",
                "model": "gemini-2.5-flash-001",
                "content": [{"type": "text", "text": "Paris is the capital."}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 40,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 60,
                    "output_tokens": 70,
                },
            },
        },
    }


def test_an_anthropic_result_of_a_function_call_has_tool_use_blocks():
    message = only_line("anthropic_batch", answered("c1", A_CALL))["result"]["message"]
    assert message["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "Paris"}},
        {"type": "tool_use", "id": "fc-2", "name": "count", "input": {}},
    ]
    assert message["stop_reason"] == "tool_use"


def test_anthropic_stop_reasons_say_why_the_answer_ended():
    def reason(response):
        return only_line("anthropic_batch", answered("c", response, "failed"))["result"]["message"][
            "stop_reason"
        ]

    assert reason(CUT) == "max_tokens"
    assert reason(BLOCKED) == "refusal"
    assert reason({"candidates": [{"finishReason": "STOP"}]}) == "end_turn"
    prompt = only_line("anthropic_batch", answered("c", PROMPT_BLOCKED, "failed", error="Blocked."))
    assert prompt["result"] == {
        "type": "errored",
        "error": {"type": "error", "error": {"type": "api_error", "message": "Blocked."}},
    }


# FlexDash's JSONL and the CSV -------------------------------------------------------------


def test_flexdash_results_say_how_the_answer_ended_and_hold_the_structured_answer():
    structured = answered(
        "7",
        TWO_ANSWERS,
        output_text="Paris is the capital.",
        finish_reason="STOP",
        output_json={"city": "Paris", "sure": True},
    )
    line = only_line("jsonl", structured)
    assert line["finish_reason"] == "STOP"
    assert line["cut_at_limit"] is False
    assert line["output_json"] == {"city": "Paris", "sure": True}
    assert line["output_problem"] == ""
    assert line["candidates"] == ["Paris is the capital.", "It is Par"]
    assert "function_calls" not in line

    cut = only_line(
        "text",
        answered(
            "8", CUT, output_text="Once upon a", finish_reason="MAX_TOKENS", cut_at_limit=True
        ),
    )
    assert (cut["state"], cut["finish_reason"], cut["cut_at_limit"]) == (
        "succeeded",
        "MAX_TOKENS",
        True,
    )
    assert "output_json" not in cut and "candidates" not in cut

    broken = only_line(
        "csv",
        answered("9", CUT, output_problem="the answer is not JSON (Expecting value at column 1)"),
    )
    assert broken["output_problem"] == "the answer is not JSON (Expecting value at column 1)"

    called = only_line("jsonl", answered("10", A_CALL))
    assert called["function_calls"] == [
        {"name": "lookup", "args": {"q": "Paris"}},
        {"id": "fc-2", "name": "count", "args": {}},
    ]


def test_the_csv_has_a_column_per_property_of_the_structured_answer_neutralised():
    rows = [
        answered(
            "a",
            TWO_ANSWERS,
            output_json={"city": "=Paris", "score": 0.9, "tags": ["x", "y"], "none": None},
        ),
        answered("b", CUT, output_json=None, cut_at_limit=True, finish_reason="MAX_TOKENS"),
        answered("c", CUT, output_json=["not", "an", "object"]),
    ]
    records = list(
        csv.reader(
            io.StringIO(
                "".join(export_csv(rows, json_columns=("city", "score", "tags", "none", "missing")))
            )
        )
    )
    header = records[0]
    assert header[-7:] == [
        "finish_reason",
        "cut_at_limit",
        "output.city",
        "output.score",
        "output.tags",
        "output.none",
        "output.missing",
    ]
    assert records[1][-5:] == ["'=Paris", "0.9", '["x","y"]', "null", ""]
    assert records[2][-7:] == ["MAX_TOKENS", "true", "", "", "", "", ""]
    assert records[3][-5:] == ["", "", "", "", ""]


def test_the_csv_without_json_columns_is_as_before_plus_how_each_answer_ended():
    (header, _) = csv.reader(io.StringIO("".join(export_csv([answered("a", CUT)]))))
    assert header[-4:] == ["prompt", "output", "finish_reason", "cut_at_limit"]
