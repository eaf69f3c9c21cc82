"""One job: its prompt, sanitised result, attempts, times and cost; live until finished."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from jobs.engine import actions
from jobs.models import Attempt, ErrorKind, Outcome, State
from tests.support import HTMX, as_user, make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def retried_job(ada):
    """Shed once with 503, then answered: the story the dashboard exists to tell."""
    start = timezone.now() - timedelta(seconds=60)
    job = make_job(
        ada,
        attempts=2,
        http_503=1,
        result_text="# Flex\n\nIt is **half** price.",
        tier_served="flex",
        input_tokens=1000,
        output_tokens=2000,
        cost_usd=Decimal("0.00265"),
        standard_cost_usd=Decimal("0.0053"),
        submitted_at=start,
        first_started_at=start + timedelta(seconds=10),
        finished_at=start + timedelta(seconds=30),
    )
    Attempt.objects.create(
        job=job,
        number=1,
        tier_requested="flex",
        started_at=start + timedelta(seconds=10),
        finished_at=start + timedelta(seconds=12),
        latency_seconds=2.0,
        http_status=503,
        google_status="UNAVAILABLE",
        retry_after_seconds=5.0,
        error_kind=ErrorKind.CAPACITY,
        error_message="Simulated 503 UNAVAILABLE.",
        outcome=Outcome.WILL_RETRY,
    )
    Attempt.objects.create(
        job=job,
        number=2,
        tier_requested="flex",
        tier_served="flex",
        started_at=start + timedelta(seconds=20),
        finished_at=start + timedelta(seconds=30),
        latency_seconds=10.0,
        http_status=200,
        outcome=Outcome.SUCCEEDED,
    )
    return job


def test_it_shows_prompt_result_attempts_times_and_cost(client, ada, retried_job):
    page = as_user(client, ada).get(f"/jobs/{retried_job.pk}/").content.decode()

    assert "Explain flex" in page
    assert "<h1>Flex</h1>" in page and "<strong>half</strong>" in page
    first = page[page.index('id="attempt-1"') : page.index('id="attempt-2"')]
    assert "503" in first and "UNAVAILABLE" in first and "5.0 s" in first
    assert "Capacity (503): Simulated 503 UNAVAILABLE." in first
    assert "Will retry" in first
    assert "Succeeded" in page[page.index('id="attempt-2"') :]
    assert "<dt>Queued</dt><dd>10.0 s</dd>" in page
    assert "<dt>In flight</dt><dd>12.0 s</dd>" in page
    assert "<dt>Backing off</dt><dd>8.0 s</dd>" in page
    assert "<dt>Cost</dt><dd>$0.00265</dd>" in page
    assert "$0.0053" in page and "saved $0.00265" in page


def test_a_result_with_script_is_rendered_inert(client, ada):
    job = make_job(
        ada,
        result_text='Hi <script>window.__xss=1</script> <img src=x onerror="window.__xss=2"> '
        "[click](javascript:alert(1))",
    )
    for headers in ({}, HTMX):
        page = as_user(client, ada).get(f"/jobs/{job.pk}/", headers=headers).content.decode()
        result = page[page.index('<div class="markdown result">') :]
        result = result[: result.index("</div>")]
        assert "<script" not in result and "<img" not in result
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in result
        assert 'href="javascript' not in result


def test_another_users_job_is_not_found_in_page_and_fragment(client, bob, retried_job):
    as_user(client, bob)
    assert client.get(f"/jobs/{retried_job.pk}/").status_code == 404
    assert client.get(f"/jobs/{retried_job.pk}/", headers=HTMX).status_code == 404


def test_staff_can_open_anyones_job(client, staff, retried_job):
    page = as_user(client, staff).get(f"/jobs/{retried_job.pk}/")
    assert page.status_code == 200
    assert b"by ada" in page.content


def test_the_live_fragment_renders_alone_and_inside_the_page(client, ada):
    job = make_job(ada, State.RUNNING, attempts=1)
    as_user(client, ada)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    fragment = client.get(f"/jobs/{job.pk}/", headers=HTMX).content.decode()

    assert '<div id="job-live"' in page and "Explain flex" in page
    assert fragment.strip().startswith('<div id="job-live"')
    assert "<html" not in fragment and "Explain flex" not in fragment


@pytest.mark.parametrize("state", [State.QUEUED, State.RUNNING, State.RETRYING])
def test_it_polls_while_the_job_is_active(client, ada, state):
    job = make_job(ada, state, next_attempt_at=timezone.now() + timedelta(seconds=5))
    fragment = as_user(client, ada).get(f"/jobs/{job.pk}/", headers=HTMX).content.decode()
    assert f'hx-get="/jobs/{job.pk}/" hx-trigger="every 2s"' in fragment


@pytest.mark.parametrize("state", [State.SUCCEEDED, State.FAILED, State.CANCELLED])
def test_it_stops_polling_once_the_job_is_finished(client, ada, state):
    job = make_job(ada, state)
    fragment = as_user(client, ada).get(f"/jobs/{job.pk}/", headers=HTMX).content.decode()
    assert "hx-trigger" not in fragment and "hx-get" not in fragment


def test_it_offers_only_the_actions_the_state_allows(client, ada):
    as_user(client, ada)
    buttons = {}
    for state in State.values:
        page = client.get(f"/jobs/{make_job(ada, state).pk}/").content.decode()
        buttons[state] = [
            label
            for label in ("Yes, cancel it", "Retry now", "Retry with 8 more attempts")
            if f">{label}</button>" in page
        ]
        assert ">Run again as a new job</button>" in page
    assert buttons == {
        "waiting": ["Yes, cancel it"],
        "queued": ["Yes, cancel it"],
        "running": [],
        "retrying": ["Yes, cancel it", "Retry now"],
        "succeeded": [],
        "failed": ["Retry with 8 more attempts"],
        "cancelled": [],
        "skipped": [],
    }


def test_cancel_asks_first_in_a_danger_button_that_outlives_the_poll(client, ada):
    job = make_job(ada, State.QUEUED)
    page = as_user(client, ada).get(f"/jobs/{job.pk}/", headers=HTMX).content.decode()

    # Without script too: the <details> opens on the first click, the form
    # inside posts on the second; a poll's swap keeps it as it was (hx-preserve).
    confirm = page[page.index('<details class="confirm"') : page.index("</details>")]
    assert 'id="cancel-job" hx-preserve="true"' in confirm
    assert '<summary class="button secondary danger">Cancel job…</summary>' in confirm
    assert "It will not be tried again" in confirm
    assert f'action="/jobs/{job.pk}/cancel/"' in confirm
    assert '<button type="submit" class="danger">Yes, cancel it</button>' in confirm


def _waiting_to_retry(owner, **fields):
    """Shed twice with 503, now waiting for its third attempt."""
    start = timezone.now() - timedelta(seconds=60)
    job = make_job(
        owner,
        State.RETRYING,
        attempts=2,
        http_503=2,
        next_attempt_at=timezone.now() + timedelta(minutes=5),
        submitted_at=start,
        **fields,
    )
    for number in (1, 2):
        Attempt.objects.create(
            job=job,
            number=number,
            tier_requested="flex",
            started_at=start + timedelta(seconds=10 * number),
            finished_at=start + timedelta(seconds=10 * number + 1),
            http_status=503,
            error_kind=ErrorKind.CAPACITY,
            outcome=Outcome.WILL_RETRY,
        )
    return job


def _outcome_cells(page: str) -> list[str]:
    return re.findall(r'<td data-label="Outcome">([^<]*)</td>', page)


def test_a_job_cancelled_while_waiting_to_retry_says_the_retry_never_came(client, ada):
    job = _waiting_to_retry(ada)
    as_user(client, ada).post(f"/jobs/{job.pk}/cancel/")
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    # The first attempt's retry did happen: only the last one's never came.
    assert _outcome_cells(page) == ["Will retry", "Cancelled before its retry"]
    # What was stored when the attempt ended is kept: its error was worth a retry.
    assert job.attempt_log.get(number=2).outcome == Outcome.WILL_RETRY


def test_a_job_cancelled_at_its_deadline_says_the_retry_never_came(client, ada):
    job = _waiting_to_retry(
        ada, deadline_at=timezone.now() - timedelta(seconds=1), deadline_policy="cancel"
    )
    actions.jobs_apply_deadlines()
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert _outcome_cells(page) == ["Will retry", "Cancelled before its retry"]


def test_a_job_still_waiting_to_retry_says_it_will(client, ada):
    job = _waiting_to_retry(ada)
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert _outcome_cells(page) == ["Will retry", "Will retry"]


# --- The whole request and the whole answer ---------------------------------------------
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
                {"text": "Where is this?"},
                {"inline_data": {"mime_type": "image/png", "data": PNG_DATA}},
                {"file_data": {"mime_type": "application/pdf", "file_uri": "gs://b/guide.pdf"}},
            ],
        }
    ],
    "generation_config": {
        "temperature": 0.2,
        "top_k": 40,
        "seed": 7,
        "stop_sequences": ["END"],
        "thinking_config": {"thinking_level": "high"},
        "response_mime_type": "application/json",
        "response_json_schema": SCHEMA,
    },
}


ANSWER = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": '{"city": "Paris"}'}]},
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 300,
        "candidatesTokenCount": 6,
        "thoughtsTokenCount": 50,
        "cachedContentTokenCount": 120,
    },
    "modelVersion": "gemini-2.5-flash-001",
}


def _answered(owner, **fields):
    """A job with REQUEST (unless `fields` gives another), answered with ANSWER."""
    fields.setdefault("request", REQUEST)
    fields.setdefault("result_text", '{"city": "Paris"}')
    return make_job(
        owner,
        prompt="Where is this?",
        temperature=0.2,
        response=ANSWER,
        finish_reason="STOP",
        input_tokens=300,
        output_tokens=6,
        thought_tokens=50,
        **fields,
    )


def test_it_shows_the_whole_request_with_attachments_by_type_and_size(client, ada):
    job = _answered(ada, output_json={"city": "Paris"})
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    attachments = page[page.index('id="attachments"') :]
    attachments = attachments[: attachments.index("</ul>")]
    assert "PNG image, 70\xa0bytes" in attachments
    assert "PDF document at <code>gs://b/guide.pdf</code>" in attachments
    assert PNG_DATA not in page and PNG_DATA[:20] not in page
    settings = page[page.index('id="generation-settings"') :]
    for fact in (
        "<dt>Top-k</dt><dd>40</dd>",
        "<dt>Seed</dt><dd>7</dd>",
        "<dt>Stop sequences</dt><dd>&quot;END&quot;</dd>",
        "<dt>Thinking</dt><dd>level high</dd>",
        "<dt>Answer as</dt><dd>JSON (application/json)</dd>",
    ):
        assert fact in settings
    schema = page[page.index('id="response-schema"') :]
    assert "&quot;city&quot;: {" in schema[: schema.index("</pre>")]


def test_a_plain_prompt_shows_no_settings_beyond_its_own(client, ada):
    job = make_job(ada)
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="generation-settings"' not in page and 'id="attachments"' not in page


def test_a_conversation_shows_each_turn(client, ada):
    request = {
        "contents": [
            {"role": "user", "parts": [{"text": "Hello"}]},
            {"role": "model", "parts": [{"text": "Hi, how can I help?"}]},
            {"role": "user", "parts": [{"text": "Name a river."}]},
        ]
    }
    job = make_job(ada, prompt="User: Hello ...", request=request)
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    turns = page[page.index('id="turns"') : page.index("</ol>")]
    assert re.findall(r"<h3>(\w+)</h3>", turns) == ["User", "Model", "User"]
    assert "Hi, how can I help?" in turns and "Name a river." in turns


def test_a_structured_answer_is_a_table_of_its_properties(client, ada):
    answer = {
        "city": "Paris",
        "population": 2102650,
        "capital": True,
        "rivers": [{"name": "Seine", "km": 777}, {"name": "Bièvre"}],
        "tags": ["old", "big"],
        "mayor": {"name": "A. Hidalgo", "since": {"year": 2014}},
    }
    job = _answered(ada, output_json=answer, result_text=json.dumps(answer))
    for headers in ({}, HTMX):
        page = as_user(client, ada).get(f"/jobs/{job.pk}/", headers=headers).content.decode()
        table = page[page.index('id="structured-answer"') :]
        assert '<th scope="row">city</th><td><span class="json-string">Paris</span>' in table
        assert (
            '<th scope="row">population</th><td><span class="json-number">2102650</span>' in table
        )
        assert '<span class="json-boolean">true</span>' in table
        # A list of objects is a table of their properties, a missing one a dash.
        assert '<th scope="col">name</th><th scope="col">km</th>' in table
        assert '<td><span class="json-string">Bièvre</span></td><td><span class="muted">—' in table
        assert '<li><span class="json-string">old</span></li>' in table
        assert '<th scope="row">year</th><td><span class="json-number">2014</span>' in table
        assert "The answer as Gemini wrote it" in page
        assert "does not match the schema" not in page


def test_the_properties_come_in_the_order_gemini_wrote_them(client, ada):
    # PostgreSQL's jsonb gives a stored object's keys back shortest first; the text keeps them.
    text = '{"summary": "short", "id": 7, "tags": [], "extra": null}'
    job = _answered(ada, output_json=json.loads(text), result_text=text)
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    table = page[page.index('id="structured-answer"') : page.index("The answer as Gemini")]
    assert re.findall(r'<th scope="row">(\w+)</th>', table) == ["summary", "id", "tags", "extra"]


@pytest.mark.parametrize(
    "stored",
    [
        # As the engine writes it (gemini_shape.check_answer), and bare.
        "The answer does not match the schema: the answer: 'city' is a required property",
        "the answer: 'city' is a required property",
    ],
)
def test_an_answer_that_breaks_the_schema_is_flagged(client, ada, stored):
    job = _answered(ada, output_problem=stored, bad_outputs=2, retry_bad_output=True)
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    problem = page[page.index('id="output-problem"') :]
    assert (
        "<strong>The answer does not match the schema: the answer: &#x27;city&#x27; is a "
        "required property</strong> (2 answers broke it in all, each tried again.)"
    ) in problem
    assert 'id="structured-answer"' not in page
    assert '<pre class="text-block result">{&quot;city&quot;: &quot;Paris&quot;}</pre>' in page


def test_an_answer_cut_at_the_token_limit_says_so(client, ada):
    job = make_job(
        ada,
        result_text="The first half",
        finish_reason="MAX_TOKENS",
        cut_at_limit=True,
        response={
            "candidates": [
                {"content": {"parts": [{"text": "The first half"}]}, "finishReason": "MAX_TOKENS"}
            ]
        },
    )
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert (
        '<p id="finish-reason" class="banner banner-warning">Cut at the token limit (MAX_TOKENS): '
        "the text is what came before it.</p>"
    ) in page
    assert "The first half" in page


def test_a_blocked_answer_says_why_in_words(client, ada):
    job = make_job(
        ada,
        State.FAILED,
        finish_reason="SAFETY",
        response={"candidates": [{"finishReason": "SAFETY"}]},
    )
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert "Blocked by Gemini&#x27;s safety filter (SAFETY)." in page


def test_a_blocked_prompt_says_so(client, ada):
    job = make_job(ada, State.FAILED, response={"promptFeedback": {"blockReason": "SAFETY"}})
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert "The prompt was blocked by Gemini&#x27;s safety filter (SAFETY)." in page


def test_every_candidate_and_function_call_is_shown(client, ada):
    response = {
        "candidates": [
            {"content": {"parts": [{"text": "First *answer*"}]}, "finishReason": "STOP"},
            {
                "content": {
                    "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]
                },
                "finishReason": "STOP",
            },
        ]
    }
    job = make_job(ada, result_text="First *answer*", response=response, finish_reason="STOP")
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    first = page[page.index('id="candidate-1"') : page.index('id="candidate-2"')]
    second = page[page.index('id="candidate-2"') :]
    assert "First <em>answer</em>" in first
    assert "<code>get_weather</code> with" in second
    assert '<th scope="row">city</th><td><span class="json-string">Oslo</span>' in second


def test_one_answer_that_only_calls_a_function_shows_the_call(client, ada):
    response = {
        "candidates": [
            {"content": {"parts": [{"functionCall": {"name": "lookup"}}]}, "finishReason": "STOP"}
        ]
    }
    job = make_job(ada, result_text="", response=response)
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert '<code>lookup</code> <span class="muted">(no arguments)</span>' in page
    assert 'class="markdown result"' not in page


def test_thought_and_cached_tokens_and_the_model_version_are_shown(client, ada):
    job = _answered(ada, output_json={"city": "Paris"})
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert '<dd>300 <span class="muted">(120 from the cache)</span></dd>' in page
    assert "6 + 50 thinking" in page
    assert "<dt>Model version</dt><dd>gemini-2.5-flash-001</dd>" in page


def test_the_key_is_redacted_from_the_schema_answer_and_function_arguments(client, ada, settings):
    key = "AIzaSyT3st-redaction-key_0123456789abcd"
    settings.GEMINI_API_KEY = key
    request = {
        **REQUEST,
        "generation_config": {
            "response_mime_type": "application/json",
            "response_json_schema": {"type": "object", "description": f"key {key}"},
        },
    }
    response = {
        "candidates": [
            {"content": {"parts": [{"functionCall": {"name": "f", "args": {"token": key}}}]}}
        ]
    }
    job = make_job(ada, request=request, response=response, output_json={"echo": key})
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert key not in page
    assert page.count("[GEMINI_API_KEY]") >= 3
