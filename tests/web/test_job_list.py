"""The jobs list: newest first, filtered by the query string, live while a row is active."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from jobs.models import Attempt, Job, Outcome, State
from tests.support import HTMX, as_user, make_job

pytestmark = pytest.mark.django_db


def seconds_ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def listed(response) -> list[int]:
    return [job.pk for job in response.context["page"]]


def test_it_lists_my_jobs_newest_first(client, ada, bob):
    old = make_job(ada, prompt="old", submitted_at=seconds_ago(60))
    new = make_job(ada, prompt="new")
    make_job(bob, prompt="bob's secret")
    response = as_user(client, ada).get("/jobs/")
    assert listed(response) == [new.pk, old.pk]
    assert b"bob&#x27;s secret" not in response.content


def test_a_row_shows_state_attempts_errors_latency_tier_and_cost(client, ada):
    job = make_job(
        ada,
        State.SUCCEEDED,
        attempts=2,
        max_attempts=8,
        http_503=1,
        tier_served="flex",
        cost_usd=Decimal("0.00001250"),
    )
    Attempt.objects.create(
        job=job, number=2, tier_requested="flex", latency_seconds=2.5, outcome=Outcome.SUCCEEDED
    )
    row = as_user(client, ada).get("/jobs/").content.decode()
    row = row[row.index(f'id="job-{job.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "✓</span> Succeeded" in row
    assert "2 / 8" in row
    assert '<td data-label="503s" class="num">1</td>' in row
    assert "2.5 s" in row
    assert '<td data-label="Tier served">flex</td>' in row
    assert "$0.0000125" in row


def test_a_waiting_row_counts_down_to_its_next_retry(client, ada):
    make_job(ada, State.RETRYING, next_attempt_at=timezone.now() + timedelta(seconds=90))
    page = as_user(client, ada).get("/jobs/").content.decode()
    assert "Waiting to retry" in page
    assert 'data-relative="countdown"' in page
    assert "in 1 min 30 s" in page or "in 1 min 29 s" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=failed", ["failed flash"]),
        ("state=active", ["queued pro"]),
        ("model=gemini-2.5-pro", ["queued pro"]),
        ("q=FLASH", ["failed flash", "done flash"]),
        ("state=succeeded&q=flash", ["done flash"]),
    ],
)
def test_it_filters_by_state_model_and_prompt_text_from_the_query_string(
    client, ada, query, expected
):
    make_job(ada, State.SUCCEEDED, prompt="done flash", submitted_at=seconds_ago(3))
    make_job(ada, State.FAILED, prompt="failed flash", submitted_at=seconds_ago(2))
    make_job(
        ada, State.QUEUED, prompt="queued pro", submitted_at=seconds_ago(1), model="gemini-2.5-pro"
    )
    response = as_user(client, ada).get(f"/jobs/?{query}")
    prompts = [Job.objects.get(pk=pk).input_text for pk in listed(response)]
    assert prompts == expected


def test_a_bad_filter_is_reported_and_ignored(client, ada):
    make_job(ada)
    response = as_user(client, ada).get("/jobs/?state=exploded")
    assert len(listed(response)) == 1
    assert b"Select a valid choice" in response.content


def test_it_pages_by_neighbour_and_keeps_the_filters_in_page_links(client, ada):
    jobs = [
        make_job(ada, prompt=f"flash {n}", submitted_at=seconds_ago(100 - n)) for n in range(30)
    ]
    make_job(ada, prompt="owl")
    response = as_user(client, ada).get("/jobs/?q=flash")
    assert len(listed(response)) == 25
    assert b"Newer" not in response.content
    older = f'href="?q=flash&amp;before={jobs[5].pk}"'.encode()
    assert older in response.content
    second = client.get(f"/jobs/?q=flash&before={jobs[5].pk}")
    assert [Job.objects.get(pk=pk).input_text for pk in listed(second)] == [
        f"flash {n}" for n in range(4, -1, -1)
    ]
    assert b"Older" not in second.content
    assert f'href="?q=flash&amp;after={jobs[4].pk}"'.encode() in second.content

    # A page stays put while new jobs arrive above it; Newer steps back up.
    for n in range(3):
        make_job(ada, prompt=f"flash new {n}")
    assert listed(client.get(f"/jobs/?q=flash&before={jobs[5].pk}")) == listed(second)
    back = client.get(f"/jobs/?q=flash&after={jobs[4].pk}")
    assert listed(back) == [job.pk for job in reversed(jobs[5:30])]
    assert b"Newer" in back.content and b"Older" in back.content
    # Without a search the total is the stored count, exact.
    assert "34 jobs" in client.get("/jobs/").content.decode()


def test_a_page_past_either_end_is_the_newest_page(client, ada):
    jobs = [make_job(ada, prompt=f"p {n}") for n in range(3)]
    as_user(client, ada)
    newest = [job.pk for job in reversed(jobs)]
    assert listed(client.get(f"/jobs/?before={jobs[0].pk}")) == newest
    assert listed(client.get(f"/jobs/?after={jobs[2].pk}")) == newest
    assert listed(client.get("/jobs/?before=nonsense")) == newest


def test_staff_see_everyone_and_filter_by_user(client, ada, bob, staff):
    a = make_job(ada, submitted_at=seconds_ago(1))
    b = make_job(bob)
    as_user(client, staff)
    assert listed(client.get("/jobs/")) == [b.pk, a.pk]
    only_ada = client.get("/jobs/?user=ada")
    assert listed(only_ada) == [a.pk]
    assert b'<th scope="col">Owner</th>' in only_ada.content


def test_the_table_fragment_renders_alone_with_out_of_band_counts(client, ada):
    make_job(ada, State.QUEUED)
    as_user(client, ada)
    page = client.get("/jobs/").content.decode()
    fragment = client.get("/jobs/", headers=HTMX).content.decode()

    assert '<div id="job-table"' in page and "<html" in page
    assert 'hx-swap-oob="true"' not in page
    assert "<html" not in fragment and "<form" not in fragment
    assert '<p id="state-counts" class="state-counts" hx-swap-oob="true">' in fragment
    assert '<div id="job-table"' in fragment


def test_the_table_polls_with_its_own_filters_while_a_row_is_active(client, ada):
    make_job(ada, State.RUNNING)
    fragment = as_user(client, ada).get("/jobs/?model=gemini-2.5-flash", headers=HTMX)
    assert 'hx-get="/jobs/?model=gemini-2.5-flash"' in fragment.content.decode()
    assert 'hx-trigger="every 2s, jobs-changed from:body"' in fragment.content.decode()


def test_the_table_stops_polling_when_no_row_is_active(client, ada):
    make_job(ada, State.SUCCEEDED)
    make_job(ada, State.RUNNING, model="gemini-2.5-pro")
    fragment = as_user(client, ada).get("/jobs/?model=gemini-2.5-flash", headers=HTMX)
    assert "every 2s" not in fragment.content.decode()


def test_a_prompt_with_html_is_shown_as_text(client, ada):
    make_job(ada, prompt="<script>window.__xss=1</script>")
    page = as_user(client, ada).get("/jobs/").content.decode()
    assert "<script>window" not in page
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page


def test_staff_choose_among_the_owners_of_jobs_each_named_once(client, ada, bob, staff):
    make_job(ada)
    make_job(ada)
    make_job(bob)
    as_user(client, staff)
    form = client.get("/jobs/").context["filters"]
    assert [owner.username for owner in form.fields["user"].queryset] == ["ada", "bob"]
