"""A run's results read on the page (/runs/<id>/results/): each prompt beside its
answer in file order, with the file's own id; searchable with the jobs search,
a page at a time; each row opens its job."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, State
from jobs.web.pages import JOBS_PER_PAGE
from tests.support import as_user, make_run

pytestmark = pytest.mark.django_db


def answered(run, answers: dict[str, str]) -> None:
    for custom_id, text in answers.items():
        run.jobs.filter(custom_id=custom_id).update(state=State.SUCCEEDED, result_text=text)


def test_each_prompt_is_beside_its_answer_with_the_files_id_and_line(client, ada):
    run = make_run(ada, lines=[("q-otter", "Describe an otter."), ("q-owl", "Describe an owl.")])
    answered(run, {"q-otter": "Otters are playful swimmers."})
    run.jobs.filter(custom_id="q-owl").update(state=State.FAILED, last_error="HTTP 400")
    page = as_user(client, ada).get(f"/runs/{run.pk}/results/").content.decode()
    rows = re.findall(r'<tr id="result-(\d+)" data-href="/jobs/(\d+)/">(.*?)</tr>', page, re.S)
    assert [job_id for job_id, _, _ in rows] == [
        str(pk) for pk in run.jobs.order_by("id").values_list("pk", flat=True)
    ]
    otter = rows[0][2]
    assert '<td class="num">1</td>' in otter and ">q-otter</a>" in otter
    assert re.search(r'<td class="text-cell">Describe an otter.</td>\s*<td class="text-cell">'
                     r"Otters are playful swimmers.</td>", otter)  # fmt: skip
    assert "Not answered yet." not in otter
    assert "No answer:" in rows[1][2]


def test_a_search_finds_words_in_the_prompt_or_the_answer_of_this_run_only(client, ada):
    run = make_run(ada, lines=[("a", "Describe an otter."), ("b", "Describe an owl.")])
    answered(run, {"a": "Sleek swimmers.", "b": "Night hunters."})
    other = make_run(ada, lines=[("c", "Describe a swimming otter.")])
    answered(other, {"c": "Sleek too."})
    as_user(client, ada)
    listed = client.get(f"/runs/{run.pk}/results/?q=sleek").context["page"]
    assert [job.custom_id for job in listed] == ["a"]
    listed = client.get(f"/runs/{run.pk}/results/?q=describe+ow").context["page"]
    assert [job.custom_id for job in listed] == ["b"]
    page = client.get(f"/runs/{run.pk}/results/?q=zebra").content.decode()
    assert "No line of this run matches these filters." in page
    page = client.get(f"/runs/{run.pk}/results/?q=%21%21").content.decode()
    assert "Search for at least one word" in page


def test_a_big_run_is_read_a_page_at_a_time_in_a_few_queries(client, ada):
    run = make_run(ada, lines=[(f"id-{n}", f"prompt number {n}") for n in range(60)])
    run.jobs.update(state=State.SUCCEEDED, result_text="x" * 5000)
    as_user(client, ada)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/runs/{run.pk}/results/?page=3")
    page = response.context["page"]
    assert [job.custom_id for job in page] == [f"id-{n}" for n in range(50, 60)]
    assert len(page.object_list) == 60 - 2 * JOBS_PER_PAGE
    # The session, the user, the run, the count and the page: no query per row
    # (PostgreSQL's statement timeout for a GET aside).
    sql = [query["sql"] for query in queries if "statement_timeout" not in query["sql"]]
    assert len(sql) <= 5, sql
    assert any("OFFSET 50" in query for query in sql)
    # Only the start of each answer comes back, not its 5,000 characters.
    assert all(len(job.answer_text) == 600 for job in page)
    assert "…" in response.content.decode()


def test_the_run_page_links_to_its_results(client, ada):
    run = make_run(ada)
    page = as_user(client, ada).get(f"/runs/{run.pk}/").content.decode()
    assert f'<a href="/runs/{run.pk}/results/" id="run-read">Read the results</a>' in page


def test_another_users_results_are_not_found(client, ada, bob):
    run = make_run(bob)
    assert as_user(client, ada).get(f"/runs/{run.pk}/results/").status_code == 404
    assert Job.objects.filter(run=run).count() == 2
