"""GET /healthz: the database, the cluster and dispatch, for load balancers and
people, without a login and without a secret."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import OperationalError, connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.signing import SignedPackage
from django_q.status import Stat, Status

from jobs.engine import control
from jobs.models import DispatcherSlot, Job, State

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_cluster_statistics():
    """Forget any cluster a previous test left in the shared cache."""
    cache.delete(Conf.Q_STAT)
    yield
    cache.delete(Conf.Q_STAT)


def live_dispatcher(number=1, in_flight=0):
    now = timezone.now()
    return DispatcherSlot.objects.create(
        number=number,
        owner=f"test-{number}",
        expires_at=now + timedelta(seconds=60),
        heartbeat_at=now,
        in_flight=in_flight,
    )


def running_cluster(cluster_id="test-cluster", workers=2):
    """What a running qcluster writes to the cache: its signed statistics."""
    status = Status(pid=os.getpid(), cluster_id=cluster_id)
    status.status = Conf.IDLE
    status.workers = list(range(workers))
    get_broker().set_stat(Stat.get_key(cluster_id), SignedPackage.dumps(status, True), 60)


def test_it_answers_200_with_the_database_cluster_and_dispatch(client):
    live_dispatcher(in_flight=3)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert body["status"] == "ok"
    assert body["problems"] == []
    assert body["database"]["status"] == "ok"
    assert body["database"]["latency_ms"] >= 0
    assert set(body["cluster"]) >= {
        "alive",
        "live_clusters",
        "live_dispatchers",
        "in_flight",
        "oldest_due_wait_seconds",
    }
    assert body["dispatch"] == {"paused": False, "reason": "", "paused_at": None}


def test_it_needs_no_login(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert "login" not in response.get("Location", "")


def test_a_paused_dispatch_is_degraded_with_the_reason_but_still_200(client):
    live_dispatcher()
    control.dispatch_pause(reason="Paused by root from the admin.")

    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["dispatch"]["paused"] is True
    assert body["dispatch"]["reason"] == "Paused by root from the admin."
    assert body["dispatch"]["paused_at"]
    assert body["problems"] == ["dispatch is paused: Paused by root from the admin."]


def test_no_cluster_is_degraded_but_still_200(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["cluster"]["alive"] is False
    assert body["cluster"]["live_clusters"] == 0
    assert body["cluster"]["live_dispatchers"] == 0
    assert "no django-q2 cluster is running (start manage.py qcluster)" in body["problems"]


def test_a_live_dispatcher_shows_with_its_requests_in_flight(client):
    live_dispatcher(1, in_flight=40)
    live_dispatcher(2, in_flight=2)
    DispatcherSlot.objects.create(
        number=3, owner="gone", expires_at=timezone.now() - timedelta(seconds=1), in_flight=99
    )

    cluster = client.get("/healthz").json()["cluster"]

    assert cluster["alive"] is True
    assert cluster["live_dispatchers"] == 2
    assert cluster["in_flight"] == 42
    assert cluster["last_heartbeat_at"]


def test_a_running_cluster_in_the_shared_cache_counts_as_alive(client):
    running_cluster("cluster-a", workers=3)

    body = client.get("/healthz").json()

    assert body["status"] == "ok"
    assert body["cluster"]["alive"] is True
    assert body["cluster"]["live_clusters"] == 1
    assert body["cluster"]["clusters"] == [{"id": "cluster-a", "status": "Idle", "workers": 3}]
    assert body["cluster"]["live_dispatchers"] == 0


def test_the_oldest_due_job_s_wait_is_in_seconds(client, ada):
    now = timezone.now()
    Job.objects.create(
        owner=ada,
        input_text="due",
        state=State.RETRYING,
        next_attempt_at=now - timedelta(seconds=90),
    )
    Job.objects.create(
        owner=ada,
        input_text="lost with its worker",
        state=State.RUNNING,
        lease_expires_at=now - timedelta(seconds=30),
    )
    Job.objects.create(
        owner=ada,
        input_text="later",
        state=State.RETRYING,
        next_attempt_at=now + timedelta(minutes=5),
    )

    wait = client.get("/healthz").json()["cluster"]["oldest_due_wait_seconds"]

    assert 90 <= wait < 150


def test_nothing_due_has_no_wait(client, ada):
    Job.objects.create(owner=ada, input_text="done", state=State.SUCCEEDED)

    assert client.get("/healthz").json()["cluster"]["oldest_due_wait_seconds"] is None


def test_it_never_shows_a_secret(client, settings):
    settings.GEMINI_API_KEY = "marker-gemini-key-4242"
    control.dispatch_pause(reason="Gemini refused the API key (marker-gemini-key-4242).")

    page = client.get("/healthz").content.decode()

    assert "marker-gemini-key-4242" not in page
    assert "Gemini refused the API key ([GEMINI_API_KEY])." in page
    assert settings.SECRET_KEY not in page
    assert settings.DATABASE_URL not in page
    assert str(settings.DATABASES["default"]["NAME"]) not in page


def test_a_database_that_does_not_answer_is_503_without_the_driver_s_words(client):
    def refuse(execute, sql, params, many, context):
        raise OperationalError('connection to server at "db.internal" failed for user "flexdash"')

    with connection.execute_wrapper(refuse):
        response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"] == {"status": "error", "error": "OperationalError"}
    assert "db.internal" not in response.content.decode()
    assert "flexdash" not in response.content.decode()


def test_only_reading_methods_are_allowed(client):
    assert client.post("/healthz").status_code == 405
    assert client.head("/healthz").status_code == 200
