"""manage.py submit --file: every upload format becomes a run; a bad file
creates nothing and names its lines."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job, Run
from tests.run_files import prompt_file
from tests.support import submit_command

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ada")]


@pytest.mark.parametrize(
    "fmt", ["text", "jsonl", "csv", "gemini_batch", "openai_batch", "anthropic_batch"]
)
def test_each_format_becomes_a_run_and_prints_its_jobs(tmp_path, fmt):
    filename, content = prompt_file(fmt, [("one", "First?"), ("two", "Second?")])
    path = tmp_path / filename
    path.write_bytes(content)
    printed = submit_command("--file", str(path), "--name", "nightly", "--tier", "standard")
    run = Run.objects.get()
    assert printed == {
        "run": run.pk,
        "jobs": list(run.jobs.order_by("id").values_list("id", flat=True)),
    }
    assert (run.name, run.source_name, run.source_format, run.tier) == (
        "nightly",
        filename,
        fmt,
        "standard",
    )
    ids = list(run.jobs.order_by("id").values_list("custom_id", "input_text"))
    expected = ["1", "2"] if fmt == "text" else ["one", "two"]
    assert ids == list(zip(expected, ["First?", "Second?"], strict=True))


def test_the_format_can_be_forced(tmp_path):
    path = tmp_path / "prompts.data"
    path.write_text('{"prompt": "raw"}\n', encoding="utf-8")
    submit_command("--file", str(path), "--format", "text")
    assert Job.objects.get().input_text == '{"prompt": "raw"}'


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        (
            "batch.jsonl",
            b'{"key": "a", "request": {"contents": [{"parts": [{"text": "x"}]}]}}\n'
            b'{"key": "a", "request": {"contents": [{"parts": [{"text": "y"}]}]}}\n',
            "line 2: id 'a' was already used on line 1",
        ),
        (
            "batch.jsonl",
            b'{"custom_id": "a", "params": {"messages": []}}\n',
            "line 1: params.messages must be a list of messages",
        ),
        ("rows.csv", b"id,question\n1,why\n", "line 1: the header row has no 'prompt' column"),
        (
            "prompts.jsonl",
            b'{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n',
            "line 2: id 'a'",
        ),
    ],
)
def test_a_bad_file_names_its_lines_and_creates_nothing(tmp_path, filename, content, message):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(CommandError, match="refused, nothing was created") as caught:
        call_command("submit", "--user", "ada", "--file", str(path))
    assert message in str(caught.value)
    assert not Run.objects.exists() and not Job.objects.exists()


def test_an_oversized_file_is_refused(tmp_path, settings):
    settings.FLEX_RUN_MAX_BYTES = 10
    path = tmp_path / "prompts.txt"
    path.write_text("a prompt that is too long\n", encoding="utf-8")
    with pytest.raises(CommandError, match="The file is larger than 10 bytes"):
        call_command("submit", "--user", "ada", "--file", str(path))
    assert not Run.objects.exists()
