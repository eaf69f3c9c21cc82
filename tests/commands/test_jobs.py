"""manage.py jobs --json: one object per job per line, filterable."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job, State
from tests.support import submit

pytestmark = pytest.mark.django_db

FIELDS = {
    "id",
    "status",
    "attempts",
    "http_503",
    "http_429",
    "output_text",
    "tier_served",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "error",
}


def lines(*args: str) -> list[dict]:
    out = StringIO()
    call_command("jobs", "--json", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
def jobs(ada, bob):
    a1, a2 = submit(ada, "a1", "a2")
    submit(bob, "b1")
    Job.objects.filter(pk=a2.pk).update(
        state=State.SUCCEEDED, result_text="answer", http_503=2, tier_served="flex"
    )
    return a1, a2


def test_every_job_is_one_json_line_with_the_promised_fields(jobs):
    records = lines()
    assert len(records) == 3
    assert all(set(record) >= FIELDS for record in records)


def test_filters_by_user_and_status(jobs):
    a1, a2 = jobs
    assert [r["id"] for r in lines("--user", "ada")] == [a1.pk, a2.pk]
    (done,) = lines("--user", "ada", "--status", "succeeded")
    assert (done["id"], done["http_503"], done["output_text"]) == (a2.pk, 2, "answer")


def test_an_unknown_user_is_an_error():
    with pytest.raises(CommandError, match="No user named 'zed'"):
        call_command("jobs", "--json", "--user", "zed")
