"""Control of the dispatcher: pausing and resuming dispatch, waking a
dispatcher run, the minute Schedule, and the slots that bound how many
dispatchers run at once."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.engine import notices
from jobs.models import DispatchControl, DispatcherSlot, Job, State

logger = logging.getLogger(__name__)


def dispatch_control() -> DispatchControl:
    control, _ = DispatchControl.objects.get_or_create(pk=1)
    return control


def dispatch_pause(*, reason: str) -> bool:
    """Stop sending requests; jobs stay where they are until resumed. The
    one call that pauses tells those who asked (notices.note_dispatch_paused)."""
    dispatch_control()
    now = timezone.now()
    with transaction.atomic():
        paused = bool(
            DispatchControl.objects.filter(pk=1, paused=False).update(
                paused=True, reason=reason, paused_at=now
            )
        )
        if paused:
            try:
                with transaction.atomic():
                    notices.note_dispatch_paused(reason=reason, paused_at=now)
            except Exception:
                logger.exception("Could not note the pause for those who asked to be told")
    return paused


def dispatch_resume() -> bool:
    dispatch_control()
    changed = DispatchControl.objects.filter(pk=1, paused=True).update(
        paused=False, reason="", paused_at=None
    )
    if changed:
        transaction.on_commit(wake_dispatcher)
    return bool(changed)


def dispatch_is_paused() -> bool:
    return DispatchControl.objects.filter(pk=1, paused=True).exists()


# --- Dispatcher slots ----------------------------------------------------------
def dispatchers_running() -> int:
    """Dispatchers holding a slot that has not lapsed."""
    return DispatcherSlot.objects.filter(expires_at__gt=timezone.now()).count()


def wake_dispatcher() -> None:
    """Ask django-q2 for a dispatcher run, unless every slot is already busy:
    a running dispatcher looks for new work every second by itself."""
    if dispatchers_running() >= settings.FLEX_DISPATCHERS:
        return
    from django_q.tasks import async_task

    async_task("jobs.tasks.dispatch", task_name=DISPATCH_SCHEDULE_NAME)


DISPATCH_SCHEDULE_NAME = "flexdash-dispatch"


def dispatch_schedule_ensure() -> None:
    """The every-minute run that picks up retries coming due, jobs whose
    dispatcher died and deadlines that passed, even when nothing new is submitted."""
    from django_q.models import Schedule

    Schedule.objects.get_or_create(
        name=DISPATCH_SCHEDULE_NAME,
        defaults={
            "func": "jobs.tasks.dispatch",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


def dispatcher_slot_acquire(*, owner: str, ttl_seconds: int) -> int | None:
    now = timezone.now()
    for number in range(settings.FLEX_DISPATCHERS):
        DispatcherSlot.objects.get_or_create(number=number)
        taken = DispatcherSlot.objects.filter(
            Q(expires_at__isnull=True) | Q(expires_at__lte=now), number=number
        ).update(
            owner=owner,
            expires_at=now + timedelta(seconds=ttl_seconds),
            heartbeat_at=now,
            in_flight=0,
        )
        if taken:
            return number
    return None


def dispatcher_heartbeat(
    *, owner: str, job_ids: list[int], ttl_seconds: int, in_flight: int
) -> bool:
    """Renew the leases of the jobs this dispatcher has in flight, and its slot.

    Only the named jobs: one whose task ended without recording its outcome
    must let its lease lapse so another run picks it up."""
    now = timezone.now()
    expires = now + timedelta(seconds=ttl_seconds)
    if job_ids:
        Job.objects.filter(pk__in=job_ids, lease_owner=owner, state=State.RUNNING).update(
            lease_expires_at=expires
        )
    return bool(
        DispatcherSlot.objects.filter(owner=owner).update(
            expires_at=expires, heartbeat_at=now, in_flight=in_flight
        )
    )


def dispatcher_slot_release(*, owner: str) -> None:
    DispatcherSlot.objects.filter(owner=owner).update(owner="", expires_at=None, in_flight=0)
