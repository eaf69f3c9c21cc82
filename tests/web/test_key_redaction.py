"""The Gemini key never leaves: put it in a prompt, a system instruction, an answer,
an error and the pause reason, and no page, fragment, admin page, API answer,
download, health report, command output or log line shows it; each shows the one
placeholder, [GEMINI_API_KEY], where the key was."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.core.management import call_command
from django.http import StreamingHttpResponse
from django.test import Client

from jobs.engine import control, gemini
from jobs.models import Attempt, DispatchControl, ErrorKind, Job, Outcome, Run, State
from jobs.redaction import REDACTED, RedactApiKeyFilter, redact_api_key
from jobs.web.queries import PROMPT_EXCERPT_CHARS
from tests.support import HTMX, MODEL, api_client, as_user, run_from_file

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_in_tmp")]

KEY = "AIzaSyT3st-redaction-key_0123456789abcd"


@pytest.fixture(autouse=True)
def gemini_key(settings):
    settings.GEMINI_API_KEY = KEY


@pytest.fixture
def run(ada) -> Run:
    """A run of three lines, each quoting the key: one answered with it, one failed
    with it (Gemini's error and the attempt's), one still queued."""
    lines = [
        {"id": f"k{n}", "prompt": f"Use {KEY} for line {n}", "system_instruction": f"Key: {KEY}"}
        for n in (1, 2, 3)
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    run = run_from_file(ada, content, "leaky.jsonl")
    answered, failed, _ = run.jobs.order_by("id")
    Job.objects.filter(pk=answered.pk).update(
        state=State.SUCCEEDED, result_text=f"**The key** is `{KEY}`, or _{KEY}_."
    )
    Job.objects.filter(pk=failed.pk).update(
        state=State.FAILED, attempts=1, last_error=f"HTTP 400 INVALID_ARGUMENT: key {KEY} invalid"
    )
    Attempt.objects.create(
        job=failed,
        number=1,
        tier_requested="flex",
        http_status=400,
        error_kind=ErrorKind.AUTH,
        error_message=f"API key {KEY} not valid",
        outcome=Outcome.FAILED,
    )
    control.dispatch_pause(reason=f"Gemini refused the API key (HTTP 400: {KEY}).")
    return run


@pytest.fixture
def cut_prompt(ada) -> Job:
    """A prompt whose key the jobs list's excerpt cuts in two."""
    return Job.objects.create(
        owner=ada, model=MODEL, input_text="x" * (PROMPT_EXCERPT_CHARS - 12) + KEY
    )


def text(response) -> str:
    assert response.status_code == 200, response
    if isinstance(response, StreamingHttpResponse):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def shows_the_key(page: str) -> bool:
    """The key, or a start of it long enough to matter (an excerpt cut in it)."""
    return KEY[:10] in page


def test_the_key_in_outside_text_is_stored_but_no_page_or_fragment_shows_it(
    client, ada, staff, run, cut_prompt
):
    # The finding: every kind of outside text holds the key, as stored.
    answered, failed, queued = run.jobs.order_by("id")
    assert KEY in queued.input_text and KEY in queued.system_instruction
    assert KEY in answered.result_text and KEY in failed.last_error
    assert KEY in failed.attempt_log.get().error_message
    assert KEY in DispatchControl.objects.get().reason

    for user in (ada, staff):
        as_user(client, user)
        paths = (
            "/",
            "/jobs/",
            f"/runs/{run.pk}/",
            *(f"/jobs/{job.pk}/" for job in (answered, failed, queued, cut_prompt)),
        )
        fragments = {path: text(client.get(path, headers=HTMX)) for path in paths}
        pages = {path: text(client.get(path)) for path in paths}
        assert not [path for path, page in fragments.items() if shows_the_key(page)]
        assert not [path for path, page in pages.items() if shows_the_key(page)]
        # Shown, with the placeholder where the key was.
        assert f"Gemini refused the API key (HTTP 400: {REDACTED})." in pages["/"]
        assert f"Use {REDACTED} for line 1" in pages[f"/runs/{run.pk}/"]
        assert "x" * (PROMPT_EXCERPT_CHARS - 12) + REDACTED in pages["/jobs/"]
        assert f"<code>{REDACTED}</code>" in pages[f"/jobs/{answered.pk}/"]
        failed_page = pages[f"/jobs/{failed.pk}/"]
        assert f"key {REDACTED} invalid" in failed_page
        assert f"API key {REDACTED} not valid" in failed_page
        assert f"Key: {REDACTED}" in pages[f"/jobs/{queued.pk}/"]


def test_no_admin_page_shows_the_key(admin_client, run):
    answered, failed, queued = run.jobs.order_by("id")
    attempt = failed.attempt_log.get()
    control_row = DispatchControl.objects.get()
    paths = [
        "/admin/jobs/job/",
        *(f"/admin/jobs/job/{job.pk}/change/" for job in (answered, failed, queued)),
        "/admin/jobs/attempt/",
        f"/admin/jobs/attempt/{attempt.pk}/change/",
        "/admin/jobs/dispatchcontrol/",
        f"/admin/jobs/dispatchcontrol/{control_row.pk}/change/",
        f"/admin/jobs/run/{run.pk}/change/",
    ]

    pages = {path: text(admin_client.get(path)) for path in paths}

    assert not [path for path, page in pages.items() if shows_the_key(page)]
    assert f"Gemini refused the API key (HTTP 400: {REDACTED})." in pages["/admin/jobs/job/"]
    assert f"Use {REDACTED} for line 2" in pages[f"/admin/jobs/job/{failed.pk}/change/"]
    assert f"key {REDACTED} invalid" in pages[f"/admin/jobs/job/{failed.pk}/change/"]
    assert f"API key {REDACTED} not valid" in pages[f"/admin/jobs/job/{failed.pk}/change/"]
    assert f"API key {REDACTED} not valid" in pages[f"/admin/jobs/attempt/{attempt.pk}/change/"]
    assert f"`{REDACTED}`" in pages[f"/admin/jobs/job/{answered.pk}/change/"]
    assert f"(HTTP 400: {REDACTED})" in pages["/admin/jobs/dispatchcontrol/"]
    # Shown, not offered for editing: a form field would have to hold the key itself.
    form = admin_client.get(f"/admin/jobs/job/{queued.pk}/change/").context["adminform"].form
    assert not {"input_text", "system_instruction", "result_text", "last_error"} & set(form.fields)


