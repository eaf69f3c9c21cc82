"""A pipeline run's downloads: one line per row with every step's answer (JSONL,
or CSV with the parsed answers' fields as columns, cells safe from spreadsheets),
and the rows with a failed, cancelled or skipped step, as uploaded, to run again
with the same definition."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.engine import submitting
from jobs.models import Job, State
from jobs.runs import pipeline_downloads, pipeline_runs
from tests.support import MODEL, as_user, send_due_jobs, streamed, tag

pytestmark = pytest.mark.django_db

DEFINITION = f"""
name: extract-then-summarise
model: {MODEL}
steps:
  - name: facts
    prompt: "List the claims in: {{{{ row.text }}}}"
    response_schema:
      type: object
      properties: {{claims: {{type: array, items: {{type: string}}}}, topic: {{type: string}}}}
      required: [claims]
  - name: check
    for_each: steps.facts.json.claims
    prompt: "Is this claim supported? {{{{ item }}}} Text: {{{{ row.text }}}}"
  - name: summary
    prompt: "Summarise: {{{{ steps.check.outputs }}}}"
"""


def pipeline_run(owner, content: bytes, filename: str = "rows.csv", definition=DEFINITION):
    spec = submitting.JobSpec(model=MODEL)
    return pipeline_runs.pipeline_run_create(
        owner=owner,
        stream=io.BytesIO(content),
        filename=filename,
        pipeline=pipeline_runs.pipeline_read(definition, spec=spec),
        spec=spec,
    )


def answer(run, row: str, step: str, text: str, *, item=None, parsed=None, state=State.SUCCEEDED,
           error: str = "") -> None:  # fmt: skip
    """The job of (row, step[, item]) answered: the fan-out's placeholder becomes
    item 0, and each later item is a job of its own, as the engine makes them."""
    jobs = Job.objects.filter(run=run, custom_id=row, step=step)
    job = jobs.filter(item=item).first() or jobs.filter(item__isnull=True).first()
    if job is None:
        job = Job.objects.get(pk=jobs.first().pk)
        job.pk = None
    job.item = item
    job.state = state
    job.result_text = text
    job.output_json = parsed
    job.last_error = error
    job.save()


def skip(run, row: str, step: str, reason: str) -> None:
    Job.objects.filter(run=run, custom_id=row, step=step).update(
        state=State.SKIPPED, last_error=reason
    )


@pytest.fixture
def answered_run(ada):
    """Row r1 through every step (two claims checked), row r2 failed at facts
    (its later steps skipped), row r3 still waiting after facts."""
    run = pipeline_run(ada, b"id,text\nr1,Otters swim.\nr2,=1+2\nr3,Owls hoot.\n")
    facts = {"claims": ["otters swim", "otters nap"], "topic": "otters"}
    answer(run, "r1", "facts", json.dumps(facts), parsed=facts)
    answer(run, "r1", "check", "yes", item=0)
    answer(run, "r1", "check", "=no", item=1)
    answer(run, "r1", "summary", "Otters swim.")
    answer(run, "r2", "facts", "", state=State.FAILED, error="HTTP 400: bad")
    skip(run, "r2", "check", "step facts failed: HTTP 400: bad")
    skip(run, "r2", "summary", "step facts failed: HTTP 400: bad")
    answer(run, "r3", "facts", '{"claims": []}', parsed={"claims": []})
    return run


def jsonl(response) -> list[dict]:
    return [json.loads(line) for line in streamed(response).decode().splitlines()]


def test_results_are_one_line_per_row_with_every_steps_answer(client, ada, answered_run):
    response = as_user(client, ada).get(f"/runs/{answered_run.pk}/results.jsonl")
    assert response["Content-Type"].startswith("application/jsonl")
    r1, r2, r3 = jsonl(response)
    assert r1 == {
        "id": "r1",
        "row": {"id": "r1", "text": "Otters swim."},
        "steps": {
            "facts": {
                "state": "succeeded",
                "output": json.dumps({"claims": ["otters swim", "otters nap"], "topic": "otters"}),
                "json": {"claims": ["otters swim", "otters nap"], "topic": "otters"},
                "error": "",
            },
            "check": {
                "state": "succeeded",
                "error": "",
                "outputs": ["yes", "=no"],
                "jsons": [None, None],
                "states": ["succeeded", "succeeded"],
                "errors": ["", ""],
            },
            "summary": {"state": "succeeded", "output": "Otters swim.", "json": None, "error": ""},
        },
    }
    assert r2["steps"]["facts"]["state"] == "failed"
    assert r2["steps"]["check"] == {
        "state": "skipped",
        "error": "step facts failed: HTTP 400: bad",
        "outputs": [],
        "jsons": [],
        "states": [],
        "errors": [],
    }
    assert r2["steps"]["summary"]["state"] == "skipped"
    assert (r3["id"], r3["steps"]["summary"]["state"]) == ("r3", "waiting")


def test_the_csv_has_the_rows_columns_then_each_steps_state_answer_and_fields(
    client, ada, answered_run
):
    body = streamed(as_user(client, ada).get(f"/runs/{answered_run.pk}/results.csv")).decode()
    header, r1, r2, r3 = list(csv.reader(io.StringIO(body)))
    assert header == [
        "id", "text",
        "facts.state", "facts.output", "facts.error", "facts.json.claims", "facts.json.topic",
        "check.state", "check.output", "check.error", "check.states", "check.errors",
        "summary.state", "summary.output", "summary.error",
    ]  # fmt: skip
    row = dict(zip(header, r1, strict=True))
    assert row["facts.json.claims"] == '["otters swim","otters nap"]'
    assert row["facts.json.topic"] == "otters"
    # A fanned-out step's answers are one JSON list; "=no" stays a string in it.
    assert json.loads(row["check.output"]) == ["yes", "=no"]
    assert (row["check.state"], row["summary.output"]) == ("succeeded", "Otters swim.")
    failed = dict(zip(header, r2, strict=True))
    # A cell a spreadsheet would compute is marked as text.
    assert failed["text"] == "'=1+2"
    assert (failed["facts.state"], failed["facts.error"]) == ("failed", "HTTP 400: bad")
    assert failed["check.state"] == "skipped" and failed["check.output"] == "[]"
    assert dict(zip(header, r3, strict=True))["facts.json.claims"] == "[]"


def test_the_rows_to_run_again_are_those_with_a_failed_or_skipped_step_as_uploaded(
    client, ada, answered_run
):
    response = as_user(client, ada).get(f"/runs/{answered_run.pk}/unfinished/")
    assert response["Content-Type"].startswith("text/csv")
    assert streamed(response) == b"id,text\nr2,'=1+2\n"


def test_the_rows_to_run_again_make_the_same_rows_with_the_same_definition(ada, answered_run):
    again = b"".join(line.encode() for line in pipeline_downloads.rows_again_lines(answered_run))
    rerun = pipeline_run(ada, again)
    assert list(rerun.rows.values_list("custom_id", "values")) == [
        ("r2", {"id": "r2", "text": "=1+2"})
    ]


def test_a_cancelled_step_puts_its_row_in_the_file_too(ada):
    run = pipeline_run(ada, b"id,text\na,one\nb,two\n")
    Job.objects.filter(run=run, custom_id="b", step="summary").update(state=State.CANCELLED)
    lines = list(pipeline_downloads.rows_again_lines(run))
    assert lines == ["id,text\n", "b,two\n"]


def test_csv_rows_without_an_id_get_the_one_they_ran_under_with_their_delimiter(ada):
    run = pipeline_run(ada, b"text;lang\nhello;en\n\nbonjour;fr\n")
    Job.objects.filter(run=run, step="facts").update(state=State.FAILED)
    again = "".join(pipeline_downloads.rows_again_lines(run))
    assert again == "id;text;lang\n2;hello;en\n4;bonjour;fr\n"
    rerun = pipeline_run(ada, again.encode())
    assert list(rerun.rows.values_list("custom_id", "values")) == [
        ("2", {"id": "2", "text": "hello", "lang": "en"}),
        ("4", {"id": "4", "text": "bonjour", "lang": "fr"}),
    ]


def test_json_rows_are_kept_as_uploaded_and_given_their_id_when_they_named_none(ada):
    content = b'{"id": "x", "text": "kept as is"}\n{"text": "no id",  "n": 1}\n'
    run = pipeline_run(ada, content, "rows.jsonl")
    Job.objects.filter(run=run, step="facts").update(state=State.FAILED)
    again = "".join(pipeline_downloads.rows_again_lines(run))
    assert again == '{"id": "x", "text": "kept as is"}\n{"id": "2", "text": "no id",  "n": 1}\n'


def test_json_rows_csv_has_every_key_any_row_has(ada):
    run = pipeline_run(ada, b'{"id": "a", "text": "x"}\n{"id": "b", "text": "y", "n": [1]}\n',
                       "rows.jsonl")  # fmt: skip
    header, a, b = list(csv.reader(io.StringIO("".join(pipeline_downloads.results_csv_lines(run)))))
    assert header[:3] == ["id", "text", "n"]
    assert (a[:3], b[:3]) == (["a", "x", ""], ["b", "y", "[1]"])


def test_a_big_run_streams_in_chunks_of_rows(ada, monkeypatch):
    monkeypatch.setattr(pipeline_downloads, "EXPORT_ROWS", 3)
    rows = "".join(f"r{n},text {n}\n" for n in range(10))
    run = pipeline_run(ada, f"id,text\n{rows}".encode())
    Job.objects.filter(run=run, step="facts").update(state=State.FAILED)
    with CaptureQueriesContext(connection) as queries:
        lines = list(pipeline_downloads.results_lines(run))
    assert [json.loads(line)["id"] for line in lines] == [f"r{n}" for n in range(10)]
    # Four chunks of rows, each with its jobs, and the empty fetch that ends it.
    assert len(queries) == 4 * 2 + 1
    again = list(pipeline_downloads.rows_again_lines(run))
    assert again == ["id,text\n", *(f"r{n},text {n}\n" for n in range(10))]


def test_the_gemini_key_never_leaves_in_a_download(ada, settings):
    settings.GEMINI_API_KEY = "AIzaSyTESTKEY0123456789abcdefghijklmnopq"
    run = pipeline_run(ada, b"id,text\na,one\n")
    answer(run, "a", "facts", f"key {settings.GEMINI_API_KEY}", parsed={"claims": []})
    body = "".join(pipeline_downloads.results_lines(run))
    assert settings.GEMINI_API_KEY not in body
    body = "".join(pipeline_downloads.results_csv_lines(run))
    assert settings.GEMINI_API_KEY not in body


def test_another_persons_pipeline_downloads_are_not_found(client, bob, answered_run):
    as_user(client, bob)
    for path in ("results.jsonl", "results.csv", "unfinished/"):
        assert client.get(f"/runs/{answered_run.pk}/{path}").status_code == 404


@pytest.mark.parametrize("route", ["generate_content", "interactions"])
def test_the_downloads_hold_what_the_engine_recorded_row_by_row(simulator, ada, route):
    """Through the real gateway and the simulator: a row whose first step is refused
    (400) has its later steps skipped and is the only row to run again."""
    word = tag()
    definition = f"""
