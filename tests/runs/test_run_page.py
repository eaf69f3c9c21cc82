"""The run page as a researcher reads it: time left that counts what waits, the
per-minute chart, the job table in the file's own terms, retries told apart
from permanent failures, and cancel and delete that ask first."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Attempt, ErrorKind, Job, Outcome, State
from tests.run_files import prompt_file
from tests.support import HTMX, answered, as_user, make_run, run_from_file

pytestmark = pytest.mark.django_db


def page_of(client, run, **headers) -> str:
    return client.get(f"/runs/{run.pk}/", headers=headers).content.decode()


def failed_with(job: Job, kind: str, message: str = "") -> None:
    now = timezone.now()
    Attempt.objects.create(
        job=job, number=1, tier_requested="flex", error_kind=kind, error_message=message,
        outcome=Outcome.FAILED, finished_at=now,
    )  # fmt: skip
    Job.objects.filter(pk=job.pk).update(state=State.FAILED, attempts=1, finished_at=now)


# --- Time left -------------------------------------------------------------------
def test_the_last_jobs_waiting_out_their_backoff_are_counted_not_timed_by_the_rate(client, ada):
    run = make_run(ada, lines=[(f"j{n}", f"prompt {n}") for n in range(42)])
    now = timezone.now()
    run.jobs.filter(custom_id="j0").update(first_started_at=now - timedelta(seconds=20))
    answered(run.jobs.exclude(custom_id__in=["j40", "j41"]), at=now - timedelta(seconds=5))
    run.jobs.filter(custom_id="j40").update(
        state=State.RETRYING, next_attempt_at=now + timedelta(seconds=8)
    )
    run.jobs.filter(custom_id="j41").update(
        state=State.RETRYING, next_attempt_at=now + timedelta(seconds=11)
    )
    page = page_of(as_user(client, ada), run)
    # 40 answers in 20 s is 120 a minute (less the seconds a loaded machine
    # takes to render the page): the rate alone would say about 1 s.
    assert re.search(r"1[01]\d\.\d jobs a minute|120\.0 jobs a minute", page)
    assert "at this rate" not in page
    assert re.search(
        r'2 jobs waiting to retry, next <span data-countdown="[5-8]">in [5-8] s</span>', page
    )


def test_a_long_run_with_a_few_retries_keeps_the_rate_and_says_they_wait(client, ada):
    run = make_run(ada, lines=[(f"j{n}", f"prompt {n}") for n in range(10)])
    now = timezone.now()
    run.jobs.filter(custom_id="j0").update(first_started_at=now - timedelta(minutes=4))
    answered(run.jobs.filter(custom_id__in=["j0", "j1", "j2", "j3"]), at=now - timedelta(minutes=1))
    run.jobs.filter(custom_id="j4").update(
        state=State.RETRYING, next_attempt_at=now + timedelta(seconds=8)
    )
    page = page_of(as_user(client, ada), run)
    assert re.search(r"about 6 min 0\d s at this rate", page)
    assert "(1 of the jobs left waiting to retry)" in page


# --- The per-minute chart --------------------------------------------------------
def test_the_minutes_are_bars_of_answers_and_errors_with_the_table_kept(client, ada):
    run = make_run(ada, lines=[("a", "one"), ("b", "two"), ("c", "three")])
    now = timezone.now()
    a, b, c = run.jobs.order_by("id")
    for job, outcome, kind in (
        (a, Outcome.SUCCEEDED, ""),
        (b, Outcome.SUCCEEDED, ""),
        (c, Outcome.WILL_RETRY, ErrorKind.BAD_REQUEST),
    ):
        Attempt.objects.create(
            job=job, number=1, tier_requested="flex", outcome=outcome, error_kind=kind,
            started_at=now - timedelta(seconds=1), finished_at=now,
        )  # fmt: skip
    page = page_of(as_user(client, ada), run)
    assert '<figure class="minute-chart" id="run-minutes">' in page
    assert 'aria-labelledby="minutes-title minutes-desc"' in page
    assert "2 answers and 1 error over the last 1 minute" in page
    assert len(re.findall(r'<rect class="bar-succeeded" x="[\d.]+" y="[\d.]+"', page)) == 1
    assert len(re.findall(r'<rect class="bar-errors" x="[\d.]+" y="[\d.]+"', page)) == 1
    assert "style=" not in page.split('id="run-minutes"')[1].split("</figure>")[0]
    assert "<summary>The same figures as a table</summary>" in page
    assert re.search(r'<td class="num">2</td><td class="num">1</td>', page)


# --- The job table ---------------------------------------------------------------
def test_the_job_table_shows_the_files_ids_lines_and_last_errors(client, staff, ada):
    lines = [("alpha", "one"), ("beta", "two"), ("gamma", "three")]
    filename, content = prompt_file("csv", lines)
    run = run_from_file(ada, content, filename)
    beta = run.jobs.get(custom_id="beta")
    failed_with(beta, ErrorKind.BAD_REQUEST, "Simulated INVALID_ARGUMENT ([sim:400]).")
    page = page_of(as_user(client, staff), run)
    table = page.split('id="job-table"')[1]
    # In file order; the CSV's header is line 1.
    rows = re.findall(r'<td data-label="Line" class="num">(\d+)</td>\s*<td data-label="Id" '
                      r'class="id-cell"><a href="/jobs/(\d+)/">(\w+)</a>', table)  # fmt: skip
    assert [(line, custom_id) for line, _, custom_id in rows] == [
        ("2", "alpha"),
        ("3", "beta"),
        ("4", "gamma"),
    ]
    assert "<strong>Bad request</strong>" in table
    assert "Simulated INVALID_ARGUMENT ([sim:400])." in table
    # Not the global job number, nor the owner (one person's run).
    assert f">#{beta.pk}<" not in table
    assert "Owner" not in table and ada.get_username() not in table


def test_the_job_tables_poll_answers_with_the_runs_own_columns(client, ada):
    run = make_run(ada)
    fragment = page_of(as_user(client, ada), run, **HTMX, **{"HX-Target": "job-table"})
    assert fragment.lstrip().startswith('<p id="state-counts"')
    assert '<th scope="col" class="num">Line</th>' in fragment
    assert fragment.count('<tr id="job-') == 2


# --- Retrying: what can pass, and what failed for good ---------------------------------
def test_retry_failed_names_the_permanent_failures_it_leaves_and_offers_them_apart(client, ada):
    run = make_run(ada, lines=[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")], max_attempts=3)
    a, b, c, _ = run.jobs.order_by("id")
    failed_with(a, ErrorKind.CAPACITY)
    failed_with(b, ErrorKind.BAD_REQUEST)
    failed_with(c, ErrorKind.FAILED_IN_BODY)
    as_user(client, ada)
    page = page_of(client, run)
    assert ">Retry 1 failed job with 3 more attempts</button>" in page
    assert (
        "Retrying leaves alone 2 permanent failures (1 bad request, 1 blocked or refused answer)"
        in page
    )
    assert ">Send them again anyway, with 3 more attempts each</button>" in page

    response = client.post(f"/runs/{run.pk}/retry/", follow=True)
    assert "1 failed job queued again." in response.content.decode()
    assert dict(run.jobs.values_list("custom_id", "state")) == {
        "a": "queued", "b": "failed", "c": "failed", "d": "queued",
    }  # fmt: skip
    page = page_of(client, run)
    assert "Left alone: 2 permanent failures" in page and 'id="run-retry"' not in page

    response = client.post(f"/runs/{run.pk}/resend/", follow=True)
    assert "2 permanent failures sent again, unchanged." in response.content.decode()
    assert set(run.jobs.values_list("state", flat=True)) == {State.QUEUED}
    response = client.post(f"/runs/{run.pk}/resend/", follow=True)
    assert "nothing was sent again" in response.content.decode()


# --- Cancel and delete ask first --------------------------------------------------
def test_cancel_asks_first_in_a_details_that_works_without_script(client, ada):
    run = make_run(ada, lines=[("a", "1"), ("b", "2")])
    page = page_of(as_user(client, ada), run)
    confirm = page.split('<details class="confirm" id="run-cancel" data-keep-open>')[1]
    confirm = confirm.split("</details>")[0]
    assert 'class="button secondary danger" id="run-cancel-ask">Cancel 2 waiting jobs…' in confirm
    assert "Cancel the 2 jobs still waiting to be sent?" in confirm
    assert f'<form method="post" action="/runs/{run.pk}/cancel/">' in confirm
    assert 'class="danger" id="run-cancel-confirm">Yes, cancel 2 jobs</button>' in confirm
    # The page's only button posting to cancel is the one inside the confirmation.
    assert page.count(f'action="/runs/{run.pk}/cancel/"') == 1
    assert 'class="button secondary danger" href="/runs/' in page  # Delete the run…


def test_the_delete_page_confirms_with_a_danger_button(client, ada):
    run = make_run(ada)
    page = as_user(client, ada).get(f"/runs/{run.pk}/delete/").content.decode()
    assert '<button type="submit" class="danger">Delete the run and its jobs</button>' in page
