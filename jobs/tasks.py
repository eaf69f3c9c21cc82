"""django-q2 task entry points: thin, they call the dispatcher."""

from __future__ import annotations

from jobs.dispatch import run_dispatcher


def dispatch() -> str:
    return run_dispatcher()
