"""The resubmit file sends what the upload sent: parse, resubmit what did not succeed,
parse again, and every line asks for the same request under the same id."""

from __future__ import annotations

import json

import pytest

from jobs.formats import FORMATS, export_resubmit
from tests.formats.files import (
    jsonl,
    parse_bytes,
    result_row,
    user,
)
from tests.formats.test_anthropic_batch import ANTHROPIC_PARAMS, HELLO, anthropic
from tests.formats.test_gemini_batch import GEMINI_REQUEST
from tests.formats.test_openai_batch import ASK, CHAT_URL, OPENAI_BODY, openai

# The round trip: parse, resubmit, parse --------------------------------------------------------

ROUND_TRIP = {
    "text": b"First prompt\n\n  Second, with spaces  \r\nThird\n",
    "csv": b"id;prompt;system_instruction;temperature;max_output_tokens;model;notes\r\n"
    b'a;"multi\r\nline";Be kind;0.4;12;gemini-2.5-pro;x\r\n;=1+1;;;;;\r\n',
    "jsonl": jsonl(
        {"id": "j1", "prompt": "p", "generation_config": {"seed": 3}, "temperature": 0.5},
        {"id": "j2", "request": GEMINI_REQUEST},
        {"prompt": "no id"},
    ),
    "gemini_batch": jsonl(
        {"key": "g1", "request": GEMINI_REQUEST}, {"request": {"contents": [user({"text": "x"})]}}
    ),
    "openai_batch": jsonl(openai(OPENAI_BODY), {"url": CHAT_URL, "body": {"messages": [ASK]}}),
    "anthropic_batch": jsonl(anthropic(ANTHROPIC_PARAMS), {"params": {"messages": [HELLO]}}),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_parse_resubmit_parse_sends_the_same_requests_under_the_same_ids(fmt):
    first = parse_bytes(ROUND_TRIP[fmt], fmt)
    rows = [result_row(p.custom_id or str(p.line), "failed", source=p.source) for p in first]
    again = parse_bytes("".join(export_resubmit(fmt, rows)).encode(), fmt)
    assert [(p.request, p.model) for p in again] == [(p.request, p.model) for p in first]
    if fmt != "text":
        assert [p.custom_id for p in again] == [row.custom_id for row in rows]


def test_a_resubmitted_line_is_byte_for_byte_the_uploaded_one():
    line = json.dumps(openai(OPENAI_BODY), indent=None, separators=(",", ":"))
    (prompt,) = parse_bytes(line.encode() + b"\r\n", "openai_batch")
    (written,) = export_resubmit("openai_batch", [result_row("o1", "failed", source=prompt.source)])
    assert written == line + "\n"
