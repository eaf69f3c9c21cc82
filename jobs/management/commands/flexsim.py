"""Run the bundled Flex simulator in the foreground (see jobs/simulator/)."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.simulator import SimConfig, run


class Command(BaseCommand):
    help = "Serve a local stand-in for Gemini's Flex tier (Interactions and generateContent)."
    # The simulator needs nothing else from the project; skipping checks starts it faster
    # and keeps tests running while another part of the project is half-built.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8089, help="0 picks a free port")
        parser.add_argument(
            "--allow-remote", action="store_true", help="allow a host that is not loopback"
        )
        parser.add_argument("--latency", default="0:0", metavar="MIN:MAX", help="seconds")
        parser.add_argument("--p503", type=float, default=0.0, help="flex shedding probability")
        parser.add_argument("--p429", type=float, default=0.0, help="random 429 probability")
        parser.add_argument("--rpm", type=int, default=0, help="requests per minute; 0 = no limit")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--api-key", default=None, help="the one key accepted (default: any)")
        parser.add_argument(
            "--random-lengths",
            action="store_true",
            help="answers of random lengths, 1 to the request's max output tokens",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host = options["host"]
        if not options["allow_remote"] and not _is_loopback(host):
            raise CommandError(
                f"--host {host} is not a loopback address; the simulator is meant for this "
                "machine only, so pass --allow-remote to serve it beyond."
            )
        try:
            config = SimConfig(
                *_latency(options["latency"]),
                p503=options["p503"],
                p429=options["p429"],
                rpm=options["rpm"],
                seed=options["seed"],
                api_key=options["api_key"],
                random_lengths=options["random_lengths"],
            )
        except ValueError as exc:
            raise CommandError(f"--{exc}") from None
        try:
            run(config, host, options["port"], lambda url: self._announce(url, config))
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{options['port']}: {exc}") from None

    def _announce(self, url: str, config: SimConfig) -> None:
        rpm = config.rpm or "unlimited"
        self.stdout.write(
            f"Flex simulator listening on {url} (latency {config.latency_min:g}\N{EN DASH}"
            f"{config.latency_max:g} s, 503 {config.p503 * 100:g}%, "
            f"429 {config.p429 * 100:g}%, rpm {rpm})"
        )
        self.stdout.flush()


def _latency(text: str) -> tuple[float, float]:
    low, sep, high = str(text).partition(":")
    try:
        if not sep:
            raise ValueError
        return float(low), float(high)
    except ValueError:
        raise CommandError(
            f"--latency must be MIN:MAX seconds (for example 1:15), got {text!r}"
        ) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
