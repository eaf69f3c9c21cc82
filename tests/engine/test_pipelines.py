"""Pipelines through the engine, in this process: each turn claims what is due,
sends it through the real google-genai SDK to the simulator over loopback and
records the answers (tests.support.send_due_jobs), as a dispatcher would.

The 200-row scenario through a real cluster is tests/engine/test_pipeline_cluster.py."""

from __future__ import annotations

import io
import json

import pytest

from jobs.engine import actions
from jobs.engine.submitting import JobSpec
from jobs.models import Attempt, Job, Outcome, Run, RunRow, State
from jobs.runs import pipeline_runs
from jobs.runs import services as runs
from jobs.runs.reading import RunRejected
from tests.support import MODEL, send_due_jobs, tag, wire_requests

pytestmark = pytest.mark.django_db(transaction=True)

DEFINITION = """
name: extract-then-summarise
steps:
  - name: facts
    prompt: "List the claims in: {{ row.text }}"
    response_schema:
      type: object
      properties: {claims: {type: array, items: {type: string}, minItems: 2, maxItems: 3}}
      required: [claims]
  - name: check
    for_each: steps.facts.json.claims
    prompt: "Is this claim supported? {{ item }} {{ row.hint }}"
  - name: summary
    prompt: "Summarise, using only supported claims: {{ steps.check.outputs }}"
    continue: facts
"""


