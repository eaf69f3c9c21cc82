"""The budget race: two clusters (two machines, as far as the engine can tell)
dispatch hundreds of jobs against small budgets, answers of random lengths up
to their cap, with planted fallbacks to the dearer standard tier. Sampled all
along, what is spent and reserved never passes any budget, nor does what was
billed; in the end work stopped within one try's worst case of each limit
that stopped it, and the rest waits with the reason, nothing cancelled."""

from __future__ import annotations

import io
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Max, Sum
from django.utils import timezone

from jobs.engine import budgets, control, submitting
from jobs.models import WAITING_STATES, Attempt, BudgetUse, Job, Outcome, State, Tier
from jobs.runs import services as runs
from tests.engine.test_scale_out import cluster_of, two_cluster_env, wait_until_up
from tests.support import MODEL, qcluster, submit, tag, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

CAP = 2000  # max output tokens: a flex try's worst case is about $0.0025, standard $0.005
ADA_MONTH = Decimal("0.25")
ADA_RUN = Decimal("0.15")
BOB_RUN = Decimal("0.10")


@pytest.fixture(autouse=True)
def _slots(settings):
    settings.FLEX_DISPATCHERS = 2


def budgeted_run(owner, name: str, lines: int, budget: Decimal, word: str):
    # One line in six is refused once (503) and sent again, last, on standard.
    prompts = [f"{name} {word} {n}" + (" [sim:503x1]" if n % 6 == 0 else "") for n in range(lines)]
    return runs.run_create(
        owner=owner,
        stream=io.BytesIO("\n".join(prompts).encode()),
        filename=f"{name}.txt",
        spec=submitting.JobSpec(
            model=MODEL, max_output_tokens=CAP, max_attempts=2, fallback_standard=True
        ),
        name=name,
        budget_usd=budget,
    )


class Sampler(threading.Thread):
    """Reads, as often as it can, every budget's spent and reserved and what
    the tries it covers were billed, and keeps the worst it saw of each."""

    def __init__(self, limits: dict[str, Decimal], scopes: dict[str, dict]) -> None:
        super().__init__(daemon=True)
        self.limits, self.scopes = limits, scopes
        self.stop = threading.Event()
        self.samples = 0
        self.over: list[str] = []

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                used = dict(
                    BudgetUse.objects.filter(key__in=list(self.limits)).values_list(
                        "key", "spent_usd"
                    )
                )
                held = dict(
                    BudgetUse.objects.filter(key__in=list(self.limits)).values_list(
                        "key", "reserved_usd"
                    )
                )
                for key, limit in self.limits.items():
                    total = used.get(key, 0) + held.get(key, 0)
                    billed = Attempt.objects.filter(**self.scopes[key]).aggregate(
                        s=Sum("cost_usd")
                    )["s"] or Decimal(0)
                    if total > limit or billed > limit:
                        self.over.append(
                            f"{key}: {total} reserved+spent, {billed} billed > {limit}"
                        )
                self.samples += 1
                time.sleep(0.05)
        finally:
            connection.close()


