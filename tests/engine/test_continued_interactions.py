"""A pipeline step with `continue: facts` is the next turn of facts' conversation: on the
Interactions route it goes as previous_interaction_id (facts' answer, stored by Gemini)
with only its new turn as input; where generateContent carries it, every turn is resent.
Through the real SDK against the simulator, whose record says what arrived."""

from __future__ import annotations

import json
import uuid

import pytest

from jobs import gemini_shape
from jobs.engine import backoff, claiming, routes
from jobs.models import Attempt, ErrorKind, Job, State
from jobs.simulator import ANSWER_PREFIX
from tests.support import send_claims, submit, wire_requests

SYSTEM = {"parts": [{"text": "Answer tersely."}]}


def _unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:10]}"


def _turn(role: str, text: str) -> dict:
    return {"role": role, "parts": [{"text": text}]}


def _send_due(simulator_url: str, route: str) -> list[claiming.Claim]:
    """One dispatcher turn in this process: claim, then send and record each claim
    through the real gateway as the dispatcher does (its previous interaction included)."""
    claims = claiming.jobs_claim(owner="test", limit=10, lease_seconds=60)
    send_claims(simulator_url, route, claims)
    return claims


def _wire(url: str, marker: str) -> dict:
    mine = [r for r in wire_requests(url, 50) if marker in json.dumps(r["body"])]
    assert mine, f"no request with {marker!r} reached the simulator"
    return mine[-1]


def _answered_facts(ada, simulator, route: str) -> Job:
    (facts,) = submit(ada, {"contents": [_turn("user", _unique("List the claims"))],
                            "system_instruction": SYSTEM})  # fmt: skip
    _send_due(simulator.url, route)
    facts.refresh_from_db()
    assert facts.state == State.SUCCEEDED
    return facts


def _continuation(ada, facts: Job, prompt: str, continues: str, **generation) -> Job:
    """The job chaining makes for a `continue: facts` step: facts' turns, its answer as a
    model turn, then the new turn; facts' interaction id beside it."""
    request = {
        "contents": [*facts.gemini_request()["contents"], _turn("model", facts.result_text),
                     _turn("user", prompt)],
        "system_instruction": SYSTEM,
    }  # fmt: skip
    if generation:
        request["generation_config"] = generation
    (job,) = submit(ada, request)
    Job.objects.filter(pk=job.pk).update(continues_interaction=continues)
    return job


@pytest.fixture
def on_interactions(settings):
    settings.GEMINI_API = "interactions"
    return "interactions"


def test_a_claim_carries_the_interaction_its_job_continues(db, ada):
    (job,) = submit(ada, "Go on")
    Job.objects.filter(pk=job.pk).update(continues_interaction="sim-earlier")
    (claim,) = claiming.jobs_claim(owner="test", limit=1, lease_seconds=60)
    assert claim.previous_interaction_id == "sim-earlier"


def test_a_continued_step_sends_only_its_new_turn_after_the_earlier_answer(
    db, ada, simulator, on_interactions
):
    facts = _answered_facts(ada, simulator, on_interactions)
    assert facts.response_id.startswith("sim-")
    prompt = _unique("Summarise the claims")
    summary = _continuation(ada, facts, prompt, facts.response_id)
    _send_due(simulator.url, on_interactions)
    summary.refresh_from_db()
    wire = _wire(simulator.url, prompt)
    assert wire["route"] == "interactions"
    assert wire["body"]["previous_interaction_id"] == facts.response_id
    assert wire["body"]["input"] == prompt
    # What belongs to one interaction is sent again with it.
    assert wire["body"]["system_instruction"] == "Answer tersely."
    # The simulator answered from the whole conversation it had stored under that id.
    (first_prompt,) = [turn["parts"][0]["text"] for turn in facts.gemini_request()["contents"]]
    assert wire["conversation"] == [
        {"type": "user_input", "content": [{"type": "text", "text": first_prompt}]},
        {"type": "model_output", "content": [{"type": "text", "text": facts.result_text}]},
        {"type": "user_input", "content": [{"type": "text", "text": prompt}]},
    ]
    assert summary.state == State.SUCCEEDED
    assert summary.result_text == f"{ANSWER_PREFIX}{first_prompt}\n{prompt}"
    assert Attempt.objects.get(job=summary).route == "interactions"