def test_the_api_downloads_health_and_jobs_command_never_carry_the_key(ada, run):
    api = api_client(ada)
    page = as_user(Client(), ada)
    failed = run.jobs.get(custom_id="k2")
    output = io.StringIO()
    call_command("jobs", "--json", stdout=output)

    answers = {
        "api list": text(api.get("/api/jobs")),
        **{f"api job {job.pk}": text(api.get(f"/api/jobs/{job.pk}")) for job in run.jobs.all()},
        "api results": text(api.get(f"/api/batches/{run.pk}/results")),
        "api results csv": text(api.get(f"/api/batches/{run.pk}/results.csv")),
        "api unfinished": text(api.get(f"/api/batches/{run.pk}/unfinished")),
        "results": text(page.get(f"/runs/{run.pk}/results.jsonl")),
        "results csv": text(page.get(f"/runs/{run.pk}/results.csv")),
        "unfinished": text(page.get(f"/runs/{run.pk}/unfinished/")),
        "healthz": text(Client().get("/healthz")),
        "jobs command": output.getvalue(),
    }

    assert not [name for name, answer in answers.items() if shows_the_key(answer)]
    detail = json.loads(answers[f"api job {failed.pk}"])
    assert detail["prompt"] == f"Use {REDACTED} for line 2"
    assert detail["system_instruction"] == f"Key: {REDACTED}"
    assert detail["error"] == f"HTTP 400 INVALID_ARGUMENT: key {REDACTED} invalid"
    assert detail["attempt_log"][0]["error_message"] == f"API key {REDACTED} not valid"
    first_result = json.loads(answers["results"].splitlines()[0])
    assert first_result["output"] == f"**The key** is `{REDACTED}`, or _{REDACTED}_."
    again = [json.loads(line) for line in answers["unfinished"].splitlines()]
    assert [line["prompt"] for line in again] == [f"Use {REDACTED} for line {n}" for n in (2, 3)]
    assert f"(HTTP 400: {REDACTED})" in answers["healthz"]


def test_no_log_line_carries_the_key():
    # The handler settings.LOGGING writes every log line through: the root's, and
    # Django's, which does not propagate.
    for name in ("", "django"):
        [console] = [h for h in logging.getLogger(name).handlers if h.get_name() == "console"]
        assert [f for f in console.filters if isinstance(f, RedactApiKeyFilter)]
    written = io.StringIO()
    previous = console.setStream(written)
    try:
        logging.getLogger("jobs.engine.recording").error("Dispatch paused: HTTP 400: %s", KEY)
        logging.getLogger("google_genai._api_client").warning(f"sent with key={KEY}")
        try:
            raise ValueError(f"the SDK quoted {KEY}")
        except ValueError:
            logging.getLogger("jobs.engine.dispatch").exception("A request failed")
        logging.getLogger("jobs").warning("%s and %s", KEY)  # arguments that do not fit
    finally:
        console.setStream(previous)

    lines = written.getvalue()
    assert not shows_the_key(lines)
    assert f"Dispatch paused: HTTP 400: {REDACTED}" in lines
    assert f"sent with key={REDACTED}" in lines
    assert f"ValueError: the SDK quoted {REDACTED}" in lines
    assert f"%s and %s ('{REDACTED}',)" in lines


def test_a_log_record_keeps_its_arguments_when_it_holds_no_key():
    record = logging.LogRecord("jobs", logging.INFO, __file__, 1, "%d jobs, 100%%", (3,), None)

    assert RedactApiKeyFilter().filter(record)
    assert (record.msg, record.args, record.getMessage()) == (
        "%d jobs, 100%%",
        (3,),
        "3 jobs, 100%",
    )


def test_a_gemini_error_is_stored_without_the_key_even_where_it_is_cut_to_length():
    long_message = "x" * 1990 + f" {KEY} the rest"
    body = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": long_message}}

    error = gemini.error_from_response(400, body, {})

    assert len(error.message) == 2000
    assert error.message.endswith(" " + REDACTED[:9])
    assert KEY[:8] not in error.message


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        (f"a {KEY} b {KEY}", f"a {REDACTED} b {REDACTED}"),
        (f"cut at {KEY[:20]}", f"cut at {REDACTED}"),
        (f"cut at {KEY[:8]}", f"cut at {REDACTED}"),
        (f"too short a piece to tell: {KEY[:7]}", f"too short a piece to tell: {KEY[:7]}"),
        (f"{KEY[:20]} in the middle", f"{KEY[:20]} in the middle"),
        ("", ""),
    ],
)
def test_the_key_is_redacted_whole_and_where_a_cut_text_ends_in_its_start(shown, expected):
    assert redact_api_key(shown) == expected
