"""Budgets that never overspend: every try's worst-case cost is reserved
against each budget that covers it before it is sent, inside the claim's
transaction, and replaced by what Google billed when its answer is recorded.

Three budgets can cover a try: the account's for the month (UTC), its owner's
for the month, and its run's. Each has a BudgetUse row (spent, reserved). A
try is claimed only if spent + reserved + its worst case fits under every
limit, and every change of those rows is made holding the AccountBudget row
(`hold`): the claims of every dispatcher on every machine and the recording
of answers take their turns, so the total can never pass a limit. The
worst-case arithmetic is pure, in jobs/engine/spending.py.

A budget that refuses work keeps the smallest worst case it refused
(`refused_usd`): its work is left out of the claim's candidates until that
much is left again, so it costs nothing tick after tick and does not hold up
other people's work behind it. When what is already spent leaves no room for
that worst case, the budget has stopped its work: `budget_stopped` records it
once (blocked_since) until the limit changes or the month turns.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from jobs.catalog import PUBLISHED_OUTPUT_LIMITS
from jobs.engine import backoff, notices, pricing, spending
from jobs.models import (
    WAITING_STATES,
    AccountBudget,
    Attempt,
    BudgetScope,
    BudgetUse,
    Job,
    ModelPrice,
    Outcome,
    Run,
    State,
    UserBudget,
)

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
# The largest budget a form, the API or the command accepts, in USD.
MAX_BUDGET_USD = Decimal("1000000")


# --- Names and months -----------------------------------------------------------------
def month_of(moment: datetime) -> date:
    """The calendar month (UTC) a moment falls in, as its first day."""
    return moment.astimezone(UTC).date().replace(day=1)


def next_month(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1)


def account_key(month: date) -> str:
    return f"account:{month:%Y-%m}"


def user_key(user_id: int, month: date) -> str:
    return f"user:{user_id}:{month:%Y-%m}"


def run_key(run_id: int) -> str:
    return f"run:{run_id}"


def keys_covering(*, owner_id: int, run_id: int | None, month: date) -> list[str]:
    keys = [account_key(month), user_key(owner_id, month)]
    return [*keys, run_key(run_id)] if run_id is not None else keys


def budget_error(value) -> str | None:
    """What is wrong with a budget someone typed (None: it is fine)."""
    try:
        amount = Decimal(str(value).strip().removeprefix("$"))
    except (InvalidOperation, ValueError):
        return f"The budget must be an amount in USD such as 12.50, not {str(value)!r}."
    if not amount.is_finite() or amount <= 0:
        return "The budget must be more than $0."
    if amount > MAX_BUDGET_USD:
        return f"The budget must be at most {spending.dollars(MAX_BUDGET_USD)}."
    if amount != amount.quantize(Decimal("0.01")):
        return "The budget is in dollars and cents: at most two decimal places."
    return None


def parse_budget(value) -> Decimal | None:
    """A typed budget as an amount; empty is no budget. Raises ValueError with the words."""
    if value is None or str(value).strip() == "":
        return None
    if problem := budget_error(value):
        raise ValueError(problem)
    return Decimal(str(value).strip().removeprefix("$"))


# --- The lock every change of the budget rows takes -----------------------------------
def hold() -> AccountBudget:
    """Lock the AccountBudget row (creating it) for this transaction: whoever
    changes what is spent or reserved holds it first, so claims and recordings
    take their turns and never deadlock. On SQLite the write lock taken at
    BEGIN IMMEDIATE does the same."""
    AccountBudget.objects.get_or_create(pk=1)
    rows = AccountBudget.objects.filter(pk=1)
    if connection.features.has_select_for_update:
        rows = rows.select_for_update()
    return rows.get()


def _ensure_rows(keys: Iterable[str]) -> None:
    """Create the month rows missing among `keys` (run rows come with their limit)."""
    rows = []
    for key in keys:
        scope, *rest = key.split(":")
        if scope == BudgetScope.RUN:
            continue
        month = date.fromisoformat(f"{rest[-1]}-01")
        if scope == BudgetScope.ACCOUNT:
            rows.append(BudgetUse(key=key, scope=scope, month=month))
        elif scope == BudgetScope.USER:
            rows.append(BudgetUse(key=key, scope=scope, month=month, user_id=int(rest[0])))
    BudgetUse.objects.bulk_create(rows, ignore_conflicts=True)


def _apply(deltas: dict[str, list[Decimal]]) -> None:
    """One UPDATE per budget row: [reserved change, spent change]."""
    for key, (reserved, spent) in sorted(deltas.items()):
        if reserved or spent:
            BudgetUse.objects.filter(key=key).update(
                reserved_usd=F("reserved_usd") + reserved,
                spent_usd=F("spent_usd") + spent,
                updated_at=timezone.now(),
            )


# --- Prices and caps --------------------------------------------------------------------
@dataclass(frozen=True)
class ModelTerms:
    rates: spending.Rates | None  # None: the model has no price, so nothing is reserved
    output_cap: int


def model_terms(models: Iterable[str]) -> dict[str, ModelTerms]:
    models = set(models)
    rows = {row.model: row for row in ModelPrice.objects.filter(model__in=models)}
    terms = {}
    for model in models:
        row = rows.get(model) or pricing.published_price(model)
        cap = (row and row.max_output_tokens) or PUBLISHED_OUTPUT_LIMITS.get(model)
        rates = None
        if row is not None:
            rates = spending.Rates(
                input_per_million=row.input_per_million,
                output_per_million=row.output_per_million,
                long_input_per_million=row.long_input_per_million,
                long_output_per_million=row.long_output_per_million,
            )
        terms[model] = ModelTerms(rates, cap or settings.FLEX_BUDGET_DEFAULT_OUTPUT_TOKENS)
    return terms


def reservation(terms: ModelTerms, reserve: spending.Reserve, tier: str) -> Decimal:
    """The worst case of one try of `reserve` on `tier`."""
    if terms.rates is None:
        return ZERO
    return spending.worst_case_usd(
        terms.rates,
        input_tokens=reserve.input_tokens,
        output_tokens=reserve.output_with(terms.output_cap),
        multiplier=pricing.TIER_MULTIPLIER.get(tier, Decimal(2)),
    )


def _run_with_waiting_work() -> Q:
    """A run's budget row whose run still has work waiting: the refusals of
    finished runs are no one's business (and would pile up)."""
    waiting = Job.objects.filter(run_id=OuterRef("run_id"), state__in=WAITING_STATES)
    return Q(scope=BudgetScope.RUN) & Q(Exists(waiting))


