"""Each model's quota and capacity state, kept in the database so every
dispatcher on every machine paces against the same numbers.

`ClaimPlan` is used inside a claim's transaction: it locks the model rows,
says how many of a model's due jobs may go now, and advances the pacing
clocks by what was taken. `record_outcomes` folds finished calls into the
rows (503 storms, 429 step-downs). `weather` is what the overview shows. The
arithmetic itself is pure, in jobs/engine/pacing.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Length
from django.utils import timezone

from jobs.catalog import FLEX_MODELS
from jobs.engine import pacing, pricing
from jobs.models import Attempt, Job, ModelLimit, State

PACE_FIELDS = (
    "rate_factor",
    "rate_factor_at",
    "storm_factor",
    "storm_factor_at",
    "recent_at",
    "recent_calls",
    "recent_503",
    "recent_429",
)


def limits_of(row: ModelLimit) -> pacing.Limits:
    """The row's limits, with the environment's defaults where it has none."""

    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    return pacing.Limits(
        rpm=pick(row.rpm_limit, settings.FLEX_RPM_LIMIT),
        tpm=pick(row.tpm_limit, settings.FLEX_TPM_LIMIT),
        rpd=pick(row.rpd_limit, settings.FLEX_RPD_LIMIT),
    )


def pace_of(row: ModelLimit) -> pacing.Pace:
    return pacing.Pace(**{name: getattr(row, name) for name in PACE_FIELDS})


def _store_pace(row: ModelLimit, pace: pacing.Pace) -> None:
    for name in PACE_FIELDS:
        setattr(row, name, getattr(pace, name))


def ensure_rows(models: Iterable[str] = FLEX_MODELS) -> None:
    existing = set(ModelLimit.objects.values_list("model", flat=True))
    ModelLimit.objects.bulk_create(
        [ModelLimit(model=model) for model in set(models) - existing], ignore_conflicts=True
    )


def _locked_rows(models: Iterable[str] | None = None) -> dict[str, ModelLimit]:
    rows = ModelLimit.objects.all()
    if models is not None:
        rows = rows.filter(model__in=list(models))
    if connection.features.has_select_for_update:
        rows = rows.select_for_update()
    return {row.model: row for row in rows.order_by("model")}


def fallback_rpm() -> float:
    """What the dispatchers could launch per minute at most, to throttle from
    when a model has no configured RPM limit."""
    return settings.FLEX_LAUNCH_RATE * 60.0 * settings.FLEX_DISPATCHERS


def full_concurrency() -> int:
    return settings.FLEX_MAX_IN_FLIGHT * settings.FLEX_DISPATCHERS


def token_estimate(chars: int) -> int:
    """Input tokens of a prompt before it is sent: about four characters each."""
    return max(1, pricing.tokens_for_chars(chars))  # every request counts


# --- Claiming -----------------------------------------------------------------------------
class _ModelPlan:
    def __init__(self, row: ModelLimit, now: datetime, in_flight: int | None) -> None:
        self.row = row
        self.now = now
        self.limits = limits_of(row)
        self.pace = pacing.observe(pace_of(row), now)
        rpm = pacing.effective_rpm(self.limits, self.pace, now, fallback_rpm())
        self.requests = pacing.Bucket(rpm, row.next_request_at) if rpm else None
        factor = pacing.rate_factor_now(self.pace, now) * self.pace.storm_factor
        tpm = self.limits.tpm * factor
        self.tokens = pacing.Bucket(tpm, row.next_token_at) if tpm else None
        self.request_room = math.inf if self.requests is None else self.requests.available(now)
        self.token_room = math.inf if self.tokens is None else self.tokens.available(now)
        self.token_idle = self.tokens is None or self.tokens.wait(now) == 0
        self.day_used = pacing.day_used(row.day, row.day_requests, now)
        cap = pacing.concurrency_cap(self.pace, full_concurrency())
        self.flight_room = math.inf if cap is None else max(0, cap - (in_flight or 0))
        self.taken = 0
        self.taken_tokens = 0

    @property
    def day_room(self) -> float:
        return self.limits.rpd - self.day_used - self.taken if self.limits.rpd else math.inf

    def blocked(self) -> bool:
        return min(self.day_room, self.flight_room - self.taken, self.request_room - self.taken) < 1

    def admit(self, tokens: int) -> bool:
        if self.blocked():
            return False
        over = self.tokens is not None and self.taken_tokens + tokens > self.token_room
        # A prompt bigger than the burst goes alone, when the bucket is idle.
        if over and not (self.taken == 0 and self.token_idle):
            return False
        self.taken += 1
        self.taken_tokens += tokens
        return True

    def save(self) -> None:
        row, now = self.row, self.now
        stored = pace_of(row)
        steered = (self.pace.rate_factor, self.pace.storm_factor) != (
            stored.rate_factor,
            stored.storm_factor,
        )
        if not (self.taken or steered):
            return  # decay alone need not be written: it is recomputed from recent_at
        changed = list(PACE_FIELDS)
        _store_pace(row, self.pace)
        if self.taken:
            if self.requests is not None:
                row.next_request_at = self.requests.take(self.taken, now).next_at
                changed.append("next_request_at")
            if self.tokens is not None:
                row.next_token_at = self.tokens.take(self.taken_tokens, now).next_at
                changed.append("next_token_at")
            row.day = pacing.pacific_day(now)
            row.day_requests = self.day_used + self.taken
            changed += ["day", "day_requests"]
        row.save(update_fields=[*changed, "updated_at"])


class ClaimPlan:
    """The pacing side of one claim; use it inside the claim's transaction."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._plans: dict[str, _ModelPlan] = {}
        rows = _locked_rows()
        storming = [model for model, row in rows.items() if row.storm_factor < 1.0]
        flying = _in_flight_by_model(storming) if storming else {}
        for model, row in rows.items():
            self._plans[model] = _ModelPlan(row, now, flying.get(model, 0))

    def blocked_models(self) -> list[str]:
        return [model for model, plan in self._plans.items() if plan.blocked()]

    def admit(self, model: str, chars: int) -> bool:
        plan = self._plans.get(model)
        if plan is None:
            ensure_rows([model])
            row = _locked_rows([model])[model]
            plan = self._plans[model] = _ModelPlan(row, self.now, 0)
        return plan.admit(token_estimate(chars))

    def save(self) -> None:
        for plan in self._plans.values():
            plan.save()


