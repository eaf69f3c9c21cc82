"""The dispatcher: one django-q2 task that keeps many flex requests in flight.

A flex request may wait 15 minutes, so holding a worker process per request
cannot reach thousands in flight on a small machine. One dispatcher claims due
jobs with a lease and runs them as asyncio tasks; every database write goes
through `sync_to_async` (one thread, in order). No one sleeps through a backoff:
a retry is a row whose `next_attempt_at` lies in the future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from jobs.engine import actions, budgets, claiming, control, recording
from jobs.engine.gemini import GeminiError, GeminiGateway, GeminiRequest, GeminiResult

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.2
# Leases are renewed three times per lease period, so one slow renewal never
# lets a live request's lease lapse.
RENEWALS_PER_LEASE = 3
# How often a dispatcher applies passed deadlines (cancel, move to standard);
# the minute Schedule applies them too, when no dispatcher is running.
DEADLINE_CHECK_SECONDS = 5.0
_RENEW_CHUNK = 500
# A dispatcher takes a second or two to start (the wake-up's trip through
# django-q2, the run's upkeep, the claim): the clusters' watch asks for one this
# long before work is due (wake_when_due), and it stays up that long for it.
WAKE_AHEAD = 2.0


def _db(func):
    return sync_to_async(func, thread_sensitive=True)


# Set when this process's cluster is stopping (SIGTERM, Ctrl-C): `manage.py
# qcluster` sends every process of the cluster SIGUSR1, whose handler is
# `request_stop`. A running dispatcher then hands its work on and exits.
_stop = threading.Event()


def request_stop(signum: int | None = None, frame=None) -> None:
    """A signal handler (it only sets a flag): the cluster is stopping."""
    _stop.set()


@dataclass
class RunStats:
    claimed: int = 0
    succeeded: int = 0
    failed_attempts: int = 0
    peak_in_flight: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    def __init__(
        self,
        *,
        owner: str,
        gateway: GeminiGateway,
        max_in_flight: int,
        lease_seconds: int,
        launch_rate: float,
        run_seconds: float,
    ) -> None:
        self.owner = owner
        self.gateway = gateway
        self.max_in_flight = max_in_flight
        self.lease_seconds = lease_seconds
        self.per_tick = max(1, round(launch_rate * TICK_SECONDS))
        self.launch_rate = launch_rate
        self.run_seconds = run_seconds
        self.in_flight: dict[int, asyncio.Task] = {}
        self.claims: dict[int, claiming.Claim] = {}
        self.stats = RunStats()
        self._outcomes: list[recording.AttemptOutcome] = []
        self._finished = asyncio.Event()

    async def run(self) -> RunStats:
        started = time.monotonic()
        next_renewal = started + self.lease_seconds / RENEWALS_PER_LEASE
        next_pause_check = started
        next_deadline_check = started
        paused = False
        taking_work = True
        # Token bucket: launches accrue at launch_rate whatever the claim and
        # the loop cost, so the time they take is not lost from the rate.
        budget = float(self.per_tick)
        refilled = started
        while True:
            if _stop.is_set():
                await self._hand_on()
                break
            now = time.monotonic()
            budget = min(budget + (now - refilled) * self.launch_rate, 2.0 * self.per_tick)
            refilled = now
            if taking_work and now - started >= self.run_seconds:
                taking_work = False
                await self._hand_over_slot()
            if now >= next_pause_check:
                paused = await _db(control.dispatch_is_paused)()
                next_pause_check = now + 1.0
            if now >= next_deadline_check:
                await self._apply_deadlines()
                next_deadline_check = now + DEADLINE_CHECK_SECONDS
            # Cleared before the write, so a request finishing from here on
            # wakes the wait below.
            self._finished.clear()
            await self._record_outcomes()
            claims = []
            room = self.max_in_flight - len(self.in_flight)
            asked = min(room, int(budget)) if taking_work and not paused else 0
            if asked > 0:
                claims = await self._claim(asked)
                budget -= len(claims)
                for claim in claims:
                    self._launch(claim)
            if now >= next_renewal:
                await self._renew()
                next_renewal = now + self.lease_seconds / RENEWALS_PER_LEASE
            if not self.in_flight and not claims:
                if not taking_work or paused:
                    break
                wait = await _db(claiming.seconds_until_next_due)()
                if wait is None or wait > max(settings.FLEX_DISPATCH_IDLE_SECONDS, WAKE_AHEAD):
                    break
                await asyncio.sleep(min(max(wait, TICK_SECONDS), 1.0))
                continue
            if room <= 0 or len(claims) < asked:
                # Nothing more is due right now, or we are full: wait for a
                # request to finish (freeing room) or for the next tick.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._finished.wait(), timeout=TICK_SECONDS * 5)
            else:
                await asyncio.sleep(max(0.0, now + TICK_SECONDS - time.monotonic()))
        return self.stats

    async def _claim(self, limit: int) -> list[claiming.Claim]:
        # A failed claim rolled back whole; the requests in flight must not
        # die with it, so log and try again on the next tick.
        try:
            return await _db(claiming.jobs_claim)(
                owner=self.owner, limit=limit, lease_seconds=self.lease_seconds
            )
        except Exception:
            logger.exception("Claiming jobs failed; will try again")
            return []

    async def _apply_deadlines(self) -> None:
        # Never fatal: the next check, or the minute Schedule, applies them.
        try:
            await _db(actions.jobs_apply_deadlines)()
            await _db(budgets.reservations_sweep)()
        except Exception:
            logger.exception("Applying deadlines failed; will try again")

    def _launch(self, claim: claiming.Claim) -> None:
        task = asyncio.create_task(self._attempt(claim), name=f"job-{claim.job_id}")
        self.in_flight[claim.job_id] = task
        self.claims[claim.job_id] = claim
        self.stats.claimed += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, len(self.in_flight))

    async def _attempt(self, claim: claiming.Claim) -> None:
        """Send one request; its outcome waits in `_outcomes` for the next
        batched write (the job stays in flight, and leased, until then)."""
        request = GeminiRequest(
            model=claim.model,
            request=claim.request,
            tier=claim.tier,
            route=claim.route,
            previous_interaction_id=claim.previous_interaction_id,
        )
        started = time.monotonic()
        outcome: GeminiResult | GeminiError
        try:
            outcome = await self.gateway.generate(request)
        except GeminiError as error:
            outcome = error
        except Exception as exc:  # an SDK surprise must not kill the other requests
            logger.exception("Unexpected error on job %s", claim.job_id)
            outcome = GeminiError("transient", f"Unexpected {type(exc).__name__}: {exc}")
        self._outcomes.append(recording.AttemptOutcome(claim, outcome, time.monotonic() - started))
        self._finished.set()

    async def _record_outcomes(self) -> None:
        """Write every finished request's outcome in one batch: one trip to the
        database thread, which claims share, instead of one per request."""
        if not self._outcomes:
            return
        batch, self._outcomes = self._outcomes, []
        try:
            decisions = await _db(recording.attempts_record)(owner=self.owner, outcomes=batch)
        except Exception:
            # The database went away: these jobs keep their leases until they
            # lapse, then run again; nothing is lost.
            logger.exception("Could not record %d outcomes", len(batch))
            decisions = []
        for item, decision in zip(batch, decisions, strict=False):
            self.stats.outcomes[decision] = self.stats.outcomes.get(decision, 0) + 1
            if decision == "succeeded":
                self.stats.succeeded += 1
            elif isinstance(item.outcome, GeminiError):
                self.stats.failed_attempts += 1
        for item in batch:
            self.in_flight.pop(item.claim.job_id, None)
            self.claims.pop(item.claim.job_id, None)

    async def _renew(self) -> None:
        job_ids = list(self.in_flight)
        try:
            for start in range(0, max(len(job_ids), 1), _RENEW_CHUNK):
                await _db(control.dispatcher_heartbeat)(
                    owner=self.owner,
                    job_ids=job_ids[start : start + _RENEW_CHUNK],
                    ttl_seconds=self.lease_seconds,
                    in_flight=len(job_ids),
                )
        except Exception:
            # Renewal runs three times per lease: one miss does not lose a lease.
            logger.exception("Renewing leases failed; will try again")

    async def _hand_on(self) -> None:
        """The cluster is stopping: give up the requests in flight at once
        instead of waiting up to FLEX_REQUEST_TIMEOUT for their answers.
        What has come back is recorded as usual; the rest is cancelled and
        handed on (recording.attempts_interrupted), and another cluster's
        dispatcher is woken to take it."""
        began = time.monotonic()
        await self._record_outcomes()
        tasks = list(self.in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        cancelled = time.monotonic()
        await self._record_outcomes()  # those that answered before the cancel
        claims = list(self.claims.values())
        try:
            handed = await _db(recording.attempts_interrupted)(owner=self.owner, claims=claims)
        except Exception:
            # Their leases lapse and another dispatcher takes them then.
            logger.exception("Could not hand on %d requests in flight", len(claims))
            handed = 0
        self.in_flight.clear()
        self.claims.clear()
        self.stats.outcomes["handed on"] = handed
        await self._hand_over_slot()
        logger.warning(
            "Stopping: handed on %d requests in flight in %.1f s (cancelling them took %.1f s)",
            handed,
            time.monotonic() - began,
            cancelled - began,
        )

    async def _hand_over_slot(self) -> None:
        # A fresh run takes the slot and keeps claiming while this one drains.
        await _db(control.dispatcher_slot_release)(owner=self.owner)
        await _db(control.wake_dispatcher)()


# Files a dispatcher holds besides its sockets: the database, logs, the event loop.
OPEN_FILES_BESIDES_SOCKETS = 256


def open_file_room(max_in_flight: int) -> int:
    """How many requests may be in flight at once: FLEX_MAX_IN_FLIGHT, or
    fewer where the open-file limit holds no socket for each (plus the
    database's files). The soft limit goes up to what is needed, the hard
    limit too where this process may raise it (root with CAP_SYS_RESOURCE);
    where neither reaches, the log says which limit to raise. Without the
    cap, a full process could not open its database to record answers, and
    their leases lapsed: at 20,000 in flight under a 20,000 limit, 275 were
    sent twice."""
    needed = max_in_flight + OPEN_FILES_BESIDES_SOCKETS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    if hard != infinite and hard < needed:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            soft, hard = needed, needed
    target = max(soft, needed if hard == infinite else min(needed, hard))
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft >= needed:
        return max_in_flight
    room = max(1, soft - OPEN_FILES_BESIDES_SOCKETS)
    logger.warning(
        "FLEX_MAX_IN_FLIGHT=%s needs about %s open files, but this process may open %s "
        "(hard limit %s): it holds at most %s requests in flight. Raise the limit "
        "(ulimit -Hn, or LimitNOFILE= in a systemd unit).",
        max_in_flight,
        needed,
        soft,
        "none" if hard == infinite else hard,
        room,
    )
    return room


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def _run(owner: str, max_in_flight: int) -> RunStats:
    gateway = GeminiGateway.from_settings()
    try:
        dispatcher = Dispatcher(
            owner=owner,
            gateway=gateway,
            max_in_flight=max_in_flight,
            lease_seconds=settings.FLEX_LEASE_SECONDS,
            launch_rate=settings.FLEX_LAUNCH_RATE,
            run_seconds=settings.FLEX_DISPATCH_RUN_SECONDS,
        )
        return await dispatcher.run()
    finally:
        await gateway.aclose()
        await _db(close_old_connections)()


def _wake_if_due_within(seconds: float) -> bool:
    """Wake a dispatcher if work is due within `seconds` and dispatch is not
    paused; returns whether it did."""
    if control.dispatch_is_paused():
        return False
    wait = claiming.seconds_until_next_due()
    if wait is None or wait > seconds:
        return False
    control.wake_dispatcher()
    return True


def _wake_for_work_that_came_late() -> None:
    """Work committed while this run was deciding to stop woke no one: its
    wake-up found the slot still taken. Look once more now that it is free,
    so such work does not wait for the minute Schedule."""
    try:
        _wake_if_due_within(settings.FLEX_DISPATCH_IDLE_SECONDS)
    except Exception:
        logger.exception("Could not look for work that came while stopping")


def wake_when_due() -> bool:
    """What each running cluster's main process asks every second
    (jobs/management/commands/qcluster.py): is work due with no dispatcher
    running? Then one is asked for at once, not at the minute Schedule: a
    retry due after the last dispatcher went idle runs on time, and when a
    dispatcher dies its slot lapses with its leases and a surviving cluster
    starts one straight away. Returns whether it woke one."""
    return not control.dispatchers_running() and _wake_if_due_within(WAKE_AHEAD)


def run_dispatcher() -> str:
    """Run one dispatcher if a slot is free; return a one-line summary."""
    if _stop.is_set():
        # This cluster is stopping and took a wake-up meant for any: pass it on.
        control.wake_dispatcher()
        return "stopping: the wake-up is passed on to another cluster"
    owner = new_owner()
    slot = control.dispatcher_slot_acquire(owner=owner, ttl_seconds=settings.FLEX_LEASE_SECONDS)
    if slot is None:
        return "busy: every dispatcher slot is taken"
    room = open_file_room(settings.FLEX_MAX_IN_FLIGHT)
    try:
        stats = asyncio.run(_run(owner, room))
    finally:
        control.dispatcher_slot_release(owner=owner)
    _wake_for_work_that_came_late()
    logger.info("Dispatcher %s done: %s", owner, stats)
    return (
        f"claimed {stats.claimed}, succeeded {stats.succeeded}, "
        f"failed attempts {stats.failed_attempts}, peak in flight {stats.peak_in_flight}"
    )
