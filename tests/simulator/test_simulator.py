"""The Flex simulator, driven by the real google-genai SDK on both routes: the answers, errors
and headers FlexDash relies on, each planted directive, the option flags and concurrency."""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from django.core.management import CommandError, call_command
from google import genai
from google.genai import _interactions, errors, types

from jobs.simulator import FlexSimulator, SimConfig
from tests.support import wait_for

MODEL = "gemini-2.5-flash"
ROUTES = ["interactions", "generateContent"]


@dataclass
class Answer:
    text: str | None
    finish: str
    tier: str | None
    input_tokens: int
    output_tokens: int
    response_id: str


class Failure(Exception):
    """An HTTP error from either route, in one shape."""

    def __init__(self, code: int, headers: Mapping[str, str], body: Any) -> None:
        super().__init__(code)
        self.code = code
        self.headers = headers
        self.body = body

    @property
    def google_status(self) -> str:
        return self.body["error"]["status"]


def _client(url: str, key: str, timeout: float) -> genai.client.AsyncClient:
    options = types.HttpOptions(
        base_url=url,
        api_version="v1beta",
        timeout=int(timeout * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key=key, http_options=options).aio


async def _ask(
    client: genai.client.AsyncClient,
    route: str,
    prompt: str,
    *,
    model: str = MODEL,
    tier: str | None = "flex",
    system: str | None = None,
) -> Answer:
    if route == "interactions":
        extra = {} if tier is None else {"service_tier": tier}
        if system:
            extra["system_instruction"] = system
        try:
            raw = await client.interactions.with_raw_response.create(
                model=model, input=prompt, **extra
            )
        except _interactions.APIStatusError as e:
            raise Failure(e.status_code, e.response.headers, e.body) from e
        interaction = await raw.parse()
        return Answer(
            interaction.output_text if interaction.status == "completed" else None,
            interaction.status,
            raw.headers.get("x-gemini-service-tier"),
            interaction.usage.total_input_tokens,
            interaction.usage.total_output_tokens,
            interaction.id,
        )
    config = types.GenerateContentConfig(service_tier=tier, system_instruction=system)
    try:
        response = await client.models.generate_content(model=model, contents=prompt, config=config)
    except errors.APIError as e:
        raise Failure(e.code, e.response.headers, e.details) from e
    usage = response.usage_metadata
    return Answer(
        response.text,
        response.candidates[0].finish_reason.value,
        response.sdk_http_response.headers.get("x-gemini-service-tier"),
        usage.prompt_token_count,
        usage.candidates_token_count or 0,
        response.response_id,
    )


def ask(
    sim, route: str, prompt: str, *, key: str = "test-key", timeout: float = 10, **kw
) -> Answer:
    async def go() -> Answer:
        async with _client(sim.url, key, timeout) as client:
            return await _ask(client, route, prompt, **kw)

    return asyncio.run(go())


def fail(sim, route: str, prompt: str, **kw) -> Failure:
    with pytest.raises(Failure) as caught:
        ask(sim, route, prompt, **kw)
    return caught.value


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:12]}"


