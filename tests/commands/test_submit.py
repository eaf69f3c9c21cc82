"""manage.py submit: prints the new ids as JSON; bad input creates nothing."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job, State
from tests.support import submit_command

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ada")]


def test_it_submits_one_prompt_and_prints_the_id():
    printed = submit_command("--model", "gemini-2.5-flash", "--prompt", "Hello")
    (job,) = Job.objects.all()
    assert printed == {"jobs": [job.pk]}
    assert (job.input_text, job.state, job.tier_requested) == ("Hello", State.QUEUED, "flex")


def test_it_takes_tier_attempts_and_fallback():
    submit_command(
        "--model",
        "gemini-2.5-pro",
        "--tier",
        "standard",
        "--max-attempts",
        "3",
        "--fallback-standard",
        "--prompt",
        "x",
    )
    job = Job.objects.get()
    assert (job.model, job.tier_requested, job.max_attempts, job.fallback_standard) == (
        "gemini-2.5-pro",
        "standard",
        3,
        True,
    )


def test_a_text_file_is_one_prompt_per_line(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("first\n\nsecond\nthird\n", encoding="utf-8")
    printed = submit_command("--file", str(path))
    assert len(printed["jobs"]) == 3
    assert list(Job.objects.order_by("id").values_list("input_text", flat=True)) == [
        "first",
        "second",
        "third",
    ]


def test_a_jsonl_file_takes_the_prompt_field(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": "b", "id": "x"}\n', encoding="utf-8")
    assert len(submit_command("--file", str(path))["jobs"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody", "--prompt", "x"], "No user named 'nobody'"),
        (["--user", "ada", "--prompt", ""], "prompt: The prompt is empty."),
        (["--user", "ada", "--model", "gpt-4o", "--prompt", "x"], "Unknown model 'gpt-4o'"),
        (["--user", "ada", "--max-attempts", "0", "--prompt", "x"], "max_attempts"),
        (["--user", "ada", "--file", "/no/such/file.txt"], "no such file"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("submit", *args)
    assert not Job.objects.exists()


def test_a_bad_jsonl_line_names_its_number_and_creates_nothing(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "ok"}\n{"prompt": "ok too"}\n{"prompt": \n', encoding="utf-8")
    with pytest.raises(CommandError, match="line 3: not valid JSON"):
        call_command("submit", "--user", "ada", "--file", str(path))
    path.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n', encoding="utf-8")
    with pytest.raises(CommandError, match='line 2: needs a non-empty "prompt"'):
        call_command("submit", "--user", "ada", "--file", str(path))
    assert not Job.objects.exists()


def test_an_unreadable_file_is_refused(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(CommandError, match="not UTF-8"):
        call_command("submit", "--user", "ada", "--file", str(path))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(CommandError, match="no prompts"):
        call_command("submit", "--user", "ada", "--file", str(empty))
    assert not Job.objects.exists()


# --- A whole request, and the generation flags of a text prompt ---------------------------
PNG_DATA = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
REQUEST = {
    "contents": [
        {
            "role": "user",
            "parts": [
                {"text": "Which city?"},
                {"inlineData": {"mimeType": "image/png", "data": PNG_DATA}},
            ],
        }
    ],
    "generationConfig": {
        "topK": 5,
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
    },
}


def test_a_request_file_is_sent_whole_in_geminis_shape(tmp_path):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(REQUEST), encoding="utf-8")
    printed = submit_command("--model", "gemini-2.5-pro", "--request", str(path))
    (job,) = Job.objects.all()
    assert printed == {"jobs": [job.pk]}
    assert job.gemini_request() == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Which city?"},
                    {"inline_data": {"mime_type": "image/png", "data": PNG_DATA}},
                ],
            }
        ],
        "generation_config": {
            "top_k": 5,
            "response_mime_type": "application/json",
            "response_json_schema": SCHEMA,
        },
    }
    assert (job.model, job.input_text) == ("gemini-2.5-pro", "Which city?")


def test_a_request_may_come_on_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(REQUEST)))
    submit_command("--request", "-", "--retry-bad-output")
    job = Job.objects.get()
    assert job.gemini_request()["generation_config"]["top_k"] == 5
    assert job.retry_bad_output is True


def test_a_prompt_takes_a_schema_thinking_and_a_seed(tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA), encoding="utf-8")
    submit_command(
        "--prompt",
        "Name a city",
        "--temperature",
        "0.5",
        "--json-schema",
        str(schema),
        "--thinking-level",
        "low",
        "--seed",
        "3",
    )
    assert Job.objects.get().gemini_request()["generation_config"] == {
        "temperature": 0.5,
        "response_mime_type": "application/json",
        "response_json_schema": SCHEMA,
        "thinking_config": {"thinking_level": "low"},
        "seed": 3,
    }


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (
            '{"contents": [',
            [],
            r"--request .*request.json: not valid JSON \(Expecting value at "
            r"line 1, column 15\)",
        ),
        ("[1]", [], r"a request is a JSON object"),
        (
            json.dumps(
                {
                    "contents": [
                        {"parts": [{"inline_data": {"mime_type": "image/gif", "data": PNG_DATA}}]}
                    ]
                }
            ),
            [],
            r"request: request.contents\[0\].parts\[0\].inline_data.mime_type: 'image/gif' cannot",
        ),
        (
            json.dumps(
                {"contents": [{"parts": [{"text": "x"}]}], "generation_config": {"seed": "a"}}
            ),
            [],
            r"request: request.generation_config.seed: must be a whole number",
        ),
        (
            json.dumps(REQUEST),
            ["--temperature", "0.2"],
            r"--temperature: with --request, the request says it: set "
            r"generation_config.temperature in it",
        ),
        (json.dumps(REQUEST), ["--seed", "2"], r"--seed: with --request"),
    ],
)
def test_a_bad_request_file_names_the_field_and_creates_nothing(tmp_path, content, extra, message):
    path = tmp_path / "request.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match=message):
        call_command("submit", "--user", "ada", "--request", str(path), *extra)
    assert not Job.objects.exists()


def test_a_missing_request_file_or_schema_is_refused(tmp_path):
    with pytest.raises(CommandError, match=r"--request /no/such\.json: no such file"):
        call_command("submit", "--user", "ada", "--request", "/no/such.json")
    bad = tmp_path / "schema.json"
    bad.write_text('{"type": "strin"}', encoding="utf-8")
    with pytest.raises(
        CommandError,
        match=r"generation_config: generation_config.response_json"
        r"_schema\['type'\]: is not a valid JSON Schema",
    ):
        call_command("submit", "--user", "ada", "--prompt", "x", "--json-schema", str(bad))
    assert not Job.objects.exists()


def test_generation_flags_do_not_go_with_a_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("one\n", encoding="utf-8")
    with pytest.raises(CommandError, match="--seed goes with --prompt, not --file"):
        call_command("submit", "--user", "ada", "--file", str(path), "--seed", "1")
    assert not Job.objects.exists()


def test_a_file_takes_retry_bad_output_for_its_jobs(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("one\ntwo\n", encoding="utf-8")
    submit_command("--file", str(path), "--retry-bad-output")
    assert list(Job.objects.values_list("retry_bad_output", flat=True)) == [True, True]
