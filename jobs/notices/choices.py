"""A person's notification choices: their channels and defaults (the account
page), what a new run asks to be told (the upload preview, the API), the
webhook secret, and the "send test" button."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from jobs.engine import notices as outbox
from jobs.models import Delivery, NoticeKind, NoticeSettings
from jobs.notices import addresses, delivery


@dataclass(frozen=True)
class RunNotify:
    """What one run asks to be told, as Run's notify_* columns."""

    finished: bool = False
    failed_jobs: int | None = None
    failed_percent: int | None = None
    budget: bool = False
    paused: bool = False

    @classmethod
    def defaults_for(cls, user) -> RunNotify:
        prefs = NoticeSettings.objects.filter(user=user).first()
        if prefs is None:
            return cls()
        return cls(
            finished=prefs.on_finished,
            failed_jobs=prefs.on_failed_jobs,
            failed_percent=prefs.on_failed_percent,
            budget=prefs.on_budget,
            paused=prefs.on_paused,
        )

    @classmethod
    def chosen(
        cls,
        owner,
        *,
        finished: bool | None = None,
        failures: str | None = None,
        budget: bool | None = None,
        paused: bool | None = None,
    ) -> RunNotify:
        """What a new run asks to be told: the choices given over its owner's
        defaults (None: the default). `failures` is a threshold in words ("10 or
        5%", "" for never); ValueError says what is wrong with it."""
        changes: dict = {
            name: value
            for name, value in (("finished", finished), ("budget", budget), ("paused", paused))
            if value is not None
        }
        if failures is not None:
            changes["failed_jobs"], changes["failed_percent"] = threshold_parse(failures)
        return replace(cls.defaults_for(owner), **changes)

    def run_fields(self) -> dict:
        return {
            "notify_finished": self.finished,
            "notify_failed_jobs": self.failed_jobs,
            "notify_failed_percent": self.failed_percent,
            "notify_budget": self.budget,
            "notify_paused": self.paused,
        }

    @property
    def threshold(self) -> str:
        return threshold_text(self.failed_jobs, self.failed_percent)


_PART = re.compile(r"^(\d{1,9})\s*(%?)$")


def threshold_parse(text: str) -> tuple[int | None, int | None]:
    """ "10" (jobs), "5%" (of the run's jobs), "10 or 5%" (whichever comes
    first), or "" (none) into (jobs, percent); ValueError says what is wrong."""
    jobs = percent = None
    for part in re.split(r"\s*(?:,|\bor\b)\s*", (text or "").strip().lower()):
        if not part:
            continue
        match = _PART.match(part)
        if not match:
            raise ValueError(
                f"“{part}” is not a threshold: write a number of jobs (10), "
                "a share of the run (5%), or both (10 or 5%)."
            )
        number = int(match[1])
        if match[2]:
            if not 1 <= number <= 100 or percent is not None:
                raise ValueError("A share is one number from 1% to 100%.")
            percent = number
        else:
            if number < 1 or jobs is not None:
                raise ValueError("A number of failed jobs is one whole number, at least 1.")
            jobs = number
    return jobs, percent


def threshold_text(jobs: int | None, percent: int | None) -> str:
    """What threshold_parse reads back: "10 or 5%", "10", "5%" or ""."""
    parts = [str(jobs)] if jobs is not None else []
    if percent is not None:
        parts.append(f"{percent}%")
    return " or ".join(parts)


# --- The account's settings ------------------------------------------------------
def notice_settings_for(user) -> NoticeSettings:
    """The person's settings, or the defaults (unsaved) if they never chose."""
    prefs = NoticeSettings.objects.filter(user=user).select_related("user").first()
    return prefs or NoticeSettings(user=user)


def notice_settings_save(
    *,
    user,
    email_enabled: bool,
    email: str,
    webhook_url: str,
    defaults: RunNotify,
) -> NoticeSettings:
    """Save the channels and defaults; a webhook URL that may not be called
    raises ValidationError naming why, and nothing is saved. A first URL gets
    a new signing secret."""
    webhook_url = webhook_url.strip()
    if webhook_url and (problem := addresses.url_problem(webhook_url)):
        raise ValidationError({"webhook_url": problem})
    with transaction.atomic():
        prefs, _ = NoticeSettings.objects.select_for_update().get_or_create(user=user)
        prefs.email_enabled = email_enabled
        prefs.email = email.strip()
        prefs.webhook_url = webhook_url
        if webhook_url and not prefs.webhook_secret:
            prefs.webhook_secret = new_secret()
        prefs.on_finished = defaults.finished
        prefs.on_failed_jobs = defaults.failed_jobs
        prefs.on_failed_percent = defaults.failed_percent
        prefs.on_budget = defaults.budget
        prefs.on_paused = defaults.paused
        prefs.save()
    return prefs


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def webhook_secret_regenerate(*, user) -> str:
    """A new signing secret; the old one stops working at once."""
    with transaction.atomic():
        prefs, _ = NoticeSettings.objects.select_for_update().get_or_create(user=user)
        prefs.webhook_secret = new_secret()
        prefs.save(update_fields=["webhook_secret", "updated_at"])
    return prefs.webhook_secret


def notice_send_test(*, user) -> list[Delivery]:
    """Send a test notice now, by each channel that is set up, once, and
    return its deliveries (the page shows what came of each)."""
    now = timezone.now()
    with transaction.atomic():
        notice = outbox.note(
            kind=NoticeKind.TEST,
            user=user,
            key=f"test:{now.isoformat()}:{secrets.token_hex(4)}",
            subject="A test notification from FlexDash",
            detail={"test": True},
        )
    if notice is None or notice.due_at is None:
        return []
    delivery.notice_deliver(notice_id=notice.pk)
    return list(notice.deliveries.order_by("channel"))


def recent_deliveries(user, limit: int = 20):
    return Delivery.objects.filter(user=user).select_related("notice")[:limit]