def post_raw(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def ask_in_process(config: SimConfig, prompts: list[str]) -> list[Answer | Failure]:
    """Serve `config` inside this process (no start-up cost) and send the prompts one by one
    through the SDK, alternating routes; failures are returned, not raised."""

    async def go() -> list[Answer | Failure]:
        results: list[Answer | Failure] = []
        async with (
            TestServer(FlexSimulator(config).app()) as server,
            _client(str(server.make_url("")), "any-key", timeout=10) as client,
        ):
            for n, prompt in enumerate(prompts):
                try:
                    results.append(await _ask(client, ROUTES[n % 2], prompt))
                except Failure as failure:
                    results.append(failure)
        return results

    return asyncio.run(go())


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    return request.param


def test_an_answer_carries_text_usage_and_the_tier_served(simulator, route):
    prompt = unique("Why is the sky blue?")
    answer = ask(simulator, route, prompt, system="Be brief.")
    assert answer.text == f"Simulated answer to: {prompt}"
    assert answer.finish in ("completed", "STOP")
    assert answer.tier == "flex"
    assert answer.input_tokens == math.ceil(len(prompt + "Be brief.") / 4)
    assert answer.output_tokens == math.ceil(len(answer.text) / 4)
    assert answer.response_id


def test_both_routes_give_the_same_answer_with_html_kept_and_directives_removed(simulator):
    prompt = unique("<script>alert(1)</script> [sim:sleep=0]") + " x" * 300
    first, second = (ask(simulator, route, prompt).text for route in ROUTES)
    assert first == second
    assert first == "Simulated answer to: " + prompt.replace("[sim:sleep=0]", "")[:500]


@pytest.mark.parametrize(("tier", "served"), [(None, "standard"), ("priority", "priority")])
def test_the_tier_served_is_the_one_asked_for_and_standard_by_default(
    simulator, route, tier, served
):
    assert ask(simulator, route, unique("tier"), tier=tier).tier == served


def test_503x2_sheds_twice_then_answers(simulator, route):
    prompt = unique("[sim:503x2] shed")
    for _ in range(2):
        failure = fail(simulator, route, prompt)
        assert (failure.code, failure.google_status) == (503, "UNAVAILABLE")
    assert ask(simulator, route, prompt).text.endswith("shed " + prompt.split()[-1])


@pytest.mark.parametrize(
    ("directive", "retry_after", "retry_delay"),
    [("429x1", None, None), ("429x1:retry-after=3", "3", None), ("429x1:retry-info=4", None, "4s")],
)
def test_429_carries_the_planted_hint_only(simulator, route, directive, retry_after, retry_delay):
    prompt = unique(f"[sim:{directive}]")
    failure = fail(simulator, route, prompt)
    assert (failure.code, failure.google_status) == (429, "RESOURCE_EXHAUSTED")
    assert failure.headers.get("retry-after") == retry_after
    details = failure.body["error"].get("details", [])
    assert [d["retryDelay"] for d in details] == ([retry_delay] if retry_delay else [])
    assert ask(simulator, route, prompt).text


def test_500_has_an_html_body(simulator, route):
    failure = fail(simulator, route, unique("[sim:500x1]"))
    assert failure.code == 500
    assert failure.headers["content-type"].startswith("text/html")
    assert "<html>" in str(failure.body)


def test_400_directive_fails_every_time(simulator, route):
    prompt = unique("[sim:400]")
    for _ in range(2):
        failure = fail(simulator, route, prompt)
        assert (failure.code, failure.google_status) == (400, "INVALID_ARGUMENT")


def test_failed_directive_is_a_200_without_an_answer(simulator, route):
    answer = ask(simulator, route, unique("[sim:failed]"))
    assert answer.text is None
    assert answer.finish == {"interactions": "failed", "generateContent": "SAFETY"}[route]
    assert answer.output_tokens == 0


def test_directives_apply_in_order_of_appearance(simulator, route):
    prompt = unique("[sim:503x1][sim:429x1:retry-after=2]")
    assert fail(simulator, route, prompt).code == 503
    failure = fail(simulator, route, prompt)
    assert (failure.code, failure.headers.get("retry-after")) == (429, "2")
    assert ask(simulator, route, prompt).tier == "flex"


def test_an_unknown_directive_is_a_bad_request(simulator, route):
    failure = fail(simulator, route, unique("[sim:503twice]"))
    assert failure.code == 400 and "[sim:503twice]" in failure.body["error"]["message"]


def test_sleep_directive_sets_this_prompts_latency(simulator, route):
    started = time.monotonic()
    ask(simulator, route, unique("[sim:sleep=0.6]"))
    assert 0.6 <= time.monotonic() - started < 5


def test_hang_never_answers_until_the_client_gives_up(simulator, route):
    timeout_errors = (_interactions.APITimeoutError, TimeoutError)
    with pytest.raises(timeout_errors):
        ask(simulator, route, unique("[sim:hang]"), timeout=0.5)
    # The server drops the request once the client hangs up.
    wait_for(lambda: simulator.stats()["in_flight"] == 0, timeout=5, what="hang released")


def test_a_wrong_key_is_403_and_no_key_is_401(simulator, route):
    failure = fail(simulator, route, unique("key"), key="wrong-key")
    assert (failure.code, failure.google_status) == (403, "PERMISSION_DENIED")
    code, body = post_raw(
        f"{simulator.url}/v1beta/interactions",
        json.dumps({"model": MODEL, "input": "no key"}).encode(),
        {"content-type": "application/json"},
    )
    assert (code, body["error"]["status"]) == (401, "UNAUTHENTICATED")


def test_a_model_without_flex_is_not_found(simulator, route):
    failure = fail(simulator, route, unique("model"), model="gemini-1.0-pro")
    assert (failure.code, failure.google_status) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("interactions", b'{"model": "gemini-2.5-flash", "input": "  "}'),
        (f"models/{MODEL}:generateContent", b'{"contents": []}'),
        ("interactions", b"{not json"),
    ],
)
def test_empty_input_or_bad_json_is_invalid_argument(simulator, path, body):
    code, reply = post_raw(
        f"{simulator.url}/v1beta/{path}",
        body,
        {"content-type": "application/json", "x-goog-api-key": "test-key"},
    )
    assert (code, reply["error"]["status"]) == (400, "INVALID_ARGUMENT")


