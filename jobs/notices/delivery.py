"""Delivering the outbox: each notice by e-mail and by webhook, every try
recorded as a Delivery, failures tried again with backoff until
FLEX_NOTICE_MAX_ATTEMPTS. Runs in django-q2 tasks (jobs/tasks.py), never in
the dispatcher.

A delivery first takes the notice's lease with a conditional UPDATE (row
count checked), so two tasks for the same notice (the one enqueued on commit
and the sweep's) never send it twice at once. A try that was sent but whose
result could not be stored is sent again once the lease lapses: receivers
tell repeats by the event's id, which never changes."""

from __future__ import annotations

import logging
import random
import time
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import Q
from django.utils import timezone

from jobs.engine import backoff
from jobs.engine.notices import enqueue_delivery
from jobs.models import (
    ChannelState,
    Delivery,
    DeliveryOutcome,
    Notice,
    NoticeKind,
    NoticeSettings,
)
from jobs.notices import messages, webhooks

logger = logging.getLogger(__name__)


def lease_seconds() -> float:
    """Longer than a webhook's connect, answer and excerpt, and an e-mail's
    timeout, together: a delivery still sending keeps the notice; one whose
    worker died lets it go."""
    return 60 + 4 * settings.FLEX_WEBHOOK_TIMEOUT


def notice_deliver(*, notice_id: int) -> str:
    """One turn for one notice: try each channel still waiting, record each
    try, and set when the next turn is due (or none). Returns what happened:
    "not due" when another delivery holds it or nothing is waiting."""
    now = timezone.now()
    lease = now + timedelta(seconds=lease_seconds())
    won = (
        Notice.objects.filter(pk=notice_id, due_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=lease)
    )
    if not won:
        return "not due"
    notice = Notice.objects.select_related("user").get(pk=notice_id)
    prefs = NoticeSettings.objects.filter(user=notice.user).first()
    final = notice.kind == NoticeKind.TEST  # a test is tried once: its result is the point
    retry_after: float | None = None
    if notice.email_state == ChannelState.PENDING:
        notice.email_state = _try_email(notice, prefs, final=final)
    if notice.webhook_state == ChannelState.PENDING:
        notice.webhook_state, retry_after = _try_webhook(notice, prefs, final=final)
    waiting = ChannelState.PENDING in (notice.email_state, notice.webhook_state)
    due_at = None
    if waiting:
        tries = max(notice.email_attempts, notice.webhook_attempts)
        due_at = timezone.now() + timedelta(seconds=retry_wait(tries, retry_after))
    Notice.objects.filter(pk=notice_id, lease_until=lease).update(
        email_state=notice.email_state,
        email_attempts=notice.email_attempts,
        webhook_state=notice.webhook_state,
        webhook_attempts=notice.webhook_attempts,
        due_at=due_at,
        lease_until=None,
    )
    return "will retry" if waiting else "done"


def retry_wait(tries: int, retry_after: float | None = None) -> float:
    """Seconds before the next try: exponential, with half of it jittered
    (never the near-zero waits of full jitter: a receiver that is down needs
    the time), and the receiver's Retry-After as a floor."""
    return backoff.retry_delay(
        max(tries, 1),
        base=settings.FLEX_NOTICE_BACKOFF_BASE,
        cap=settings.FLEX_NOTICE_BACKOFF_CAP,
        retry_after=retry_after,
        rand=lambda: 0.5 + random.random() / 2,
    )


def _outcome(ok: bool, tries: int, *, final: bool) -> DeliveryOutcome:
    if ok:
        return DeliveryOutcome.SENT
    if final or tries >= settings.FLEX_NOTICE_MAX_ATTEMPTS:
        return DeliveryOutcome.FAILED
    return DeliveryOutcome.WILL_RETRY


_STATE_AFTER = {
    DeliveryOutcome.SENT: ChannelState.SENT,
    DeliveryOutcome.WILL_RETRY: ChannelState.PENDING,
    DeliveryOutcome.FAILED: ChannelState.FAILED,
    DeliveryOutcome.REFUSED: ChannelState.FAILED,
}


def _try_email(notice: Notice, prefs: NoticeSettings | None, *, final: bool) -> str:
    address = prefs.email_address if prefs else notice.user.email
    if prefs is not None and not prefs.email_enabled:
        address = ""
    notice.email_attempts += 1
    started, began = timezone.now(), time.monotonic()
    error = ""
    if not address:
        error = "No e-mail address: e-mail was turned off or the address removed."
    else:
        try:
            EmailMessage(
                subject=notice.subject,
                body=messages.email_text(notice),
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[address],
            ).send()
        except Exception as failure:
            error = f"{type(failure).__name__}: {failure}"[:2000]
    outcome = _outcome(not error, notice.email_attempts, final=final or not address)
    Delivery.objects.create(
        notice=notice,
        user=notice.user,
        channel="email",
        attempt=notice.email_attempts,
        target=address[:2000],
        started_at=started,
        latency_seconds=time.monotonic() - began,
        error=error,
        outcome=outcome,
    )
    return _STATE_AFTER[outcome]


def _try_webhook(
    notice: Notice, prefs: NoticeSettings | None, *, final: bool
) -> tuple[str, float | None]:
    notice.webhook_attempts += 1
    url = prefs.webhook_url if prefs else ""
    row = Delivery(
        notice=notice,
        user=notice.user,
        channel="webhook",
        attempt=notice.webhook_attempts,
        target=url[:2000],
        started_at=timezone.now(),
    )
    retry_after = None
    if not url or not prefs.webhook_secret:
        row.error, row.outcome = "No webhook URL: it was removed.", DeliveryOutcome.FAILED
        row.save()
        return ChannelState.FAILED, None
    body = messages.body(notice)
    headers = {
        webhooks.SIGNATURE_HEADER: webhooks.sign(prefs.webhook_secret, body, int(time.time())),
        "FlexDash-Event": notice.kind,
        "FlexDash-Notice": str(notice.pk),
        "FlexDash-Attempt": str(notice.webhook_attempts),
    }
    try:
        answer = webhooks.post(url, body, headers, timeout=settings.FLEX_WEBHOOK_TIMEOUT)
    except webhooks.PostFailed as failed:
        row.latency_seconds, row.error = failed.latency, str(failed)[:2000]
        row.outcome = (
            DeliveryOutcome.REFUSED
            if failed.refused
            else _outcome(False, notice.webhook_attempts, final=final)
        )
    else:
        row.latency_seconds = answer.latency
        row.http_status = answer.status
        row.response_excerpt = answer.excerpt
        ok = 200 <= answer.status < 300
        if not ok:
            row.error = f"The receiver answered HTTP {answer.status}; only a 2xx counts."
            retry_after = backoff.parse_retry_after(answer.retry_after)
        row.outcome = _outcome(ok, notice.webhook_attempts, final=final)
    row.save()
    if row.outcome == DeliveryOutcome.REFUSED:
        logger.warning("Webhook of notice %s refused: %s", notice.pk, row.error)
    return _STATE_AFTER[row.outcome], retry_after


def notices_sweep(*, limit: int = 200) -> int:
    """Enqueue a delivery for every notice that is due and held by no one:
    retries coming due, and notices whose task was lost. Returns how many."""
    now = timezone.now()
    due = (
        Notice.objects.filter(due_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("due_at")
        .values_list("pk", flat=True)[:limit]
    )
    ids = list(due)
    for notice_id in ids:
        enqueue_delivery(notice_id)
    return len(ids)
