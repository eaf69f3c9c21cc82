"""Webhooks: a JSON POST signed as Stripe signs its own, sent to the address
that was checked (jobs/notices/addresses.py), with short timeouts, no
redirects followed and a bounded excerpt of the answer kept.

The signature header is `FlexDash-Signature: t=<unix time>,v1=<hex>`, where
hex is HMAC-SHA256, keyed with the person's webhook secret, of
"<unix time>.<body>". A receiver recomputes it over the raw body and
refuses a timestamp too far from its clock, so a captured request cannot be
replayed later."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import ssl
import time
from dataclasses import dataclass

from jobs.notices import addresses

SIGNATURE_HEADER = "FlexDash-Signature"
USER_AGENT = "FlexDash-Webhook/1"
EXCERPT_CHARS = 1000
_READ_BYTES = 4 * EXCERPT_CHARS


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value for this body at this time."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class Answer:
    status: int
    excerpt: str
    latency: float
    retry_after: str | None


class PostFailed(Exception):
    """The request got no HTTP answer (refused address, DNS, connection, timeout)."""

    def __init__(self, message: str, *, latency: float, refused: bool = False) -> None:
        super().__init__(message)
        self.latency = latency
        self.refused = refused


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> Answer:
    """POST `body` to `url`: resolve and check the host, connect to the first
    checked address that answers, and read at most a bounded excerpt. A 3xx
    is an answer like any other (not followed: the Location was not checked)."""
    started = time.monotonic()
    try:
        target = addresses.resolve(url)
    except addresses.Refused as refused:
        raise PostFailed(str(refused), latency=time.monotonic() - started, refused=True) from None
    last_error: Exception | None = None
    for address in target.addresses:
        connection = _connection(target, address, timeout)
        try:
            connection.request(
                "POST",
                target.path,
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    **headers,
                },
            )
            response = connection.getresponse()
            raw = _excerpt(response, deadline=started + 2 * timeout)
            return Answer(
                status=response.status,
                excerpt=raw.decode("utf-8", errors="replace")[:EXCERPT_CHARS],
                latency=time.monotonic() - started,
                retry_after=response.getheader("Retry-After"),
            )
        except ConnectionRefusedError as error:
            last_error = error  # try the host's next address
        except (OSError, http.client.HTTPException, ssl.SSLError) as error:
            raise PostFailed(_words(error), latency=time.monotonic() - started) from None
        finally:
            connection.close()
    raise PostFailed(_words(last_error), latency=time.monotonic() - started)


def _excerpt(response: http.client.HTTPResponse, *, deadline: float) -> bytes:
    """The answer's first bytes, read a piece at a time until enough came or
    the time is up: a receiver that trickles its answer cannot hold a worker."""
    raw = b""
    while len(raw) < _READ_BYTES and time.monotonic() < deadline:
        piece = response.read1(_READ_BYTES - len(raw))
        if not piece:
            break
        raw += piece
    return raw


def _connection(
    target: addresses.Target, address: str, timeout: float
) -> http.client.HTTPConnection:
    """A connection that names the host (Host header, TLS server name and
    certificate check) but connects to the checked address only."""
    if target.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)

    def connect_checked(where, timeout=timeout, source_address=None):
        return socket.create_connection((address, where[1]), timeout, source_address)

    connection._create_connection = connect_checked
    return connection


def _words(error: Exception | None) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return "Timed out waiting for the receiver."
    if isinstance(error, ConnectionRefusedError):
        return "Connection refused by the receiver."
    if isinstance(error, ssl.SSLError):
        return f"TLS failed: {error}"
    return f"{type(error).__name__}: {error}" if error else "No address could be reached."
