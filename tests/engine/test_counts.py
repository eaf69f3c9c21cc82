"""The stored counts (JobCount, migration 0013; JobTally, OutcomeMinute,
CostHour and RunTally, migration 0016; RunTally's sums and RunMinute,
migration 0019) stay exact whatever writes the jobs and attempts:
hundreds of random transitions through the engine's own paths and the ORM's
bulk ones (submit, run, send, cancel, retry, a crashed claim taken again,
jobs given to another owner, runs and people deleted), on SQLite and on
PostgreSQL, then every count equals a fresh count of the tables."""

from __future__ import annotations

import io
import random
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from jobs.engine import actions, claiming, counts
from jobs.engine.submitting import JobSpec
from jobs.models import Attempt, CostHour, Job, JobCount, JobTally, OutcomeMinute, Run, State
from jobs.runs import pipeline_runs
from jobs.runs import services as runs
from tests.support import MODEL, make_run, send_due_jobs, submit, tag

pytestmark = pytest.mark.django_db


def fresh_count(owner_id: int | None = None) -> dict[str, int]:
    jobs = Job.objects.all() if owner_id is None else Job.objects.filter(owner_id=owner_id)
    return {state: n for state, n in jobs.order_by().values_list("state").annotate(n=Count("*"))}


def assert_exact(*owners) -> None:
    assert counts.recount() == []
    assert counts.by_state() == fresh_count()
    for owner in owners:
        assert counts.by_state(owner.pk) == fresh_count(owner.pk)


PIPELINE = """
name: counted
steps:
  - name: first
    prompt: "{{ row.text }}"
  - name: second
    prompt: "after {{ steps.first.output }}"
"""


def make_pipeline(owner, texts: list[str]) -> Run:
    """A two-step pipeline run: its second steps wait on the first, and are
    skipped when the first fails."""
    spec = JobSpec(model=MODEL, max_attempts=2)
    table = ("text\n" + "\n".join(texts) + "\n").encode()
    return pipeline_runs.pipeline_run_create(
        owner=owner,
        stream=io.BytesIO(table),
        filename="rows.csv",
        pipeline=pipeline_runs.pipeline_read(PIPELINE, spec=spec),
        spec=spec,
    )


def test_hundreds_of_random_transitions_leave_the_counts_exact(
    ada, bob, django_user_model, simulator
):
    rng = random.Random(20261201)
    word = tag()
    carol = django_user_model.objects.create_user("carol", password="x")
    owners = [ada, bob, carol]
    # Errors on the wire move jobs to retrying and failed; the rest succeed.
    simulator.configure(p503=0.3, p429=0.1)
    runs_made = []
    made = 0
    seen: set[str] = set()
    try:
        for step in range(60):
            owner = rng.choice(owners)
            moves = ["submit", "run", "pipeline", "send", "send", "cancel", "retry", "lost"]
            move = rng.choice([*moves, "bulk", "delete"])
            if move == "submit":
                made += len(
                    submit(owner, *[f"{word} {step} {i}" for i in range(rng.randint(1, 40))])
                )
            elif move == "run":
                lines = [(f"r{i}", f"{word} run {step} {i}") for i in range(rng.randint(1, 60))]
                runs_made.append(make_run(owner, lines, max_attempts=2))
                made += len(lines)
            elif move == "pipeline":
                texts = [f"{word} pipe {step} {i}" for i in range(rng.randint(1, 20))]
                runs_made.append(make_pipeline(owner, texts))
                made += 2 * len(texts)
            elif move == "send":
                send_due_jobs(simulator.url, "generate_content", limit=rng.randint(1, 80))
            elif move == "cancel":
                cancellable = [State.WAITING, State.QUEUED, State.RETRYING]
                for job in Job.objects.filter(state__in=cancellable)[:10]:
                    actions.job_cancel(job=job)
            elif move == "retry":
                for job in Job.objects.filter(state__in=[State.FAILED, State.RETRYING])[:10]:
                    actions.job_retry_now(job=job)
            elif move == "lost":
                # A worker died holding its claims: the lease lapses, the next claim takes them.
                claiming.jobs_claim(owner="doomed", limit=rng.randint(1, 20), lease_seconds=60)
                Job.objects.filter(lease_owner="doomed", state=State.RUNNING).update(
                    lease_expires_at=timezone.now() - timedelta(seconds=1)
                )
                claiming.jobs_claim(owner="heir", limit=50, lease_seconds=60)
            elif move == "bulk":
                # Writes that pass no engine code: the database keeps the count.
                Job.objects.filter(owner=owner, state=State.RUNNING).update(state=State.QUEUED)
                Job.objects.filter(pk__in=Job.objects.filter(owner=owner).values("pk")[:5]).update(
                    owner=rng.choice(owners)
                )
            elif move == "delete" and runs_made:
                runs.run_delete(run=runs_made.pop(rng.randrange(len(runs_made))))
            if rng.random() < 0.3:
                counts.fold()
            seen.update(fresh_count())
            if step % 10 == 9:
                assert_exact(*owners)

    finally:
        simulator.configure(p503=0.0, p429=0.0)
    # Whatever the random errors were, one job surely fails (a 400 is not
    # retried), one is shed and one is rate limited.
    refused, *_ = submit(
        ada, f"{word} refused [sim:400]", f"{word} shed [sim:503x1]", f"{word} limited [sim:429x1]"
    )
    # ...and one pipeline step waits on one that fails, and is skipped after it.
    piped = make_pipeline(bob, [f"{word} piped [sim:400]"])
    seen.update(fresh_count())
    send_due_jobs(simulator.url, "generate_content", limit=1000)
    assert Job.objects.get(pk=refused.pk).state == State.FAILED
    assert Job.objects.get(run=piped, step="second").state == State.SKIPPED
    seen.update(fresh_count())
    # Hundreds of jobs, each through several states; answers billed, 503s and
    # 429s tallied per job and per minute.
    assert made > 150, made
    assert CostHour.objects.aggregate(n=Sum("answers"))["n"] > 0
    minutes = OutcomeMinute.objects.aggregate(n503=Sum("http_503"), n429=Sum("http_429"))
    assert minutes["n503"] > 0 and minutes["n429"] > 0, minutes
    assert JobTally.objects.aggregate(n=Sum("http_503"))["n"] > 0
    assert Attempt.objects.count() > 10, Attempt.objects.count()
    assert seen == set(State.values), seen
    assert_exact(*owners)

    # A person deleted with their jobs leaves nothing counted for them.
    carol_id = carol.pk
    submit(carol, "carol's last", "and another")
    assert counts.by_state(carol_id)
    carol.delete()
    counts.fold()
    assert counts.by_state(carol_id) == {}
    assert_exact(ada, bob)