def csv_table(rows: list[tuple[str, str, str]]) -> bytes:
    lines = ["id,text,hint"] + [",".join(row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def create(owner, rows, definition: str = DEFINITION, **spec) -> Run:
    spec = JobSpec(model=MODEL, **spec)
    pipeline = pipeline_runs.pipeline_read(definition, spec=spec)
    return pipeline_runs.pipeline_run_create(
        owner=owner,
        stream=io.BytesIO(csv_table(rows)),
        filename="rows.csv",
        pipeline=pipeline,
        spec=spec,
    )


def run_to_the_end(simulator, route: str, run: Run, turns: int = 40) -> None:
    for _ in range(turns):
        due = Job.objects.filter(run=run, state__in=[State.QUEUED, State.RETRYING])
        if not send_due_jobs(simulator.url, route, limit=500) and not due.exists():
            return
    raise AssertionError("the pipeline did not finish")


def row_jobs(run: Run, custom_id: str) -> dict[str, list[Job]]:
    found: dict[str, list[Job]] = {}
    for job in Job.objects.filter(run=run, custom_id=custom_id).order_by("item", "id"):
        found.setdefault(job.step, []).append(job)
    return found


@pytest.mark.parametrize("route", ["interactions", "generate_content"])
def test_each_row_moves_through_its_steps_on_its_own_answers(ada, simulator, settings, route):
    settings.GEMINI_API = route
    settings.FLEX_BACKOFF_BASE = 0
    settings.FLEX_BACKOFF_CAP = 0
    word = tag()
    run = create(
        ada,
        [
            ("r1", f"the sky is blue {word}", "sunny"),
            ("r2", f"water is wet {word} [sim:503x1]", "[sim:429x1]"),
            ("r3", f"broken row {word} [sim:400]", "never used"),
            ("r4", f"a hint fails {word}", f"[sim:400] {word}"),
        ],
    )
    assert RunRow.objects.filter(run=run).count() == 4
    # The first step is queued, the later ones wait; one placeholder for the fan-out.
    assert sorted(Job.objects.filter(run=run).values_list("step", "state")) == sorted(
        [("facts", "queued"), ("check", "waiting"), ("summary", "waiting")] * 4
    )

    run_to_the_end(simulator, route, run)

    r1 = row_jobs(run, "r1")
    claims = r1["facts"][0].output_json["claims"]
    assert [job.state for job in r1["check"]] == [State.SUCCEEDED] * len(claims)
    assert [job.item for job in r1["check"]] == list(range(len(claims)))
    for job, claim in zip(r1["check"], claims, strict=True):
        assert claim in job.input_text
    (summary,) = r1["summary"]
    assert summary.state == State.SUCCEEDED
    # Built from this row's own answers: every check answer, in item order, in its prompt.
    outputs = [job.result_text for job in r1["check"]]
    assert json.dumps(outputs, ensure_ascii=False) in summary.input_text
    # The same conversation as step facts: its turns, its answer, then this turn.
    turns = summary.gemini_request()["contents"]
    assert [turn.get("role", "user") for turn in turns] == ["user", "model", "user"]
    assert r1["facts"][0].input_text in turns[0]["parts"][0]["text"]

    # 503s and 429s were retried; the row went on.
    r2 = row_jobs(run, "r2")
    assert r2["facts"][0].http_503 == 1
    assert r2["summary"][0].state == State.SUCCEEDED
    assert sum(job.http_429 for job in r2["check"]) >= 1

    # A failed first step skips the rest of its row, with the reason.
    r3 = row_jobs(run, "r3")
    assert r3["facts"][0].state == State.FAILED
    assert [job.state for job in r3["check"] + r3["summary"]] == [State.SKIPPED] * 2
    assert r3["summary"][0].last_error.startswith("step facts failed: HTTP 400")
    assert not Attempt.objects.filter(job__in=r3["check"] + r3["summary"]).exists()

    # A failed item skips what needs every item.
    r4 = row_jobs(run, "r4")
    assert {job.state for job in r4["check"]} == {State.FAILED}
    assert r4["summary"][0].state == State.SKIPPED
    assert r4["summary"][0].last_error.startswith("step check failed")

    # No job was sent before every parent of its row had succeeded.
    for job in Job.objects.filter(run=run).exclude(step="facts"):
        first = job.attempt_log.order_by("started_at").first()
        if first is None:
            continue
        parents = Job.objects.filter(run=run, line_number=job.line_number, step="facts")
        if job.step == "summary":
            parents = parents | Job.objects.filter(
                run=run, line_number=job.line_number, step="check"
            )
        assert all(p.finished_at <= first.started_at for p in parents)

    # On the Interactions route, the summary named facts' stored interaction
    # and sent only its own turn; on generateContent it resent the turns.
    if route == "interactions":
        assert summary.continues_interaction == r1["facts"][0].response_id
        sent = [
            request["body"]
            for request in wire_requests(simulator.url, last=400)
            if request["body"].get("previous_interaction_id") == summary.continues_interaction
        ]
        assert len(sent) == 1
        assert sent[0]["input"].startswith("Summarise, using only supported claims")
    else:
        assert summary.continues_interaction == ""

    run.refresh_from_db()
    runs.run_settle(run=run)
    run.refresh_from_db()
    assert run.finished_at is not None


def test_retrying_a_failed_step_brings_its_row_back(ada, simulator, settings):
    settings.FLEX_BACKOFF_BASE = 0
    settings.FLEX_BACKOFF_CAP = 0
    word = tag()
    # One attempt for the first step only: the summary resends its turns, 503 and all.
    definition = DEFINITION.replace("  - name: facts\n", "  - name: facts\n    max_attempts: 1\n")
    run = create(ada, [("r1", f"try twice {word} [sim:503x1]", "ok")], definition)
    run_to_the_end(simulator, "generate_content", run)
    jobs = row_jobs(run, "r1")
    assert jobs["facts"][0].state == State.FAILED
    assert {job.state for job in jobs["check"] + jobs["summary"]} == {State.SKIPPED}

    assert runs.run_retry_failed(run=run) == 1
    jobs = row_jobs(run, "r1")
    assert jobs["facts"][0].state == State.QUEUED
    assert {job.state for job in jobs["check"] + jobs["summary"]} == {State.WAITING}
    assert all(job.last_error == "" for job in jobs["check"] + jobs["summary"])

    run_to_the_end(simulator, "generate_content", run)
    jobs = row_jobs(run, "r1")
    assert {job.state for job in jobs["facts"] + jobs["check"] + jobs["summary"]} == {
        State.SUCCEEDED
    }


def test_cancelling_a_waiting_step_skips_what_needs_it_and_the_run_cancels_the_rest(ada):
    run = create(ada, [("r1", f"one {tag()}", "h"), ("r2", f"two {tag()}", "h")])
    check = Job.objects.get(run=run, custom_id="r1", step="check")
    assert actions.job_cancel(job=check)
    summary = Job.objects.get(run=run, custom_id="r1", step="summary")
    assert summary.state == State.SKIPPED
    assert summary.last_error == "step check was cancelled"
    # The row's first step is not the cancelled one's descendant: it stays.
    assert Job.objects.get(run=run, custom_id="r1", step="facts").state == State.QUEUED

    assert runs.run_cancel(run=run) == 4
    assert set(Job.objects.filter(run=run).values_list("state", flat=True)) == {
        State.CANCELLED,
        State.SKIPPED,
    }
    run.refresh_from_db()
    assert run.finished_at is not None


def test_an_empty_list_fans_out_to_no_job_and_the_row_goes_on(ada, simulator, settings):
    settings.FLEX_BACKOFF_BASE = 0
    definition = DEFINITION.replace("minItems: 2, maxItems: 3", "maxItems: 0")
    run = create(ada, [("r1", f"nothing to check {tag()}", "h")], definition)
    run_to_the_end(simulator, "generate_content", run)
    jobs = row_jobs(run, "r1")
    assert jobs["facts"][0].output_json == {"claims": []}
    assert "check" not in jobs
    assert jobs["summary"][0].state == State.SUCCEEDED
    assert "[]" in jobs["summary"][0].input_text


def test_a_row_the_first_step_cannot_render_refuses_the_table_whole(ada):
    definition = DEFINITION.replace("{{ row.text }}", "{{ row.body }}")
    with pytest.raises(RunRejected) as refused:
        create(ada, [("r1", "a", "h"), ("r2", "b", "h")], definition)
    assert "line 2: step facts:" in refused.value.messages()[0]
    assert "body" in refused.value.messages()[0]
    assert not Run.objects.exists()
    assert not Job.objects.exists()


def test_a_step_whose_answer_cannot_fill_the_next_fails_that_job_with_the_reason(
    ada, simulator, settings
):
    settings.FLEX_BACKOFF_BASE = 0
    definition = DEFINITION.replace(
        "{{ steps.check.outputs }}", "{{ steps.facts.json.missing_field }}"
    )
    run = create(ada, [("r1", f"no such field {tag()}", "h")], definition)
    run_to_the_end(simulator, "generate_content", run)
    summary = Job.objects.get(run=run, step="summary")
    assert summary.state == State.FAILED
    assert summary.last_error.startswith("Could not build this step's request:")
    assert "missing_field" in summary.last_error
    assert not Attempt.objects.filter(job=summary, outcome=Outcome.SUCCEEDED).exists()
