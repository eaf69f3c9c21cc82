"""The operator's admin: usable pages, and actions that call the services."""

from __future__ import annotations

import pytest
from django.utils import timezone

from jobs.engine import control
from jobs.models import Attempt, Delivery, Job, Notice, NoticeSettings, Outcome, State
from tests.support import make_run, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(admin_client):
    return admin_client


@pytest.fixture
def job(admin_user):
    (job,) = submit(admin_user, "a prompt")
    Attempt.objects.create(
        job=job,
        number=1,
        tier_requested="flex",
        http_status=503,
        google_status="UNAVAILABLE",
        outcome=Outcome.WILL_RETRY,
        finished_at=timezone.now(),
    )
    return job


def act(client, action, *jobs):
    return client.post(
        "/admin/jobs/job/",
        {"action": action, "_selected_action": [j.pk for j in jobs]},
        follow=True,
    )


def test_the_job_list_filters_and_searches(operator, job):
    page = operator.get("/admin/jobs/job/?state__exact=queued&q=prompt")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1


def test_a_job_page_shows_its_attempts_inline(operator, job):
    page = operator.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert "UNAVAILABLE" in page and "Will retry" in page


def test_cancel_and_retry_actions_change_state(operator, job):
    act(operator, "cancel", job)
    job.refresh_from_db()
    assert job.state == State.CANCELLED
    Job.objects.filter(pk=job.pk).update(state=State.FAILED)
    act(operator, "retry_now", job)
    job.refresh_from_db()
    assert job.state == State.QUEUED


def test_pause_and_resume_dispatch_with_the_reason_shown(operator, job):
    act(operator, "pause_dispatch", job)
    assert control.dispatch_is_paused()
    page = operator.get("/admin/jobs/job/").content.decode()
    assert "Dispatch is paused" in page and "from the admin" in page
    act(operator, "resume_dispatch", job)
    assert not control.dispatch_is_paused()


def test_attempts_are_read_only(operator, job):
    attempt = job.attempt_log.get()
    assert operator.get("/admin/jobs/attempt/").status_code == 200
    assert (
        operator.post(f"/admin/jobs/attempt/{attempt.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert Attempt.objects.filter(pk=attempt.pk).exists()


def test_django_q2_admin_stays_available(operator):
    assert operator.get("/admin/django_q/schedule/").status_code == 200


@pytest.fixture
def run(admin_user):
    return make_run(admin_user, [("q1", "first"), ("q2", "second")], name="eval")


def test_runs_are_listed_and_their_actions_call_the_run_services(operator, run):
    assert operator.get("/admin/jobs/run/").status_code == 200
    first, second = run.jobs.order_by("id")
    Job.objects.filter(pk=second.pk).update(state=State.FAILED)
    operator.post("/admin/jobs/run/", {"action": "cancel_unfinished", "_selected_action": [run.pk]})
    operator.post("/admin/jobs/run/", {"action": "retry_failed", "_selected_action": [run.pk]})
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (State.CANCELLED, State.QUEUED)


def test_a_jobs_page_links_back_to_its_run(client, admin_user, run):
    job = run.jobs.get(custom_id="q1")
    client.force_login(admin_user)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/runs/{run.pk}/"' in page and "q1" in page


def test_the_retry_actions_say_how_many_attempts_they_grant(operator, job, run):
    Job.objects.filter(pk=job.pk).update(state=State.FAILED, attempts=1, max_attempts=3)
    page = act(operator, "retry_now", job).content.decode()
    assert "1 of 1 jobs will run again now; the failed ones with 3 more attempts." in page

    failed = run.jobs.get(custom_id="q2")
    Job.objects.filter(pk=failed.pk).update(state=State.FAILED, attempts=2, max_attempts=2)
    page = operator.post(
        "/admin/jobs/run/", {"action": "retry_failed", "_selected_action": [run.pk]}, follow=True
    ).content.decode()
    assert "1 failed jobs will run again, with 2 more attempts each; failures a retry" in page


def test_notices_are_listed_with_their_deliveries_and_no_secret(operator, admin_user):
    NoticeSettings.objects.create(
        user=admin_user, webhook_url="https://e.org/h", webhook_secret="whsec_never_shown"
    )
    notice = Notice.objects.create(user=admin_user, kind="test", key="k", subject="A test")
    Delivery.objects.create(
        notice=notice,
        user=admin_user,
        channel="webhook",
        attempt=1,
        target="https://e.org/h",
        http_status=502,
        outcome="will_retry",
        error="The receiver answered HTTP 502",
    )
    assert "A test" in operator.get("/admin/jobs/notice/").content.decode()
    page = operator.get(f"/admin/jobs/notice/{notice.pk}/change/").content.decode()
    assert "The receiver answered HTTP 502" in page
    assert "https://e.org/h" in operator.get("/admin/jobs/noticesettings/").content.decode()
    prefs = NoticeSettings.objects.get()
    change = operator.get(f"/admin/jobs/noticesettings/{prefs.pk}/change/").content.decode()
    assert "https://e.org/h" in change
    assert "whsec_never_shown" not in change