# --- Claiming ---------------------------------------------------------------------------
# The job columns a claim reads to reserve for a candidate, after id, state, model, chars.
CANDIDATE_FIELDS = (
    "owner_id",
    "run_id",
    "tier_requested",
    "fallback_standard",
    "attempts",
    "refunded_attempts",
    "max_attempts",
    "max_output_tokens",
    "reserve_input_tokens",
    "reserve_output_tokens",
    "reserve_model_caps",
)


@dataclass
class _Row:
    """A budget row during one claim."""

    use: BudgetUse
    limit: Decimal | None
    subject: str
    taken: Decimal = ZERO
    refused: Decimal | None = None
    stopped: bool = False

    @property
    def budget(self) -> spending.Budget:
        return spending.Budget(self.limit, self.use.spent_usd, self.use.reserved_usd + self.taken)

    def holds_back(self) -> bool:
        """Its work is left out of the candidates: a worst case it refused still does not fit."""
        refused = self.refused if self.refused is not None else self.use.refused_usd
        return refused is not None and not self.budget.fits(refused)


@dataclass
class _Admitted:
    keys: list[str]
    reserve: spending.Reserve
    model: str


@dataclass
class ClaimBudgets:
    """The budget side of one claim; use it inside the claim's transaction,
    after the model rows are locked."""

    now: datetime
    month: date = field(init=False)
    rows: dict[str, _Row] = field(default_factory=dict)
    terms: dict[str, ModelTerms] = field(default_factory=dict)
    admitted: dict[int, _Admitted] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)  # runs without a budget
    # A reclaimed job's lost try: its reservation, released when it is taken again.
    credit: dict[int, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.month = month_of(self.now)
        account = hold()
        key = account_key(self.month)
        # The rows that refused work, to leave their work out of the candidates.
        held = BudgetUse.objects.filter(refused_usd__isnull=False).filter(
            Q(month=self.month) | _run_with_waiting_work()
        )
        self._load(BudgetUse.objects.filter(Q(key=key) | Q(pk__in=held.values("pk"))), account)
        if key not in self.rows:  # the month's first claim
            _ensure_rows([key])
            self._load(BudgetUse.objects.filter(key=key), account)

    def _load(self, uses, account: AccountBudget | None = None) -> None:
        uses = list(uses.select_related("run").exclude(key__in=list(self.rows)))
        user_ids = [use.user_id for use in uses if use.scope == BudgetScope.USER]
        limits = dict(
            UserBudget.objects.filter(user_id__in=user_ids).values_list(
                "user_id", "monthly_limit_usd"
            )
        )
        names = dict(
            get_user_model()
            .objects.filter(pk__in=user_ids)
            .values_list("pk", get_user_model().USERNAME_FIELD)
        )
        for use in uses:
            if use.scope == BudgetScope.ACCOUNT:
                limit = (account or AccountBudget.objects.get(pk=1)).monthly_limit_usd
            elif use.scope == BudgetScope.USER:
                limit = limits.get(use.user_id)
            else:
                limit = use.run.budget_usd
            self.rows[use.key] = _Row(use, limit, subject_of(use, names.get(use.user_id, "")))

    def account_holds_back(self) -> bool:
        return self.rows[account_key(self.month)].holds_back()

    def left_out(self) -> tuple[set[int], set[int]]:
        """(owners, runs) whose budget holds their work back: not candidates."""
        owners, runs = set(), set()
        for row in self.rows.values():
            if row.holds_back():
                if row.use.scope == BudgetScope.USER:
                    owners.add(row.use.user_id)
                elif row.use.scope == BudgetScope.RUN:
                    runs.add(row.use.run_id)
        return owners, runs

    def prepare(self, candidates: list[dict]) -> None:
        """Lock the rows of the candidates' owners (this month) and runs."""
        keys = set()
        for job in candidates:
            keys.update(
                keys_covering(owner_id=job["owner_id"], run_id=job["run_id"], month=self.month)
            )
        missing = keys - set(self.rows) - self.absent
        if missing:
            self._load(self._locked(missing))
            if new := missing - set(self.rows):
                _ensure_rows(new)  # only month rows are made; a run without a budget has none
                self._load(self._locked(new))
            self.absent |= missing - set(self.rows)
        reclaimed = [job["id"] for job in candidates if job["state"] == State.RUNNING]
        if reclaimed:
            lost = Attempt.objects.filter(job_id__in=reclaimed, outcome=Outcome.IN_FLIGHT)
            for job_id, reserved in lost.values_list("job_id", "reserved_usd"):
                self.credit[job_id] = self.credit.get(job_id, ZERO) + (reserved or ZERO)
        new_models = {job["model"] for job in candidates} - set(self.terms)
        if new_models:
            self.terms.update(model_terms(new_models))

    @staticmethod
    def _locked(keys: set[str]):
        uses = BudgetUse.objects.filter(key__in=sorted(keys)).order_by("key")
        if connection.features.has_select_for_update:
            uses = uses.select_for_update(of=("self",))
        return uses

    def worst_case(self, job: dict) -> Decimal:
        """The most this candidate's try may cost, at the tier its next try
        may be sent at (a reclaimed try not refunded is the later attempt)."""
        tier = backoff.tier_for_attempt(
            requested=job["tier_requested"],
            fallback_standard=job["fallback_standard"],
            attempt_number=job["attempts"] + 1 - job["refunded_attempts"],
            max_attempts=job["max_attempts"],
        )
        return reservation(self.terms[job["model"]], reserve_of(job), tier)

    def fits(self, job: dict) -> bool:
        """Whether the candidate's worst case fits every budget covering it;
        a budget that refuses it remembers the smallest worst case it refused."""
        amount = self.worst_case(job) - self.credit.get(job["id"], ZERO)
        refusing = [row for row in self._covering(job) if not row.budget.fits(amount)]
        for row in refusing:
            row.refused = amount if row.refused is None else min(row.refused, amount)
            row.stopped = row.stopped or row.budget.stopped_by(amount)
        return not refusing

    def take(self, job: dict) -> None:
        amount = self.worst_case(job) - self.credit.get(job["id"], ZERO)
        rows = self._covering(job)
        for row in rows:
            row.taken += amount
        self.admitted[job["id"]] = _Admitted(
            [row.use.key for row in rows], reserve_of(job), job["model"]
        )

    def _covering(self, job: dict) -> list[_Row]:
        keys = keys_covering(owner_id=job["owner_id"], run_id=job["run_id"], month=self.month)
        return [self.rows[key] for key in keys if key in self.rows]

    def reserve_for(self, job_id: int, tier: str) -> Decimal:
        """The reservation of a claimed job's try at the tier it is sent at."""
        admitted = self.admitted[job_id]
        return reservation(self.terms[admitted.model], admitted.reserve, tier)

    def save(self, reserved: dict[int, Decimal]) -> None:
        """Add the tries' reservations (job id -> amount) to their budgets, one
        UPDATE per row, and remember what each budget refused."""
        deltas: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
        for job_id, amount in reserved.items():
            for key in self.admitted[job_id].keys:
                deltas[key][0] += amount
        _apply(deltas)
        for row in self.rows.values():
            if row.refused is None:
                continue
            BudgetUse.objects.filter(pk=row.use.pk).update(refused_usd=row.refused)
            if row.stopped and row.use.blocked_since is None:
                budget_stopped(use=row.use, limit=row.limit, reason=reached(row), now=self.now)


def reserve_of(job: dict) -> spending.Reserve:
    return spending.stored_reserve(
        input_tokens=job["reserve_input_tokens"],
        output_tokens=job["reserve_output_tokens"],
        model_caps=job["reserve_model_caps"],
        prompt_chars=job["chars"] or 0,
        max_output_tokens=job["max_output_tokens"],
    )


def budget_stopped(*, use: BudgetUse, limit: Decimal | None, reason: str, now: datetime) -> bool:
    """The one place a budget is recorded as having stopped work: from not
    stopped to stopped, once, in the claim's transaction (blocked_since stays
    until the limit changes or the month turns). What spent alone leaves
    cannot fit the next try's worst case, so its work waits for a person.
    `stop_name` names the budget with its limit, for telling people once per
    limit reached; `reason` is the words the pages show."""
    changed = BudgetUse.objects.filter(pk=use.pk, blocked_since__isnull=True).update(
        blocked_since=now, blocked_reason=reason
    )
    if changed:
        logger.info("Budget %s stopped work: %s", stop_name(use, limit), reason)
        _tell_stopped(use, stop_name(use, limit), reason)
    return bool(changed)


def _tell_stopped(use: BudgetUse, name: str, reason: str) -> None:
    """Who is told, if they asked (jobs/engine/notices.py writes the notice in
    this transaction): a run's owner, by the run's choice; a researcher, by
    their account's; for the account's budget, which no one researcher
    sets, the staff who asked to be told of budgets."""
    if use.scope == BudgetScope.RUN:
        run = use.run
        notices.note_budget_stop(user=run.owner_id, budget=name, reason=reason, run=run)
    elif use.scope == BudgetScope.USER:
        notices.note_budget_stop(user=use.user_id, budget=name, reason=reason)
    else:
        staff = get_user_model().objects.filter(is_staff=True, is_active=True)
        for user_id in staff.values_list("pk", flat=True):
            notices.note_budget_stop(user=user_id, budget=name, reason=reason)


def stop_name(use: BudgetUse, limit: Decimal | None) -> str:
    """ "run:12:12.50", "user:7:2026-12:100.00", "account:2026-12:500.00"."""
    return f"{use.key}:{limit}"


# --- Words -----------------------------------------------------------------------------
def subject_of(use: BudgetUse, username: str = "") -> str:
    if use.scope == BudgetScope.ACCOUNT:
        return "account budget"
    if use.scope == BudgetScope.USER:
        return f"monthly budget for {username or use.user}"
    return f"budget for run “{use.run.name}”"


def reached(row: _Row) -> str:
    return spending.reached_words(row.subject, row.budget)


# --- Recording --------------------------------------------------------------------------
@dataclass
class _Open:
    reserved: Decimal
    keys: list[str]
    in_flight: bool


class Settlement:
    """The budget side of recording finished tries, in the recording's
    transaction: each try's reservation is released and what Google billed
    (None: nothing) is charged in its place, one UPDATE per budget row."""

    def __init__(self, attempt_ids: Iterable[int]) -> None:
        hold()
        rows = Attempt.objects.filter(pk__in=list(attempt_ids)).values_list(
            "pk", "outcome", "reserved_usd", "budget_month", "job__owner_id", "job__run_id"
        )
        self.tries = {
            pk: _Open(
                reserved or ZERO,
                keys_covering(owner_id=owner, run_id=run, month=month) if month else [],
                outcome == Outcome.IN_FLIGHT,
            )
            for pk, outcome, reserved, month, owner, run in rows
        }
        self.deltas: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])

    def settle(self, attempt_id: int, billed: Decimal | None) -> None:
        """Once per try. A try already released (lost with its lease) whose
        answer came after all is still charged: Google billed it."""
        found = self.tries.pop(attempt_id, None)
        if found is None:
            return
        if billed and found.in_flight and billed > found.reserved:
            # The worst case was not one: Google billed a flex try at the
            # standard price (its spec says it never upgrades one), or a count
            # of media tokens was wrong. Said where an operator looks.
            logger.warning(
                "Try %s was billed $%s, more than the $%s reserved for it",
                attempt_id,
                billed,
                found.reserved,
            )
        for key in found.keys:
            if found.in_flight:
                self.deltas[key][0] -= found.reserved
            if billed:
                self.deltas[key][1] += billed

    def save(self) -> None:
        _apply(self.deltas)
        self.deltas.clear()