def test_stats_count_by_status_and_route_and_reset_clears_them(simulator):
    simulator.reset()
    prompt = unique("[sim:503x1] counted")
    fail(simulator, "interactions", prompt)
    ask(simulator, "generateContent", prompt)
    stats = simulator.stats()
    assert stats["requests"] == 2 and stats["successes"] == 1
    assert stats["by_status"] == {"503": 1, "200": 1}
    assert stats["by_route"] == {"interactions": 1, "generateContent": 1}
    assert (stats["in_flight"], stats["peak_in_flight"]) == (0, 1)

    simulator.reset()
    assert simulator.stats()["requests"] == 0
    assert fail(simulator, "interactions", prompt).code == 503, "reset replants directives"


def test_rpm_limit_answers_429_with_when_to_retry():
    results = ask_in_process(SimConfig(rpm=3), [unique("call") for _ in range(5)])
    assert all(isinstance(result, Answer) for result in results[:3])
    for failure in results[3:]:
        assert isinstance(failure, Failure)
        assert (failure.code, failure.google_status) == (429, "RESOURCE_EXHAUSTED")
        assert 55 <= int(failure.headers["retry-after"]) <= 60
        (detail,) = failure.body["error"]["details"]
        assert detail["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
        assert detail["retryDelay"] == failure.headers["retry-after"] + "s"


def test_p503_sheds_every_flex_request_and_any_key_is_accepted(start_simulator):
    sim = start_simulator(p503=1.0, api_key=None)
    for route in ROUTES * 2:
        assert fail(sim, route, unique("flex"), key="any-key").code == 503
        assert ask(sim, route, unique("standard is not sheddable"), tier="standard").text


def test_a_storm_starts_and_ends_while_it_runs(start_simulator):
    sim = start_simulator()
    prompt = unique("storm")
    assert ask(sim, "interactions", prompt).text
    settings = sim.configure(p503=1.0, latency=[0, 0.1])
    assert (settings["p503"], settings["latency_max"]) == (1.0, 0.1)
    assert "api_key" not in settings
    assert fail(sim, "generateContent", unique("storm")).code == 503
    sim.configure(p503=0.0)
    assert ask(sim, "generateContent", unique("storm")).text
    for bad in ({"p503": 2}, {"colour": "red"}, {"rpm": -1}):
        with pytest.raises(urllib.error.HTTPError) as refused:
            sim.configure(**bad)
        assert refused.value.code == 400
        assert json.load(refused.value)["error"]


def test_the_seed_makes_random_shedding_reproducible():
    config = SimConfig(p503=0.5, p429=0.2, seed=7)
    prompts = [unique("dice") for _ in range(30)]
    first, second = (
        [getattr(result, "code", 200) for result in ask_in_process(config, prompts)]
        for _ in range(2)
    )
    assert first == second
    assert set(first) == {200, 429, 503}


def test_hundreds_of_slow_requests_are_held_at_once(simulator):
    simulator.reset()

    async def burst() -> list[Answer]:
        async with _client(simulator.url, "test-key", timeout=30) as client:
            prompts = [unique(f"[sim:sleep=1] concurrent {n}") for n in range(300)]
            return await asyncio.gather(*(_ask(client, "generateContent", p) for p in prompts))

    answers = asyncio.run(burst())
    assert all(answer.text for answer in answers)
    # All 300 were held at once (no time is asserted: a loaded machine is slower).
    assert simulator.stats()["peak_in_flight"] == 300


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--latency", "3:1"], "--latency"),
        (["--latency", "-1:2"], "--latency"),
        (["--latency", "fast"], "--latency"),
        (["--p503", "1.5"], "--p503"),
        (["--p429", "-0.1"], "--p429"),
        (["--rpm", "-1"], "--rpm"),
        (["--host", "192.0.2.1"], "--host"),
    ],
)
def test_flexsim_refuses_bad_options(args, option):
    with pytest.raises(CommandError, match=option):
        call_command("flexsim", *args)


def test_random_lengths_answer_from_one_token_to_the_cap():
    from jobs.simulator.answers import Call, compose

    simulator = FlexSimulator(SimConfig(random_lengths=True, seed=3))
    call = Call(model=MODEL, prompt="lengths", system="", tier="flex", text_chars=7,
                max_output_tokens=50)  # fmt: skip
    lengths = [compose(call, "answer", simulator._answer_tokens(call)).output_tokens
               for _ in range(300)]  # fmt: skip
    assert min(lengths) == 1 and max(lengths) == 50
    assert len(set(lengths)) > 30
    assert FlexSimulator(SimConfig())._answer_tokens(call) is None