def test_an_interaction_gemini_does_not_know_fails_the_step_as_not_found(
    db, ada, simulator, on_interactions
):
    facts = _answered_facts(ada, simulator, on_interactions)
    summary = _continuation(ada, facts, _unique("Summarise"), "sim-forgotten")
    _send_due(simulator.url, on_interactions)
    summary.refresh_from_db()
    attempt = Attempt.objects.get(job=summary)
    assert (attempt.http_status, attempt.google_status) == (404, "NOT_FOUND")
    assert attempt.error_kind == ErrorKind.NOT_FOUND
    assert "Interaction sim-forgotten not found" in attempt.error_message
    # Not worth another try: the step fails at once.
    assert attempt.error_kind not in backoff.RETRYABLE_KINDS
    assert summary.state == State.FAILED


def test_on_generate_content_every_turn_is_resent(db, ada, simulator, settings):
    settings.GEMINI_API = "generate_content"
    facts = _answered_facts(ada, simulator, "generate_content")
    prompt = _unique("Summarise the claims")
    summary = _continuation(ada, facts, prompt, "sim-only-for-interactions")
    _send_due(simulator.url, "generate_content")
    summary.refresh_from_db()
    wire = _wire(simulator.url, prompt)
    assert wire["route"] == "generateContent"
    assert "previous_interaction_id" not in json.dumps(wire["body"])
    assert [turn["role"] for turn in wire["body"]["contents"]] == ["user", "model", "user"]
    assert wire["body"]["contents"][1]["parts"] == [{"text": facts.result_text}]
    assert summary.state == State.SUCCEEDED
    assert summary.result_text.endswith(f"\n{prompt}")


def test_a_continued_step_only_generate_content_carries_resends_its_turns(
    db, ada, simulator, on_interactions
):
    facts = _answered_facts(ada, simulator, on_interactions)
    prompt = _unique("Summarise widely")
    summary = _continuation(ada, facts, prompt, facts.response_id, top_k=5)
    _send_due(simulator.url, on_interactions)
    summary.refresh_from_db()
    wire = _wire(simulator.url, prompt)
    assert wire["route"] == "generateContent"
    assert "previous_interaction_id" not in json.dumps(wire["body"])
    assert len(wire["body"]["contents"]) == 3
    assert summary.state == State.SUCCEEDED
    assert Attempt.objects.get(job=summary).route == "generate_content"


# --- The pure part: what interactions.create is given ----------------------------------
def test_the_input_of_a_continuation_is_the_turns_after_the_last_model_turn():
    request = gemini_shape.normalise(
        {
            "contents": [
                _turn("user", "One"),
                _turn("model", "Answer one"),
                _turn("user", "Two"),
                _turn("model", "Answer two"),
                _turn("user", "Three"),
                {"role": "user", "parts": [{"text": "and four"}]},
            ]
        }
    )
    arguments = routes.interactions_arguments(request, previous_interaction_id="sim-2")
    assert arguments["previous_interaction_id"] == "sim-2"
    assert arguments["input"] == [
        {"type": "user_input", "content": [{"type": "text", "text": "Three"}]},
        {"type": "user_input", "content": [{"type": "text", "text": "and four"}]},
    ]
    one_turn = routes.interactions_arguments(
        {"contents": [_turn("user", "One"), _turn("model", "A"), _turn("user", "Two")]}, "sim-1"
    )
    assert one_turn["input"] == "Two"


def test_without_a_previous_interaction_every_turn_is_input():
    request = {"contents": [_turn("user", "One"), _turn("model", "A"), _turn("user", "Two")]}
    arguments = routes.interactions_arguments(request)
    assert "previous_interaction_id" not in arguments
    assert [step["type"] for step in arguments["input"]] == [
        "user_input",
        "model_output",
        "user_input",
    ]