def release_attempts(attempts) -> None:
    """Release the reservations of these tries still in flight; call holding
    the budgets (`hold`), before their outcome changes (lost, deleted)."""
    rows = attempts.filter(outcome=Outcome.IN_FLIGHT, reserved_usd__gt=0).values_list(
        "reserved_usd", "budget_month", "job__owner_id", "job__run_id"
    )
    deltas: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for reserved, month, owner, run in rows:
        for key in keys_covering(owner_id=owner, run_id=run, month=month):
            deltas[key][0] -= reserved
    _apply(deltas)


def attempts_release_held(attempts) -> None:
    """Release these tries' reservations, holding the budgets (before deleting them)."""
    with transaction.atomic():
        hold()
        release_attempts(attempts)


def reservations_sweep(*, now: datetime | None = None) -> int:
    """Release tries still in flight long after any answer could have come
    whose job no dispatcher will take again (cancelled at its deadline, say,
    with its worker gone); the claim releases those of reclaimed jobs."""
    now = now or timezone.now()
    too_old = now - timedelta(
        seconds=settings.FLEX_REQUEST_TIMEOUT + 2 * settings.FLEX_LEASE_SECONDS
    )
    with transaction.atomic():
        hold()
        stale = Attempt.objects.filter(outcome=Outcome.IN_FLIGHT, started_at__lt=too_old).exclude(
            job__state=State.RUNNING
        )
        ids = list(stale.values_list("pk", flat=True))
        if not ids:
            return 0
        release_attempts(Attempt.objects.filter(pk__in=ids))
        Attempt.objects.filter(pk__in=ids).update(
            outcome=Outcome.LOST, finished_at=now, error_message="No answer came back for this try."
        )
    return len(ids)


