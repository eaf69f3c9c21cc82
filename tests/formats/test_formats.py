"""Prompt files in, result files out: pure, no database, no Django."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import tracemalloc
from pathlib import Path

import pytest

from jobs.formats import (
    FORMAT_LABELS,
    FORMATS,
    FileRejected,
    PromptLine,
    ResultRow,
    detect_format,
    export_csv,
    export_resubmit,
    export_results,
    parse,
)
from jobs.gemini_shape import simple
from tests.formats.files import jsonl, parse_bytes, rejection, result_row

DATA = Path(__file__).parent / "data"
CHAT_URL = "/v1/chat/completions"


def source_of(name: str, number: int) -> str:
    """Line `number` of a sample file as PromptLine.source holds it."""
    text = (DATA / name).read_text(encoding="utf-8-sig")
    return text.split("\n")[number - 1].removesuffix("\r")


def sample(name: str, number: int, custom_id: str, request: dict, model=None) -> PromptLine:
    return PromptLine(number, custom_id, request, model, source_of(name, number))


def turns(*texts: str) -> list[dict]:
    """User and model turns, alternating, of one text part each."""
    roles = ("user", "model")
    return [{"role": roles[i % 2], "parts": [{"text": text}]} for i, text in enumerate(texts)]


def system(text: str) -> dict:
    return {"parts": [{"text": text}]}


CSV_HEADER = "id,Prompt,model,system_instruction,notes"
SAMPLES = {
    "text": (
        "prompts.txt",
        [
            sample("prompts.txt", 1, "", simple("What is the capital of France?")),
            sample("prompts.txt", 3, "", simple("Name three prime numbers.")),
            sample("prompts.txt", 4, "", simple("  Translate «chat» into English.  ")),
        ],
    ),
    "jsonl": (
        "prompts.jsonl",
        [
            sample(
                "prompts.jsonl",
                1,
                "a1",
                simple(
                    "Summarise the plot of Hamlet.", system_instruction="Answer in one sentence."
                ),
                "gemini-2.5-flash",
            ),
            sample(
                "prompts.jsonl",
                2,
                "2",
                simple(
                    "List the planets.",
                    generation_config={"temperature": 0.2, "max_output_tokens": 256},
                ),
            ),
            sample("prompts.jsonl", 4, "", simple("No id here: naïve café ☕.")),
        ],
    ),
    "csv": (
        "prompts.csv",
        [
            PromptLine(
                2,
                "r1",
                simple('Write a haiku about "rain".', system_instruction="You are a poet."),
                "gemini-2.5-pro",
                f"{CSV_HEADER}\n"
                'r1,"Write a haiku about ""rain"".",gemini-2.5-pro,You are a poet.,first',
            ),
            PromptLine(
                3,
                "r2",
                simple("Line one\nline two"),
                None,
                f'{CSV_HEADER}\nr2,"Line one\nline two",,,',
            ),
            PromptLine(
                5,
                "",
                simple("Third prompt, without an id"),
                None,
                f'{CSV_HEADER}\n,"Third prompt, without an id",,,',
            ),
        ],
    ),
    "gemini_batch": (
        "gemini_batch.jsonl",
        [
            sample(
                "gemini_batch.jsonl",
                1,
                "g1",
                simple(
                    "Explain photosynthesis.",
                    system_instruction="Be brief.",
                    generation_config={"temperature": 0.5, "max_output_tokens": 100},
                ),
            ),
            sample(
                "gemini_batch.jsonl",
                2,
                "g2",
                {
                    "contents": [
                        {"role": "user", "parts": [{"text": "Part one."}, {"text": "Part two."}]}
                    ],
                    "system_instruction": system("Camel case."),
                    "generation_config": {"max_output_tokens": 50},
                },
                "gemini-2.5-flash-lite",
            ),
            sample(
                "gemini_batch.jsonl",
                3,
                "g3",
                {"contents": turns("Translate: cat", "chat", "Translate: dog")},
            ),
        ],
    ),
    "openai_batch": (
        "openai_batch.jsonl",
        [
            sample(
                "openai_batch.jsonl",
                1,
                "o1",
                simple(
                    "What is 2+2?",
                    system_instruction="You are terse.",
                    generation_config={"temperature": 0, "max_output_tokens": 10},
                ),
                "gpt-4o-mini",
            ),
            sample(
                "openai_batch.jsonl",
                2,
                "o2",
                {
                    "contents": [
                        {"role": "user", "parts": [{"text": "First."}, {"text": "Second."}]}
                    ],
                    "system_instruction": system("Developer rule."),
                    "generation_config": {"max_output_tokens": 64},
                },
                "gemini-2.5-flash",
            ),
            sample(
                "openai_batch.jsonl",
                3,
                "o3",
                {"contents": turns("Translate: cat", "chat", "Translate: dog")},
                "gpt-4.1",
            ),
        ],
    ),
    "anthropic_batch": (
        "anthropic_batch.jsonl",
        [
            sample(
                "anthropic_batch.jsonl",
                1,
                "c1",
                simple(
                    "Who was Ada Lovelace?",
                    system_instruction="You are a historian.",
                    generation_config={"max_output_tokens": 1024, "temperature": 0.7},
                ),
                "claude-sonnet-4-5",
            ),
            sample(
                "anthropic_batch.jsonl",
                2,
                "c2",
                simple(
                    "Block prompt.",
                    system_instruction="Block system.",
                    generation_config={"max_output_tokens": 200},
                ),
                "claude-haiku-4-5",
            ),
        ],
    ),
}


def parse_file(name: str, fmt: str | None = None, **options) -> list[PromptLine]:
    with (DATA / name).open("rb") as stream:
        return list(parse(stream, fmt, filename=name, **options))


def file_rejection(name: str, fmt: str | None = None) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        parse_file(name, fmt)
    return caught.value


def gemini_line(key: str, prompt: str) -> dict:
    return {"key": key, "request": {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}}


def rows_for(lines: list[PromptLine]) -> list[ResultRow]:
    """One row per prompt, cycling through every state an export has to handle."""
    states = ["succeeded", "failed", "cancelled", "queued"]
    return [
        result_row(p.custom_id or str(p.line), states[i % len(states)], source=p.source)
        for i, p in enumerate(lines)
    ]


# Reading each format ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_sample_file_parses_to_its_prompts_ids_and_settings(fmt):
    name, expected = SAMPLES[fmt]
    assert parse_file(name) == expected
    assert parse_file(name, fmt) == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_sample_file_is_detected_from_its_first_bytes(fmt):
    name, _ = SAMPLES[fmt]
    head = (DATA / name).read_bytes()[:65536]
    assert detect_format(head, name) == fmt
    assert detect_format(head) == fmt


def test_every_format_has_a_label_a_person_can_read():
    assert set(FORMAT_LABELS) == set(FORMATS)
    assert FORMAT_LABELS["anthropic_batch"] == "Anthropic Message Batches JSONL"


def test_file_name_decides_for_csv_and_txt():
    head = (DATA / "gemini_batch.jsonl").read_bytes()
    assert detect_format(head, "prompts.txt") == "text"
    assert detect_format(b"a;b\n", "PROMPTS.CSV") == "csv"


def test_json_lines_are_told_apart_by_their_keys():
    assert detect_format(b'{"request": {"contents": []}}\n') == "gemini_batch"
    assert detect_format(b'{"custom_id": "1", "body": {}}\n') == "openai_batch"
    assert detect_format(b'{"custom_id": "1", "params": {}}\n') == "anthropic_batch"
    assert detect_format(b'\n\n{"prompt": "hi", "id": 3}\n') == "jsonl"
    # A whole request under an id is FlexDash's JSONL; under a key or alone, Gemini's.
    assert detect_format(b'{"id": "a", "request": {"contents": []}}\n') == "jsonl"
    assert detect_format(b'{"key": "a", "request": {"contents": []}}\n') == "gemini_batch"


def test_a_first_line_longer_than_the_head_is_detected_by_the_keys_it_shows():
    line = json.dumps(gemini_line("long", "x" * 100_000)).encode()
    assert detect_format(line[:65536]) == "gemini_batch"


def test_an_unknown_json_object_or_broken_json_is_not_guessed_as_text():
    with pytest.raises(FileRejected) as unknown:
        detect_format(b'{"question": "hi"}\n')
    assert unknown.value.errors[0][0] == 1
    assert "'prompt' (JSONL)" in unknown.value.errors[0][1]
    with pytest.raises(FileRejected) as broken:
        detect_format(b'\n{"prompt": "hi"\n')
    assert broken.value.messages() == [
        "line 2: not valid JSON (Expecting ',' delimiter at column 16); "
        "name the file .txt to upload it as plain text"
    ]


def test_a_jsonl_file_name_with_lines_that_are_not_objects_is_refused():
    with pytest.raises(FileRejected) as caught:
        detect_format(b"just words\n", "prompts.jsonl")
    assert caught.value.errors == [(1, "expected one JSON object per line")]


def test_plain_lines_are_text_and_a_header_with_prompt_is_csv():
    assert detect_format(b"Tell me a joke\nAnother one\n") == "text"
    assert detect_format(b"id;Prompt\n1;hello\n") == "csv"


def test_a_csv_with_tabs_or_semicolons_reads_like_one_with_commas():
    lines = parse_bytes(b"ID\tprompt\tmodel\nx\tHello, world\tgemini-2.5-pro\n", "csv")
    assert lines == [
        PromptLine(
            2,
            "x",
            simple("Hello, world"),
            "gemini-2.5-pro",
            "ID\tprompt\tmodel\nx\tHello, world\tgemini-2.5-pro",
        )
    ]
    lines = parse_bytes(b"prompt;temperature;max_output_tokens\nHi;0.3;40\n", "csv")
    config = {"temperature": 0.3, "max_output_tokens": 40}
    assert lines == [
        PromptLine(
            2,
            "",
            simple("Hi", generation_config=config),
            None,
            "prompt;temperature;max_output_tokens\nHi;0.3;40",
        )
    ]
    assert (lines[0].temperature, lines[0].max_output_tokens) == (0.3, 40)


def test_a_utf8_bom_is_accepted_in_every_format():
    for fmt in FORMATS:
        name, expected = SAMPLES[fmt]
        data = (DATA / name).read_bytes().removeprefix(b"\xef\xbb\xbf")
        assert parse_bytes(b"\xef\xbb\xbf" + data, fmt) == expected


def test_the_last_line_needs_no_newline_and_long_lines_cross_read_chunks_intact():
    prompts = [f"{n} " + "word " * 30_000 for n in range(4)]
    data = "\n".join(prompts).encode()
    assert [p.prompt for p in parse_bytes(data, "text")] == prompts


def test_an_unknown_format_name_is_a_programming_error():
    with pytest.raises(ValueError, match="Unknown format 'xml'"):
        parse_bytes(b"hello\n", "xml")


# Bad files -------------------------------------------------------------------------------


def test_malformed_and_non_object_lines_and_missing_prompts_are_named_by_line():
    rejected = file_rejection("bad_json.jsonl")
    assert rejected.errors == [
        (2, "not valid JSON (Expecting ',' delimiter at column 38)"),
        (3, "expected a JSON object, found a list"),
        (4, "the prompt is empty"),
        (
            5,
            "'text' is not a field of a JSONL line (id, prompt, system_instruction, model, "
            "temperature, max_output_tokens, generation_config, request)",
        ),
    ]
    assert rejected.total_errors == 4
    assert str(rejected).splitlines()[1] == "line 3: expected a JSON object, found a list"


def test_a_duplicate_id_names_both_lines():
    rejected = file_rejection("duplicate_ids.jsonl")
    assert rejected.messages() == ["line 7: id 'q3' was already used on line 2"]


def test_a_line_without_an_id_takes_its_number_so_it_cannot_collide_with_one():
    data = jsonl({"prompt": "first"}, {"id": "1", "prompt": "second"})
    assert rejection(data).errors == [(2, "id '1' was already used on line 1")]


def test_a_file_that_is_not_utf8_names_the_line():
    assert file_rejection("latin1.txt").errors == [(2, "not UTF-8 text")]
    assert file_rejection("latin1.txt", "jsonl").errors[0] == (
        1,
        "not valid JSON (Expecting value at column 1)",
    )


def test_utf16_is_refused_once_with_a_hint():
    data = "prompt one\nprompt two\n".encode("utf-16")
    with pytest.raises(FileRejected) as detected:
        detect_format(data)
    assert detected.value.errors == [
        (1, "not UTF-8 text (this looks like UTF-16; save the file as UTF-8)")
    ]
    assert rejection(data, "text").errors == detected.value.errors


def test_an_empty_file_or_one_of_blank_lines_has_no_prompts():
    assert rejection(b"").errors == [(None, "The file is empty.")]
    assert rejection(b"\n  \n\r\n", "text").errors == [(None, "The file has no prompts.")]
    assert rejection(b"id,prompt\n", "csv").errors == [(None, "The file has no prompts.")]
    assert rejection(b"", "gemini_batch").errors == [(None, "The file has no prompts.")]


def test_a_file_over_the_size_limit_stops_reading_at_once():
    class Endless(io.RawIOBase):
        given = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            buffer[:] = b"x" * (len(buffer) - 1) + b"\n"
            self.given += len(buffer)
            return len(buffer)

    stream = Endless()
    with pytest.raises(FileRejected) as caught:
        list(parse(stream, "text", max_bytes=2 * 2**20))
    assert caught.value.errors == [(None, "The file is larger than 2 MB; split it.")]
    assert stream.given <= 2 * 2**20 + 64 * 1024


def test_too_many_prompts_stop_reading():
    data = b"one\ntwo\nthree\nfour\nfive\n"
    rejected = rejection(data, "text", max_lines=3)
    assert rejected.errors == [(None, "The file has more than 3 prompts; split it.")]
    assert len(parse_bytes(data, "text", max_lines=5)) == 5


def test_a_prompt_or_system_instruction_over_the_limit_names_the_line():
    data = jsonl(
        {"prompt": "short"},
        {"prompt": "x" * 11},
        {"prompt": "ok", "system_instruction": "y" * 12},
    )
    assert rejection(data, max_prompt_chars=10).errors == [
        (2, "the prompt is 11 characters; the limit is 10"),
        (3, "the system instruction is 12 characters; the limit is 10"),
    ]


def test_a_single_line_too_long_to_hold_is_skipped_unread():
    data = b"fine\n" + b"x" * 200_000 + b"\nalso fine\n"
    rejected = rejection(data, "text", max_prompt_chars=10, max_line_bytes=100_000)
    assert rejected.errors == [(2, "the line is longer than 100,000 bytes")]


def test_by_default_a_line_has_room_for_gemini_inline_limit_in_base64():
    data = b"x" * (28 * 2**20) + b"\n"
    rejected = rejection(data, "text", max_prompt_chars=10)
    assert rejected.errors == [(1, "the line is longer than 26.7 MB")]


def test_nul_characters_are_refused_raw_or_escaped():
    assert rejection(b"one\ntw\x00o\n", "text").errors == [(2, "contains a NUL character")]
    escaped = jsonl({"prompt": "ok"}, {"prompt": "a\u0000b"}, {"id": "x\u0000", "prompt": "c"})
    assert rejection(escaped).errors == [
        (2, "prompt contains a NUL character"),
        (3, "the id contains a NUL character"),
    ]


def test_an_unpaired_surrogate_is_refused():
    data = b'{"prompt": "broken \\ud800 text"}\n'
    assert rejection(data).errors == [(1, "prompt is not valid Unicode (an unpaired surrogate)")]


def test_settings_out_of_range_name_the_field():
    data = jsonl(
        {"prompt": "a", "temperature": 3},
        {"prompt": "b", "max_output_tokens": 0},
        {"prompt": "c", "temperature": "hot"},
        {"prompt": "d", "model": 5},
    )
    assert rejection(data).messages() == [
        "line 1: temperature must be a number from 0 to 2",
        "line 2: max_output_tokens must be a whole number from 1 to 1,000,000",
        "line 3: temperature must be a number from 0 to 2",
        "line 4: 'model' must be a string",
    ]


def test_a_gemini_line_of_an_image_alone_runs_and_one_without_contents_is_named():
    assert file_rejection("gemini_no_text.jsonl").errors == [(2, "request.contents is missing")]
    (image,) = parse_bytes((DATA / "gemini_no_text.jsonl").read_bytes().splitlines(True)[0])
    assert image.request["contents"][0]["parts"] == [
        {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgo="}}
    ]
    assert image.prompt == ""


def test_openai_lines_for_another_endpoint_or_without_a_user_message_are_named():
    assert file_rejection("openai_wrong_url.jsonl").errors == [
        (2, "'url' must be '/v1/chat/completions' (found '/v1/embeddings')"),
        (3, "body.messages has no user message"),
    ]


def test_openai_settings_are_named_as_the_file_names_them():
    body = {"messages": [{"role": "user", "content": "a"}], "max_tokens": -1}
    line = {"custom_id": "t", "url": CHAT_URL, "body": body}
    assert rejection(jsonl(line), "openai_batch").messages() == [
        "line 1: body.max_tokens must be a whole number from 1 to 1,000,000"
    ]


def test_an_openai_tool_message_must_answer_an_earlier_tool_call():
    line = {
        "custom_id": "t",
        "url": CHAT_URL,
        "body": {"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]},
    }
    assert rejection(jsonl(line), "openai_batch").messages() == [
        "line 1: body.messages[1].tool_call_id None names no tool call earlier in the conversation"
    ]


def test_anthropic_lines_without_messages_or_with_images_are_named():
    assert file_rejection("anthropic_no_messages.jsonl").errors == [
        (1, "no params.messages"),
        (
            2,
            "params.messages[0].content[0].source is a web address: nothing is fetched; "
            "send the image as base64 data",
        ),
    ]


def test_a_csv_without_a_prompt_column_is_refused_at_the_header():
    assert file_rejection("no_prompt_column.csv").errors == [
        (1, "the header row has no 'prompt' column (it has 'id', 'question')")
    ]


def test_csv_rows_with_extra_fields_or_an_open_quote_are_named():
    data = b'id,prompt\n1,hello\n2,hello, world\n3,fine\n4,"never closed\n5,lost\n'
    assert rejection(data, "csv").errors == [
        (3, "3 fields but the header has 2; quote fields that contain ','"),
        (5, "not valid CSV (unexpected end of data; is a quote left open?)"),
    ]


def test_reading_stops_after_twenty_errors_and_says_there_were_more():
    data = b"".join(b"{broken\n" for _ in range(500))
    rejected = rejection(data, "jsonl")
    assert [line for line, _ in rejected.errors] == list(range(1, 21))
    assert rejected.total_errors == 21


def test_nothing_is_yielded_after_the_first_error_and_the_caller_must_roll_back():
    data = jsonl({"prompt": "one"}, {"prompt": "two"}, {"prompt": " "}, {"prompt": "four"})
    yielded = []
    with pytest.raises(FileRejected) as caught:
        for prompt_line in parse(io.BytesIO(data), "jsonl"):
            yielded.append(prompt_line.prompt)
    assert yielded == ["one", "two"]
    assert caught.value.errors == [(3, "the prompt is empty")]


# Writing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_results_have_one_line_per_finished_job_keyed_by_the_original_ids(fmt):
    name, _ = SAMPLES[fmt]
    rows = rows_for(parse_file(name))
    lines = list(export_results(fmt, rows))
    finished = [row for row in rows if row.finished]
    assert len(lines) == len(finished)
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    decoded = [json.loads(line) for line in lines]
    id_key = {"gemini_batch": "key", "openai_batch": "custom_id", "anthropic_batch": "custom_id"}
    assert [d[id_key.get(fmt, "id")] for d in decoded] == [row.custom_id for row in finished]


@pytest.mark.parametrize("fmt", FORMATS)
def test_results_stay_as_they_were_whatever_the_prompt(fmt):
    # The prompt is for the CSV only: the JSONL results hold the answer, not the question.
    rows = [result_row("a", state) for state in ("succeeded", "failed", "cancelled")]
    other = [dataclasses.replace(row, prompt="another prompt") for row in rows]
    assert "".join(export_results(fmt, rows)) == "".join(export_results(fmt, other))
    assert "Prompt a" not in "".join(export_results(fmt, rows))


# Jobs that succeeded before answers were kept whole: results built from what they kept.


def test_gemini_results_of_older_jobs_are_built_from_the_answer_text_and_tokens():
    rows = [
        result_row("g1", "succeeded"),
        result_row("g2", "failed"),
        result_row("g3", "cancelled"),
    ]
    succeeded, failed, cancelled = map(json.loads, export_results("gemini_batch", rows))
    assert succeeded == {
        "key": "g1",
        "response": {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "Answer to g1\nsecond line"}]},
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 12,
                "candidatesTokenCount": 30,
                "thoughtsTokenCount": 5,
                "totalTokenCount": 47,
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "resp-g1",
        },
    }
    assert failed == {
        "key": "g2",
        "error": {"code": 500, "message": "Capacity (503) on every attempt", "status": "UNKNOWN"},
    }
    assert cancelled["error"] == {
        "code": 499,
        "message": "The job was cancelled.",
        "status": "CANCELLED",
    }


def test_openai_results_of_older_jobs_carry_a_chat_completion_or_the_error():
    rows = [
        result_row("o1", "succeeded", created=1_700_000_000),
        result_row("o2", "failed"),
        result_row("o3", "cancelled"),
    ]
    succeeded, failed, cancelled = map(json.loads, export_results("openai_batch", rows))
    assert succeeded == {
        "id": "batch_req_1",
        "custom_id": "o1",
        "response": {
            "status_code": 200,
            "request_id": "resp-o1",
            "body": {
                "id": "resp-o1",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "gemini-2.5-flash",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Answer to o1\nsecond line"},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 12,
                    "completion_tokens": 35,
                    "total_tokens": 47,
                    "prompt_tokens_details": {"cached_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 5},
                },
            },
        },
        "error": None,
    }
    assert failed == {
        "id": "batch_req_2",
        "custom_id": "o2",
        "response": None,
        "error": {"code": "request_failed", "message": "Capacity (503) on every attempt"},
    }
    assert cancelled["error"] == {"code": "batch_cancelled", "message": "The job was cancelled."}


def test_anthropic_results_of_older_jobs_carry_a_message_an_error_or_canceled():
    rows = [
        result_row("c1", "succeeded"),
        result_row("c2", "failed"),
        result_row("c3", "cancelled"),
    ]
    succeeded, failed, cancelled = map(json.loads, export_results("anthropic_batch", rows))
    assert succeeded == {
        "custom_id": "c1",
        "result": {
            "type": "succeeded",
            "message": {
                "id": "resp-c1",
                "type": "message",
                "role": "assistant",
                "model": "gemini-2.5-flash",
                "content": [{"type": "text", "text": "Answer to c1\nsecond line"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 12,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 35,
                },
            },
        },
    }
    assert failed["result"] == {
        "type": "errored",
        "error": {
            "type": "error",
            "error": {"type": "api_error", "message": "Capacity (503) on every attempt"},
        },
    }
    assert cancelled == {"custom_id": "c3", "result": {"type": "canceled"}}


def test_text_jsonl_and_csv_uploads_get_flexdash_result_lines():
    for fmt in ("text", "jsonl", "csv"):
        rows = [
            result_row("7", "succeeded", finish_reason="STOP"),
            result_row("8", "failed"),
        ]
        succeeded, failed = map(json.loads, export_results(fmt, rows))
        assert succeeded == {
            "id": "7",
            "state": "succeeded",
            "model": "gemini-2.5-flash",
            "output": "Answer to 7\nsecond line",
            "error": "",
            "finish_reason": "STOP",
            "cut_at_limit": False,
            "output_problem": "",
            "input_tokens": 12,
            "output_tokens": 30,
            "thought_tokens": 5,
            "cost_usd": "0.000040",
        }
        assert failed["cost_usd"] is None
        assert failed["error"] == "Capacity (503) on every attempt"


def test_csv_export_lists_every_job_with_its_counters_and_how_it_ended():
    rows = [
        result_row("a,1", "succeeded", finish_reason="MAX_TOKENS", cut_at_limit=True),
        result_row("b", "queued"),
    ]
    lines = list(export_csv(rows))
    assert lines[0] == (
        "id,state,attempts,http_503,http_429,input_tokens,output_tokens,thought_tokens,"
        "cost_usd,prompt,output,finish_reason,cut_at_limit\n"
    )
    assert all(line.endswith("\n") for line in lines)
    records = list(csv.reader(io.StringIO("".join(lines))))
    assert records[1] == [
        "a,1", "succeeded", "2", "1", "0", "12", "30", "5", "0.000040", "Prompt a,1",
        "Answer to a,1\nsecond line", "MAX_TOKENS", "true",
    ]  # fmt: skip
    assert records[2][:2] == ["b", "queued"]
    assert records[2][-2:] == ["", "false"]


# The resubmit file -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_resubmit_writes_what_did_not_succeed_and_parses_back_to_the_same_requests(fmt):
    name, _ = SAMPLES[fmt]
    prompts = parse_file(name)
    rows = rows_for(prompts)
    reparsed = parse_bytes("".join(export_resubmit(fmt, rows)).encode(), fmt)
    expected = [(p, row) for p, row in zip(prompts, rows, strict=True) if not row.succeeded]
    assert [(p.request, p.model) for p in reparsed] == [(p.request, p.model) for p, _ in expected]
    # Text has no ids; every other format keeps the id each line ran under.
    ids = ["" if fmt == "text" else row.custom_id for _, row in expected]
    assert [p.custom_id for p in reparsed] == ids


def test_resubmit_lines_are_the_uploaded_text_a_line_without_an_id_given_its_own():
    lines = [
        '{"id": "q1",  "prompt": "kept\\u00e9 as typed",   "temperature": 0.50}',
        '{"prompt": "no id"}',
        '{"prompt": "null id", "id": null}',
    ]
    prompts = parse_bytes("\r\n".join(lines).encode(), "jsonl")
    rows = [result_row(p.custom_id or str(p.line), "failed", source=p.source) for p in prompts]
    assert list(export_resubmit("jsonl", rows)) == [
        lines[0] + "\n",
        '{"id": "2", "prompt": "no id"}\n',
        '{"prompt": "null id", "id": "3"}\n',
    ]
    gemini = json.dumps(gemini_line("k", "a")).replace('"key": "k", ', "")
    (prompt,) = parse_bytes(gemini.encode(), "gemini_batch")
    (line,) = export_resubmit("gemini_batch", [result_row("1", "failed", source=prompt.source)])
    assert line == '{"key": "1", ' + gemini[1:] + "\n"


def test_a_resubmit_csv_keeps_the_header_and_records_as_uploaded():
    data = b'ID;Prompt;temperature\r\nx;"two\r\nlines";0.5\r\n;no id;\r\ny;plain;\r\n'
    prompts = parse_bytes(data, "csv")
    rows = [result_row(p.custom_id or str(p.line), "failed", source=p.source) for p in prompts]
    content = "".join(export_resubmit("csv", rows))
    assert content == 'ID;Prompt;temperature\nx;"two\r\nlines";0.5\n4;no id;\ny;plain;\n'
    again = parse_bytes(content.encode(), "csv")
    assert [(p.custom_id, p.request) for p in again] == [
        (row.custom_id, p.request) for p, row in zip(prompts, rows, strict=True)
    ]


def test_a_resubmit_csv_without_an_id_column_gets_one():
    prompts = parse_bytes(b"prompt,notes\n=1+1,x\nsecond,\n", "csv")
    rows = [result_row(str(p.line), "failed", source=p.source) for p in prompts]
    content = "".join(export_resubmit("csv", rows))
    assert content == "id,prompt,notes\n2,'=1+1,x\n3,second,\n"
    assert [(p.custom_id, p.prompt) for p in parse_bytes(content.encode(), "csv")] == [
        ("2", "=1+1"),
        ("3", "second"),
    ]


def test_a_resubmit_csv_marks_what_a_spreadsheet_would_compute_and_reads_back_the_same():
    data = b"id,prompt,notes\n'-7,=SUM(A1),@x\nk,'=marked already,\n"
    prompts = parse_bytes(data, "csv")
    rows = [result_row(p.custom_id, "failed", source=p.source) for p in prompts]
    content = "".join(export_resubmit("csv", rows))
    assert content == "id,prompt,notes\n'-7,'=SUM(A1),'@x\nk,'=marked already,\n"
    again = parse_bytes(content.encode(), "csv")
    assert [(p.custom_id, p.prompt) for p in again] == [
        ("-7", "=SUM(A1)"),
        ("k", "=marked already"),
    ]


def test_a_resubmit_csv_with_nothing_to_send_is_a_header():
    assert list(export_resubmit("csv", [])) == [
        "id,prompt,model,system_instruction,temperature,max_output_tokens\n"
    ]


LEGACY_FIELDS = {
    "prompt": "What is 2+2?",
    "system_instruction": "You are terse.",
    "model": "gpt-4o-mini",
    "temperature": 0.0,
    "max_output_tokens": 10,
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_lines_of_jobs_from_before_lines_were_kept_are_written_from_what_they_kept(fmt):
    fields = {"prompt": "What is 2+2?"} if fmt == "text" else LEGACY_FIELDS
    rows = [result_row("o1", "failed", legacy_fields=fields), result_row("o2", "succeeded")]
    (again,) = parse_bytes("".join(export_resubmit(fmt, rows)).encode(), fmt)
    assert again.custom_id == ("" if fmt == "text" else "o1")
    assert again.prompt == "What is 2+2?"
    if fmt != "text":
        assert (again.system_instruction, again.model) == ("You are terse.", "gpt-4o-mini")
        assert (again.temperature, again.max_output_tokens) == (0.0, 10)


def test_resubmitted_lines_of_older_jobs_keep_their_format_shape():
    (line,) = export_resubmit(
        "openai_batch", [result_row("o1", "failed", legacy_fields=LEGACY_FIELDS)]
    )
    assert json.loads(line) == {
        "custom_id": "o1",
        "method": "POST",
        "url": CHAT_URL,
        "body": {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What is 2+2?"},
            ],
            "temperature": 0.0,
            "max_completion_tokens": 10,
        },
    }


def test_exports_pull_rows_one_at_a_time():
    pulled = []

    def rows():
        for n in range(1000):
            pulled.append(n)
            yield result_row(str(n), "succeeded")

    for export in (export_results("gemini_batch", rows()), export_csv(rows())):
        pulled.clear()
        next(export)
        next(export)
        assert len(pulled) <= 2


# A big file ------------------------------------------------------------------------------


def test_a_big_gemini_batch_file_is_parsed_without_holding_it(tmp_path):
    # How fast 50,000 lines parse is bench/ingest.py's to say: timed assertions
    # fail on a busy machine. What is checked here is that the file streams.
    path = tmp_path / "big.jsonl"
    sentence = "Classify the sentiment of this product review in one word. " * 5
    with path.open("w", encoding="utf-8") as f:
        for n in range(10_000):
            f.write(json.dumps(gemini_line(f"review-{n:05d}", f"{sentence} Review #{n}.")) + "\n")
    size = path.stat().st_size

    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            count = sum(1 for _ in parse(stream, filename=path.name))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert peak < size / 2, f"{size / 2**20:.1f} MiB parsed, peak {peak / 2**20:.1f} MiB traced"
