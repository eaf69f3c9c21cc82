"""Notifications through the real engine: with two clusters running (either
may record a run's last job, sweep for ended runs and due notices, or pick
up a delivery), a run ends and its owner's receiver gets exactly one signed
"run finished" POST and one "failures" POST, and each e-mail once, all from
django-q2 tasks."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.models import ChannelState, Delivery, Notice, NoticeKind, NoticeSettings, Run
from jobs.notices.choices import RunNotify
from tests.receiver import signature_ok
from tests.support import engine_env, make_run, start_process, stop_process, tag, wait_for

pytestmark = [
    pytest.mark.engine,
    pytest.mark.two_clusters,
    pytest.mark.django_db(transaction=True),
]

SECRET = "whsec_cluster"


@contextlib.contextmanager
def two_clusters(env: dict[str, str], tmp_path: Path) -> Iterator[None]:
    clusters = [start_process(["qcluster"], env, tmp_path / f"{n}.log") for n in (1, 2)]
    try:
        yield
    finally:
        # Everything the test checks is stored by then: a graceful stop would
        # only wait out the dispatchers' idle horizon.
        for cluster in clusters:
            stop_process(cluster, signal.SIGKILL)


def test_a_run_ended_with_two_clusters_running_is_told_once(
    simulator, webhook_receiver, settings, tmp_path: Path, ada
):
    settings.FLEX_DISPATCHERS = 2
    NoticeSettings.objects.create(
        user=ada, email="ada@example.org", webhook_url=webhook_receiver.url, webhook_secret=SECRET
    )
    word = tag()
    # Answers that take a moment, so both clusters' dispatchers have work.
    lines = [(f"l{n}", f"{word} prompt {n} [sim:sleep=0.3]") for n in range(16)]
    lines.append(("bad", f"{word} refused [sim:400]"))
    lines.append(("shed", f"{word} shed once [sim:503x1]"))
    env = engine_env(
        simulator.url,
        FLEX_DISPATCHERS=2,
        # A worker beside each cluster's two dispatchers: deliveries never wait
        # for a dispatcher's run to end (README, Notifications).
        FLEX_Q_WORKERS=3,
        FLEX_WEBHOOK_ALLOW_PRIVATE=1,
        FLEX_SITE_URL="https://flexdash.example.org",
    )
    with two_clusters(env, tmp_path):
        run = make_run(ada, lines, name="nightly", notify=RunNotify(finished=True, failed_jobs=1))

        def told_finished():
            return [
                post
                for post in webhook_receiver.posts()
                if json.loads(post.body)["type"] == "run.finished"
            ]

        wait_for(told_finished, timeout=60, what="the run.finished webhook")
        # Long enough for a second dispatcher, or the minute sweep's first
        # pass in each cluster, to have told it again if they were going to.
        time.sleep(2)
        wait_for(
            lambda: not Notice.objects.filter(due_at__isnull=False).exists(),
            timeout=20,
            what="every notice delivered",
        )

    posts = webhook_receiver.posts()
    kinds = sorted(json.loads(post.body)["type"] for post in posts)
    assert kinds == ["run.failures", "run.finished"]
    assert all(signature_ok(SECRET, post) for post in posts)
    finished = next(json.loads(p.body) for p in posts if b"run.finished" in p.body)
    assert finished["data"]["counts"]["succeeded"] == 17
    assert finished["data"]["counts"]["failed"] == 1
    assert finished["data"]["run"]["url"] == f"https://flexdash.example.org/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.finished_at is not None
    assert Run.objects.get(pk=run.pk).failures_noticed_at is not None

    notices = Notice.objects.filter(run=run)
    assert sorted(notices.values_list("kind", flat=True)) == [
        NoticeKind.RUN_FAILURES,
        NoticeKind.RUN_FINISHED,
    ]
    assert set(notices.values_list("email_state", "webhook_state")) == {
        (ChannelState.SENT, ChannelState.SENT)
    }
    assert Delivery.objects.filter(outcome="sent").count() == 4
    # The cluster's console e-mail backend printed each message once.
    logs = (tmp_path / "1.log").read_text() + (tmp_path / "2.log").read_text()
    assert logs.count("To: ada@example.org") == 2
