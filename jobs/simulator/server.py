"""A local stand-in for Gemini's Flex tier, speaking the wire format google-genai 3.3.0 expects.

Two routes, with the same behaviour and the same answers:
- `POST /{v1|v1beta|v1alpha}/interactions` (snake_case body, the Interactions API),
- `POST /{v1|v1beta|v1alpha}/models/{model}:generateContent` (camelCase body).

Random behaviour comes from `SimConfig` (latency, 503 shedding of flex requests, random 429s, a
requests-per-minute limit). Deterministic behaviour for tests is planted in the prompt text as
directives, counted per distinct prompt and applied in order of appearance:

    [sim:503x2]                  the first 2 requests get 503 UNAVAILABLE
    [sim:429x1]                  the next request gets 429 RESOURCE_EXHAUSTED, with no hint
    [sim:429x1:retry-after=3]    ... with a `Retry-After: 3` header
    [sim:429x1:retry-info=4]     ... with `"retryDelay": "4s"` in the body only
    [sim:500x1]                  500 with an HTML body (504x1 gives a JSON DEADLINE_EXCEEDED)
    [sim:400]                    every later request gets 400 INVALID_ARGUMENT
    [sim:failed]                 HTTP 200 that is not an answer (see `_failed_body`)
    [sim:hang]                   never answers; the client has to give up
    [sim:sleep=2.5]              answer after 2.5 s instead of the configured latency

Once a prompt's counted faults are used up, the last of 400/failed/hang decides its fate; without
one it is answered, "Simulated answer to: " + the prompt without directives (first 500 chars,
HTML kept verbatim). An unknown directive is a 400, so a typo cannot pass silently. Both routes
share a prompt's count; a request refused by the RPM limit does not advance it.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import resource
import signal
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import KW_ONLY, asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from jobs.catalog import FLEX_MODELS

ANSWER_PREFIX = "Simulated answer to: "
TIERS = ("flex", "standard", "priority")
LISTEN_BACKLOG = 8192
API_VERSION = "{version:v1|v1beta|v1alpha}"
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
HTML_500 = (
    "<html><head><title>500 Internal Server Error</title></head>"
    "<body><h1>Error: Server Error</h1></body></html>"
)

_DIRECTIVE = re.compile(r"\[sim:([^\]]*)\]")
_FAULT = re.compile(r"(429|500|503|504)x(\d+)")
_HINTS = ("retry-after", "retry-info")

Route = Literal["interactions", "generateContent"]
Final = Literal["answer", "invalid", "failed", "hang"]
_FINALS: dict[str, Final] = {"400": "invalid", "failed": "failed", "hang": "hang"}


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


@dataclass
class ApiError(Exception):
    """An error answer; raised anywhere in a request, rendered once by `_error_response`."""

    status: int
    message: str
    _: KW_ONLY
    retry_after: int | None = None
    retry_info: int | None = None


@dataclass(frozen=True)
class Fault:
    status: int
    times: int
    retry_after: int | None = None
    retry_info: int | None = None

    def error(self) -> ApiError:
        return ApiError(
            self.status,
            f"Simulated {self.status} {GOOGLE_STATUS[self.status]}.",
            retry_after=self.retry_after,
            retry_info=self.retry_info,
        )


@dataclass(frozen=True)
class Plan:
    """What a prompt's directives ask for."""

    faults: tuple[Fault, ...] = ()
    final: Final = "answer"
    sleep: float | None = None

    def fault_for(self, seen: int) -> Fault | None:
        """The fault for the prompt's request number `seen` (0-based), if any."""
        for fault in self.faults:
            if seen < fault.times:
                return fault
            seen -= fault.times
        return None


def parse_directives(prompt: str) -> Plan:
    faults: list[Fault] = []
    final: Final = "answer"
    sleep: float | None = None
    for directive in _DIRECTIVE.findall(prompt):
        head, *options = directive.split(":")
        if fault := _FAULT.fullmatch(head):
            hints = dict(option.partition("=")[::2] for option in options)
            if set(hints) - set(_HINTS) or not all(v.isdigit() for v in hints.values()):
                raise ApiError(400, f"Bad simulator directive [sim:{directive}].")
            faults.append(
                Fault(
                    status=int(fault[1]),
                    times=int(fault[2]),
                    retry_after=int(hints["retry-after"]) if "retry-after" in hints else None,
                    retry_info=int(hints["retry-info"]) if "retry-info" in hints else None,
                )
            )
        elif directive in _FINALS:
            final = _FINALS[directive]
        elif directive.startswith("sleep=") and _is_seconds(directive.removeprefix("sleep=")):
            sleep = float(directive.removeprefix("sleep="))
        else:
            raise ApiError(400, f"Unknown simulator directive [sim:{directive}].")
    return Plan(tuple(faults), final, sleep)


def _is_seconds(text: str) -> bool:
    try:
        return 0 <= float(text) < math.inf
    except ValueError:
        return False


def answer_text(prompt: str) -> str:
    return ANSWER_PREFIX + _DIRECTIVE.sub("", prompt).strip()[:500]


def _tokens(*texts: str) -> int:
    return math.ceil(sum(len(text) for text in texts) / 4)


