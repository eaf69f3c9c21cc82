"""A 3-step pipeline over 200 rows through real clusters against the simulator:
planted 503s and 429s, a step that fails on some rows, a fan-out, and a
cluster killed mid-pipeline. The first cluster sends by the Interactions
route, the one that takes over by generateContent, so both routes carry it."""

from __future__ import annotations

import io
import json
import signal
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from jobs.engine.submitting import JobSpec
from jobs.models import Attempt, Job, Outcome, Run, State
from jobs.runs import pipeline_runs
from tests.support import (
    MODEL,
    engine_env,
    qcluster,
    stop_process,
    tag,
    wait_for,
    wire_requests,
)

pytestmark = [pytest.mark.engine, pytest.mark.two_clusters, pytest.mark.django_db(transaction=True)]

ROWS = 200
DEFINITION = """
name: claims
steps:
  - name: facts
    prompt: "List the claims in: {{ row.text }}"
    response_schema:
      type: object
      properties: {claims: {type: array, items: {type: string}, minItems: 2, maxItems: 2}}
      required: [claims]
  - name: check
    for_each: steps.facts.json.claims
    prompt: "Row {{ row.id }}: is this claim supported? {{ item }} {{ row.hint }}"
  - name: summary
    prompt: "Row {{ row.id }}: summarise the supported claims {{ steps.check.outputs }}"
    continue: facts
"""


def table(word: str) -> bytes:
    lines = ["id,text,hint"]
    for n in range(ROWS):
        text = f"row {n} says {word}"
        hint = ""
        if n % 10 == 1:
            text += " [sim:503x1]"
        if n % 10 == 2:
            hint = "[sim:429x1]"
        if n % 25 == 3:
            text += " [sim:400]"  # the first step fails: the row is skipped after it
        if n % 25 == 4:
            hint = f"[sim:400] {n}"  # the fan-out fails: the summary is skipped
        lines.append(f"r{n},{text},{hint}")
    return ("\n".join(lines) + "\n").encode()


def test_a_pipeline_of_200_rows_survives_a_killed_cluster_on_both_routes(
    start_simulator, ada, tmp_path: Path
):
    simulator = start_simulator(latency="0.2:0.6")
    word = tag()
    spec = JobSpec(model=MODEL, max_attempts=4)
    pipeline = pipeline_runs.pipeline_read(DEFINITION, spec=spec)
    run = pipeline_runs.pipeline_run_create(
        owner=ada, stream=io.BytesIO(table(word)), filename="rows.csv", pipeline=pipeline, spec=spec
    )
    jobs = Job.objects.filter(run=run)
    lease = 5
    # Few in flight, so the kill finds the pipeline half done.
    limits = {"FLEX_LEASE_SECONDS": lease, "FLEX_MAX_IN_FLIGHT": 30}
    first = engine_env(simulator.url, GEMINI_API="interactions", **limits)
    with qcluster(first, tmp_path / "first.log") as cluster:
        # Kill it mid-pipeline: some rows done, many still waiting on earlier steps.
        wait_for(
            lambda: jobs.filter(step="summary", state=State.SUCCEEDED).count() >= 20,
            timeout=120,
            interval=0.5,
            what="20 rows to finish",
        )
        stop_process(cluster, signal.SIGKILL)
    assert jobs.filter(state=State.WAITING).exists()
    second = engine_env(simulator.url, GEMINI_API="generate_content", **limits)
    with qcluster(second, tmp_path / "second.log"):
        wait_for(
            lambda: (
                not jobs.filter(
                    state__in=[State.WAITING, State.QUEUED, State.RUNNING, State.RETRYING]
                ).exists()
            ),
            timeout=180,
            interval=1.0,
            what="every row to finish",
        )

    by_row: dict[int, dict[str, list[Job]]] = defaultdict(lambda: defaultdict(list))
    for job in jobs.order_by("item", "id"):
        by_row[int(job.custom_id[1:])][job.step].append(job)
    assert len(by_row) == ROWS
    failed_facts = {n for n in range(ROWS) if n % 25 == 3}
    failed_checks = {n for n in range(ROWS) if n % 25 == 4}
    answers = {}
    for n, steps in by_row.items():
        states = {step: [job.state for job in found] for step, found in steps.items()}
        if n in failed_facts:
            assert states == {
                "facts": [State.FAILED],
                "check": [State.SKIPPED],
                "summary": [State.SKIPPED],
            }, n
            continue
        assert states["facts"] == [State.SUCCEEDED], n
        assert len(states["check"]) == 2, n
        if n in failed_checks:
            assert states["check"] == [State.FAILED] * 2, n
            assert states["summary"] == [State.SKIPPED], n
            assert steps["summary"][0].last_error.startswith("step check failed"), n
            continue
        assert states["check"] == [State.SUCCEEDED] * 2, n
        assert states["summary"] == [State.SUCCEEDED], n
        summary = steps["summary"][0]
        # Built from its own row's answers, and sent as the facts conversation's next turn.
        outputs = json.dumps([job.result_text for job in steps["check"]], ensure_ascii=False)
        assert outputs in summary.input_text, n
        assert f"Row r{n}:" in summary.input_text
        assert all(f"Row r{n}:" in job.input_text for job in steps["check"])
        facts_turn, facts_answer, _ = summary.gemini_request()["contents"]
        assert facts_turn["parts"][0]["text"] == steps["facts"][0].input_text, n
        assert facts_answer["parts"][0]["text"] == steps["facts"][0].result_text, n
        answers[summary.pk] = summary
    # Skipped rows are exactly the descendants of the failed jobs.
    skipped_rows = set(jobs.filter(state=State.SKIPPED).values_list("custom_id", flat=True))
    assert skipped_rows == {f"r{n}" for n in failed_facts | failed_checks}
    assert len(answers) == ROWS - len(failed_facts) - len(failed_checks)

    # No job was sent before its parents succeeded.
    parents = {"check": ["facts"], "summary": ["facts", "check"]}
    for attempt in (
        Attempt.objects.filter(job__run=run).exclude(job__step="facts").select_related("job")
    ):
        for parent in parents[attempt.job.step]:
            done = [
                job.finished_at
                for job in jobs.filter(line_number=attempt.job.line_number, step=parent)
            ]
            # A try is dated when its claim began, and a claim that waited on
            # the model rows' locks (PostgreSQL) may take a step released
            # meanwhile: a second's slack, far less than any step's answer takes.
            slack = timedelta(seconds=2)
            assert all(at is not None and at <= attempt.started_at + slack for at in done), attempt

    # Nothing lost to the kill: every attempt ended, none is still in flight,
    # and both routes carried the pipeline.
    attempts = Attempt.objects.filter(job__run=run)
    assert not attempts.filter(outcome=Outcome.IN_FLIGHT).exists()
    routes = set(attempts.filter(outcome=Outcome.SUCCEEDED).values_list("route", flat=True))
    assert routes == {"interactions", "generate_content"}
    assert jobs.filter(http_503__gt=0).exists() and jobs.filter(http_429__gt=0).exists()
    # Continuations the first cluster sent named facts' stored interaction.
    continued = [
        request
        for request in wire_requests(simulator.url, last=2000)
        if request["route"] == "interactions" and request["body"].get("previous_interaction_id")
    ]
    facts_ids = set(jobs.filter(step="facts").values_list("response_id", flat=True))
    assert {request["body"]["previous_interaction_id"] for request in continued} <= facts_ids
    # The last answer's transaction settled the run.
    assert Run.objects.get(pk=run.pk).finished_at is not None