@dataclass(frozen=True)
class ReservedDifference:
    key: str
    stored: Decimal
    held: Decimal


def reservations_recount(*, fix: bool) -> list[ReservedDifference]:
    """Compare each budget's reserved amount with what its tries in flight hold,
    holding the budgets; with `fix`, set it to that. Every path that ends a try
    releases it in the same transaction, but a try deleted under its request
    (its owner or job deleted in the admin) takes its reservation with it: the
    minute Schedule heals that, so a deletion never leaves a budget short."""
    with transaction.atomic():
        hold()
        held = open_reservations()
        uses = BudgetUse.objects.filter(~Q(reserved_usd=0) | Q(key__in=list(held)))
        differences = [
            ReservedDifference(key, stored, held.get(key, ZERO))
            for key, stored in uses.values_list("key", "reserved_usd")
            if stored != held.get(key, ZERO)
        ]
        if fix:
            for difference in differences:
                BudgetUse.objects.filter(key=difference.key).update(
                    reserved_usd=difference.held, updated_at=timezone.now()
                )
    return differences


# --- Limits -----------------------------------------------------------------------------
def _limit_changed(uses) -> None:
    """A limit changed: its budgets look at their work afresh."""
    uses.update(refused_usd=None, blocked_since=None, blocked_reason="", updated_at=timezone.now())


