"""Scaling out: two `manage.py qcluster` processes (two machines, as far as the
engine can tell) against one database and one Gemini quota.

Runs on whichever database the suite uses: PostgreSQL (row locks, SKIP LOCKED)
or one SQLite file (WAL, IMMEDIATE transactions). No job may run twice while
its lease is alive, and a per-model limit holds for both clusters together,
because every claim locks the model's ModelLimit row. A cluster killed mid-run
loses nothing: the other takes its requests over once their leases lapse; a
cluster stopped with SIGTERM hands them on at once."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import Count, Q
from django.utils import timezone
from django_q.conf import Conf
from django_q.status import Stat

from jobs.engine import control
from jobs.models import Attempt, Job, Outcome, State
from tests.support import (
    busiest_minute,
    engine_env,
    finished,
    qcluster,
    start_up,
    stop_process,
    submit,
    tag,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)

HOST = socket.gethostname()
SLOTS = 2


@pytest.fixture(autouse=True)
def _slots(settings):
    """This process wakes dispatchers too (on submit): it counts the same slots."""
    settings.FLEX_DISPATCHERS = SLOTS


def two_cluster_env(simulator_url: str, **overrides: object) -> dict[str, str]:
    # Two dispatcher slots and one django-q2 worker per cluster: a cluster then
    # runs at most one dispatcher at a time (a second dispatch task waits
    # behind the first), so the second slot can only be filled by the other
    # cluster and both must dispatch. In production give each cluster
    # FLEX_DISPATCHERS + 1 workers (README, Scaling out).
    return engine_env(simulator_url, FLEX_DISPATCHERS=SLOTS, FLEX_Q_WORKERS=1, **overrides)


def wait_until_up(*clusters: subprocess.Popen) -> None:
    """Both clusters report to django-q2's statistics in the cache this test
    process shares with them, as `qinfo` and /healthz read them."""

    def up() -> bool:
        live = {stat.pid for stat in Stat.get_all() if stat.status in (Conf.IDLE, Conf.WORKING)}
        return {cluster.pid for cluster in clusters} <= live

    wait_for(up, timeout=60, what="both clusters to report their statistics")


def cluster_of(owner: str, clusters: dict[int, str]) -> str | None:
    """Which cluster a dispatcher owner ("host:pid:run") ran in, from the
    process group of its worker (each cluster is started in a group of its
    own); None if that process is gone."""
    host, pid, _run = owner.split(":")
    assert host == HOST
    try:
        return clusters.get(os.getpgid(int(pid)))
    except ProcessLookupError:
        return None


def dispatch_on_both(jobs: list[Job], clusters: dict[int, str]) -> None:
    """Wake dispatchers until each cluster has claimed some of `jobs`.

    A wake-up goes to whichever cluster's pusher takes it first. One taken by a
    cluster that is already dispatching waits behind its dispatcher, and such a
    cluster holds at most two (django-q2's queue_limit is workers², plus the one
    its pusher holds), so a few wake-ups reach the other cluster for certain."""

    def both() -> bool:
        owners = Attempt.objects.filter(job__in=jobs).values_list("dispatcher", flat=True)
        claimed = {cluster_of(owner, clusters) for owner in owners.order_by().distinct()}
        if claimed >= set(clusters.values()):
            return True
        control.wake_dispatcher()  # enqueues only while a dispatcher slot is free
        return False

    wait_for(both, timeout=60, interval=1.0, what="both clusters to claim work")


def owners_by_cluster(jobs: list[Job], clusters: dict[int, str]) -> dict[str, str | None]:
    owners = Attempt.objects.filter(job__in=jobs).values_list("dispatcher", flat=True)
    return {owner: cluster_of(owner, clusters) for owner in set(owners)}


def assert_each_job_succeeded_once(jobs: list[Job]) -> None:
    ids = [job.pk for job in jobs]
    assert Counter(Job.objects.filter(pk__in=ids).values_list("state", flat=True)) == {
        State.SUCCEEDED: len(jobs)
    }
    attempts = Attempt.objects.filter(job__in=ids)
    assert not attempts.filter(outcome=Outcome.IN_FLIGHT).exists()
    twice = (
        attempts.values("job")
        .annotate(wins=Count("id", filter=Q(outcome=Outcome.SUCCEEDED)))
        .exclude(wins=1)
    )
    assert not twice.exists(), "a job without exactly one successful attempt"
    # Attempt numbers run 1..n per job: none sent twice under one number, none skipped.
    numbers: dict[int, list[int]] = {}
    for job_id, number in attempts.order_by("job", "number").values_list("job", "number"):
        numbers.setdefault(job_id, []).append(number)
    assert all(seen == list(range(1, len(seen) + 1)) for seen in numbers.values())


RPM = 120
# More than a minute's quota, so sending unpaced would break the limit in the
# first 60 s; paced at 95% of it they take about 64 s.
JOBS = 125


# It checks a ceiling (no minute over the limit), which a busy machine cannot
# push it past, so it runs beside the "rates" group rather than in it.
@pytest.mark.engine
@pytest.mark.two_clusters
def test_two_clusters_share_the_work_and_the_rate_limit_and_run_each_job_once(
    start_simulator, ada, tmp_path: Path
):
    simulator = start_simulator(rpm=RPM, latency="0.5:1.5")
    env = two_cluster_env(simulator.url, FLEX_RPM_LIMIT=RPM)
    word = tag()
    with qcluster(env, tmp_path / "a.log") as a, qcluster(env, tmp_path / "b.log") as b:
        clusters = {a.pid: "a", b.pid: "b"}
        wait_until_up(a, b)
        jobs = submit(ada, *(f"scale {word} {n}" for n in range(JOBS)))
        dispatch_on_both(jobs, clusters)
        wait_for(finished(jobs), timeout=150, interval=1.0, what="every job finished")
        owners = owners_by_cluster(jobs, clusters)  # while the workers are alive

    assert_each_job_succeeded_once(jobs)
    attempts = Attempt.objects.filter(job__in=jobs)
    stats = simulator.stats()
    assert stats["requests"] == attempts.count(), "every request is on record, and once"
    # No job was sent twice: one attempt each, and it succeeded, but for the
    # few the simulator refused (429) before answering, each then sent again.
    sent_through = attempts.exclude(http_status=429)
    odd = sent_through.exclude(outcome=Outcome.SUCCEEDED).values(
        "job",
        "number",
        "outcome",
        "http_status",
        "error_kind",
        "error_message",
        "dispatcher",
        "started_at",
        "finished_at",
    )
    assert sent_through.count() == len(jobs), list(odd)
    assert set(sent_through.values_list("outcome", flat=True)) == {Outcome.SUCCEEDED}

    by_cluster = Counter(owners[owner] for owner in attempts.values_list("dispatcher", flat=True))
    assert set(by_cluster) == {"a", "b"}, f"both clusters should have sent requests: {owners}"
    assert min(by_cluster.values()) >= 0.1 * JOBS, by_cluster

    # The limit holds in sum: no sliding minute of the two clusters' sends
    # together exceeds it, and the simulator (counting arrivals over its own
    # sliding minute) refused almost nothing.
    busiest = busiest_minute(list(attempts.values_list("started_at", flat=True)))
    assert busiest <= RPM, f"{busiest} requests in one minute against a limit of {RPM}"
    assert busiest >= 0.9 * RPM, f"only {busiest} in the busiest minute: the test did not press"
    assert stats["by_status"].get("429", 0) <= 0.02 * stats["requests"], stats


@pytest.mark.engine
@pytest.mark.two_clusters
def test_a_killed_cluster_loses_nothing_and_leaves_its_work_to_the_other(
    start_simulator, ada, tmp_path: Path
):
    lease = 5
    simulator = start_simulator(latency="2:4")
    env = two_cluster_env(simulator.url, FLEX_LEASE_SECONDS=lease, FLEX_MAX_IN_FLIGHT=20)
    word = tag()
    with qcluster(env, tmp_path / "a.log") as a, qcluster(env, tmp_path / "b.log") as b:
        clusters = {a.pid: "a", b.pid: "b"}
        wait_until_up(a, b)
        jobs = submit(ada, *(f"crash {word} {n}" for n in range(120)))
        dispatch_on_both(jobs, clusters)

        def both_in_flight() -> bool:
            owners = Attempt.objects.filter(job__in=jobs, outcome=Outcome.IN_FLIGHT)
            flying = {cluster_of(o, clusters) for o in owners.values_list("dispatcher", flat=True)}
            return flying >= {"a", "b"}

        wait_for(both_in_flight, timeout=30, what="requests in flight from both clusters")
        owners = owners_by_cluster(jobs, clusters)
        a_pid = next(int(owner.split(":")[1]) for owner, name in owners.items() if name == "a")
        stop_process(a, signal.SIGKILL)
        killed_at = timezone.now()
        # What a had in flight is stranded: its jobs stay running, leased to
        # a dead cluster, until their leases lapse.
        stranded = list(
            Attempt.objects.filter(
                job__in=jobs, outcome=Outcome.IN_FLIGHT, dispatcher__contains=f":{a_pid}:"
            ).values_list("job", flat=True)
        )
        assert stranded, "the kill should have caught requests in flight"
        assert Job.objects.filter(pk__in=stranded, state=State.RUNNING).count() == len(stranded)
        # Requests that outlive their lease, sent by b alone: b renews the
        # leases while they run, so none of them is taken for lost.
        slow = submit(ada, *(f"slow {word} {n} [sim:sleep=6]" for n in range(5)))
        jobs += slow
        wait_for(finished(jobs), timeout=90, interval=1.0, what="b to finish every job")
        # a's worker is dead now: what is not b's was a's.
        owners = {
            owner: cluster_of(owner, clusters) or ("a" if f":{a_pid}:" in owner else None)
            for owner in owners_by_cluster(jobs, clusters)
        }

    assert_each_job_succeeded_once(jobs)
    attempts = Attempt.objects.filter(job__in=jobs)
    assert None not in owners.values(), owners
    a_owners = [owner for owner, name in owners.items() if name == "a"]
    lost = attempts.filter(outcome=Outcome.LOST)
    assert lost.exists(), "the kill should have caught requests in flight"
    assert set(lost.values_list("dispatcher", flat=True)) <= set(a_owners)
    assert not attempts.filter(dispatcher__in=a_owners, started_at__gt=killed_at).exists()
    assert set(attempts.filter(dispatcher__in=a_owners).values_list("outcome", flat=True)) <= {
        Outcome.SUCCEEDED,
        Outcome.LOST,
    }
    # Each lost request was taken over by b only once its lease had lapsed, and
    # cost the job nothing from its budget.
    for gone in lost:
        again = attempts.get(job=gone.job_id, number=gone.number + 1)
        assert owners[again.dispatcher] == "b" and again.outcome == Outcome.SUCCEEDED
        assert again.started_at >= gone.started_at + timedelta(seconds=lease)
    assert {job.budgeted_attempts for job in Job.objects.filter(pk__in=[j.pk for j in jobs])} == {1}
    for job in Job.objects.filter(pk__in=stranded):
        outcomes = list(job.attempt_log.order_by("number").values_list("outcome", flat=True))
        assert outcomes == [Outcome.LOST, Outcome.SUCCEEDED], job
        assert (job.attempts, job.budgeted_attempts) == (2, 1)
    for job in slow:
        assert list(job.attempt_log.values_list("outcome", flat=True)) == [Outcome.SUCCEEDED]
    # Every attempt was sent at most once; one a's claim took but a died
    # before sending was never sent at all.
    requests = simulator.stats()["requests"]
    assert attempts.count() - lost.count() <= requests <= attempts.count()


@pytest.mark.django_db(transaction=False)
def test_flex_cache_url_names_a_shared_redis_cache():
    """Several machines share django-q2's statistics through Redis; a bad URL
    stops start-up naming the variable, never echoing the URL (it may hold a
    password)."""
    wrong = start_up(FLEX_CACHE_URL="memcached://:hush@cache:11211")
    assert wrong.returncode != 0
    assert "FLEX_CACHE_URL must be a URL starting with redis://, rediss://" in wrong.stderr
    assert "hush" not in wrong.stderr
    redis = start_up(FLEX_CACHE_URL="redis://:hush@127.0.0.1:6379/1")
    if importlib.util.find_spec("redis") is None:
        assert redis.returncode != 0
        assert "the redis package is not installed (pip install redis)" in redis.stderr
        assert "hush" not in redis.stderr
    else:
        assert redis.returncode == 0, redis.stderr


@pytest.mark.engine
@pytest.mark.two_clusters
def test_a_stopped_cluster_hands_its_requests_on_at_once(start_simulator, ada, tmp_path: Path):
    """SIGTERM to a cluster with hundreds of requests in flight, each answered
    only after 30 s: it stops claiming, records each try as handed on (not
    counted against its job, nothing charged), gives up the leases and exits
    at once; the other cluster has every one of those jobs in flight soon
    after, long before their 60 s leases would have lapsed."""
    jobs_in_flight, lease, answer_after = 300, 60, 30
    simulator = start_simulator(latency=f"{answer_after}:{answer_after}")
    env = two_cluster_env(
        simulator.url,
        FLEX_LEASE_SECONDS=lease,
        FLEX_MAX_IN_FLIGHT=jobs_in_flight,
        FLEX_LAUNCH_RATE=200,
    )
    word = tag()
    with qcluster(env, tmp_path / "a.log") as a:
        jobs = submit(ada, *(f"handed on {word} {n}" for n in range(jobs_in_flight)))
        ids = [job.pk for job in jobs]
        in_flight = Attempt.objects.filter(job__in=ids, outcome=Outcome.IN_FLIGHT)
        wait_for(
            lambda: in_flight.count() == jobs_in_flight, timeout=60, what="every job in flight on a"
        )
        (a_owner,) = set(in_flight.values_list("dispatcher", flat=True))
        with qcluster(env, tmp_path / "b.log") as b:
            wait_until_up(a, b)
            stopping = time.monotonic()
            a.send_signal(signal.SIGTERM)
            a.wait(timeout=answer_after)
            stopped_after = time.monotonic() - stopping
            taken = Job.objects.filter(pk__in=ids, state=State.RUNNING).exclude(
                lease_owner__in=["", a_owner]
            )
            wait_for(
                lambda: taken.count() == jobs_in_flight,
                timeout=lease - 10,
                what="b to have every job in flight",
            )
            taken_after = time.monotonic() - stopping
            print(f"\n{jobs_in_flight} in flight: a stopped in {stopped_after:.1f} s, "
                  f"b had them all in flight {taken_after:.1f} s after the SIGTERM")  # fmt: skip

            handed = Attempt.objects.filter(job__in=ids, dispatcher=a_owner)
            assert set(handed.values_list("outcome", flat=True)) == {Outcome.INTERRUPTED}
            assert handed.count() == jobs_in_flight
            assert "handed on to another dispatcher" in handed.first().error_message
            assert not handed.filter(finished_at__isnull=True).exists()
            # Not the jobs' fault: the hand-on costs them no attempt, and b's
            # try is their second, sent long before a's lease would have lapsed.
            again = Attempt.objects.filter(job__in=ids, number=2, outcome=Outcome.IN_FLIGHT)
            assert again.count() == jobs_in_flight
            assert {job.budgeted_attempts for job in Job.objects.filter(pk__in=ids)} == {1}
            lapse = min(handed.values_list("started_at", flat=True)) + timedelta(seconds=lease)
            assert not again.filter(started_at__gte=lapse).exists()
    # a exited of itself, before any answer came (it used to wait for them all).
    assert a.returncode == 0 and stopped_after < answer_after


@pytest.mark.engine
@pytest.mark.two_clusters
def test_when_the_only_dispatcher_dies_a_survivor_starts_one_as_its_slot_lapses(
    start_simulator, ada, tmp_path: Path, settings
):
    """One dispatcher slot in all, held by whichever cluster took the wake-up;
    that cluster is killed with requests in flight. The survivor's watch
    starts a dispatcher as soon as the slot and the leases lapse, not at the
    minute Schedule, and it finishes every job."""
    lease = 5
    settings.FLEX_DISPATCHERS = 1
    simulator = start_simulator(latency="3:3")
    env = engine_env(simulator.url, FLEX_DISPATCHERS=1, FLEX_Q_WORKERS=1, FLEX_LEASE_SECONDS=lease)
    word = tag()
    with qcluster(env, tmp_path / "a.log") as a, qcluster(env, tmp_path / "b.log") as b:
        clusters = {a.pid: "a", b.pid: "b"}
        wait_until_up(a, b)
        jobs = submit(ada, *(f"orphaned {word} {n}" for n in range(10)))
        ids = [job.pk for job in jobs]
        in_flight = Attempt.objects.filter(job__in=ids, outcome=Outcome.IN_FLIGHT)
        wait_for(lambda: in_flight.count() == len(ids), timeout=30, what="every job in flight")
        (owner,) = set(in_flight.values_list("dispatcher", flat=True))
        victim = cluster_of(owner, clusters)
        stop_process(a if victim == "a" else b, signal.SIGKILL)
        killed_at = timezone.now()
        wait_for(finished(jobs), timeout=lease + 30, interval=0.5, what="the survivor to finish")
    assert_each_job_succeeded_once(jobs)
    again = Attempt.objects.filter(job__in=ids, number=2)
    assert again.count() == len(ids) and set(again.values_list("outcome", flat=True)) == {
        Outcome.SUCCEEDED
    }
    assert owner not in set(again.values_list("dispatcher", flat=True))
    taken_over = min(again.values_list("started_at", flat=True))
    after = (taken_over - killed_at).total_seconds()
    print(f"\nthe survivor took the work over {after:.1f} s after the kill (lease {lease} s)")
    assert after < lease + 5, "taken over by the minute Schedule, not by the survivor's watch"
