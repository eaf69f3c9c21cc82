"""The one door to Gemini: the only module that imports google-genai.

It sends one request, with the SDK's own retries off so every try is seen and
recorded by us, and answers with our own types: a `GeminiResult`, or a
`GeminiError` whose `kind` the backoff policy understands. Both API routes
(Interactions and the stable generateContent) look the same from outside.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import ssl
from dataclasses import dataclass
from typing import Any

import httpx2
from google import genai
from google.genai import _interactions as ix
from google.genai import errors as genai_errors
from google.genai import types
from google.genai._gaos.utils import serializers as _gaos_serializers

from jobs import gemini_shape
from jobs.engine import routes
from jobs.engine.backoff import parse_retry_after, parse_retry_delay
from jobs.redaction import redact_api_key

logger = logging.getLogger(__name__)

TIER_HEADER = "x-gemini-service-tier"
ROUTES = routes.ROUTES
_MESSAGE_LIMIT = 2000


# --- The measured trap: one pydantic model class per interactions call -------
# google-genai 3.3.0 calls pydantic.create_model on every (un)marshal
# (google.genai._gaos.utils.serializers). 5,000 requests in flight cost 4.2 GiB
# as shipped and under 300 MiB with the created classes memoised (DESIGN.md).
_created_models: dict[Any, Any] = {}


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _memoised_create_model(name: str, /, **fields: Any) -> Any:
    try:
        key = (name, _freeze(fields))
        hash(key)
    except TypeError:
        return _original_create_model(name, **fields)
    model = _created_models.get(key)
    if model is None:
        model = _created_models[key] = _original_create_model(name, **fields)
    return model


_original_create_model = getattr(_gaos_serializers, "create_model", None)


def sdk_model_cache_applied() -> bool:
    """True when the SDK's per-call create_model goes through our memo."""
    return getattr(_gaos_serializers, "create_model", None) is _memoised_create_model


if _original_create_model is None:
    logger.error(
        "google-genai moved serializers.create_model: the per-request model cache is NOT "
        "applied and memory will grow with requests in flight (see DESIGN.md)"
    )
else:
    _gaos_serializers.create_model = _memoised_create_model


# --- Our own types -----------------------------------------------------------
@dataclass(frozen=True)
class GeminiRequest:
    """One try: the whole request in Gemini's shape (jobs/gemini_shape.py), its model
    and tier, and the route to send it by ("" for the gateway's own).
    `previous_interaction_id`: the stored interaction this request continues; the
    Interactions route then sends only the new turns, generateContent all of them."""

    model: str
    request: dict
    tier: str
    route: str = ""
    previous_interaction_id: str = ""

    @classmethod
    def text(cls, *, model: str, prompt: str, tier: str, system_instruction: str = "",
             route: str = "", **generation_config: Any) -> GeminiRequest:  # fmt: skip
        request = gemini_shape.simple(
            prompt, system_instruction=system_instruction, generation_config=generation_config
        )
        return cls(model=model, request=request, tier=tier, route=route)


@dataclass(frozen=True)
class GeminiResult:
    """An answer. `response` is a GenerateContentResponse as JSON whichever route
    carried it (on the Interactions route, the interaction read into that shape)."""

    text: str
    response_id: str
    input_tokens: int
    output_tokens: int
    thought_tokens: int
    tier_served: str
    http_status: int = 200
    response: dict | None = None
    finish_reason: str = ""
    cut_at_limit: bool = False
    route: str = ""


