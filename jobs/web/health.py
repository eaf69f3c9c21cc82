"""GET /healthz: does this web server's database answer, is a django-q2 cluster
at work, is dispatch paused. For load balancers, uptime checks and people.

No login, so it says nothing secret: no key, no database URL, no driver
messages (they can name hosts and users; those go to the log).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection
from django.db.models import Min
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django_q.conf import Conf
from django_q.status import Stat

from jobs.models import WAITING_STATES, Job, State
from jobs.redaction import redact_api_key
from jobs.web import queries

logger = logging.getLogger(__name__)


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    now = timezone.now()
    try:
        report = _report(now)
    except DatabaseError as exc:
        logger.error("Health check: the database did not answer: %s", exc)
        # Without its database this server cannot serve a page: 503 takes it
        # out of a load balancer's rotation.
        return JsonResponse(
            {
                "status": "error",
                "checked_at": now,
                "problems": ["the database did not answer"],
                "database": {"status": "error", "error": type(exc).__name__},
            },
            status=503,
        )
    # A paused dispatch or a missing cluster is "degraded" but still 200: pages
    # still work, and pulling web servers out of a load balancer would not
    # restart the queue; it would only take the dashboard that says why away.
    return JsonResponse(report)


def _report(now: datetime) -> dict[str, Any]:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    latency_ms = (time.perf_counter() - started) * 1000

    engine = queries.engine_status(now=now)
    clusters = _live_clusters()
    # A live dispatcher slot proves a cluster too, even when this server cannot
    # see the clusters' statistics (another machine's cache).
    alive = bool(clusters) or engine.dispatchers > 0

    problems = []
    # A pause reason quotes Gemini's error, and this page needs no login.
    reason = redact_api_key(engine.paused_reason)
    if engine.paused:
        problems.append(f"dispatch is paused: {reason}")
    if clusters is None:
        problems.append("django-q2's cluster statistics could not be read from the cache")
    if not alive:
        problems.append("no django-q2 cluster is running (start manage.py qcluster)")

    return {
        "status": "degraded" if problems else "ok",
        "checked_at": now,
        "problems": problems,
        "database": {
            "status": "ok",
            "vendor": connection.vendor,
            "latency_ms": round(latency_ms, 2),
        },
        "cluster": {
            "alive": alive,
            "live_clusters": len(clusters or []),
            "clusters": clusters,
            "live_dispatchers": engine.dispatchers,
            "in_flight": engine.in_flight,
            "last_heartbeat_at": engine.heartbeat_at,
            "oldest_due_wait_seconds": _oldest_due_wait(now),
        },
        "dispatch": {
            "paused": engine.paused,
            "reason": reason,
            "paused_at": engine.paused_at,
        },
    }


def _live_clusters() -> list[dict[str, Any]] | None:
    """django-q2's own heartbeat: every running cluster rewrites its statistics
    in the shared cache every few seconds, and they expire soon after it stops.
    None when the cache cannot be read."""
    try:
        stats = Stat.get_all()
    except Exception:
        logger.exception("Health check: could not read django-q2's cluster statistics")
        return None
    return [
        {"id": str(stat.cluster_id), "status": stat.status, "workers": len(stat.workers)}
        for stat in stats
        if stat.status != Conf.STOPPED
    ]


def _oldest_due_wait(now: datetime) -> float | None:
    """How long the longest-waiting due job has waited for a dispatcher: a queued
    or retrying job whose time has come, or a running one whose lease ran out."""
    waiting = Job.objects.filter(state__in=WAITING_STATES, next_attempt_at__lte=now)
    orphaned = Job.objects.filter(state=State.RUNNING, lease_expires_at__lt=now)
    due_since = [
        waiting.aggregate(at=Min("next_attempt_at"))["at"],
        orphaned.aggregate(at=Min("lease_expires_at"))["at"],
    ]
    due_since = [moment for moment in due_since if moment is not None]
    if not due_since:
        return None
    return round((now - min(due_since)).total_seconds(), 1)
