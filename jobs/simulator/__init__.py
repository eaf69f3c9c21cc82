"""A local stand-in for Gemini's Flex tier, speaking the wire format google-genai 3.3.0 expects;
`manage.py flexsim` serves it.

- `directives`: the `[sim:...]` directives planted in prompts, and the answer text;
- `errors`: `ApiError` and Google's status names, raised by all the others;
- `wire`: request bodies read and answer and error bodies written, for both routes;
- `server`: `SimConfig`, `FlexSimulator` (state and handlers), the aiohttp app and `run`.

Imports point one way: server -> wire -> directives -> errors. This module only re-exports
the names used outside the package.
"""

from __future__ import annotations

from jobs.simulator.directives import ANSWER_PREFIX
from jobs.simulator.server import FlexSimulator, SimConfig, run

__all__ = ["ANSWER_PREFIX", "FlexSimulator", "SimConfig", "run"]
