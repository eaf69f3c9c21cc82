"""manage.py submit: prints the new ids as JSON; bad input creates nothing."""

from __future__ import annotations

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
