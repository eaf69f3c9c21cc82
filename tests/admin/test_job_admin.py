"""The jobs and attempts admin as an operator reads it: what was asked is
fixed once the job is sent, the numbers are rounded, the times to the second."""

from __future__ import annotations

import re

import pytest
from django.db.models.signals import pre_save
from django.utils import timezone

from jobs.models import Attempt, Job, Outcome, State
from tests.support import make_job, submit

pytestmark = pytest.mark.django_db

FAKE_KEY = "AIza" + "x" * 35
INLINE_EMPTY = {
    "attempt_log-TOTAL_FORMS": "0",
    "attempt_log-INITIAL_FORMS": "0",
    "attempt_log-MIN_NUM_FORMS": "0",
    "attempt_log-MAX_NUM_FORMS": "1000",
}


def editable_fields(operator, job: Job) -> set[str]:
    page = operator.get(f"/admin/jobs/job/{job.pk}/change/")
    assert page.status_code == 200
    return set(page.context["adminform"].form.fields)


@pytest.mark.parametrize(
    ("state", "attempts"),
    [(State.SUCCEEDED, 1), (State.FAILED, 3), (State.RUNNING, 1), (State.QUEUED, 1)],
)
def test_a_sent_job_keeps_its_prompt_model_and_owner(admin_client, ada, state, attempts):
    job = make_job(ada, state, attempts=attempts, prompt="what ran")
    assert editable_fields(admin_client, job).isdisjoint({"owner", "model", "input_text"})


def test_a_job_never_sent_can_still_be_changed(admin_client, ada):
    (job,) = submit(ada, "not sent yet")
    assert {"owner", "model", "max_attempts"} <= editable_fields(admin_client, job)


def test_posting_a_new_model_to_a_finished_job_changes_nothing(admin_client, ada, bob):
    job = make_job(ada, State.SUCCEEDED, attempts=1, model="gemini-2.5-flash")
    response = admin_client.post(
        f"/admin/jobs/job/{job.pk}/change/",
        {"owner": bob.pk, "model": "gemini-2.5-pro", "input_text": "changed", **INLINE_EMPTY},
    )
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.owner, job.model, job.input_text) == (ada, "gemini-2.5-flash", "Explain flex")


def test_saving_a_queued_job_writes_only_what_changed(admin_client, ada):
    (job,) = submit(ada, "edited while claimed")
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form.initial[name] for name in form.fields if form.initial.get(name) is not None}

    def claimed_meanwhile(sender, instance, **kwargs):
        # A dispatcher claims the job between the admin's read and its save.
        Job.objects.filter(pk=instance.pk).update(state=State.RUNNING, attempts=1)

    pre_save.connect(claimed_meanwhile, sender=Job)
    try:
        admin_client.post(
            f"/admin/jobs/job/{job.pk}/change/", {**data, "max_attempts": 9, **INLINE_EMPTY}
        )
    finally:
        pre_save.disconnect(claimed_meanwhile, sender=Job)
    job.refresh_from_db()
    assert (job.state, job.attempts, job.max_attempts) == (State.RUNNING, 1, 9)


@pytest.fixture
def gemini_key(settings) -> str:
    settings.GEMINI_API_KEY = FAKE_KEY
    return FAKE_KEY


def test_the_prompt_shows_redacted_on_the_job_page(admin_client, ada, gemini_key):
    job = make_job(ada, State.SUCCEEDED, attempts=1, prompt=f"key {FAKE_KEY} inside")
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert FAKE_KEY[:8] not in page and "key [GEMINI_API_KEY] inside" in page


@pytest.fixture
def tried(ada) -> Attempt:
    job = make_job(ada, State.SUCCEEDED, attempts=1, prompt="tried once")
    return Attempt.objects.create(
        job=job,
        number=1,
        tier_requested="flex",
        started_at=timezone.now().replace(microsecond=123456),
        latency_seconds=40.133595572999866,
        retry_after_seconds=7.0,
        http_status=200,
        outcome=Outcome.SUCCEEDED,
    )


@pytest.mark.parametrize(
    "url",
    [
        "/admin/jobs/job/{job}/change/",
        "/admin/jobs/attempt/",
        "/admin/jobs/attempt/{attempt}/change/",
    ],
)
def test_latencies_are_rounded_and_times_are_to_the_second(admin_client, tried, url):
    page = admin_client.get(url.format(job=tried.job_id, attempt=tried.pk)).content.decode()
    assert "40.13 s" in page and "7.00 s" in page
    assert "40.1335" not in page
    started = timezone.localtime(tried.started_at)
    assert f"{started:%Y-%m-%d %H:%M:%S}" in page
    assert "123456" not in page


def test_the_job_list_shows_a_redacted_excerpt_of_the_prompt(admin_client, ada, gemini_key):
    make_job(ada, prompt=f"{FAKE_KEY} " + "a long prompt about flex " * 10)
    page = admin_client.get("/admin/jobs/job/").content.decode()
    assert FAKE_KEY[:8] not in page and "[GEMINI_API_KEY] a long prompt" in page
    assert "a long prompt about flex" in page and page.count("a long prompt about flex") < 5


def test_the_job_list_is_ten_columns_with_times_to_the_second(admin_client, ada):
    job = make_job(ada, submitted_at=timezone.now().replace(microsecond=654321))
    page = admin_client.get("/admin/jobs/job/").content.decode()
    header = re.search(r"<thead>(.*?)</thead>", page, re.S)[1]
    # The selection checkbox, then the ten columns.
    assert header.count("<th") == 11
    submitted = timezone.localtime(job.submitted_at)
    assert f"{submitted:%Y-%m-%d %H:%M:%S}" in page and "654321" not in page


def test_a_whole_request_and_its_structured_answer_show_without_the_image_bytes(admin_client, ada):
    png = "iVBORw0KGgo" + "A" * 401
    request = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is it?"},
                    {"inline_data": {"mime_type": "image/png", "data": png}},
                ],
            }
        ],
        "generation_config": {"seed": 5, "temperature": 0.3},
    }
    (job,) = submit(ada, request)
    Job.objects.filter(pk=job.pk).update(
        state=State.SUCCEEDED, output_json={"kind": "cat"}, finish_reason="STOP"
    )
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert png not in page and "bytes, not shown" in page and "&quot;seed&quot;: 5" in page
    assert "&quot;kind&quot;: &quot;cat&quot;" in page


def test_an_unsent_whole_request_keeps_its_settings_in_the_request(admin_client, ada):
    (job,) = submit(
        ada, {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"seed": 1}}
    )
    # Its temperature would not be sent from the column: it is not offered for editing.
    assert "temperature" not in editable_fields(admin_client, job)
    (plain,) = submit(ada, "plain text")
    assert "temperature" in editable_fields(admin_client, plain)
