"""A webhook receiver on loopback for the tests: a tiny http.server in a
thread that answers each POST with the next status it was given (then 200),
keeps what came, and checks FlexDash's signature with a secret."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, *statuses: int) -> None:
        """Answer the next POSTs with these statuses, in order; 200 after them."""
        with self.lock:
            self.statuses[:] = list(statuses)

    def posts(self) -> list[Received]:
        with self.lock:
            return list(self.received)


def signature_ok(secret: str, item: Received, *, tolerance: float = 300) -> bool:
    """What a receiver does: recompute the HMAC over "t.body" and compare in
    constant time, refusing a timestamp far from its clock."""
    parts = dict(piece.split("=", 1) for piece in item.headers["FlexDash-Signature"].split(","))
    signed = parts["t"].encode() + b"." + item.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(parts["t"])) <= tolerance
    return fresh and hmac.compare_digest(expected, parts["v1"])


def start_receiver() -> tuple[Receiver, http.server.ThreadingHTTPServer]:
    receiver = Receiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.received.append(Received(self.path, dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            reply = b'{"ok": true}' if status < 300 else b"receiver is down " * 200
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/flexdash"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server
