"""jobs/runs/services.py: a run is created from a file whole or not at all, and its
actions change only the jobs they name, with conditional updates."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from jobs import gemini_shape
from jobs.engine import actions, control, submitting
from jobs.models import Attempt, Job, Run, State, Tier
from jobs.runs import services as runs
from jobs.runs.reading import RunRejected
from jobs.runs.services import INSERT_BATCH
from tests.run_files import prompt_file
from tests.support import MODEL, run_from_file

pytestmark = pytest.mark.django_db

FORMATS = ("text", "jsonl", "csv", "gemini_batch", "openai_batch", "anthropic_batch")


def rejected(owner, content: bytes, filename: str = "prompts.jsonl") -> RunRejected:
    with pytest.raises(RunRejected) as caught:
        run_from_file(owner, content, filename)
    assert not Run.objects.exists()
    assert not Job.objects.exists()
    return caught.value


# --- Creating a run ----------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_becomes_one_queued_job_per_line_with_its_id(ada, fmt):
    filename, content = prompt_file(fmt, [("first", "Name a colour."), ("second", "Name a fish.")])
    run = run_from_file(ada, content, filename, name="colours")
    assert (run.name, run.source_name, run.source_format) == ("colours", filename, fmt)
    jobs = list(run.jobs.order_by("id"))
    expected_ids = ["1", "2"] if fmt == "text" else ["first", "second"]
    assert [job.custom_id for job in jobs] == expected_ids
    assert [job.input_text for job in jobs] == ["Name a colour.", "Name a fish."]
    assert all(job.state == State.QUEUED and job.owner == ada for job in jobs)
    assert all(job.next_attempt_at is not None for job in jobs)
    assert "Name a colour." in jobs[0].source_line
    # Anthropic's max_tokens is required, and sent.
    config = {"max_output_tokens": 1024} if fmt == "anthropic_batch" else None
    assert jobs[0].gemini_request() == gemini_shape.simple(
        "Name a colour.", generation_config=config
    )


def test_each_job_keeps_the_line_of_the_file_it_came_from(ada):
    # A CSV's header is line 1, and a quoted cell may span lines.
    content = b'id,prompt\na,"two\nlines"\nb,one line\n'
    run = run_from_file(ada, content, "p.csv")
    assert list(run.jobs.order_by("id").values_list("custom_id", "line_number")) == [
        ("a", 2),
        ("b", 4),
    ]
    text = run_from_file(ada, b"first\n\nthird\n", "p.txt")
    assert list(text.jobs.order_by("id").values_list("line_number", flat=True)) == [1, 3]


def test_a_model_flex_does_not_run_is_replaced_by_the_runs_model_and_counted(ada):
    content = (
        b'{"prompt": "a", "model": "gemini-2.5-pro"}\n'
        b'{"prompt": "b", "model": "gpt-4o"}\n'
        b'{"prompt": "c", "model": "claude-sonnet-4-5"}\n'
        b'{"prompt": "d"}\n'
    )
    run = run_from_file(ada, content, model="gemini-2.5-flash-lite")
    models = list(run.jobs.order_by("id").values_list("model", flat=True))
    assert models == [
        "gemini-2.5-pro",
        "gemini-2.5-flash-lite",
        "gemini-2.5-flash-lite",
        "gemini-2.5-flash-lite",
    ]
    assert run.replaced_models == 2


def test_a_lines_own_settings_win_over_the_runs_defaults(ada):
    content = (
        b'{"prompt": "a", "system_instruction": "Be terse.", "temperature": 0.2,'
        b' "max_output_tokens": 50}\n'
        b'{"prompt": "b"}\n'
    )
    run = run_from_file(
        ada,
        content,
        system_instruction="Be kind.",
        temperature=1.0,
        tier=Tier.STANDARD,
        max_attempts=3,
        fallback_standard=True,
    )
    own, default = run.jobs.order_by("id")
    assert (own.system_instruction, own.temperature, own.max_output_tokens) == (
        "Be terse.",
        0.2,
        50,
    )
    assert (default.system_instruction, default.temperature, default.max_output_tokens) == (
        "Be kind.",
        1.0,
        None,
    )
    assert {(j.tier_requested, j.max_attempts, j.fallback_standard) for j in (own, default)} == {
        (Tier.STANDARD, 3, True)
    }
    assert (run.tier, run.max_attempts, run.fallback_standard) == (Tier.STANDARD, 3, True)


def test_the_dispatcher_is_woken_once_the_run_is_committed(
    ada, monkeypatch, django_capture_on_commit_callbacks
):
    woken = []
    monkeypatch.setattr(control, "wake_dispatcher", lambda: woken.append(1))
    with django_capture_on_commit_callbacks(execute=True):
        run_from_file(ada, b'{"prompt": "a"}\n')
    assert woken == [1]


def test_bad_settings_are_refused_before_the_file_is_read(ada):
    with pytest.raises(ValidationError) as caught:
        run_from_file(ada, b'{"prompt": "a"}\n', max_attempts=0)
    assert "max_attempts" in caught.value.message_dict
    assert not Run.objects.exists()


def test_the_estimate_is_characters_over_four_with_answers_as_long_as_prompts(ada):
    # 400 characters -> 100 input tokens, and 100 output tokens assumed;
    # gemini-2.5-flash standard: $0.30 in, $2.50 out per million.
    run = run_from_file(ada, ('{"prompt": "' + "x" * 400 + '"}\n').encode() * 2)
    assert (run.estimated_input_tokens, run.estimated_output_tokens) == (200, 200)
    # 200 * 0.30 / 1e6 + 200 * 2.50 / 1e6 = 0.00006 + 0.0005
    assert run.estimated_standard_cost_usd == Decimal("0.00056")
    assert run.estimated_cost_usd == Decimal("0.00028")


def test_a_max_output_tokens_caps_the_assumed_answer(ada):
    run = run_from_file(
        ada, ('{"prompt": "' + "x" * 400 + '", "max_output_tokens": 10}\n').encode()
    )
    assert (run.estimated_input_tokens, run.estimated_output_tokens) == (100, 10)


def test_a_preview_reads_the_whole_file_and_creates_nothing(ada):
    filename, content = prompt_file("openai_batch", [("a", "x" * 40), ("b", "y" * 40)])
    preview = runs.run_preview(
        stream=io.BytesIO(content), filename=filename, spec=submitting.JobSpec(model=MODEL)
    )
    assert preview.format == "openai_batch"
    assert preview.format_label == "OpenAI Batch JSONL"
    assert (preview.estimate.prompts, preview.estimate.replaced_models) == (2, 2)
    assert preview.estimate.models == {MODEL: 2}
    assert preview.estimate.input_tokens == 20
    assert not Run.objects.exists()


def test_a_file_of_many_insert_batches_is_accepted_whole(ada):
    # Twelve full batches of INSERT_BATCH and a part one; 50,000 lines and how
    # fast they go in are bench/ingest.py's (timed assertions fail on a busy machine).
    lines = 12 * INSERT_BATCH + 345
    filename, content = prompt_file(
        "gemini_batch", [(f"row-{n}", f"Summarise item {n} in one line.") for n in range(lines)]
    )
    run = run_from_file(ada, content, filename)
    assert run.jobs.count() == lines
    assert run.jobs.order_by("-id").values_list("custom_id", flat=True)[0] == f"row-{lines - 1}"


# --- Bad files: nothing is created, the lines are named --------------------------------
def test_a_malformed_line_is_named(ada):
    error = rejected(ada, b'{"prompt": "ok"}\n{"prompt": "ok too"}\n{"prompt": \n')
    assert error.messages()[0].startswith("line 3: not valid JSON")


def test_a_missing_prompt_is_named(ada):
    error = rejected(ada, b'{"prompt": "ok"}\n{"id": "x", "system_instruction": "no prompt"}\n')
    assert error.messages() == ["line 2: no 'prompt' text (or whole Gemini 'request')"]


def test_a_duplicate_id_is_named_with_its_first_use(ada):
    error = rejected(
        ada, b'{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "y"}\n{"id": "a", "prompt": "z"}\n'
    )
    assert error.messages() == ["line 3: id 'a' was already used on line 1"]


def test_an_empty_file_is_refused(ada):
    assert rejected(ada, b"", "prompts.txt").messages() == ["The file has no prompts."]
    assert rejected(ada, b"\n  \n", "prompts.jsonl").messages() == ["The file is empty."]


def test_a_wrong_encoding_is_named(ada):
    error = rejected(ada, "first\nsecond caf\xe9\n".encode("latin-1"), "prompts.txt")
    assert error.messages() == ["line 2: not UTF-8 text"]


@override_settings(FLEX_RUN_MAX_BYTES=1000)
def test_an_oversized_file_is_refused_naming_the_limit(ada):
    error = rejected(ada, b'{"prompt": "a fairly long prompt"}\n' * 100)
    assert error.messages() == ["The file is larger than 1,000 bytes; split it."]


@override_settings(FLEX_RUN_MAX_LINES=2)
def test_too_many_lines_are_refused(ada):
    error = rejected(ada, b"one\ntwo\nthree\n", "prompts.txt")
    assert error.messages() == ["The file has more than 2 prompts; split it."]


def test_a_bad_line_after_thousands_of_good_ones_rolls_back_every_batch(ada):
    good = b"".join(b'{"prompt": "p%d"}\n' % n for n in range(2500))
    error = rejected(ada, good + b'{"prompt": 42}\n')
    assert error.messages() == ["line 2501: 'prompt' must be a string"]


def test_only_the_first_twenty_problems_are_listed(ada):
    error = rejected(ada, b'{"prompt": "fine"}\n' + b"{oops\n" * 30)
    assert len(error.messages()) == 20
    assert error.more >= 1
    assert "and at least" in error.summary()


def test_a_line_the_engine_would_refuse_is_named(ada):
    content = b'{"prompt": "ok"}\n{"prompt": "ok", "system_instruction": "' + b"s" * 50 + b'"}\n'
    with override_settings(FLEX_MAX_PROMPT_CHARS=20):
        error = rejected(ada, content)
    assert error.messages()[0].startswith("line 2: the system instruction is 50 characters")


# --- Actions -----------------------------------------------------------------------
def run_with_states(owner, *states: str) -> Run:
    content = "".join(f"p{n}\n" for n in range(len(states))).encode()
    run = run_from_file(owner, content, "prompts.txt", max_attempts=4)
    for job, state in zip(run.jobs.order_by("id"), states, strict=True):
        job.state = state
        job.attempts = 4 if state == State.FAILED else job.attempts
        job.finished_at = timezone.now() if state in (State.FAILED, State.SUCCEEDED) else None
        job.save()
    return run


def states(run: Run) -> list[str]:
    return list(run.jobs.order_by("id").values_list("state", flat=True))


def test_cancel_stops_the_waiting_jobs_only(ada):
    run = run_with_states(
        ada, State.QUEUED, State.RETRYING, State.RUNNING, State.SUCCEEDED, State.FAILED
    )
    assert runs.run_cancel(run=run) == 2
    assert states(run) == [
        State.CANCELLED,
        State.CANCELLED,
        State.RUNNING,
        State.SUCCEEDED,
        State.FAILED,
    ]
    assert runs.run_cancel(run=run) == 0


def test_retry_queues_the_failed_jobs_only_with_a_fresh_budget(
    ada, monkeypatch, django_capture_on_commit_callbacks
):
    woken = []
    monkeypatch.setattr(control, "wake_dispatcher", lambda: woken.append(1))
    run = run_with_states(ada, State.FAILED, State.SUCCEEDED, State.CANCELLED, State.FAILED)
    run.finished_at = timezone.now()
    run.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert runs.run_retry_failed(run=run) == 2
    assert states(run) == [State.QUEUED, State.SUCCEEDED, State.CANCELLED, State.QUEUED]
    retried = run.jobs.order_by("id").first()
    # 4 attempts used, and the run's 4 again.
    assert (retried.max_attempts, retried.finished_at) == (8, None)
    assert retried.next_attempt_at is not None
    assert run.finished_at is None
    assert woken == [1]
    assert runs.run_retry_failed(run=run) == 0


def test_a_run_retry_grants_what_a_job_retry_grants(ada):
    run = run_with_states(ada, State.FAILED, State.FAILED)
    in_run, alone = run.jobs.order_by("id")
    Job.objects.filter(pk__in=[in_run.pk, alone.pk]).update(attempts=1)
    Job.objects.filter(pk=alone.pk).update(run=None)
    assert actions.retry_grants(run.jobs.all()) == (4, 4)

    assert runs.run_retry_failed(run=run) == 1
    assert actions.job_retry_now(job=alone)

    in_run.refresh_from_db()
    assert (in_run.max_attempts, in_run.attempt_budget) == (5, 4)
    assert (alone.max_attempts, alone.attempt_budget) == (5, 4)


def test_move_to_standard_changes_unfinished_flex_jobs_and_makes_waiting_ones_due(ada):
    run = run_with_states(ada, State.QUEUED, State.RETRYING, State.RUNNING, State.SUCCEEDED)
    later = timezone.now() + timedelta(minutes=5)
    run.jobs.filter(state=State.RETRYING).update(next_attempt_at=later)
    assert runs.run_move_to_standard(run=run) == 3
    tiers = list(run.jobs.order_by("id").values_list("tier_requested", flat=True))
    assert tiers == [Tier.STANDARD, Tier.STANDARD, Tier.STANDARD, Tier.FLEX]
    assert run.jobs.get(state=State.RETRYING).next_attempt_at <= timezone.now()
    assert runs.run_move_to_standard(run=run) == 0


def test_delete_removes_the_run_its_jobs_and_their_attempts_only(ada):
    run = run_with_states(ada, State.SUCCEEDED, State.FAILED)
    other = run_with_states(ada, State.SUCCEEDED)
    for job in Job.objects.all():
        Attempt.objects.create(job=job, number=1, tier_requested=Tier.FLEX)
    assert runs.run_delete(run=run) == 2
    assert list(Run.objects.all()) == [other]
    assert Job.objects.get().run == other
    assert Attempt.objects.get().job.run == other


def test_a_run_settles_when_its_last_job_finishes(ada):
    run = run_with_states(ada, State.SUCCEEDED, State.RUNNING)
    assert runs.run_settle(run=run) is False
    assert run.finished_at is None
    last = timezone.now()
    run.jobs.filter(state=State.RUNNING).update(state=State.FAILED, finished_at=last)
    assert runs.run_settle(run=run) is True
    assert run.finished_at == last
    assert runs.run_settle(run=run) is False
