"""The simulator's server: its configuration, state and request handlers, the aiohttp app and
running it until a signal.

Two routes, with the same behaviour and the same answers:
- `POST /{v1|v1beta|v1alpha}/interactions` (snake_case body, the Interactions API),
- `POST /{v1|v1beta|v1alpha}/models/{model}:generateContent` (camelCase body),
and `/_sim/stats`, `/_sim/requests`, `/_sim/reset` and `/_sim/config` for tests and benchmarks.

Every request whose body is JSON is recorded, the latest `SimConfig.keep_requests` of them, as
`{"route": "interactions" | "generateContent", "model": <as the path or body names it>,
"body": <the body as parsed>}`, whatever its answer (refused keys and limits included); tests
read them with `requests()` in process or `GET /_sim/requests[?last=K]` (a JSON list, oldest
first).

Answered interactions are remembered, the latest `SimConfig.keep_interactions` of them (unless
sent with `store: false`), as Google stores them: an interaction with `previous_interaction_id`
continues the one named, and is answered from its stored steps followed by the new input; its
record also holds `"previous_interaction_id"` and `"conversation"` (those steps). An id not
remembered is answered 404 NOT_FOUND. `reset()` keeps them, as Google would.

Random behaviour comes from `SimConfig` (latency, 503 shedding of flex requests, random 429s, a
requests-per-minute limit); deterministic behaviour is planted in the prompt (`directives`).
Deciding whether, when and how a request is answered, the counters, and serving belong here;
the shapes of bodies are `wire`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import resource
import signal
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from aiohttp import web

from jobs.simulator.answers import Call, Reply, compose
from jobs.simulator.directives import Final, parse_directives
from jobs.simulator.errors import ApiError
from jobs.simulator.wire import (
    error_response,
    generate_body,
    generate_call,
    interaction_body,
    interaction_call,
    interaction_steps,
)

LISTEN_BACKLOG = 8192
API_VERSION = "{version:v1|v1beta|v1alpha}"

Route = Literal["interactions", "generateContent"]
# What a request carries between its handler's steps (aiohttp's per-request storage).
_RECORD = web.RequestKey("record", dict[str, Any])
_CONVERSATION = web.RequestKey("conversation", list[dict[str, Any]])


@dataclass(frozen=True)
class SimConfig:
    latency_min: float = 0.0
    latency_max: float = 0.0
    p503: float = 0.0
    p429: float = 0.0
    rpm: int = 0
    """Requests admitted per sliding minute; 0 means unlimited."""
    seed: int | None = None
    api_key: str | None = None
    """The one key accepted; None accepts any non-empty key."""
    keep_requests: int = 10_000
    """How many of the latest request bodies `requests()` keeps; 0 keeps none."""
    keep_interactions: int = 200_000
    """How many answered interactions are remembered for `previous_interaction_id`, the
    oldest forgotten first; 0 remembers none."""
    random_lengths: bool = False
    """Each text answer is a random number of tokens long, from 1 to the request's
    maxOutputTokens (to twice its usual length without one)."""

    def __post_init__(self) -> None:
        # Each message starts with the flexsim option it concerns; the command prefixes "--".
        if not (0 <= self.latency_min <= self.latency_max and math.isfinite(self.latency_max)):
            raise ValueError(
                f"latency must be MIN:MAX seconds with 0 ≤ MIN ≤ MAX, "
                f"got {self.latency_min}:{self.latency_max}"
            )
        for name, probability in (("p503", self.p503), ("p429", self.p429)):
            if not 0 <= probability <= 1:
                raise ValueError(f"{name} must be a probability from 0 to 1, got {probability}")
        if self.rpm < 0:
            raise ValueError(f"rpm must be 0 (unlimited) or more, got {self.rpm}")
        if self.keep_requests < 0:
            raise ValueError(f"keep_requests must be 0 or more, got {self.keep_requests}")
        if self.keep_interactions < 0:
            raise ValueError(f"keep_interactions must be 0 or more, got {self.keep_interactions}")


@dataclass
class _Stats:
    requests: int = 0
    successes: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=Counter)


class FlexSimulator:
    """The simulator's state and request handlers; `app()` wires them into aiohttp."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._stats = _Stats()
        self._admitted: deque[float] = deque()
        self._seen: Counter[str] = Counter()
        self._requests: deque[dict[str, Any]] = deque(maxlen=config.keep_requests)
        # id -> the steps of its conversation: what it was asked, then its answer.
        self._stored: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post(f"/{API_VERSION}/interactions", self._interactions)
        app.router.add_post(f"/{API_VERSION}/models/{{model}}:generateContent", self._generate)
        app.router.add_get("/_sim/stats", self._get_stats)
        app.router.add_get("/_sim/requests", self._get_requests)
        app.router.add_post("/_sim/reset", self._reset)
        app.router.add_post("/_sim/config", self._configure)
        return app

    def stats(self) -> dict[str, Any]:
        stats = self._stats
        return {
            "requests": stats.requests,
            "successes": stats.successes,
            "by_status": dict(stats.by_status),
            "by_route": dict(stats.by_route),
            "in_flight": stats.in_flight,
            "peak_in_flight": stats.peak_in_flight,
        }

    def requests(self, last: int | None = None) -> list[dict[str, Any]]:
        """The recorded requests, oldest first; only the `last` ones if given."""
        recorded = list(self._requests)
        if last is None:
            return recorded
        return recorded[max(0, len(recorded) - last) :]

    def reset(self) -> None:
        """Forget counters, recorded requests, planted-directive progress and the rate window
        (not in-flight work)."""
        in_flight = self._stats.in_flight
        self._stats = _Stats(in_flight=in_flight, peak_in_flight=in_flight)
        self._admitted.clear()
        self._seen.clear()
        self._requests.clear()

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _get_requests(self, request: web.Request) -> web.Response:
        last = request.query.get("last")
        if last is not None and not last.isdigit():
            return web.json_response({"error": "last must be a whole number"}, status=400)
        return web.json_response(self.requests(None if last is None else int(last)))

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response(self.stats())

    async def _configure(self, request: web.Request) -> web.Response:
        """Change p503, p429, rpm or latency while running (a 503 storm starts
        and ends): POST {"p503": 0.9}. Answers with the whole configuration."""
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise TypeError("expected a JSON object")
            if "latency" in changes:
                low, high = changes.pop("latency")
                changes.update(latency_min=float(low), latency_max=float(high))
            allowed = {"p503", "p429", "rpm", "latency_min", "latency_max"}
            if unknown := set(changes) - allowed:
                raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
            self.config = replace(self.config, **changes)
        except (ValueError, TypeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        settings = asdict(self.config)
        settings.pop("api_key")
        return web.json_response(settings)

    async def _interactions(self, request: web.Request) -> web.Response:
        return await self._serve(request, "interactions", self._interaction_call, interaction_body)

    def _interaction_call(self, request: web.Request, body: dict[str, Any]) -> Call:
        """The call an interaction makes, read from its whole conversation: a continued
        one's stored steps, then its own input."""
        steps = interaction_steps(body.get("input"))
        previous = body.get("previous_interaction_id")
        if previous is not None:
            stored = self._stored.get(str(previous))
            if stored is None:
                raise ApiError(404, f"Interaction {previous} not found.")
            steps = [*stored, *steps]
            body = {**body, "input": steps}
            if record := request.get(_RECORD):
                record.update(previous_interaction_id=previous, conversation=steps)
        if body.get("store") is not False:
            request[_CONVERSATION] = steps
        return interaction_call(request, body)

    def _remember(self, request: web.Request, answered: dict[str, Any]) -> None:
        steps = request.get(_CONVERSATION)
        if steps is None or not self.config.keep_interactions:
            return
        self._stored[answered["id"]] = [*steps, *answered["steps"]]
        while len(self._stored) > self.config.keep_interactions:
            self._stored.popitem(last=False)

    async def _generate(self, request: web.Request) -> web.Response:
        return await self._serve(request, "generateContent", generate_call, generate_body)

    async def _serve(
        self,
        request: web.Request,
        route: Route,
        parse: Callable[[web.Request, dict[str, Any]], Call],
        render: Callable[[Call, Reply], dict[str, Any]],
    ) -> web.Response:
        # Always self._stats, never a local alias: reset() may replace it while we wait.
        self._stats.requests += 1
        self._stats.by_route[route] += 1
        self._stats.in_flight += 1
        self._stats.peak_in_flight = max(self._stats.peak_in_flight, self._stats.in_flight)
        try:
            try:
                call = parse(request, await self._authorised_json(request, route))
                reply = compose(call, await self._decide(call), self._answer_tokens(call))
                answered = render(call, reply)
                response = web.json_response(answered, headers={"x-gemini-service-tier": call.tier})
                if reply.outcome == "answer":
                    self._stats.successes += 1
                    if route == "interactions":
                        self._remember(request, answered)
            except ApiError as error:
                response = error_response(error)
            self._stats.by_status[str(response.status)] += 1
            return response
        finally:
            self._stats.in_flight -= 1

    def _answer_tokens(self, call: Call) -> int | None:
        if not self.config.random_lengths:
            return None
        most = call.max_output_tokens or 2 * max(1, len(call.prompt) // 4)
        return self._rng.randint(1, most)

    async def _authorised_json(self, request: web.Request, route: Route) -> dict[str, Any]:
        """The request's JSON body once its key is known to be good; recorded before that, as
        it reached the wire."""
        try:
            body = await request.json()
            readable = True
        except ValueError:
            body, readable = None, False
        if readable:
            model = request.match_info.get("model")
            if model is None and isinstance(body, dict):
                model = body.get("model")
            record = {"route": route, "model": model, "body": body}
            self._requests.append(record)
            request[_RECORD] = record
        key = request.headers.get("x-goog-api-key", "")
        if not key:
            raise ApiError(401, "Request is missing an API key (x-goog-api-key).")
        if self.config.api_key is not None and key != self.config.api_key:
            raise ApiError(403, "API key not valid. Please pass a valid API key.")
        if not readable:
            raise ApiError(400, "Invalid JSON payload received.")
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid JSON payload received: expected an object.")
        return body

    async def _decide(self, call: Call) -> Final:
        """Raise the error this call gets, or wait out its latency and say how it ends."""
        plan = parse_directives(call.prompt)
        self._admit()
        if plan.faults:
            # Only prompts with counted faults are remembered, so memory stays flat under load.
            seen = self._seen[call.prompt]
            self._seen[call.prompt] += 1
            if fault := plan.fault_for(seen):
                raise fault.error()
        if plan.final == "invalid":
            raise ApiError(400, "Simulated INVALID_ARGUMENT ([sim:400]).")
        if plan.final == "function-call" and not call.functions:
            raise ApiError(400, "[sim:function-call] needs a function declared in the request.")
        config = self.config
        # Standard and priority are not sheddable; only flex is.
        if call.tier == "flex" and self._rng.random() < config.p503:
            raise ApiError(503, "The model is overloaded. Please try again later.")
        if self._rng.random() < config.p429:
            raise ApiError(429, "Resource has been exhausted (e.g. check quota).")
        if plan.final == "hang":
            await asyncio.get_running_loop().create_future()
        latency = plan.sleep
        if latency is None:
            latency = self._rng.uniform(config.latency_min, config.latency_max)
        await asyncio.sleep(latency)
        return plan.final

    def _admit(self) -> None:
        """Enforce the requests-per-minute limit over a sliding 60 s window."""
        rpm = self.config.rpm
        if not rpm:
            return
        now = time.monotonic()
        admitted = self._admitted
        while admitted and admitted[0] <= now - 60:
            admitted.popleft()
        if len(admitted) >= rpm:
            wait = max(1, math.ceil(admitted[0] + 60 - now))
            raise ApiError(
                429,
                f"Quota exceeded: {rpm} requests per minute. Please retry in {wait}s.",
                retry_after=wait,
                retry_info=wait,
            )
        admitted.append(now)


# Where the process may raise its hard limit (root), the simulator takes this many.
OPEN_FILES_WANTED = 1 << 17


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one, and the hard one to
    OPEN_FILES_WANTED where this process may (one socket per request in
    flight); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < OPEN_FILES_WANTED:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES_WANTED, OPEN_FILES_WANTED))
            return OPEN_FILES_WANTED
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run(config: SimConfig, host: str, port: int, on_listening: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM; `on_listening` gets the base URL once bound."""
    raise_open_file_limit()
    asyncio.run(_serve_until_signalled(config, host, port, on_listening))


async def _serve_until_signalled(
    config: SimConfig, host: str, port: int, on_listening: Callable[[str], None]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # Handler cancellation ends a hung request when its client gives up; a short shutdown
    # timeout lets a stop signal end requests that would otherwise be held for minutes.
    runner = web.AppRunner(
        FlexSimulator(config).app(),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=1.0,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG).start()
        bound_host, bound_port = runner.addresses[0][:2]
        on_listening(base_url(bound_host, bound_port))
        await stop.wait()
    finally:
        await runner.cleanup()
