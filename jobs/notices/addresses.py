"""Where a webhook may go: an http(s) URL whose host resolves only to global
addresses. Private, loopback, link-local, multicast and reserved addresses are
refused (no server-side request forgery) unless the operator allows them
(FLEX_WEBHOOK_ALLOW_PRIVATE). Checked when the URL is saved and again at each
delivery, after resolving it; the delivery then connects to the address that
was checked, so a name that resolves differently the second time (DNS
rebinding) cannot slip past."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class Refused(Exception):
    """The URL may not be called; the message says why, in words."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with its query
    addresses: tuple[str, ...]  # checked, in the resolver's order


def _split(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise Refused(f"This is not a usable URL: {error}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused("Only http:// and https:// URLs can receive webhooks.")
    if not parts.hostname:
        raise Refused("The URL names no host.")
    if parts.username or parts.password:
        raise Refused(
            "Put no user name or password in the URL: check the signature header instead."
        )
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), path


def _not_global(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why this address is refused, or None for a global one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for kind in ("loopback", "link_local", "multicast", "reserved", "unspecified", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "non-global"
    return None


def resolve(url: str) -> Target:
    """The URL's parts and the addresses its host resolves to, every one of
    them checked. Raises Refused with the reason."""
    scheme, host, port, path = _split(url)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise Refused(f"The host {host} could not be resolved ({error}).") from None
    addresses: list[str] = []
    for *_, sockaddr in found:
        text = str(sockaddr[0]).split("%", 1)[0]
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise Refused(f"The host {host} resolves to no address.")
    if not settings.FLEX_WEBHOOK_ALLOW_PRIVATE:
        for text in addresses:
            why = _not_global(ipaddress.ip_address(text))
            if why:
                raise Refused(
                    f"{host} resolves to {text}, a {why} address: webhooks go only to "
                    "public addresses (an operator can allow others with "
                    "FLEX_WEBHOOK_ALLOW_PRIVATE)."
                )
    return Target(scheme, host, port, path, tuple(addresses))


def url_problem(url: str) -> str | None:
    """Why the URL cannot receive webhooks, or None: for forms, on save."""
    try:
        resolve(url)
    except Refused as refused:
        return str(refused)
    return None
