"""django-q2 task entry points: thin, they call the dispatcher and the upkeep that
runs before it, and deliver notifications."""

from __future__ import annotations

import logging

from jobs.engine import actions, budgets, counts, notices
from jobs.engine.dispatch import run_dispatcher
from jobs.notices import delivery
from jobs.runs import uploads

logger = logging.getLogger(__name__)


def dispatch() -> str:
    # Every run (the minute Schedule, a wake-up) applies passed deadlines
    # first, so they take effect even when no dispatcher is running, and
    # removes upload previews a day old, so they go even if no one uploads; and
    # folds the stored job counts' delta rows (PostgreSQL) into a few; and sets
    # the budgets' reservations to what is in flight (a deleted try's is freed).
    try:
        actions.jobs_apply_deadlines()
    except Exception:
        logger.exception("Applying deadlines failed; the next run tries again")
    try:
        counts.fold()
    except Exception:
        logger.exception("Folding the job counts failed; the next run tries again")
    try:
        for healed in budgets.reservations_recount(fix=True):
            logger.warning(
                "Budget %s reserved %s for tries no longer in flight (deleted); now %s",
                healed.key,
                healed.stored,
                healed.held,
            )
    except Exception:
        logger.exception("Recounting the budgets' reservations failed; the next run tries again")
    try:
        uploads.previews_sweep()
    except Exception:
        logger.exception("Removing expired upload previews failed; the next run tries again")
    # Runs whose end no recording saw, then every notice that is due (retries,
    # and those whose delivery task was lost): enqueued, never sent here.
    try:
        notices.runs_settle_sweep()
        delivery.notices_sweep()
    except Exception:
        logger.exception("Sweeping notifications failed; the next run tries again")
    return run_dispatcher()


def deliver_notice(notice_id: int) -> str:
    return delivery.notice_deliver(notice_id=notice_id)