@pytest.mark.engine
@pytest.mark.two_clusters
def test_two_clusters_never_spend_past_a_budget_and_stop_within_one_try_of_it(
    start_simulator, ada, bob, tmp_path: Path
):
    simulator = start_simulator(latency="0.05:0.2", random_lengths=True, seed=15)
    env = two_cluster_env(simulator.url, FLEX_BACKOFF_BASE=0.1, FLEX_BACKOFF_CAP=0.3)
    word = tag()
    budgets.user_limit_set(user=ada, limit=ADA_MONTH)
    month = budgets.month_of(timezone.now())
    with qcluster(env, tmp_path / "a.log") as a, qcluster(env, tmp_path / "b.log") as b:
        clusters = {a.pid: "a", b.pid: "b"}
        wait_until_up(a, b)
        ada_run = budgeted_run(ada, "nightly", 130, ADA_RUN, word)
        bob_run = budgeted_run(bob, "bob-nightly", 100, BOB_RUN, word)
        # A fifth of Ada's own prompts run their one attempt on standard, at twice the price.
        singles = submit(
            ada,
            *(f"fallback {word} {n}" for n in range(20)),
            max_output_tokens=CAP,
            max_attempts=1,
            fallback_standard=True,
        )
        singles += submit(ada, *(f"single {word} {n}" for n in range(80)), max_output_tokens=CAP)
        free = submit(bob, *(f"free {word} {n}" for n in range(30)), max_output_tokens=CAP)
        limits = {
            budgets.user_key(ada.pk, month): ADA_MONTH,
            budgets.run_key(ada_run.pk): ADA_RUN,
            budgets.run_key(bob_run.pk): BOB_RUN,
        }
        scopes = {
            budgets.user_key(ada.pk, month): {"job__owner": ada},
            budgets.run_key(ada_run.pk): {"job__run": ada_run},
            budgets.run_key(bob_run.pk): {"job__run": bob_run},
        }
        sampler = Sampler(limits, scopes)
        sampler.start()
        try:

            def settled() -> bool:
                control.wake_dispatcher()
                if Job.objects.filter(state=State.RUNNING).exists():
                    return False
                waiting = Job.objects.filter(state__in=WAITING_STATES)
                one_each = waiting.values("owner", "run").distinct().order_by()
                for pair in one_each:
                    job = waiting.filter(owner=pair["owner"], run=pair["run"]).first()
                    if not budgets.holds_for_job(job):
                        return False
                return True

            wait_for(settled, timeout=60, interval=1.0, what="work to finish or be held")
            owners = set(Attempt.objects.values_list("dispatcher", flat=True))
            ran_on = {cluster_of(owner, clusters) for owner in owners}
        finally:
            sampler.stop.set()
            sampler.join(timeout=10)

    assert sampler.samples >= 20, sampler.samples
    assert sampler.over == [], sampler.over[:5]
    assert ran_on == {"a", "b"}, "both clusters sent requests"

    attempts = Attempt.objects.all()
    billed = attempts.exclude(cost_usd=None)
    assert billed.count() >= 150
    # Every try cost at most what was reserved for it; fallbacks were reserved at standard.
    for attempt in billed:
        assert attempt.cost_usd <= attempt.reserved_usd, attempt.pk
    standard = attempts.filter(tier_requested=Tier.STANDARD).exclude(cost_usd=None)
    assert standard.exists()
    flex_worst = attempts.filter(tier_requested=Tier.FLEX).aggregate(m=Max("reserved_usd"))["m"]
    assert standard.aggregate(m=Max("reserved_usd"))["m"] > flex_worst * Decimal("1.9")
    assert not attempts.filter(outcome=Outcome.IN_FLIGHT).exists()
    assert budgets.open_reservations() == {}

    for key, limit in limits.items():
        row = BudgetUse.objects.get(key=key)
        assert row.reserved_usd == 0
        # Summed here: SQLite's SUM of a decimal column is a float sum.
        billed = attempts.filter(**scopes[key]).exclude(cost_usd=None)
        assert row.spent_usd == sum(billed.values_list("cost_usd", flat=True), Decimal(0)), (
            "what a budget was charged is what its tries were billed"
        )
        assert row.spent_usd <= limit
    worst = attempts.aggregate(m=Max("reserved_usd"))["m"]
    # The budgets that stopped work stopped it within one try's worst case of the limit.
    bob_row = BudgetUse.objects.get(key=budgets.run_key(bob_run.pk))
    ada_row = BudgetUse.objects.get(key=budgets.user_key(ada.pk, month))
    assert BOB_RUN - bob_row.spent_usd < worst
    assert ADA_MONTH - ada_row.spent_usd < worst

    # Nothing was cancelled or failed: the rest waits, with the reason in words.
    assert not Job.objects.filter(state__in=[State.CANCELLED, State.FAILED]).exists()
    assert Job.objects.filter(pk__in=[job.pk for job in free], state=State.SUCCEEDED).count() == 30
    (bob_hold,) = budgets.holds_for_job(bob_run.jobs.filter(state__in=WAITING_STATES).first())
    assert bob_hold.reason.startswith("budget for run “bob-nightly” reached: $0.")
    waiting_single = Job.objects.filter(
        pk__in=[job.pk for job in singles], state__in=WAITING_STATES
    ).first()
    reasons = [hold.reason for hold in budgets.holds_for_job(waiting_single)]
    assert any(reason.startswith("monthly budget for ada reached: $0.") for reason in reasons)