def account_limit_set(*, limit: Decimal | None) -> None:
    with transaction.atomic():
        account = hold()
        account.monthly_limit_usd = limit
        account.save()
        _limit_changed(BudgetUse.objects.filter(scope=BudgetScope.ACCOUNT))
    _wake()


def user_limit_set(*, user, limit: Decimal | None) -> None:
    with transaction.atomic():
        hold()
        UserBudget.objects.update_or_create(user=user, defaults={"monthly_limit_usd": limit})
        _limit_changed(BudgetUse.objects.filter(scope=BudgetScope.USER, user=user))
    _wake()


def run_budget_open(*, run: Run) -> None:
    """The new run's budget row, nothing spent yet: a row no claim can be
    holding, so it needs no turn of the budgets (a large upload would make
    every claim wait for its insert)."""
    BudgetUse.objects.create(key=run_key(run.pk), scope=BudgetScope.RUN, run=run)


def run_budget_set(*, run: Run, limit: Decimal | None) -> None:
    """Set, change or remove a run's budget. A budget set on a run already
    going starts from what its tries have cost and hold so far."""
    with transaction.atomic():
        hold()
        Run.objects.filter(pk=run.pk).update(budget_usd=limit)
        run.budget_usd = limit
        key = run_key(run.pk)
        if limit is None:
            BudgetUse.objects.filter(key=key).delete()
        elif not BudgetUse.objects.filter(key=key).exists():
            attempts = Attempt.objects.filter(job__run=run)
            totals = attempts.aggregate(
                spent=Sum("cost_usd"),
                reserved=Sum("reserved_usd", filter=Q(outcome=Outcome.IN_FLIGHT)),
            )
            BudgetUse.objects.create(
                key=key,
                scope=BudgetScope.RUN,
                run=run,
                spent_usd=totals["spent"] or ZERO,
                reserved_usd=totals["reserved"] or ZERO,
            )
        _limit_changed(BudgetUse.objects.filter(key=key))
    _wake()