def prompt_chars(job: str = ""):
    """The SQL expression for a job's prompt length, system instruction
    included, and its images and documents as the characters their tokens are
    worth; `job` is the path to the job from another model ("job__")."""
    media = F(f"{job}media_tokens") * pricing.CHARS_PER_TOKEN
    return Length(f"{job}input_text") + Length(f"{job}system_instruction") + media


def _in_flight_by_model(models: list[str]) -> dict[str, int]:
    rows = (
        Job.objects.filter(state=State.RUNNING, model__in=models)
        .values("model")
        .annotate(n=Count("*"))
    )
    return {row["model"]: row["n"] for row in rows}


def day_capped_models(now: datetime | None = None) -> list[str]:
    """Models whose daily cap is spent: their work waits for midnight Pacific."""
    now = now or timezone.now()
    capped = []
    for row in ModelLimit.objects.all():
        limits = limits_of(row)
        if limits.rpd and pacing.day_used(row.day, row.day_requests, now) >= limits.rpd:
            capped.append(row.model)
    return capped


# --- What came back ----------------------------------------------------------------------
@dataclass
class Tally:
    calls: int = 0
    n503: int = 0
    n429: int = 0


def record_outcomes(tallies: dict[str, Tally], now: datetime | None = None) -> None:
    """Fold a batch of finished calls into each model's recent counts and factors."""
    if not tallies:
        return
    now = now or timezone.now()
    with transaction.atomic():
        rows = _locked_rows(tallies)
        missing = set(tallies) - set(rows)
        if missing:
            ensure_rows(missing)
            rows |= _locked_rows(missing)
        for model, tally in tallies.items():
            row = rows[model]
            pace = pacing.observe(
                pace_of(row), now, calls=tally.calls, n503=tally.n503, n429=tally.n429
            )
            _store_pace(row, pace)
            row.save(update_fields=[*PACE_FIELDS, "updated_at"])


# --- The overview's "capacity weather" -------------------------------------------------
@dataclass(frozen=True)
class Weather:
    model: str
    state: str  # normal, throttled, paused
    reason: str
    rpm_limit: int
    rpm_pacing: float  # what it paces to now (0: no limit)
    requests_last_minute: int
    http_429_last_minute: int  # attempts started in the last minute that were answered 429
    tpm_limit: int
    tokens_last_minute: int
    rpd_limit: int
    requests_today: int
    resumes_at: datetime | None
    in_flight: int
    concurrency_cap: int | None
    share_503: float
    share_429: float
    recent_calls: float

    @property
    def rpm_lowered(self) -> bool:
        """It paces below its RPM limit (or, with none, below what the dispatchers could send)."""
        return bool(self.rpm_pacing) and (not self.rpm_limit or self.rpm_pacing < self.rpm_limit)

    @property
    def limits(self) -> pacing.Limits:
        return pacing.Limits(rpm=self.rpm_limit, tpm=self.tpm_limit, rpd=self.rpd_limit)

    @property
    def label(self) -> str:
        return pacing.state_label(self.state, self.limits)

    @property
    def headline(self) -> str:
        """What slowed a model without a per-minute limit, in a few words."""
        if self.concurrency_cap is not None:
            return f"{self.model} is slowed by a 503 storm"
        return f"{self.model} is slowed after 429s"

    @property
    def rpm_use(self) -> float | None:
        return self.requests_last_minute / self.rpm_limit if self.rpm_limit else None

    @property
    def tpm_use(self) -> float | None:
        return self.tokens_last_minute / self.tpm_limit if self.tpm_limit else None

    @property
    def rpd_use(self) -> float | None:
        return self.requests_today / self.rpd_limit if self.rpd_limit else None


