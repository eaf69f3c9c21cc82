"""A file in each format, run through the real SDK on both routes: every field of each
line reaches the wire, the results download holds the real answer in the format's own
shape, and the unfinished download, uploaded again, sends the very same requests."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from jobs.models import Job, State
from jobs.runs import downloads
from tests.support import run_from_file, send_due_jobs, streamed, wire_requests

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_in_tmp")]

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "score": {"type": "integer"}},
    "required": ["answer", "score"],
}


def _gemini(tag: str) -> tuple[str, list[dict]]:
    def line(key: str, text: str) -> dict:
        return {
            "key": key,
            "request": {
                "contents": [
                    {"role": "user", "parts": [{"text": "Hello"}]},
                    {"role": "model", "parts": [{"text": "Hi."}]},
                    {
                        "role": "user",
                        "parts": [
                            {"text": text},
                            {"inlineData": {"mimeType": "image/png", "data": PNG}},
                        ],
                    },
                ],
                "systemInstruction": {"parts": [{"text": "Be exact."}]},
                "generationConfig": {
                    "temperature": 0.1,
                    "topP": 0.5,
                    "seed": 11,
                    "stopSequences": ["STOP"],
                    "responseMimeType": "application/json",
                    "responseJsonSchema": SCHEMA,
                    "thinkingConfig": {"thinkingLevel": "low"},
                },
                "safetySettings": [
                    {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}
                ],
            },
        }

    return "batch.jsonl", [line("good", f"Rate it {tag}"), line("bad", f"[sim:400] Rate it {tag}")]


def _openai(tag: str) -> tuple[str, list[dict]]:
    def line(custom_id: str, text: str) -> dict:
        return {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "Be exact."},
                    {"role": "user", "content": "Hello"},
                    {"role": "assistant", "content": "Hi."},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": text},
                            {
                                "type": "image_url",
                                "image_url": {"url": f"data:image/png;base64,{PNG}"},
                            },
                        ],
                    },
                ],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "rating", "schema": SCHEMA},
                },
                "top_p": 0.5,
                "seed": 11,
                "stop": ["STOP"],
                "max_completion_tokens": 200,
                "reasoning_effort": "low",
            },
        }

    return "openai.jsonl", [line("good", f"Rate it {tag}"), line("bad", f"[sim:400] Rate it {tag}")]


def _anthropic(tag: str) -> tuple[str, list[dict]]:
    def line(custom_id: str, text: str) -> dict:
        return {
            "custom_id": custom_id,
            "params": {
                "model": "claude-sonnet-4-5",
                "max_tokens": 300,
                "system": "Be exact.",
                "messages": [
                    {"role": "user", "content": "Hello"},
                    {"role": "assistant", "content": "Hi."},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": text},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": PNG,
                                },
                            },
                        ],
                    },
                ],
                "top_p": 0.5,
                "top_k": 20,
                "stop_sequences": ["STOP"],
                "thinking": {"type": "enabled", "budget_tokens": 64},
            },
        }

    return "claude.jsonl", [line("good", f"Rate it {tag}"), line("bad", f"[sim:400] Rate it {tag}")]


def _jsonl(tag: str) -> tuple[str, list[dict]]:
    def line(custom_id: str, text: str) -> dict:
        return {
            "id": custom_id,
            "prompt": text,
            "system_instruction": "Be exact.",
            "temperature": 0.1,
            "generation_config": {"seed": 11, "stop_sequences": ["STOP"]},
        }

    return "prompts.jsonl", [
        line("good", f"Rate it {tag}"),
        line("bad", f"[sim:400] Rate it {tag}"),
    ]


FILES = {
    "gemini_batch": _gemini,
    "openai_batch": _openai,
    "anthropic_batch": _anthropic,
    "jsonl": _jsonl,
}


def _content(lines: list[dict]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _sent(url: str, marker: str) -> list[dict]:
    return [r for r in wire_requests(url) if marker in json.dumps(r["body"])]


@pytest.fixture(params=["interactions", "generate_content"])
def route(request, settings):
    settings.GEMINI_API = request.param
    return request.param


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_a_line_runs_whole_answers_in_its_format_and_uploads_again_the_same(
    ada, simulator, route, fmt
):
    tag = uuid.uuid4().hex[:10]
    filename, lines = FILES[fmt](tag)
    run = run_from_file(ada, _content(lines), filename)
    assert run.source_format == fmt
    send_due_jobs(simulator.url, route)
    good, bad = run.jobs.order_by("id")
    assert (good.state, bad.state) == (State.SUCCEEDED, State.FAILED)

    # Every field reached the wire: the good line's request as the simulator got it.
    (wire,) = [r for r in _sent(simulator.url, tag) if "[sim:400]" not in json.dumps(r)]
    sent = json.dumps(wire["body"])
    for expected in ("Be exact.", "STOP", "11" if fmt != "anthropic_batch" else "64"):
        assert expected in sent, f"{expected!r} did not reach the wire"
    if fmt != "jsonl":
        assert PNG in sent and "Hello" in sent and "Hi." in sent
    if fmt in ("gemini_batch", "openai_batch"):
        assert good.output_json is not None and good.output_problem == ""
    if fmt == "anthropic_batch":
        # top_k and a thinking budget exist only on generateContent.
        assert wire["route"] == "generateContent"

    # The results download is the real answer, in the format's own shape.
    results = [json.loads(line) for line in streamed(downloads.results(run)).splitlines()]
    first = results[0]
    if fmt == "gemini_batch":
        assert first == {"key": "good", "response": good.response}
    elif fmt == "openai_batch":
        body = first["response"]["body"]
        assert body["created"] > 0 and body["model"]
        assert body["choices"][0]["message"]["content"] == good.result_text
        assert body["choices"][0]["finish_reason"] == "stop"
    elif fmt == "anthropic_batch":
        message = first["result"]["message"]
        assert message["content"][0] == {"type": "text", "text": good.result_text}
        assert message["stop_reason"] == "end_turn"
        assert message["usage"]["output_tokens"] == good.output_tokens + good.thought_tokens
    else:
        assert first["output"] == good.result_text

    # The unfinished download is the failed line as uploaded; run again, it sends the
    # very same request.
    unfinished = streamed(downloads.unfinished(run))
    again = run_from_file(ada, unfinished, filename)
    (retried,) = again.jobs.all()
    assert retried.gemini_request() == bad.gemini_request()
    send_due_jobs(simulator.url, route)
    first_try, second_try = _sent(simulator.url, f"[sim:400] Rate it {tag}")
    assert first_try == second_try


@pytest.mark.parametrize(
    ("filename", "line", "named"),
    [
        (
            "openai.jsonl",
            {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
             "body": {"messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 2}}},
            "line 1: body.logit_bias",
        ),
        (
            "openai.jsonl",
            {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
             "body": {"messages": [{"role": "user", "content": [
                 {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}},
            "line 1: body.messages[0].content[0].image_url",
        ),
        (
            "claude.jsonl",
            {"custom_id": "a", "params": {"max_tokens": 5, "messages": [
                {"role": "user", "content": "x"}], "mcp_servers": []}},
            "line 1: params.mcp_servers",
        ),
        (
            "batch.jsonl",
            {"key": "a", "request": {"contents": [{"parts": [{"text": "x"}]}],
                                     "generationConfig": {"topK": -1}}},
            "line 1: request.generation_config.top_k",
        ),
    ],
)  # fmt: skip
def test_a_field_with_no_gemini_counterpart_refuses_the_file_naming_line_and_field(
    ada, filename, line, named
):
    from jobs.runs.reading import RunRejected

    with pytest.raises(RunRejected) as refused:
        run_from_file(ada, _content([line]), filename)
    assert any(message.startswith(named) for message in refused.value.messages())
    assert not Job.objects.exists()