class GeminiError(Exception):
    """Every failure from outside, classified once.

    kind: capacity (503), rate_limit (429), transient (other 5xx), timeout,
    connection, bad_request, auth, not_found, failed_in_body.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        http_status: int | None = None,
        google_status: str = "",
        retry_after: float | None = None,
        tier_served: str = "",
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.http_status = http_status
        self.google_status = google_status
        self.retry_after = retry_after
        self.tier_served = tier_served

    def __repr__(self) -> str:
        fields = (self.kind, self.http_status, self.google_status, self.message)
        return f"GeminiError{fields!r}"


# Google answers a bad or expired key with 400 INVALID_ARGUMENT and an
# ErrorInfo reason, not 401/403: it is still a credentials problem.
_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})


def kind_for_status(status: int) -> str:
    if status == 503:
        return "capacity"
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status in (408, 409) or status >= 500:
        return "transient"
    return "bad_request"


def error_from_response(status: int, body: Any, headers: Any) -> GeminiError:
    """Build our error from an HTTP status, Google's error body and headers.

    Public so its parsing of Google's documented error shapes can be tested on
    bodies the simulator does not produce."""
    error = body.get("error") if isinstance(body, dict) else None
    key_refused = False
    google_status = ""
    message = ""
    retry_after = parse_retry_after(headers.get("retry-after") if headers is not None else None)
    if isinstance(error, dict):
        google_status = str(error.get("status") or "")
        message = str(error.get("message") or "")
        for detail in error.get("details") or []:
            if not isinstance(detail, dict):
                continue
            detail_type = str(detail.get("@type", ""))
            if detail_type.endswith("RetryInfo"):
                hinted = parse_retry_delay(detail.get("retryDelay"))
                if hinted is not None:
                    retry_after = max(retry_after or 0.0, hinted)
            elif detail_type.endswith("ErrorInfo") and detail.get("reason") in _KEY_REASONS:
                key_refused = True
    elif isinstance(body, dict) and body.get("message"):
        message = str(body["message"])
    elif body:
        message = body if isinstance(body, str) else json.dumps(body)
    message = message or f"HTTP {status}"
    tier = headers.get(TIER_HEADER, "") if headers is not None else ""
    return GeminiError(
        "auth" if key_refused else kind_for_status(status),
        # Redacted before the cut, and so stored without the key even once it changes.
        redact_api_key(message)[:_MESSAGE_LIMIT],
        http_status=status,
        google_status=google_status,
        retry_after=retry_after,
        tier_served=tier,
    )


def _transport_error(exc: BaseException) -> GeminiError:
    timed_out = isinstance(exc, ix.APITimeoutError | httpx2.TimeoutException | TimeoutError)
    kind = "timeout" if timed_out else "connection"
    text = str(exc) or type(exc).__name__
    return GeminiError(kind, redact_api_key(f"{type(exc).__name__}: {text}")[:_MESSAGE_LIMIT])


# --- The gateway ---------------------------------------------------------------
class GeminiGateway:
    """Holds a few SDK clients for one event loop and sends requests through
    them round-robin: one client's connection pool scan grows with
    connections x waiters, so spreading load cut CPU in half (DESIGN.md)."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "",
        api_version: str = "v1beta",
        timeout_seconds: float = 900.0,
        route: str = "interactions",
        clients: int = 1,
    ) -> None:
        if route not in ROUTES:
            raise ValueError(f"unknown Gemini route {route!r}; expected one of {ROUTES}")
        self.route = route
        self.timeout_seconds = timeout_seconds
        self._clients = [
            genai.Client(
                api_key=api_key or "unset",
                http_options=_http_options(base_url, api_version, timeout_seconds),
            )
            for _ in range(max(1, clients))
        ]
        self._next_client = itertools.cycle(self._clients)

    @classmethod
    def from_settings(cls) -> GeminiGateway:
        from django.conf import settings

        return cls(
            api_key=settings.GEMINI_API_KEY,
            base_url=settings.GEMINI_BASE_URL,
            api_version=settings.GEMINI_API_VERSION,
            timeout_seconds=settings.FLEX_REQUEST_TIMEOUT,
            route=settings.GEMINI_API,
            clients=settings.FLEX_CLIENTS,
        )

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aio.aclose()

    async def generate(self, request: GeminiRequest) -> GeminiResult:
        client = next(self._next_client)
        route = request.route or routes.route_for(request.request, self.route)
        if route == "generate_content":
            return await self._generate_content(client, request)
        return await self._interactions(client, request)

    async def _interactions(self, client: genai.Client, request: GeminiRequest) -> GeminiResult:
        kwargs = routes.interactions_arguments(request.request, request.previous_interaction_id)
        kwargs.update(model=request.model, service_tier=request.tier, timeout=self.timeout_seconds)
        try:
            raw = await client.aio.interactions.with_raw_response.create(**kwargs)
            interaction = await raw.parse()
        except ix.APIStatusError as exc:
            return _raise(error_from_response(exc.status_code, exc.body, exc.response.headers))
        except (ix.APIConnectionError, httpx2.TransportError, TimeoutError) as exc:
            return _raise(_transport_error(exc))
        tier = raw.headers.get(TIER_HEADER, "")
        body = interaction.model_dump(mode="json", exclude_none=True)
        if interaction.status not in routes.ANSWERED_STATUSES:
            raise GeminiError(
                "failed_in_body",
                routes.interaction_failure(body),
                http_status=raw.status_code,
                google_status=str(interaction.status or "").upper(),
                tier_served=tier,
            )
        return _result(
            routes.interaction_as_response(body),
            tier=tier,
            route="interactions",
            http_status=raw.status_code,
        )

    async def _generate_content(self, client: genai.Client, request: GeminiRequest) -> GeminiResult:
        contents, config = routes.generate_content_arguments(request.request)
        try:
            response = await client.aio.models.generate_content(
                model=request.model,
                contents=[types.Content.model_validate(turn) for turn in contents],
                config=types.GenerateContentConfig.model_validate(
                    {**config, "service_tier": request.tier}
                ),
            )
        except genai_errors.APIError as exc:
            headers = exc.response.headers if exc.response is not None else {}
            return _raise(error_from_response(exc.code, exc.details, headers))
        # This route does not wrap transport failures: they arrive as httpx2's own.
        except (httpx2.TransportError, TimeoutError) as exc:
            return _raise(_transport_error(exc))
        headers = response.sdk_http_response.headers if response.sdk_http_response else {}
        tier = (headers or {}).get(TIER_HEADER, "")
        body = response.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            exclude={"sdk_http_response", "automatic_function_calling_history"},
        )
        if blocked := routes.blocked_reason(body):
            raise GeminiError(
                "failed_in_body",
                blocked,
                http_status=200,
                google_status=routes.block_status(body),
                tier_served=tier,
            )
        return _result(body, tier=tier, route="generate_content")


