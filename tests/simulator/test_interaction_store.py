"""The simulator remembers the interactions it answered, as Google stores them: a request with
previous_interaction_id continues that conversation (answered from its turns and the new
input, both in the record), an id it does not know is 404 NOT_FOUND, and only the latest
`keep_interactions` are kept. Driven by the real google-genai SDK over loopback."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from google import genai
from google.genai import _interactions, types

from jobs.simulator import ANSWER_PREFIX, FlexSimulator, SimConfig

MODEL = "gemini-2.5-flash"
KEY = "test-key"


class Served:
    def __init__(self, simulator: FlexSimulator, url: str) -> None:
        self.simulator = simulator
        self.url = url

    def interact(self, input: Any, **options: Any) -> Any:
        async def go() -> Any:
            http = types.HttpOptions(
                base_url=self.url,
                api_version="v1beta",
                timeout=10_000,
                retry_options=types.HttpRetryOptions(attempts=1),
            )
            async with genai.Client(api_key=KEY, http_options=http).aio as client:
                return await client.interactions.create(model=MODEL, input=input, **options)

        return asyncio.run(go())

    def refusal(self, input: Any, **options: Any) -> _interactions.APIStatusError:
        with pytest.raises(_interactions.APIStatusError) as caught:
            self.interact(input, **options)
        return caught.value

    def last_record(self) -> dict[str, Any]:
        return self.simulator.requests(1)[0]


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """Start simulators with the given SimConfig options, each on its own event loop thread."""
    stops: list[Callable[[], None]] = []

    def start(**options: Any) -> Served:
        simulator = FlexSimulator(SimConfig(api_key=KEY, **options))
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        server = TestServer(simulator.app())
        asyncio.run_coroutine_threadsafe(server.start_server(), loop).result()

        def stop() -> None:
            asyncio.run_coroutine_threadsafe(server.close(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

        stops.append(stop)
        return Served(simulator, str(server.make_url("")).rstrip("/"))

    yield start
    for stop in stops:
        stop()


def _text(interaction: Any) -> str:
    return interaction.steps[-1].content[0].text


def _user(text: str) -> dict:
    return {"type": "user_input", "content": [{"type": "text", "text": text}]}


def _model(text: str) -> dict:
    return {"type": "model_output", "content": [{"type": "text", "text": text}]}


def _unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


def test_a_continued_interaction_is_answered_from_the_whole_conversation(serve):
    sim = serve()
    first_prompt, second_prompt = _unique("List the claims"), _unique("Summarise them")
    first = sim.interact(first_prompt)
    second = sim.interact(second_prompt, previous_interaction_id=first.id)
    assert _text(second) == f"{ANSWER_PREFIX}{first_prompt}\n{second_prompt}"
    record = sim.last_record()
    assert record["body"]["previous_interaction_id"] == first.id
    assert record["body"]["input"] == second_prompt
    assert record["previous_interaction_id"] == first.id
    assert record["conversation"] == [
        _user(first_prompt),
        _model(_text(first)),
        _user(second_prompt),
    ]
    # The input tokens count the whole conversation, as Google bills them.
    assert second.usage.total_input_tokens > first.usage.total_input_tokens


def test_a_conversation_continues_over_several_turns(serve):
    sim = serve()
    first = sim.interact("One")
    second = sim.interact([{"type": "text", "text": "Two"}], previous_interaction_id=first.id)
    third = sim.interact("Three", previous_interaction_id=second.id)
    assert _text(third) == f"{ANSWER_PREFIX}One\nTwo\nThree"
    assert sim.last_record()["conversation"] == [
        _user("One"),
        _model(_text(first)),
        _user("Two"),
        _model(_text(second)),
        _user("Three"),
    ]
    # An earlier turn can still be continued on its own branch.
    branch = sim.interact("Other", previous_interaction_id=first.id)
    assert _text(branch) == f"{ANSWER_PREFIX}One\nOther"


def test_an_unknown_interaction_is_not_found(serve):
    sim = serve()
    error = sim.refusal("Next", previous_interaction_id="sim-nobody-knows")
    assert error.status_code == 404
    assert error.body["error"]["status"] == "NOT_FOUND"
    assert error.body["error"]["message"] == "Interaction sim-nobody-knows not found."
    # The refused request is recorded, as it reached the wire.
    assert sim.last_record()["body"]["previous_interaction_id"] == "sim-nobody-knows"
    assert sim.simulator.stats()["by_status"] == {"404": 1}


def test_an_interaction_sent_with_store_false_cannot_be_continued(serve):
    sim = serve()
    unstored = sim.interact("Forget me", store=False)
    assert sim.refusal("Next", previous_interaction_id=unstored.id).status_code == 404


def test_only_the_latest_interactions_are_kept(serve):
    sim = serve(keep_interactions=2)
    oldest, middle, newest = (sim.interact(f"Turn {n}") for n in range(3))
    assert sim.refusal("Next", previous_interaction_id=oldest.id).status_code == 404
    assert _text(sim.interact("Next", previous_interaction_id=middle.id)).endswith("Turn 1\nNext")
    assert _text(sim.interact("Next", previous_interaction_id=newest.id)).endswith("Turn 2\nNext")


def test_a_reset_keeps_the_stored_interactions(serve):
    sim = serve()
    first = sim.interact("Remember")
    sim.simulator.reset()
    assert _text(sim.interact("Then", previous_interaction_id=first.id)).endswith("Remember\nThen")


def test_keep_interactions_cannot_be_negative():
    with pytest.raises(ValueError, match="keep_interactions must be 0 or more"):
        SimConfig(keep_interactions=-1)