def _wake() -> None:
    from jobs.engine import control

    transaction.on_commit(control.wake_dispatcher)


# --- What the pages show ------------------------------------------------------------------
@dataclass(frozen=True)
class Standing:
    """One budget as a person reads it."""

    subject: str
    limit: Decimal | None
    spent: Decimal
    reserved: Decimal
    holding: bool  # its work waits for it now
    stopped_since: datetime | None
    resumes: str  # what lets its work go on

    @property
    def left(self) -> Decimal | None:
        return None if self.limit is None else max(ZERO, self.limit - self.spent - self.reserved)

    @property
    def reason(self) -> str:
        budget = spending.Budget(self.limit, self.spent, self.reserved)
        return spending.reached_words(self.subject, budget)


def _standings(uses: Iterable[BudgetUse], now: datetime) -> list[Standing]:
    uses = list(uses)
    user_ids = [use.user_id for use in uses if use.user_id]
    limits = dict(
        UserBudget.objects.filter(user_id__in=user_ids).values_list("user_id", "monthly_limit_usd")
    )
    account = AccountBudget.objects.filter(pk=1).first()
    turns = next_month(month_of(now))
    turn = f"; it goes on when the limit is raised or the month turns ({turns:%-d %B}, UTC)"
    standings = []
    for use in uses:
        if use.scope == BudgetScope.ACCOUNT:
            limit, resumes = account and account.monthly_limit_usd, turn
        elif use.scope == BudgetScope.USER:
            limit, resumes = limits.get(use.user_id), turn
        else:
            limit, resumes = use.run.budget_usd, "; it goes on when the run's budget is raised"
        budget = spending.Budget(limit, Decimal(use.spent_usd), Decimal(use.reserved_usd))
        refused = use.refused_usd
        holding = refused is not None and not budget.fits(refused)
        standings.append(
            Standing(
                subject=subject_of(use),
                limit=limit,
                spent=Decimal(use.spent_usd),
                reserved=Decimal(use.reserved_usd),
                holding=holding,
                stopped_since=use.blocked_since,
                resumes=resumes,
            )
        )
    return standings


def held_back(*, now: datetime | None = None) -> tuple[bool, set[int], set[int]]:
    """(the account's budget, owners, runs) holding their work back now, read
    without locks: the dispatcher does not stay up for work only a person can
    let go on (a raised limit wakes it; the minute Schedule sees a new month)."""
    now = now or timezone.now()
    uses = list(
        BudgetUse.objects.filter(refused_usd__isnull=False)
        .filter(Q(month=month_of(now)) | _run_with_waiting_work())
        .select_related("run", "user")
    )
    account, owners, runs = False, set(), set()
    for use, standing in zip(uses, _standings(uses, now), strict=True):
        if not standing.holding:
            continue
        if use.scope == BudgetScope.ACCOUNT:
            account = True
        elif use.scope == BudgetScope.USER:
            owners.add(use.user_id)
        else:
            runs.add(use.run_id)
    return account, owners, runs


