"""A local stand-in for Gemini's Flex tier, speaking the wire format google-genai 3.3.0 expects;
`manage.py flexsim` serves it.

- `directives`: the `[sim:...]` directives planted in prompts, and the answer text;
- `errors`: `ApiError` and Google's status names, raised by all the others;
- `schemas`: the smallest JSON value a response or parameters schema accepts, and one it refuses;
- `answers`: `Call` (a request as both routes describe it), `Reply` (the answer composed for
  it) and how tokens are counted;
- `wire`: request bodies read into a `Call`, answer and error bodies written, for both routes;
- `server`: `SimConfig`, `FlexSimulator` (state, handlers, the record of requests), the aiohttp
  app and `run`.

Imports point one way: server -> wire -> answers -> schemas and directives -> errors. This
module only re-exports the names used outside the package.
"""

from __future__ import annotations

from jobs.simulator.directives import ANSWER_PREFIX
from jobs.simulator.server import FlexSimulator, SimConfig, run

__all__ = ["ANSWER_PREFIX", "FlexSimulator", "SimConfig", "run"]