def test_folding_keeps_the_sums_and_leaves_few_rows(ada):
    submit(ada, *[f"p{i}" for i in range(30)])
    for job in Job.objects.all()[:12]:
        actions.job_cancel(job=job)
    before = counts.by_state(ada.pk)
    counts.fold()
    assert counts.by_state(ada.pk) == before == {"queued": 18, "cancelled": 12}
    assert JobCount.objects.count() == 2


def test_recount_reports_and_fixes_a_difference(ada, capsys):
    submit(ada, "one", "two")
    counts.fold()
    JobCount.objects.filter(owner_id=ada.pk, state=State.QUEUED).update(n=7)
    with pytest.raises(CommandError, match="1 stored counts differ"):
        call_command("recount")
    assert f"owner {ada.pk}, queued: stored 7, counted 2" in capsys.readouterr().out
    call_command("recount", "--fix")
    assert "Fixed 1 stored counts" in capsys.readouterr().out
    call_command("recount")
    assert "match the jobs" in capsys.readouterr().out
    assert counts.by_state(ada.pk) == {"queued": 2}


def test_the_triggers_that_keep_the_counts_exist():
    """A later migration that rebuilds jobs_job on SQLite drops them; this says so."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid IN "
                "('jobs_job'::regclass, 'jobs_attempt'::regclass) AND NOT tgisinternal"
            )
        names = {row[0] for row in cursor.fetchall()}
    assert {"jobs_job_count_insert", "jobs_job_count_delete", "jobs_job_count_update"} <= names
    for tally in (
        "jobs_job_jobtally",
        "jobs_job_costhour",
        "jobs_job_runtally",
        "jobs_attempt_outcomeminute",
        "jobs_attempt_runminute",
    ):
        assert {f"{tally}_{event}" for event in ("insert", "delete", "update")} <= names
    assert "jobs_job_outcomeminute_owner" in names


@pytest.mark.django_db(transaction=True)
def test_folding_while_others_write_loses_no_delta(ada, bob):
    """PostgreSQL's folds run beside the dispatchers' transactions; SQLite's
    writers take turns. Either way no change is lost or counted twice."""
    stop = threading.Event()
    problems: list[BaseException] = []

    def keep_folding() -> None:
        try:
            while not stop.is_set():
                counts.fold()
        except BaseException as error:  # reported below, in the test's thread
            problems.append(error)
        finally:
            connection.close()

    folder = threading.Thread(target=keep_folding)
    folder.start()
    try:
        for round_ in range(40):
            owner = (ada, bob)[round_ % 2]
            jobs = submit(owner, *[f"fold {round_} {i}" for i in range(5)])
            actions.job_cancel(job=jobs[0])
    finally:
        stop.set()
        folder.join()
    assert not problems, problems
    counts.fold()
    assert counts.by_state(ada.pk) == {"queued": 80, "cancelled": 20}
    assert_exact(ada, bob)