def holds_for_job(job: Job, *, now: datetime | None = None) -> list[Standing]:
    """The budgets that hold this waiting job back now."""
    if job.state not in WAITING_STATES:
        return []
    now = now or timezone.now()
    keys = keys_covering(owner_id=job.owner_id, run_id=job.run_id, month=month_of(now))
    uses = BudgetUse.objects.filter(key__in=keys).select_related("run", "user")
    return [standing for standing in _standings(uses, now) if standing.holding]


def holds_for_run(run: Run, *, now: datetime | None = None) -> list[Standing]:
    now = now or timezone.now()
    if not Job.objects.filter(run=run, state__in=WAITING_STATES).exists():
        return []
    keys = keys_covering(owner_id=run.owner_id, run_id=run.pk, month=month_of(now))
    uses = BudgetUse.objects.filter(key__in=keys).select_related("run", "user")
    return [standing for standing in _standings(uses, now) if standing.holding]


def holds_for_owner(owner_id: int | None, *, now: datetime | None = None) -> list[Standing]:
    """The budgets holding back someone's waiting work (None: anyone's)."""
    now = now or timezone.now()
    month = month_of(now)
    uses = BudgetUse.objects.filter(refused_usd__isnull=False).filter(
        Q(month=month) | _run_with_waiting_work()
    )
    if owner_id is not None:
        uses = uses.filter(
            Q(scope=BudgetScope.ACCOUNT) | Q(user_id=owner_id) | Q(run__owner_id=owner_id)
        )
    uses = uses.select_related("run", "user").order_by("key")
    return [standing for standing in _standings(uses, now) if standing.holding]


def standings_of(user, *, now: datetime | None = None) -> list[Standing]:
    """The account page: this person's monthly budget, then the account's, this month."""
    now = now or timezone.now()
    month = month_of(now)
    keys = [(account_key(month), BudgetScope.ACCOUNT, None)]
    if user is not None:
        keys.insert(0, (user_key(user.pk, month), BudgetScope.USER, user))
    found = BudgetUse.objects.filter(key__in=[key for key, _, _ in keys]).select_related("user")
    found = {use.key: use for use in found}
    uses = [
        found.get(key) or BudgetUse(key=key, scope=scope, user=owner, month=month)
        for key, scope, owner in keys
    ]
    return _standings(uses, now)


def run_standing(run: Run, *, now: datetime | None = None) -> Standing | None:
    """A run's own budget as its page shows it (None: it has none)."""
    if run.budget_usd is None:
        return None
    use = BudgetUse.objects.filter(key=run_key(run.pk)).first()
    use = use or BudgetUse(key=run_key(run.pk), scope=BudgetScope.RUN, run=run)
    use.run = run
    return _standings([use], now or timezone.now())[0]


@dataclass(frozen=True)
class Fit:
    """Whether an estimated cost fits one budget's room left."""

    subject: str
    left: Decimal
    fits: bool


def run_fit(*, owner, cost: Decimal, budget_usd: Decimal | None) -> list[Fit]:
    """The upload preview: does a new run's estimated cost fit its own budget,
    what is left of its owner's monthly budget and of the account's?"""
    fits = []
    if budget_usd is not None:
        fits.append(Fit("the run's budget", budget_usd, cost <= budget_usd))
    for standing in standings_of(owner):
        if standing.left is not None:
            subject = (
                "your monthly budget"
                if standing.subject != "account budget"
                else ("the account's monthly budget")
            )
            fits.append(Fit(f"what is left of {subject}", standing.left, cost <= standing.left))
    return fits


def open_reservations() -> dict[str, Decimal]:
    """What every budget row should hold reserved, recounted from the tries in
    flight (Attempt.reserved_usd): the check that nothing drifts."""
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    rows = Attempt.objects.filter(outcome=Outcome.IN_FLIGHT, reserved_usd__gt=0).values_list(
        "reserved_usd", "budget_month", "job__owner_id", "job__run_id"
    )
    existing = set(BudgetUse.objects.values_list("key", flat=True))
    for reserved, month, owner, run in rows:
        for key in keys_covering(owner_id=owner, run_id=run, month=month):
            if key in existing:
                totals[key] += reserved
    return dict(totals)