name: claims
model: {MODEL}
steps:
  - name: facts
    prompt: "List the claims in: {{{{ row.text }}}}"
    response_schema:
      type: object
      properties: {{claims: {{type: array, items: {{type: string}}, minItems: 2}}}}
      required: [claims]
  - name: check
    for_each: steps.facts.json.claims
    prompt: "Supported? {{{{ item }}}}"
  - name: summary
    prompt: "Summarise: {{{{ steps.check.outputs }}}}"
"""
    rows = f"id,text\nok,Otters swim {word}\nbad,[sim:400] {word}\n".encode()
    run = pipeline_run(ada, rows, definition=definition)
    for _ in range(6):
        if not send_due_jobs(simulator.url, route):
            break
    ok, bad = (json.loads(line) for line in pipeline_downloads.results_lines(run))
    claims = ok["steps"]["facts"]["json"]["claims"]
    assert len(claims) == 2
    assert ok["steps"]["check"]["states"] == ["succeeded", "succeeded"]
    assert [
        output.removeprefix("Simulated answer to: ") for output in ok["steps"]["check"]["outputs"]
    ] == [f"Supported? {claim}" for claim in claims]
    assert ok["steps"]["summary"]["state"] == "succeeded"
    assert bad["steps"]["facts"]["state"] == "failed"
    assert bad["steps"]["check"]["state"] == "skipped"
    assert bad["steps"]["summary"]["state"] == "skipped"
    assert bad["steps"]["summary"]["error"].startswith("step facts failed")
    again = "".join(pipeline_downloads.rows_again_lines(run))
    assert again == f"id,text\nbad,[sim:400] {word}\n"
