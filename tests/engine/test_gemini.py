"""The Gemini door through the real google-genai SDK against the simulator,
on both routes: every outside failure becomes one classified GeminiError."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest

from jobs.engine import gemini
from jobs.engine.gemini import GeminiError, GeminiGateway, GeminiRequest

ROUTES = ["interactions", "generate_content"]


def _call(url: str, route: str, prompt: str, *, key: str = "test-key", timeout: float = 10, **kw):
    async def go():
        gateway = GeminiGateway(
            api_key=key, base_url=url, timeout_seconds=timeout, route=route, clients=2
        )
        try:
            return await gateway.generate(
                GeminiRequest.text(
                    model=kw.pop("model", "gemini-2.5-flash"),
                    prompt=prompt,
                    tier=kw.pop("tier", "flex"),
                    **kw,
                )
            )
        finally:
            await gateway.aclose()

    return asyncio.run(go())


def _error(url: str, route: str, prompt: str, **kw) -> GeminiError:
    with pytest.raises(GeminiError) as caught:
        _call(url, route, prompt, **kw)
    return caught.value


def _unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex}"


@pytest.fixture(params=ROUTES)
def route(request):
    return request.param


def test_success_carries_text_usage_and_the_tier_served(simulator, route):
    result = _call(
        simulator.url,
        route,
        "Why is the sky blue?",
        system_instruction="Be brief.",
        temperature=0.3,
        max_output_tokens=64,
    )
    assert result.text.startswith("Simulated answer to: Why is the sky blue?")
    assert result.input_tokens > 0 and result.output_tokens > 0
    assert result.tier_served == "flex"
    assert result.response_id


def test_standard_tier_is_requested_and_reported(simulator, route):
    assert _call(simulator.url, route, _unique("std"), tier="standard").tier_served == "standard"


def test_503_is_capacity(simulator, route):
    error = _error(simulator.url, route, _unique("[sim:503x1]"))
    assert (error.kind, error.http_status, error.google_status) == ("capacity", 503, "UNAVAILABLE")
    assert error.retry_after is None


def test_429_with_retry_after_header(simulator, route):
    error = _error(simulator.url, route, _unique("[sim:429x1:retry-after=3]"))
    assert (error.kind, error.http_status, error.google_status) == (
        "rate_limit",
        429,
        "RESOURCE_EXHAUSTED",
    )
    assert error.retry_after == 3.0


def test_429_with_retry_info_in_the_body(simulator, route):
    error = _error(simulator.url, route, _unique("[sim:429x1:retry-info=4]"))
    assert error.kind == "rate_limit"
    assert error.retry_after == 4.0


def test_400_is_a_bad_request(simulator, route):
    error = _error(simulator.url, route, _unique("[sim:400]"))
    assert (error.kind, error.http_status, error.google_status) == (
        "bad_request",
        400,
        "INVALID_ARGUMENT",
    )


def test_missing_or_wrong_key_is_auth(simulator, route):
    error = _error(simulator.url, route, _unique("x"), key="wrong-key")
    assert (error.kind, error.http_status) == ("auth", 403)


def test_unknown_model_is_not_found(simulator, route):
    error = _error(simulator.url, route, _unique("x"), model="gemini-0-nonexistent")
    assert (error.kind, error.http_status) == ("not_found", 404)


def test_500_with_an_html_body_is_transient(simulator, route):
    error = _error(simulator.url, route, _unique("[sim:500x1]"))
    assert (error.kind, error.http_status) == ("transient", 500)
    assert "html" in error.message.lower()


def test_200_that_is_not_an_answer_is_failed_in_body(simulator, route):
    error = _error(simulator.url, route, _unique("[sim:failed]"))
    assert error.kind == "failed_in_body"
    assert error.http_status == 200


def test_a_hung_request_times_out(simulator, route):
    error = _error(simulator.url, route, _unique("[sim:hang]"), timeout=1)
    assert error.kind == "timeout"


def test_connection_refused_is_a_connection_error(route):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = _error(f"http://127.0.0.1:{port}", route, "x", timeout=5)
    assert error.kind == "connection"


def test_the_api_key_never_appears_in_error_messages(simulator, route):
    error = _error(simulator.url, route, _unique("[sim:503x1]"), key="test-key")
    assert "test-key" not in error.message and "test-key" not in repr(error)


def test_sdk_model_class_cache_is_applied():
    """google-genai 3.3.0 builds a pydantic class per call; if a new SDK moves
    serializers.create_model this fails loudly instead of leaking memory."""
    from google.genai._gaos.utils import serializers

    assert gemini.sdk_model_cache_applied()
    first = serializers.unmarshal({"a": 1}, dict[str, int])
    classes_before = len(gemini._created_models)
    for _ in range(50):
        assert serializers.unmarshal({"a": 1}, dict[str, int]) == first
    assert len(gemini._created_models) == classes_before


def test_every_client_of_a_process_shares_one_tls_context(monkeypatch):
    """Loading certificates costs ~40 ms of CPU a context; a gateway of ten
    clients made thirty of them before each dispatcher run. Now the transport,
    the SDK's HTTP clients and its websocket all take the process's one."""
    made = []
    real = gemini.ssl.SSLContext.load_verify_locations

    def counted(self, *args, **kwargs):
        made.append(self)
        return real(self, *args, **kwargs)

    gemini._tls_context.cache_clear()
    monkeypatch.setattr(gemini.ssl.SSLContext, "load_verify_locations", counted)
    gateways = [GeminiGateway(api_key="k", clients=10) for _ in range(2)]
    assert len(made) <= 1
    shared = gemini._tls_context()
    for gateway in gateways:
        for client in gateway._clients:
            api = client._api_client
            assert api._async_httpx_client_args["verify"] is shared
            assert api._websocket_ssl_ctx["ssl"] is shared
    for gateway in gateways:
        asyncio.run(gateway.aclose())


def test_gateway_refuses_an_unknown_route():
    with pytest.raises(ValueError, match="unknown Gemini route"):
        GeminiGateway(api_key="k", route="carrier-pigeon")


def test_googles_400_for_an_invalid_key_is_an_auth_error():
    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        }
    }
    error = gemini.error_from_response(400, body, {})
    assert (error.kind, error.http_status, error.google_status) == (
        "auth",
        400,
        "INVALID_ARGUMENT",
    )


def test_retry_after_header_and_retry_info_take_the_longer_wait():
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "quota",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "20s"}],
        }
    }
    assert gemini.error_from_response(429, body, {"retry-after": "5"}).retry_after == 20.0
