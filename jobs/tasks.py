"""django-q2 task entry points: thin, they call the dispatcher."""

from __future__ import annotations

import logging

from jobs.engine import actions
from jobs.engine.dispatch import run_dispatcher

logger = logging.getLogger(__name__)


def dispatch() -> str:
    # Every run (the minute Schedule, a wake-up) applies passed deadlines
    # first, so they take effect even when no dispatcher is running.
    try:
        actions.jobs_apply_deadlines()
    except Exception:
        logger.exception("Applying deadlines failed; the next run tries again")
    return run_dispatcher()
