"""Budgets that never overspend: every try's worst case is reserved against
each budget covering it when it is claimed, replaced by what Google billed
when its answer is recorded, and released by every try that bills nothing;
work whose worst case does not fit waits, with the reason, and goes on when
the limit is raised or the month turns."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from decimal import Decimal
from unittest.mock import patch

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs import tasks
from jobs.catalog import INPUT_LIMIT_TOKENS
from jobs.engine import budgets, claiming, recording, spending
from jobs.engine.gemini import GeminiError, GeminiResult
from jobs.models import AccountBudget, Attempt, BudgetUse, Job, Outcome, State
from tests.images import inline, jpeg, png, webp_lossy
from tests.support import MODEL, make_run, send_claims, submit, tag, wire_requests

pytestmark = pytest.mark.django_db

# 2000 x 1500 px: Gemini 2.x bills it as 3 x 2 crops of 768 px, 258 tokens each.
LARGE_PNG = inline("image/png", png(2000, 1500))
LARGE_PNG_TOKENS = 6 * 258
# gemini-2.5-flash, standard USD per million tokens.
INPUT, OUTPUT = Decimal("0.30"), Decimal("2.50")


def claim(limit: int = 10, owner: str = "test") -> list[claiming.Claim]:
    return claiming.jobs_claim(owner=owner, limit=limit, lease_seconds=60)


def use(key: str) -> BudgetUse:
    return BudgetUse.objects.get(key=key)


def month() -> date:
    return budgets.month_of(timezone.now())


def expected(input_tokens: int, output_tokens: int, multiplier: str = "0.5") -> Decimal:
    cost = (input_tokens * INPUT + output_tokens * OUTPUT) / 1_000_000 * Decimal(multiplier)
    return cost.quantize(Decimal("0.00000001"))


def assert_no_drift() -> None:
    """Every budget row holds exactly what its tries in flight reserved."""
    recounted = budgets.open_reservations()
    for row in BudgetUse.objects.all():
        assert row.reserved_usd == recounted.get(row.key, Decimal(0)), row.key


def answer(input_tokens: int = 10, output_tokens: int = 10, tier: str = "flex") -> GeminiResult:
    return GeminiResult(
        text="an answer",
        response_id="r1",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        thought_tokens=0,
        tier_served=tier,
    )


def error(status: int, kind: str) -> GeminiError:
    return GeminiError(kind, f"HTTP {status}", http_status=status)


# --- What is reserved, for each kind of request -----------------------------------------
KINDS = {
    # name: (prompt or request, spec, worst-case input tokens, output tokens, tier multiplier)
    "text": ("Name three rivers " + tag(), {"max_output_tokens": 50}, None, 50, "0.5"),
    "image": (
        {
            "contents": [{"parts": [{"text": "What is in it?"}, LARGE_PNG]}],
            "generation_config": {"max_output_tokens": 40},
        },
        {},
        len("What is in it?") + LARGE_PNG_TOKENS,
        40,
        "0.5",
    ),
    "thinking budget": (
        {
            "contents": [{"parts": [{"text": "Think about it " + tag()}]}],
            "generation_config": {
                "max_output_tokens": 30,
                "thinking_config": {"thinking_budget": 100},
            },
        },
        {},
        None,
        130,
        "0.5",
    ),
    "fallback to standard": (
        "Last try on standard " + tag(),
        {"max_output_tokens": 20, "max_attempts": 1, "fallback_standard": True},
        None,
        20,
        "1",
    ),
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_request_reserves_its_worst_case_and_is_charged_what_it_cost(
    simulator, ada, kind
):
    prompt, spec, input_tokens, output_tokens, multiplier = KINDS[kind]
    (job,) = submit(ada, prompt, **spec)
    if input_tokens is None:
        input_tokens = len(job.input_text.encode())
    worst = expected(input_tokens, output_tokens, multiplier)

    (claimed,) = claim()
    attempt = Attempt.objects.get(pk=claimed.attempt_id)
    assert attempt.reserved_usd == claimed.reserved_usd == worst
    assert attempt.budget_month == month()
    for key in (budgets.account_key(month()), budgets.user_key(ada.pk, month())):
        assert (use(key).reserved_usd, use(key).spent_usd) == (worst, 0)

    assert send_claims(simulator.url, "generate_content", [claimed]) == ["succeeded"]
    attempt.refresh_from_db()
    job.refresh_from_db()
    assert 0 < attempt.cost_usd == job.cost_usd <= attempt.reserved_usd
    assert job.input_tokens <= job.reserve_input_tokens
    for key in (budgets.account_key(month()), budgets.user_key(ada.pk, month())):
        assert (use(key).reserved_usd, use(key).spent_usd) == (0, job.cost_usd)


IMAGES = {
    "png 2000x1500": (LARGE_PNG, 6),
    "jpeg 4000x3000": (inline("image/jpeg", jpeg(4000, 3000)), 6 * 4),
    "webp 385x5000": (inline("image/webp", webp_lossy(385, 5000)), 2 * 20),
    "jpeg 768x768": (inline("image/jpeg", jpeg(768, 768)), 4),
}


@pytest.mark.parametrize("route", ["generate_content", "interactions"])
@pytest.mark.parametrize("image", IMAGES)
def test_a_large_image_reserves_at_least_the_tiles_gemini_bills_for_it(
    simulator, ada, settings, route, image
):
    settings.GEMINI_API = route
    part, tiles = IMAGES[image]
    prompt = f"Describe it {tag()}"
    request = {"contents": [{"parts": [{"text": prompt}, part]}]}
    request["generation_config"] = {"max_output_tokens": 20}
    (job,) = submit(ada, request)
    (claimed,) = claim()
    assert send_claims(simulator.url, route, [claimed]) == ["succeeded"]
    (sent,) = [r for r in wire_requests(simulator.url, 50) if prompt in json.dumps(r["body"])]
    assert sent["route"] == {"generate_content": "generateContent"}.get(route, route)
    job.refresh_from_db()
    assert job.input_tokens == math.ceil(len(prompt) / 4) + tiles * 258, "billed by its tiles"
    assert job.input_tokens <= job.reserve_input_tokens
    assert 0 < job.cost_usd <= claimed.reserved_usd


def test_a_request_without_an_output_cap_reserves_the_models_cap(ada):
    (job,) = submit(ada, "No cap " + tag())
    (claimed,) = claim()
    assert claimed.reserved_usd == expected(len(job.input_text.encode()), 65_536)


def test_a_long_prompt_reserves_at_the_long_context_prices():
    rates = spending.Rates(Decimal("1.25"), Decimal("10"), Decimal("2.50"), Decimal("15"))
    short = spending.worst_case_usd(rates, input_tokens=200_000, output_tokens=0, multiplier=1)
    long = spending.worst_case_usd(rates, input_tokens=200_001, output_tokens=1000, multiplier=1)
    assert short == Decimal("0.25")
    assert long == (Decimal(200_001) * Decimal("2.5") + 1000 * 15) / 1_000_000


# --- Every outcome gives the reservation back ---------------------------------------------
def test_every_outcome_releases_its_reservation_and_only_answers_are_charged(ada, settings):
    settings.FLEX_BACKOFF_BASE = 0
    settings.FLEX_BACKOFF_CAP = 0
    names = ["ok", "503", "429", "400", "lost", "cancelled"]
    jobs = {
        name: job
        for name, job in zip(names, submit(ada, *names, max_output_tokens=100), strict=True)
    }
    claims = {c.job_id: c for c in claim()}
    assert len(claims) == len(names)
    assert_no_drift()
    by_name = {name: claims[job.pk] for name, job in jobs.items()}
    held = sum(c.reserved_usd for c in claims.values())
    assert use(budgets.user_key(ada.pk, month())).reserved_usd == held

    # The lost one's lease lapses; the cancelled one is cancelled at its deadline in flight.
    Job.objects.filter(pk=jobs["lost"].pk).update(lease_expires_at=timezone.now() - timedelta(1))
    Job.objects.filter(pk=jobs["cancelled"].pk).update(state=State.CANCELLED, lease_owner="")
    outcomes = [
        recording.AttemptOutcome(by_name["ok"], answer(), 1),
        recording.AttemptOutcome(by_name["503"], error(503, "capacity"), 1),
        recording.AttemptOutcome(by_name["429"], error(429, "rate_limit"), 1),
        recording.AttemptOutcome(by_name["400"], error(400, "bad_request"), 1),
        recording.AttemptOutcome(by_name["cancelled"], answer(), 1),
    ]
    assert recording.attempts_record(owner="test", outcomes=outcomes) == [
        "succeeded", "retry", "retry", "fail", "discarded"
    ]  # fmt: skip
    assert_no_drift()
    again = {c.job_id: c for c in claim(owner="d2")}
    assert set(again) == {jobs[name].pk for name in ("lost", "503", "429")}, "reserved again"
    assert Attempt.objects.get(pk=by_name["lost"].attempt_id).outcome == Outcome.LOST
    assert_no_drift()

    # The try answered after all though its lease had lapsed: Google billed it.
    late = recording.attempt_succeeded(
        claim=by_name["lost"], owner="test", result=answer(), latency=1
    )
    assert late == "discarded"
    for item in again.values():
        recording.attempt_failed(
            claim=item, owner="test", error=error(400, "bad_request"), latency=1
        )
    assert_no_drift()

    row = use(budgets.user_key(ada.pk, month()))
    billed = Attempt.objects.exclude(cost_usd=None)
    assert row.reserved_usd == 0
    assert row.spent_usd == sum(a.cost_usd for a in billed)
    assert sorted(a.job_id for a in billed) == sorted(
        [jobs["ok"].pk, jobs["cancelled"].pk, jobs["lost"].pk]
    )
    assert all(a.cost_usd <= a.reserved_usd for a in billed)
    assert use(budgets.account_key(month())).spent_usd == row.spent_usd


def test_a_try_nobody_will_answer_is_released_by_the_sweep(ada, settings):
    (job,) = submit(ada, "cancelled with its worker gone", max_output_tokens=10)
    (claimed,) = claim()
    Job.objects.filter(pk=job.pk).update(state=State.CANCELLED, lease_owner="")
    later = timezone.now() + timedelta(seconds=settings.FLEX_REQUEST_TIMEOUT + 1000)
    assert budgets.reservations_sweep(now=later) == 1
    assert use(budgets.user_key(ada.pk, month())).reserved_usd == 0
    assert Attempt.objects.get(pk=claimed.attempt_id).outcome == Outcome.LOST
    assert_no_drift()


def test_deleting_a_run_gives_its_reservations_back(ada):
    from jobs.runs import services as runs

    run = make_run(ada, max_output_tokens=10)
    claim()
    runs.run_delete(run=run)
    assert use(budgets.user_key(ada.pk, month())).reserved_usd == 0


def test_a_try_deleted_in_flight_frees_its_reservation_at_the_minute_schedule(
    simulator, ada, bob, capsys
):
    """A person deleted in the admin takes their tries with them, under their
    requests: the account budget's reservation is healed by the minute Schedule
    (and `recount` shows it), and the answer that comes back is dropped."""
    submit(ada, "deleted with its owner", max_output_tokens=10)
    submit(bob, "kept", max_output_tokens=10)
    ada_claim, bob_claim = sorted(claim(), key=lambda c: Job.objects.get(pk=c.job_id).owner_id)
    account = budgets.account_key(month())
    both = use(account).reserved_usd
    ada.delete()
    assert use(account).reserved_usd == both  # the deletion did not release it

    with pytest.raises(CommandError, match="1 stored counts differ"):
        call_command("recount")
    assert f"budget {account}: reserved" in capsys.readouterr().out
    with patch("jobs.tasks.run_dispatcher", return_value="none"):
        tasks.dispatch()
    assert use(account).reserved_usd == both - ada_claim.reserved_usd > 0
    assert_no_drift()
    call_command("recount")
    assert "the budgets' reservations the tries in flight" in capsys.readouterr().out

    sent = send_claims(simulator.url, "generate_content", [ada_claim, bob_claim])
    assert sent == ["discarded", "succeeded"]
    assert use(account).reserved_usd == 0
    assert_no_drift()


# --- Work that does not fit waits, with the reason -------------------------------------
def test_a_run_budget_holds_its_work_back_and_a_raised_limit_lets_it_go_on(ada, bob):
    run = make_run(ada, [(str(n), f"line {n}") for n in range(5)], max_output_tokens=3500)
    worst = claim(limit=1)[0].reserved_usd
    Job.objects.filter(run=run, state=State.RUNNING).update(
        state=State.QUEUED, next_attempt_at=timezone.now()
    )
    Attempt.objects.all().delete()
    BudgetUse.objects.all().delete()
    budgets.run_budget_set(run=run, limit=Decimal("0.01"))  # fits two worst cases
    assert worst * 2 <= Decimal("0.01") < worst * 3
    (bobs,) = submit(bob, "bob's work goes on", max_output_tokens=10)
    Job.objects.filter(pk=bobs.pk).update(next_attempt_at=timezone.now() + timedelta(seconds=-1))

    claimed = claim(limit=10)
    ran = {c.job_id for c in claimed}
    assert len(ran & set(run.jobs.values_list("pk", flat=True))) == 2
    assert bobs.pk in ran, "a held run does not hold up other people's work"
    row = use(budgets.run_key(run.pk))
    assert row.reserved_usd == 2 * worst <= Decimal("0.01")
    assert row.refused_usd == worst
    assert row.blocked_since is None, "in flight, not stopped: the reservations may come back"
    waiting = run.jobs.filter(state=State.QUEUED).first()
    (hold,) = budgets.holds_for_job(waiting)
    assert hold.reason.startswith(
        f"budget for run “{run.name}” reached: $0.0088 of $0.01 spent or reserved"
    )
    assert budgets.holds_for_run(run) == [hold]

    assert claim() == [], "nothing is looked at again until the budget has room"
    budgets.run_budget_set(run=run, limit=Decimal("1.00"))
    assert len(claim()) == 3
    assert budgets.holds_for_run(run) == []


def test_a_budget_spent_to_its_limit_records_once_that_it_stopped_the_work(ada):
    run = make_run(ada, [(str(n), f"stop {n}") for n in range(3)], max_output_tokens=10_000)
    budgets.run_budget_set(run=run, limit=Decimal("0.01"))
    run.refresh_from_db()
    claim()  # one worst case is more than the budget: nothing can go
    row = use(budgets.run_key(run.pk))
    assert row.blocked_since is not None
    assert (
        row.blocked_reason
        == f"budget for run “{run.name}” reached: $0.00 of $0.01 spent or reserved"
    )
    first = row.blocked_since
    assert budgets.stop_name(row, run.budget_usd) == f"run:{run.pk}:0.01"
    claim()
    assert use(budgets.run_key(run.pk)).blocked_since == first
    budgets.run_budget_set(run=run, limit=Decimal("5"))
    assert use(budgets.run_key(run.pk)).blocked_since is None
    assert len(claim()) == 3


def test_the_monthly_budget_covers_all_of_a_persons_work_and_a_new_month_starts_afresh(ada, bob):
    budgets.user_limit_set(user=ada, limit=Decimal("0.01"))
    submit(ada, *(f"month {n}" for n in range(8)), max_output_tokens=1500)
    (bobs,) = submit(bob, "not ada's", max_output_tokens=1500)
    claimed = claim()
    adas = [c for c in claimed if c.job_id != bobs.pk]
    assert len(adas) == int(Decimal("0.01") // adas[0].reserved_usd)
    assert bobs.pk in {c.job_id for c in claimed}
    waiting = Job.objects.filter(owner=ada, state=State.QUEUED).first()
    (hold,) = budgets.holds_for_job(waiting)
    assert hold.reason.startswith("monthly budget for ada reached:")
    assert "the month turns" in hold.resumes

    # Last month's row is full; this month's is another row.
    last = budgets.month_of(timezone.now().replace(day=1) - timedelta(days=1))
    assert not BudgetUse.objects.filter(key=budgets.user_key(ada.pk, last)).exists()


def test_the_account_budget_holds_back_everyones_work(ada, bob):
    budgets.account_limit_set(limit=Decimal("0.01"))
    submit(ada, "a", max_output_tokens=100_000)
    submit(bob, "b", max_output_tokens=100_000)
    assert claim() == []
    waiting = Job.objects.filter(owner=bob).first()
    (hold,) = budgets.holds_for_job(waiting)
    assert hold.reason.startswith("account budget reached:")
    assert AccountBudget.objects.get().monthly_limit_usd == Decimal("0.01")
    budgets.account_limit_set(limit=None)
    assert len(claim()) == 2


# --- The reservation arithmetic ----------------------------------------------------------
def test_the_worst_case_reads_every_part_of_a_request():
    request = {
        "contents": [{"role": "user", "parts": [{"text": "héllo"}]}],
        "system_instruction": {"parts": [{"text": "be brief"}]},
        "generation_config": {"candidate_count": 3, "max_output_tokens": 10},
    }
    assert spending.request_reserve(request) == spending.Reserve(6 + 8, 30, 0)
    request["generation_config"] = {"thinking_config": {"thinking_level": "low"}}
    assert spending.request_reserve(request) == spending.Reserve(14, 32_768, 1)
    request["generation_config"] = {"candidate_count": 2, "thinking_config": {"thinking_budget": 0}}
    reserve = spending.request_reserve(request)
    assert reserve == spending.Reserve(14, 0, 2)
    assert reserve.output_with(1000) == 2000


def test_the_worst_case_counts_an_images_tiles_and_never_passes_the_largest_prompt():
    request = {"contents": [{"parts": [{"text": "Look"}, LARGE_PNG]}]}
    assert spending.request_reserve(request).input_tokens == 4 + LARGE_PNG_TOKENS
    video = {"file_data": {"mime_type": "video/mp4", "file_uri": "gs://b/talk.mp4"}}
    request["contents"][0]["parts"] += [video, video]
    assert spending.request_reserve(request).input_tokens == INPUT_LIMIT_TOKENS


def test_a_budget_fits_until_the_limit_and_says_so_in_words():
    budget = spending.Budget(Decimal("12.50"), Decimal("12.00"), Decimal("0.48"))
    assert budget.fits(Decimal("0.02")) and not budget.fits(Decimal("0.021"))
    assert not budget.stopped_by(Decimal("0.5")) and budget.stopped_by(Decimal("0.51"))
    assert spending.reached_words("budget for run “nightly”", budget) == (
        "budget for run “nightly” reached: $12.48 of $12.50 spent or reserved"
    )
    assert spending.Budget(None, Decimal(5), Decimal(5)).fits(Decimal(10**6))
    assert spending.dollars(Decimal("0.00123")) == "$0.0012"
    assert spending.dollars(Decimal("0.5")) == "$0.50"
    assert spending.dollars(Decimal("1234.567")) == "$1,234.57"


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("12.50", None),
        ("0", "more than $0"),
        ("-1", "more than $0"),
        ("ten", "amount in USD"),
        ("1.001", "two decimal places"),
        ("2000000", "at most"),
        ("NaN", "more than $0"),
    ],
)
def test_a_typed_budget_is_checked(typed, problem):
    found = budgets.budget_error(typed)
    assert (found is None) if problem is None else (problem in found)


def test_a_bill_over_its_reservation_is_charged_whole_and_said(ada, caplog):
    """Google's spec says a flex request is never upgraded to standard; should
    one be billed at standard all the same, the budget is charged what was
    billed, and the log says the worst case was not one."""
    submit(ada, "billed at standard", max_output_tokens=10)
    (claimed,) = claim()
    bill = answer(input_tokens=100, output_tokens=10, tier="standard")
    recording.attempt_succeeded(claim=claimed, owner="test", result=bill, latency=1)
    billed = expected(100, 10, "1")
    assert billed > claimed.reserved_usd
    row = use(budgets.user_key(ada.pk, month()))
    assert (row.spent_usd, row.reserved_usd) == (billed, 0)
    assert f"more than the ${claimed.reserved_usd} reserved" in caplog.text
    assert_no_drift()


def test_a_model_price_row_sets_the_output_cap_reserved(ada):
    from jobs.models import ModelPrice

    ModelPrice.objects.filter(model=MODEL).update(max_output_tokens=1000)
    (job,) = submit(ada, "capped by the table")
    (claimed,) = claim()
    assert claimed.reserved_usd == expected(len(job.input_text.encode()), 1000)


def test_a_lapsed_lease_is_taken_again_on_a_full_budget_its_lost_try_releasing(ada):
    (job,) = submit(ada, "worker lost", max_output_tokens=2000)
    (first,) = claim()
    budgets.user_limit_set(user=ada, limit=first.reserved_usd + Decimal("0.001"))
    submit(ada, "does not fit beside it", max_output_tokens=2000)
    assert claim() == []
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    (again,) = claim(owner="d2")
    assert again.job_id == job.pk
    assert use(budgets.user_key(ada.pk, month())).reserved_usd == again.reserved_usd
    assert_no_drift()
    assert claiming.seconds_until_next_due() is not None  # the running job's lease


def test_no_dispatcher_stays_up_for_work_only_a_raised_limit_lets_go_on(ada, bob):
    budgets.user_limit_set(user=ada, limit=Decimal("0.01"))
    submit(ada, "too big", max_output_tokens=100_000)
    assert claim() == []
    assert claiming.seconds_until_next_due() is None
    submit(bob, "bob's is due")
    assert claiming.seconds_until_next_due() == 0
    assert budgets.held_back() == (False, {ada.pk}, set())


def test_a_budget_that_stops_work_tells_whoever_asked_once(ada, bob, staff, django_user_model):
    """budgets.budget_stopped writes the notice (jobs/engine/notices.py) in the
    claim's transaction: the run's owner by the run's choice, a researcher by
    their account's, and for the account's budget the staff who asked."""
    from jobs.models import Notice, NoticeKind, NoticeSettings
    from jobs.notices.choices import RunNotify

    told = make_run(ada, [("1", "told")], max_output_tokens=10_000, notify=RunNotify(budget=True))
    quiet = make_run(ada, [("1", "quiet")], max_output_tokens=10_000)
    for run in (told, quiet):
        budgets.run_budget_set(run=run, limit=Decimal("0.01"))
    claim()
    claim()
    (notice,) = Notice.objects.filter(kind=NoticeKind.BUDGET_STOPPED)
    assert (notice.user, notice.run) == (ada, told)
    assert notice.key == f"run:{told.pk}:0.01|run:{told.pk}"
    assert "reached: $0.00 of $0.01" in notice.subject

    NoticeSettings.objects.create(user=bob, on_budget=True)
    budgets.user_limit_set(user=bob, limit=Decimal("0.01"))
    submit(bob, "bob's", max_output_tokens=100_000)
    claim()
    assert Notice.objects.filter(user=bob, run=None, kind=NoticeKind.BUDGET_STOPPED).count() == 1

    NoticeSettings.objects.create(user=staff, on_budget=True)
    budgets.user_limit_set(user=bob, limit=None)
    budgets.account_limit_set(limit=Decimal("0.01"))
    claim()
    (for_staff,) = Notice.objects.filter(user=staff, kind=NoticeKind.BUDGET_STOPPED)
    assert for_staff.detail["budget"].startswith("account:")