def _result(body: dict, *, tier: str, route: str, http_status: int = 200) -> GeminiResult:
    usage = gemini_shape.usage(body)
    finish = gemini_shape.finish_reason(body)
    return GeminiResult(
        text=gemini_shape.answer_text(body),
        response_id=str(body.get("responseId") or ""),
        input_tokens=usage.get("promptTokenCount") or 0,
        output_tokens=usage.get("candidatesTokenCount") or 0,
        thought_tokens=usage.get("thoughtsTokenCount") or 0,
        tier_served=tier,
        http_status=http_status,
        response=body,
        finish_reason=finish,
        cut_at_limit=finish == "MAX_TOKENS",
        route=route,
    )


def _http_options(base_url: str, api_version: str, timeout_seconds: float) -> types.HttpOptions:
    # The default pool stops at 100 connections and makes the rest wait
    # silently; flex needs thousands open at once. Passing our own transport
    # also keeps generateContent on httpx2 even where aiohttp is installed
    # (the SDK prefers aiohttp then), so both routes fail and scale alike.
    unlimited = httpx2.Limits(max_connections=None, max_keepalive_connections=None)
    tls = _tls_context()
    return types.HttpOptions(
        base_url=base_url or None,
        api_version=api_version,
        timeout=int(timeout_seconds * 1000),
        # Our backoff records and schedules every try; the SDK's default
        # 5 attempts (Retry-After honoured without a cap) would hide them.
        retry_options=types.HttpRetryOptions(attempts=1),
        async_client_args={
            "limits": unlimited,
            "verify": tls,
            "ssl": tls,  # its websocket's (the SDK drops what httpx2's client does not take)
            "transport": httpx2.AsyncHTTPTransport(limits=unlimited, verify=tls),
        },
    )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client this process makes, chosen as the SDK
    chooses its own (SSL_CERT_FILE / SSL_CERT_DIR when set, else httpx2's
    default). Each costs ~40 ms of CPU to load its certificates, and left to
    themselves the transport, the SDK's clients and its websocket made three
    per client: a gateway of FLEX_CLIENTS=10 spent 1.2 s of CPU before every
    dispatcher run."""
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(
            cafile=os.environ.get("SSL_CERT_FILE"), capath=os.environ.get("SSL_CERT_DIR")
        )
    return httpx2.create_ssl_context()


def _raise(error: GeminiError) -> GeminiResult:
    raise error
