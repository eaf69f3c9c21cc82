"""A local stand-in for Gemini's Flex tier; `manage.py flexsim` serves it (see `server`)."""

from __future__ import annotations

from jobs.simulator.server import ANSWER_PREFIX, FlexSimulator, SimConfig, run

__all__ = ["ANSWER_PREFIX", "FlexSimulator", "SimConfig", "run"]
