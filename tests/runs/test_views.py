"""The run pages: upload -> preview -> confirm, the live run page and its
fragments, the actions, the streamed downloads, and who may see what."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.utils import timezone

from jobs.models import Job, Run, State, Tier
from tests.run_files import json_lines, prompt_file
from tests.support import HTMX, MODEL, answered, as_user, make_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_in_tmp")]


def upload(client, filename: str, content: bytes, **fields):
    data = {"model": MODEL, "tier": "flex", "max_attempts": "8", **fields}
    data["file"] = SimpleUploadedFile(filename, content)
    return client.post("/runs/new/", data)


def body(response) -> str:
    if isinstance(response, StreamingHttpResponse):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


# --- Upload, preview, confirm ------------------------------------------------------
def test_an_upload_shows_a_preview_and_creates_nothing_until_confirmed(client, ada):
    filename, content = prompt_file(
        "openai_batch", [("q1", "x" * 400), ("q2", "y" * 400)], model="gpt-4o"
    )
    response = upload(as_user(client, ada), filename, content, name="My eval")
    assert response.status_code == 302
    preview_url = response["Location"]
    assert not Run.objects.exists()

    page = client.get(preview_url).content.decode()
    assert "OpenAI Batch JSONL" in page
    assert '<dd id="prompt-count">2</dd>' in page
    assert "2 lines name models that flex does not run; they will use gemini-2.5-flash" in page
    # 2 x 100 tokens in and (assumed) out at $0.30 / $2.50 per million on standard.
    assert '<td class="num" id="estimate-standard">$0.00056</td>' in page
    assert '<td class="num" id="estimate-flex">$0.00028</td>' in page

    response = client.post(preview_url)
    run = Run.objects.get()
    assert response["Location"] == f"/runs/{run.pk}/"
    assert (run.name, run.source_format, run.replaced_models) == ("My eval", "openai_batch", 2)
    assert list(run.jobs.order_by("id").values_list("custom_id", flat=True)) == ["q1", "q2"]
    # The staged file is gone: confirming twice cannot create a second run.
    assert client.post(preview_url).status_code == 404
    assert Run.objects.count() == 1


def test_the_preview_shows_the_first_lines_as_they_will_be_sent(client, ada, settings):
    lines = [
        {"id": "q1", "prompt": "Name a colour.", "temperature": 0.2},
        {"id": "q2", "prompt": "x" * 300, "system_instruction": "Be terse.", "model": "gpt-4o"},
        *({"id": f"q{n}", "prompt": f"prompt {n}"} for n in range(3, 9)),
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    preview_url = upload(as_user(client, ada), "p.jsonl", content)["Location"]
    page = client.get(preview_url).content.decode()
    table = page.split('id="first-lines"')[1].split("</table>")[0]
    assert "The first 5 lines, as they will be sent" in page
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    assert len(rows) == 5
    assert '<td class="num">1</td>' in rows[0] and '<td class="id-cell">q1</td>' in rows[0]
    assert "Name a colour." in rows[0] and "gemini-2.5-flash; temperature 0.2" in rows[0]
    assert "x" * 200 + "…" in rows[1] and "x" * 201 not in rows[1]
    assert "gemini-2.5-flash (the file names gpt-4o)" in rows[1]
    assert "system instruction “Be terse.”" in rows[1]
    assert "prompt 6" not in table
    # What the preview keeps of the rows is their start only.
    record = next((Path(settings.VAR_DIR) / "uploads" / str(ada.pk)).glob("*.json"))
    assert len(record.read_bytes()) < 4000


def test_a_discarded_upload_creates_nothing(client, ada):
    response = upload(as_user(client, ada), "p.txt", b"one\ntwo\n")
    token_url = response["Location"]
    assert client.post(f"{token_url}discard/").status_code == 302
    assert client.get(token_url).status_code == 404
    assert not Run.objects.exists()


def test_the_preview_lists_what_the_lines_ask_for_beyond_a_prompt(client, ada, settings):
    settings.GEMINI_API = "interactions"
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    lines = [
        {"key": "1", "request": {"contents": [{"parts": [{"text": "x"}]}],
         "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema,
                              "topK": 3}}},
        {"key": "2", "request": {"contents": [{"parts": [{"text": "y"}]}]}},
    ]  # fmt: skip
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    page = client.get(upload(as_user(client, ada), "batch.jsonl", content)["Location"])
    text = page.content.decode()
    assert "JSON answers checked against a schema: 1 line" in text
    assert "sampling settings (top_k): 1 line" in text
    assert "fields only generateContent carries (sent by that route): 1 line" in text


def test_a_preview_never_confirmed_is_removed_a_day_later(client, ada, settings):
    first = upload(as_user(client, ada), "p.txt", b"one\n")["Location"]
    folder = Path(settings.VAR_DIR) / "uploads" / str(ada.pk)
    day_ago = time.time() - 24 * 3600 - 60
    for path in folder.iterdir():
        os.utime(path, (day_ago, day_ago))
    second = upload(client, "p.txt", b"two\n")["Location"]
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200
    assert len(list(folder.iterdir())) == 2  # the second's file and what its preview found


@pytest.mark.parametrize(
    ("filename", "content", "named"),
    [
        ("p.jsonl", b'{"prompt": "ok"}\n{"prompt": "ok"}\n{"prompt": \n', "line 3: not valid JSON"),
        ("p.jsonl", b'{"prompt": "ok"}\n{"id": "x"}\n', "line 2: no &#x27;prompt&#x27; text"),
        (
            "p.jsonl",
            b'{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n',
            "line 2: id &#x27;a&#x27; was already used on line 1",
        ),
        ("p.txt", b"", "The file has no prompts."),
        ("p.txt", "ok\ncaf\xe9\n".encode("latin-1"), "line 2: not UTF-8 text"),
        ("p.csv", b"id,text\n1,hello\n", "line 1: the header row has no &#x27;prompt&#x27; column"),
    ],
)
def test_a_bad_file_is_refused_on_the_page_naming_the_line(client, ada, filename, content, named):
    response = upload(as_user(client, ada), filename, content)
    assert response.status_code == 200
    page = response.content.decode()
    assert "The file was refused; nothing was created." in page
    assert named in page
    assert not Run.objects.exists()
    assert not Job.objects.exists()


def test_an_oversized_file_is_refused_on_the_page(client, ada, settings):
    settings.FLEX_RUN_MAX_BYTES = 100
    response = upload(as_user(client, ada), "p.txt", b"a prompt\n" * 50)
    assert "The file is larger than 100 bytes; split it." in response.content.decode()
    assert not Run.objects.exists()


def test_bad_settings_are_shown_on_their_fields(client, ada):
    response = upload(as_user(client, ada), "p.txt", b"one\n", max_attempts="0")
    assert response.status_code == 200
    assert "Max attempts must be between 1 and 50." in response.content.decode()
    assert not Run.objects.exists()


def test_the_format_can_be_chosen_instead_of_detected(client, ada):
    # Without the choice this would be read as JSONL.
    response = upload(as_user(client, ada), "p.dat", b'{"prompt": "x"}\n', format="text")
    client.post(response["Location"])
    job = Run.objects.get().jobs.get()
    assert (job.run.source_format, job.input_text) == ("text", '{"prompt": "x"}')


# --- The run page ------------------------------------------------------------------
def test_the_run_page_shows_progress_counts_errors_and_cost(client, ada):
    run = make_run(ada, lines=[("a", "p1"), ("b", "p2"), ("c", "p3"), ("d", "p4")])
    a, b, c, _ = run.jobs.order_by("id")
    now = timezone.now()
    Job.objects.filter(pk=a.pk).update(
        state=State.SUCCEEDED,
        finished_at=now,
        first_started_at=now,
        http_503=2,
        input_tokens=100,
        output_tokens=40,
        cost_usd=Decimal("0.000065"),
        standard_cost_usd=Decimal("0.00013"),
    )
    Job.objects.filter(pk=b.pk).update(state=State.FAILED, finished_at=now, http_429=1)
    Job.objects.filter(pk=c.pk).update(state=State.RETRYING, next_attempt_at=now)
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    assert '<progress id="run-progress-bar" max="4" value="2">50%</progress>' in page
    assert "2 of 4 jobs finished" in page
    assert '<td class="num" id="run-503">2</td>' in page
    assert '<td class="num" id="run-429">1</td>' in page
    assert '<td class="num" id="run-cost">$0.000065</td>' in page
    assert '<td class="num" id="run-standard">$0.00013</td>' in page
    assert '<td class="num" id="run-saved">$0.000065</td>' in page
    # One answer at $0.000065 so far, two jobs still active: 0.000065 * 3.
    assert '<td class="num" id="run-projected">$0.000195</td>' in page
    assert "Cancel 2 waiting jobs" in page
    assert "Retry 1 failed job" in page
    assert "Move 2 unfinished jobs to standard" in page
    assert 'hx-trigger="every 2s, jobs-changed from:body"' in page
    # The jobs list's own fragment, with its filters, limited to this run.
    assert 'id="job-table"' in page
    assert 'aria-label="Filter jobs"' in page
    assert 'name="user"' not in page


def test_the_rate_of_the_last_minutes_gives_the_time_left(client, ada):
    run = make_run(ada, lines=[(f"j{n}", f"prompt {n}") for n in range(10)])
    now = timezone.now()
    run.jobs.filter(custom_id="j0").update(first_started_at=now - timedelta(minutes=4))
    answered(run.jobs.filter(custom_id__in=["j0", "j1", "j2", "j3"]), at=now - timedelta(minutes=1))
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    # 4 finished in the 4 minutes since the first started: 1 a minute, 6 to go.
    assert "1.0 jobs a minute" in page
    # (A second or two pass between the rows' times and the page's own.)
    assert re.search(r"about 6 min 0\d s at this rate", page)


def test_the_per_minute_table_starts_at_the_minute_the_run_was_created(client, ada):
    run = make_run(ada)
    created = timezone.now().replace(second=30, microsecond=0) - timedelta(minutes=3)
    Run.objects.filter(pk=run.pk).update(created_at=created)
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    minutes = re.findall(r'<tr><th scope="row"><time datetime="([^"]+)"', page)
    # The creation minute, the two after it and the current one: none before it.
    assert len(minutes) == 4
    assert minutes[0] == created.replace(second=0).isoformat()


def test_the_per_minute_table_of_an_older_run_shows_the_last_ten_minutes(client, ada):
    run = make_run(ada)
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(hours=1))
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    assert len(re.findall(r'<tr><th scope="row"><time datetime=', page)) == 10


def test_a_finished_run_stops_polling_and_records_when_it_finished(client, ada):
    run = make_run(ada)
    finished = timezone.now()
    run.jobs.update(state=State.SUCCEEDED, finished_at=finished)
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    assert '<span class="run-percent" id="run-percent">100%</span>' in page
    assert 'hx-trigger="jobs-changed from:body"' in page
    assert "every 2s" not in page
    run.refresh_from_db()
    assert run.finished_at == finished


def test_the_page_says_how_many_models_were_replaced(client, ada):
    run = make_run(ada, [("a", "x"), ("b", "y")], fmt="anthropic_batch")
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    assert "2 lines named models that flex does not run; they use gemini-2.5-flash." in page
    assert "Anthropic Message Batches JSONL" in page


def test_each_fragment_answers_the_htmx_poll_that_asked_for_it(client, ada):
    run = make_run(ada)
    as_user(client, ada)
    live = client.get(f"/runs/{run.pk}/", headers={**HTMX, "HX-Target": "run-live"})
    text = live.content.decode()
    assert text.lstrip().startswith('<p id="state-counts"') and 'hx-swap-oob="true"' in text
    assert 'id="run-live"' in text and 'id="job-table"' not in text
    table = client.get(f"/runs/{run.pk}/?state=queued", headers={**HTMX, "HX-Target": "job-table"})
    text = table.content.decode()
    assert 'id="job-table"' in text and 'id="run-live"' not in text
    assert text.count('<tr id="job-') == 2


def test_the_job_table_filters_the_runs_jobs_only(client, ada):
    run = make_run(ada, lines=[("a", "apple pie"), ("b", "banana split")])
    other = make_run(ada, lines=[("c", "apple crumble")])
    as_user(client, ada)
    response = client.get(f"/runs/{run.pk}/?q=apple")
    listed = [job.custom_id for job in response.context["page"]]
    assert listed == ["a"]
    assert other.jobs.get().custom_id == "c"


def test_the_run_list_shows_my_runs_with_counts_and_cost(client, ada, bob):
    mine = make_run(ada)
    mine.jobs.update(state=State.SUCCEEDED, cost_usd=Decimal("0.001"))
    make_run(bob)
    response = as_user(client, ada).get("/runs/")
    assert [run.pk for run in response.context["page"]] == [mine.pk]
    assert "$0.002" in response.content.decode()


# --- Actions -----------------------------------------------------------------------
def test_the_retry_button_says_the_attempts_each_failed_job_gets(client, ada):
    run = make_run(ada, lines=[("a", "p1"), ("b", "p2"), ("c", "p3")], max_attempts=3)
    Job.objects.filter(run=run).update(state=State.FAILED, attempts=1)
    Job.objects.filter(pk=run.jobs.order_by("id").first().pk).update(attempt_budget=2)

    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()

    assert ">Retry 3 failed jobs with 2 to 3 more attempts each</button>" in page


def test_cancel_retry_and_delete_from_the_page(client, ada):
    run = make_run(ada, lines=[("a", "p1"), ("b", "p2"), ("c", "p3")])
    first = run.jobs.order_by("id").first()
    Job.objects.filter(pk=first.pk).update(state=State.FAILED, finished_at=timezone.now())
    as_user(client, ada)
    response = client.post(f"/runs/{run.pk}/cancel/", follow=True)
    assert "Cancelled 2 waiting jobs." in response.content.decode()
    assert f">Retry 1 failed job with {run.max_attempts} more attempts</button>" in (
        response.content.decode()
    )
    response = client.post(f"/runs/{run.pk}/retry/", follow=True)
    assert "1 failed job queued again." in response.content.decode()
    assert sorted(run.jobs.values_list("state", flat=True)) == ["cancelled", "cancelled", "queued"]

    confirm = client.get(f"/runs/{run.pk}/delete/").content.decode()
    assert "This deletes the run and its 3 jobs" in confirm
    assert Run.objects.exists()
    response = client.post(f"/runs/{run.pk}/delete/", follow=True)
    assert f"Run “{run.name}” deleted with its 3 jobs." in response.content.decode()
    assert not Run.objects.exists() and not Job.objects.exists()


def test_move_to_standard_shows_the_price_difference_first(client, ada):
    # Two 400-character prompts: 100 tokens each in, and (no answer yet) 100 out.
    run = make_run(ada, lines=[("a", "x" * 400), ("b", "y" * 400)])
    as_user(client, ada)
    page = client.get(f"/runs/{run.pk}/standard/").content.decode()
    # Standard per job: 100 * 0.30 / 1e6 + 100 * 2.50 / 1e6 = 0.00028; flex half that.
    assert '<td class="num" id="quote-flex">$0.00028</td>' in page
    assert '<td class="num" id="quote-standard">$0.00056</td>' in page
    assert '<td class="num" id="quote-difference"><strong>+$0.00028</strong></td>' in page
    assert set(run.jobs.values_list("tier_requested", flat=True)) == {Tier.FLEX}
    response = client.post(f"/runs/{run.pk}/standard/", follow=True)
    assert "2 unfinished jobs moved to the standard tier." in response.content.decode()
    assert set(run.jobs.values_list("tier_requested", flat=True)) == {Tier.STANDARD}


# --- Downloads ---------------------------------------------------------------------
def test_the_move_to_standard_page_says_how_output_is_estimated(client, ada):
    run = make_run(ada)
    as_user(client, ada)
    page = client.get(f"/runs/{run.pk}/standard/").content.decode()
    assert "output as long as the input (no answer yet)." in page
    assert "as as" not in page
    run.jobs.filter(custom_id="a").update(state=State.SUCCEEDED, output_tokens=10)
    page = client.get(f"/runs/{run.pk}/standard/").content.decode()
    assert "output as the average answer of this run so far." in page


def test_downloads_are_streamed_in_the_uploaded_format_keyed_by_the_ids(client, ada):
    run = make_run(ada, [("k1", "one"), ("k2", "two"), ("k3", "three")], fmt="gemini_batch")
    k1, k2, _ = run.jobs.order_by("id")
    Job.objects.filter(pk=k1.pk).update(
        state=State.SUCCEEDED, result_text="Answer one", cost_usd=Decimal("0.00001")
    )
    Job.objects.filter(pk=k2.pk).update(state=State.FAILED, last_error="HTTP 503 UNAVAILABLE")
    as_user(client, ada)

    response = client.get(f"/runs/{run.pk}/results.jsonl")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Disposition"].startswith(f'attachment; filename="run-{run.pk}-')
    lines = json_lines(body(response).encode())
    assert [line["key"] for line in lines] == ["k1", "k2"]
    assert lines[0]["response"]["candidates"][0]["content"]["parts"][0]["text"] == "Answer one"
    assert "503" in lines[1]["error"]["message"]

    csv_text = body(client.get(f"/runs/{run.pk}/results.csv"))
    assert csv_text.splitlines()[0].startswith("id,state,attempts,http_503,http_429")
    assert csv_text.splitlines()[1].startswith("k1,succeeded,")

    again = json_lines(body(client.get(f"/runs/{run.pk}/unfinished/")).encode())
    assert [line["key"] for line in again] == ["k2", "k3"]
    assert again[0]["request"]["contents"][0]["parts"][0]["text"] == "two"


def test_the_unfinished_lines_are_offered_with_their_count(client, ada):
    run = make_run(ada, [("a", "one"), ("b", "two"), ("c", "three")])
    run.jobs.filter(custom_id="a").update(state=State.SUCCEEDED)
    run.jobs.filter(custom_id="b").update(state=State.FAILED)
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    assert f'href="/runs/{run.pk}/unfinished/" download>Failed and unfinished lines</a>' in page
    assert "(2 lines in the uploaded format, ready to upload again)" in page


def test_a_run_whose_every_line_was_answered_offers_no_empty_unfinished_file(client, ada):
    run = make_run(ada)
    run.jobs.update(state=State.SUCCEEDED, finished_at=timezone.now())
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    assert f"/runs/{run.pk}/unfinished/" not in page
    assert "Failed and unfinished lines: none" in page


def test_a_free_answer_costs_a_plain_zero_in_the_downloads(client, ada):
    run = make_run(ada, [("a", "one")])
    run.jobs.update(state=State.SUCCEEDED, cost_usd=Decimal(0))
    page = as_user(client, ada)
    assert body(page.get(f"/runs/{run.pk}/results.csv")).splitlines()[1].count(",0.00000000,")
    assert '"cost_usd": "0.00000000"' in body(page.get(f"/runs/{run.pk}/results.jsonl"))


def test_the_unfinished_lines_of_a_text_run_are_plain_text(client, ada):
    run = make_run(ada, [("", "alpha"), ("", "beta")], fmt="text")
    run.jobs.filter(custom_id="1").update(state=State.SUCCEEDED)
    response = as_user(client, ada).get(f"/runs/{run.pk}/unfinished/")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert body(response) == "beta\n"


# --- Who may see what ----------------------------------------------------------------
OTHER_PEOPLES = [
    ("get", "/runs/{id}/"),
    ("get", "/runs/{id}/standard/"),
    ("get", "/runs/{id}/delete/"),
    ("get", "/runs/{id}/results.jsonl"),
    ("get", "/runs/{id}/results.csv"),
    ("get", "/runs/{id}/unfinished/"),
    ("post", "/runs/{id}/cancel/"),
    ("post", "/runs/{id}/retry/"),
    ("post", "/runs/{id}/resend/"),
    ("get", "/runs/{id}/results/"),
    ("post", "/runs/{id}/standard/"),
    ("post", "/runs/{id}/delete/"),
]


@pytest.mark.parametrize(("method", "url"), OTHER_PEOPLES)
def test_another_users_run_is_not_found_everywhere(client, ada, bob, method, url):
    run = make_run(bob)
    as_user(client, ada)
    response = getattr(client, method)(url.format(id=run.pk))
    assert response.status_code == 404
    fragment = client.get(f"/runs/{run.pk}/", headers={**HTMX, "HX-Target": "run-live"})
    assert fragment.status_code == 404
    assert Run.objects.filter(pk=run.pk).exists()
    assert set(run.jobs.values_list("state", "tier_requested")) == {(State.QUEUED, Tier.FLEX)}


def test_another_users_staged_upload_is_not_found(client, ada, bob):
    response = upload(as_user(client, bob), "p.txt", b"one\n")
    token_url = response["Location"]
    as_user(client, ada)
    assert client.get(token_url).status_code == 404
    assert client.post(token_url).status_code == 404
    assert not Run.objects.exists()


def test_staff_see_every_run(client, ada, staff):
    run = make_run(ada)
    as_user(client, staff)
    assert client.get(f"/runs/{run.pk}/").status_code == 200
    assert [r.pk for r in client.get("/runs/").context["page"]] == [run.pk]


def test_the_pages_need_a_login(client, ada):
    run = make_run(ada)
    for url in ("/runs/", "/runs/new/", f"/runs/{run.pk}/", f"/runs/{run.pk}/results.jsonl"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_the_upload_page_offers_a_drop_zone_and_every_format(client, ada):
    page = as_user(client, ada).get("/runs/new/").content.decode()
    assert "data-dropzone" in page and 'type="file"' in page
    for label in ("Gemini Batch API JSONL", "OpenAI Batch JSONL", "CSV with a prompt column"):
        assert label in page