def _texts(value: Any) -> list[str]:
    """The text parts of an input in any of the shapes the SDK sends: a string, a content
    block, a list of blocks, a step or turn holding `content`, or a Content with `parts`."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return [value["text"]]
        return _texts(value.get("content") or value.get("parts") or [])
    return []


@dataclass(frozen=True)
class Call:
    """One request, as both routes describe it."""

    model: str
    prompt: str
    system: str
    tier: str


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

    def app(self) -> web.Application:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post(f"/{API_VERSION}/interactions", self._interactions)
        app.router.add_post(f"/{API_VERSION}/models/{{model}}:generateContent", self._generate)
        app.router.add_get("/_sim/stats", self._get_stats)
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

    def reset(self) -> None:
        """Forget counters, planted-directive progress and the rate window (not in-flight work)."""
        in_flight = self._stats.in_flight
        self._stats = _Stats(in_flight=in_flight, peak_in_flight=in_flight)
        self._admitted.clear()
        self._seen.clear()

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

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
        return await self._serve(request, "interactions", _interaction_call, _interaction_body)

    async def _generate(self, request: web.Request) -> web.Response:
        return await self._serve(request, "generateContent", _generate_call, _generate_body)

    async def _serve(
        self,
        request: web.Request,
        route: Route,
        parse: Callable[[web.Request, dict[str, Any]], Call],
        render: Callable[[Call, Final], dict[str, Any]],
    ) -> web.Response:
        # Always self._stats, never a local alias: reset() may replace it while we wait.
        self._stats.requests += 1
        self._stats.by_route[route] += 1
        self._stats.in_flight += 1
        self._stats.peak_in_flight = max(self._stats.peak_in_flight, self._stats.in_flight)
        try:
            try:
                call = parse(request, await self._authorised_json(request))
                final = await self._decide(call)
                response = web.json_response(
                    render(call, final), headers={"x-gemini-service-tier": call.tier}
                )
                if final == "answer":
                    self._stats.successes += 1
            except ApiError as error:
                response = _error_response(error)
            self._stats.by_status[str(response.status)] += 1
            return response
        finally:
            self._stats.in_flight -= 1

    async def _authorised_json(self, request: web.Request) -> dict[str, Any]:
        key = request.headers.get("x-goog-api-key", "")
        if not key:
            raise ApiError(401, "Request is missing an API key (x-goog-api-key).")
        if self.config.api_key is not None and key != self.config.api_key:
            raise ApiError(403, "API key not valid. Please pass a valid API key.")
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "Invalid JSON payload received.") from None
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


def _interaction_call(request: web.Request, body: dict[str, Any]) -> Call:
    return _checked_call(
        str(body.get("model") or "").removeprefix("models/"),
        "\n".join(_texts(body.get("input"))),
        "\n".join(_texts(body.get("system_instruction"))),
        body.get("service_tier"),
    )


def _generate_call(request: web.Request, body: dict[str, Any]) -> Call:
    return _checked_call(
        request.match_info["model"],
        "\n".join(_texts(body.get("contents"))),
        "\n".join(_texts(body.get("systemInstruction"))),
        body.get("serviceTier"),
    )


def _checked_call(model: str, prompt: str, system: str, tier: Any) -> Call:
    if not model:
        raise ApiError(400, "Missing required field: model.")
    if model not in FLEX_MODELS:
        raise ApiError(404, f"models/{model} is not found or does not support the flex tier.")
    if not prompt.strip():
        raise ApiError(400, "The input is empty: at least one text part is required.")
    served = str(tier or "standard").lower()
    if served == "unspecified":
        served = "standard"
    if served not in TIERS:
        raise ApiError(400, f"Invalid service tier {tier!r}; expected one of {', '.join(TIERS)}.")
    return Call(model, prompt, system, served)


def _interaction_body(call: Call, final: Final) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    input_tokens = _tokens(call.prompt, call.system)
    body: dict[str, Any] = {
        "id": f"sim-{uuid.uuid4().hex}",
        "model": call.model,
        "created": now,
        "updated": now,
    }
    if final == "failed":
        output_tokens = 0
        body["status"] = "failed"
        body["steps"] = []
        body["errors"] = [{"message": "The model could not produce an answer (simulated)."}]
    else:
        text = answer_text(call.prompt)
        output_tokens = _tokens(text)
        body["status"] = "completed"
        body["steps"] = [{"type": "model_output", "content": [{"type": "text", "text": text}]}]
    body["usage"] = {
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "total_thought_tokens": 0,
        "total_cached_tokens": 0,
        "total_tokens": input_tokens + output_tokens,
    }
    return body


def _generate_body(call: Call, final: Final) -> dict[str, Any]:
    input_tokens = _tokens(call.prompt, call.system)
    if final == "failed":
        return _failed_body(call, input_tokens)
    text = answer_text(call.prompt)
    output_tokens = _tokens(text)
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": input_tokens,
            "candidatesTokenCount": output_tokens,
            "thoughtsTokenCount": 0,
            "totalTokenCount": input_tokens + output_tokens,
        },
        "modelVersion": call.model,
        "responseId": uuid.uuid4().hex,
    }


def _failed_body(call: Call, input_tokens: int) -> dict[str, Any]:
    """A 200 that carries no answer, shaped like Google's answer blocked by its safety filter:
    one candidate with finishReason SAFETY, a blocking rating and no content at all."""
    return {
        "candidates": [
            {
                "finishReason": "SAFETY",
                "index": 0,
                "safetyRatings": [
                    {
                        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                        "probability": "HIGH",
                        "blocked": True,
                    }
                ],
            }
        ],
        "usageMetadata": {"promptTokenCount": input_tokens, "totalTokenCount": input_tokens},
        "modelVersion": call.model,
        "responseId": uuid.uuid4().hex,
    }


def _error_response(error: ApiError) -> web.Response:
    if error.status == 500:
        return web.Response(status=500, text=HTML_500, content_type="text/html")
    body: dict[str, Any] = {
        "code": error.status,
        "message": error.message,
        "status": GOOGLE_STATUS[error.status],
    }
    if error.retry_info is not None:
        body["details"] = [{"@type": RETRY_INFO_TYPE, "retryDelay": f"{error.retry_info}s"}]
    headers = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
    return web.json_response({"error": body}, status=error.status, headers=headers)


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one (one socket per request in flight);
    return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
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
