"""Cancel, retry now and run again: POST only, CSRF-checked, the owner's jobs only."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs.models import Job, State
from tests.support import as_user, make_job

pytestmark = pytest.mark.django_db

ACTIONS = ("cancel", "retry", "run-again")
# Every setting a job is asked with, most of them not the default, so "run
# again" is seen to copy each one.
ASKED_WITH = {
    "model": "gemini-2.5-pro",
    "tier_requested": "flex",
    "fallback_standard": True,
    "system_instruction": "Be brief.",
    "temperature": 0.3,
    "max_output_tokens": 99,
    "max_attempts": 4,
}


def test_cancel_stops_a_queued_job(client, ada):
    job = make_job(ada, State.QUEUED, **ASKED_WITH, next_attempt_at=timezone.now())
    response = as_user(client, ada).post(f"/jobs/{job.pk}/cancel/", follow=True)
    job.refresh_from_db()
    assert (job.state, job.next_attempt_at) == (State.CANCELLED, None)
    assert job.finished_at is not None
    assert response.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    assert f"Job {job.pk} cancelled." in response.content.decode()


def test_cancel_refuses_a_running_job_and_says_why(client, ada):
    job = make_job(ada, State.RUNNING, **ASKED_WITH)
    response = as_user(client, ada).post(f"/jobs/{job.pk}/cancel/", follow=True)
    job.refresh_from_db()
    assert job.state == State.RUNNING
    assert "only a queued job or one waiting to retry can be cancelled" in response.content.decode()


def test_retry_now_brings_a_waiting_job_forward(client, ada):
    job = make_job(
        ada,
        State.RETRYING,
        **ASKED_WITH,
        attempts=1,
        next_attempt_at=timezone.now() + timedelta(hours=1),
    )
    as_user(client, ada).post(f"/jobs/{job.pk}/retry/")
    job.refresh_from_db()
    assert job.state == State.RETRYING
    assert job.next_attempt_at <= timezone.now()


def test_retry_now_requeues_a_failed_job_with_its_attempts_again(client, ada):
    job = make_job(ada, State.FAILED, **ASKED_WITH, attempts=1, finished_at=timezone.now())
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert ">Retry with 4 more attempts</button>" in page

    response = client.post(f"/jobs/{job.pk}/retry/", follow=True)

    job.refresh_from_db()
    assert (job.state, job.max_attempts, job.finished_at) == (State.QUEUED, 5, None)
    assert "will be tried again now" in response.content.decode()
    assert "data-jobs-changed" in response.content.decode()
    assert "Attempt 1 of 5" in response.content.decode()


def test_a_waiting_job_offers_retry_now_without_more_attempts(client, ada):
    job = make_job(ada, State.RETRYING, **ASKED_WITH, attempts=1)
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert ">Retry now</button>" in page and "more attempt" not in page


def test_retry_now_refuses_a_succeeded_job(client, ada):
    job = make_job(ada, State.SUCCEEDED, **ASKED_WITH)
    response = as_user(client, ada).post(f"/jobs/{job.pk}/retry/", follow=True)
    job.refresh_from_db()
    assert job.state == State.SUCCEEDED
    assert "only a failed job or one waiting to retry" in response.content.decode()


def test_run_again_submits_a_new_job_with_the_same_settings(client, ada):
    job = make_job(ada, State.SUCCEEDED, **ASKED_WITH, attempts=2)
    response = as_user(client, ada).post(f"/jobs/{job.pk}/run-again/")
    new = Job.objects.exclude(pk=job.pk).get()
    assert response["Location"] == f"/jobs/{new.pk}/"
    assert new.state == State.QUEUED and new.attempts == 0 and new.owner == ada
    settings = (
        "input_text",
        "model",
        "tier_requested",
        "fallback_standard",
        "system_instruction",
        "temperature",
        "max_output_tokens",
        "max_attempts",
    )
    assert [getattr(new, f) for f in settings] == [getattr(job, f) for f in settings]


def test_run_again_keeps_max_attempts_within_the_limit(client, ada):
    job = make_job(ada, State.FAILED, **ASKED_WITH)
    Job.objects.filter(pk=job.pk).update(max_attempts=60)
    as_user(client, ada).post(f"/jobs/{job.pk}/run-again/")
    assert Job.objects.exclude(pk=job.pk).get().max_attempts == 50


def test_run_again_says_why_a_job_cannot_be_repeated(client, ada):
    job = make_job(ada, State.SUCCEEDED, **ASKED_WITH)
    Job.objects.filter(pk=job.pk).update(model="gemini-1.0-retired")
    response = as_user(client, ada).post(f"/jobs/{job.pk}/run-again/", follow=True)
    assert response.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    assert "could not be run again: Unknown model &#x27;gemini-1.0-retired&#x27;" in (
        response.content.decode()
    )
    assert Job.objects.count() == 1


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_on_another_users_job_are_not_found(client, bob, ada, action):
    job = make_job(
        ada, State.RETRYING, **ASKED_WITH, next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    response = as_user(client, bob).post(f"/jobs/{job.pk}/{action}/")
    assert response.status_code == 404
    job.refresh_from_db()
    assert job.state == State.RETRYING
    assert Job.objects.count() == 1


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_need_a_post(client, ada, action):
    job = make_job(ada, State.QUEUED, **ASKED_WITH)
    assert as_user(client, ada).get(f"/jobs/{job.pk}/{action}/").status_code == 405


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_need_the_csrf_token(ada, action):
    job = make_job(
        ada, State.RETRYING, **ASKED_WITH, next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    client = Client(enforce_csrf_checks=True)
    client.force_login(ada)
    assert client.post(f"/jobs/{job.pk}/{action}/").status_code == 403
    job.refresh_from_db()
    assert job.state == State.RETRYING and Job.objects.count() == 1

    token = str(client.get(f"/jobs/{job.pk}/").context["csrf_token"])
    response = client.post(f"/jobs/{job.pk}/{action}/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_the_token_in_hx_headers_passes_the_csrf_check(ada):
    job = make_job(ada, State.QUEUED, **ASKED_WITH)
    client = Client(enforce_csrf_checks=True)
    client.force_login(ada)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    token = re.search(r"<body hx-headers='\{\"x-csrftoken\": \"(\w+)\"\}'", page)[1]
    assert client.post(f"/jobs/{job.pk}/cancel/", headers={"X-CSRFToken": token}).status_code == 302
    job.refresh_from_db()
    assert job.state == State.CANCELLED