def weather(now: datetime | None = None, models: Iterable[str] | None = None) -> list[Weather]:
    """Per model with anything to report (limits set, recent calls, work in
    flight or a lowered factor): limits, usage, in flight, 503/429 shares and
    the pacing state with its reason. `models` narrows it (a job's page asks
    about one)."""
    now = now or timezone.now()
    attempts = Attempt.objects.filter(started_at__gte=now - timedelta(seconds=60))
    running = Job.objects.filter(state=State.RUNNING)
    rows = ModelLimit.objects.order_by("model")
    if models is not None:
        models = list(models)
        attempts = attempts.filter(model__in=models)
        running = running.filter(model__in=models)
        rows = rows.filter(model__in=models)
    last_minute = _last_minute(attempts)
    # COUNT(*), not of the id, so PostgreSQL counts from the index alone.
    flying = dict(running.values("model").annotate(n=Count("*")).values_list("model", "n"))
    report = []
    for row in rows:
        limits = limits_of(row)
        pace = pacing.observe(pace_of(row), now)
        used_today = pacing.day_used(row.day, row.day_requests, now)
        requests, chars, n429 = last_minute.get(row.model, (0, 0, 0))
        in_flight = flying.get(row.model, 0)
        interesting = (
            limits != pacing.Limits()
            or requests
            or in_flight
            or pace.recent_calls >= 1
            or pace.storm_factor < 1
            or pacing.rate_factor_now(pace, now) < 1
        )
        if not interesting:
            continue
        rpm_pacing = pacing.effective_rpm(limits, pace, now, fallback_rpm())
        state, reason = _describe(limits, pace, now, used_today, n429)
        report.append(
            Weather(
                model=row.model,
                state=state,
                reason=reason,
                rpm_limit=limits.rpm,
                rpm_pacing=rpm_pacing,
                requests_last_minute=requests,
                http_429_last_minute=n429,
                tpm_limit=limits.tpm,
                tokens_last_minute=pricing.tokens_for_chars(chars),
                rpd_limit=limits.rpd,
                requests_today=used_today,
                resumes_at=pacing.next_pacific_midnight(now) if state == "paused" else None,
                in_flight=in_flight,
                concurrency_cap=pacing.concurrency_cap(pace, full_concurrency()),
                share_503=pace.share_503(),
                share_429=pace.share_429(),
                recent_calls=pace.recent_calls,
            )
        )
    return report


def pacing_state(row: ModelLimit, now: datetime | None = None) -> tuple[str, str]:
    """One model's pacing state and its reason, worded as in the weather (the admin's column)."""
    now = now or timezone.now()
    attempts = Attempt.objects.filter(started_at__gte=now - timedelta(seconds=60), model=row.model)
    _, _, n429 = _last_minute(attempts).get(row.model, (0, 0, 0))
    used_today = pacing.day_used(row.day, row.day_requests, now)
    return _describe(limits_of(row), pacing.observe(pace_of(row), now), now, used_today, n429)


def _describe(
    limits: pacing.Limits, pace: pacing.Pace, now: datetime, used_today: int, n429: int
) -> tuple[str, str]:
    return pacing.describe(
        limits,
        pace,
        now,
        day_requests=used_today,
        http_429_last_minute=n429,
        rpm_pacing=pacing.effective_rpm(limits, pace, now, fallback_rpm()),
    )


def _last_minute(attempts) -> dict[str, tuple[int, int, int]]:
    """Per model: the attempts, their prompt characters and their 429s, read
    from the attempts alone (each keeps its model and prompt length; without
    order_by() the attempts' default order would still join their jobs)."""
    rows = (
        attempts.order_by()
        .values("model")
        .annotate(
            n=Count("*"),
            chars=Sum("prompt_chars"),
            n429=Count("http_status", filter=Q(http_status=429)),
        )
    )
    return {row["model"]: (row["n"], row["chars"] or 0, row["n429"]) for row in rows}


def reset_learning(model: str) -> None:
    """Forget a model's storm and 429 state (an operator's "start afresh")."""
    ModelLimit.objects.filter(model=model).update(
        **{name: getattr(pacing.Pace(), name) for name in PACE_FIELDS}
    )
