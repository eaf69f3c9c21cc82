"""The app's configuration: a cluster that starts ensures the minute Schedule
and wakes a dispatcher."""

from __future__ import annotations

import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Flex jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        post_spawn.connect(_wake_on_worker_start, dispatch_uid="flexdash-wake-on-spawn")


def _wake_on_worker_start(sender, proc_name: str, **kwargs) -> None:
    """A cluster that starts (or restarts after a crash) picks up waiting work
    at once instead of at the Schedule's next minute, and makes sure that
    every-minute Schedule exists (an operator may have deleted it)."""
    from jobs.engine.control import dispatch_schedule_ensure, wake_dispatcher

    try:
        dispatch_schedule_ensure()
        wake_dispatcher()
    except Exception:
        logger.warning("Could not wake the dispatcher from %s", proc_name, exc_info=True)
