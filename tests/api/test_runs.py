"""The JSON API's batches: multipart upload, listing, progress, downloads, and
isolation between users."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from jobs.models import Job, Run, State
from tests.run_files import json_lines, prompt_file
from tests.support import api_client, make_run, streamed

pytestmark = pytest.mark.django_db


def post_file(client: Client, filename: str, content: bytes, **fields):
    return client.post("/api/batches", {"file": SimpleUploadedFile(filename, content), **fields})


@pytest.mark.parametrize(
    "fmt", ["text", "jsonl", "csv", "gemini_batch", "openai_batch", "anthropic_batch"]
)
def test_a_file_in_each_format_becomes_a_batch(as_ada, ada, fmt):
    filename, content = prompt_file(fmt, [("x1", "first"), ("x2", "second")])
    response = post_file(as_ada, filename, content, name="nightly", tier="standard")
    assert response.status_code == 201, response.content
    batch = response.json()
    run = Run.objects.get()
    assert batch["id"] == run.pk
    assert (batch["name"], batch["format"], batch["file_name"]) == ("nightly", fmt, filename)
    assert (batch["jobs"], batch["active"], batch["tier"]) == (2, 2, "standard")
    assert batch["progress"]["counts"]["queued"] == 2
    # Nothing answered yet: every amount is a plain decimal, never "0E-8".
    assert batch["progress"]["savings_usd"] == "0.00000000"
    assert all(re.fullmatch(r"\d+\.\d+", amount) for amount in _amounts(batch)), _amounts(batch)
    assert batch["replaced_models"] == (2 if fmt in ("openai_batch", "anthropic_batch") else 0)
    ids = list(run.jobs.order_by("id").values_list("custom_id", flat=True))
    assert ids == (["1", "2"] if fmt == "text" else ["x1", "x2"])
    assert all(job.owner == ada for job in run.jobs.all())


def _amounts(batch: dict) -> list[str]:
    """Every amount of USD a batch's JSON holds."""
    found = [v for k, v in batch.items() if k.endswith("_usd") and v is not None]
    return found + [v for k, v in batch["progress"].items() if k.endswith("_usd")]


@pytest.mark.parametrize(
    ("filename", "content", "first_error"),
    [
        ("p.jsonl", b'{"prompt": "ok"}\n{"prompt": \n', "line 2: not valid JSON"),
        ("p.jsonl", b'{"prompt": "ok"}\n{"id": 1}\n', "line 2: no 'prompt' text"),
        (
            "p.jsonl",
            b'{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n',
            "line 2: id 'a' was already used on line 1",
        ),
        ("p.txt", b"", "The file has no prompts."),
        ("p.txt", b"ok\n\xff\xfe\n", "line 2: not UTF-8 text"),
    ],
)
def test_a_bad_file_is_refused_with_its_lines_and_creates_nothing(
    as_ada, filename, content, first_error
):
    response = post_file(as_ada, filename, content)
    assert response.status_code == 422
    body = response.json()
    assert body["errors"]["file"][0].startswith(first_error)
    assert body["detail"].startswith("The file was refused; nothing was created: ")
    assert not Run.objects.exists() and not Job.objects.exists()


def test_an_oversized_file_is_refused(as_ada, settings):
    settings.FLEX_RUN_MAX_BYTES = 64
    response = post_file(as_ada, "p.txt", b"a prompt of some length\n" * 10)
    assert response.status_code == 422
    assert response.json()["errors"]["file"] == ["The file is larger than 64 bytes; split it."]
    assert not Run.objects.exists()


def test_bad_settings_name_their_field(as_ada):
    response = post_file(as_ada, "p.txt", b"one\n", max_attempts=0)
    assert response.status_code == 422
    assert "max_attempts" in response.json()["errors"]
    response = post_file(as_ada, "p.txt", b"one\n", format="yaml")
    assert response.status_code == 422
    assert "format" in response.json()["errors"]
    assert not Run.objects.exists()


def test_a_missing_file_is_refused(as_ada):
    response = as_ada.post("/api/batches", {"name": "no file"})
    assert response.status_code == 422
    assert "file" in response.json()["errors"]


def test_the_list_and_detail_show_progress_and_cost(as_ada, ada):
    run = make_run(ada)
    first = run.jobs.order_by("id").first()
    Job.objects.filter(pk=first.pk).update(
        state=State.SUCCEEDED,
        cost_usd=Decimal("0.00001"),
        standard_cost_usd=Decimal("0.00002"),
        http_503=3,
    )
    listed = as_ada.get("/api/batches").json()
    assert listed["total"] == 1
    (item,) = listed["items"]
    assert (item["id"], item["jobs"], item["finished"], item["active"]) == (run.pk, 2, 1, 1)
    assert (item["cost_usd"], item["standard_cost_usd"]) == ("0.00001000", "0.00002000")
    detail = as_ada.get(f"/api/batches/{run.pk}").json()
    progress = detail["progress"]
    assert (progress["percent"], progress["http_503"]) == (50, 3)
    assert progress["counts"]["succeeded"] == 1 and progress["counts"]["queued"] == 1
    assert progress["savings_usd"] == "0.00001000"
    assert progress["unfinished_lines"] == 1
    # One answer at $0.00001, one job to go: $0.00002 projected.
    assert progress["projected_cost_usd"] == "0.00002000"


def test_downloads_stream_results_csv_and_unfinished_lines(as_ada, ada):
    run = make_run(ada, [("r1", "one"), ("r2", "two")], fmt="openai_batch")
    first = run.jobs.order_by("id").first()
    Job.objects.filter(pk=first.pk).update(state=State.SUCCEEDED, result_text="Uno")
    results = json_lines(streamed(as_ada.get(f"/api/batches/{run.pk}/results")))
    assert [(line["custom_id"], line["response"]["status_code"]) for line in results] == [
        ("r1", 200)
    ]
    assert results[0]["response"]["body"]["choices"][0]["message"]["content"] == "Uno"
    csv_text = streamed(as_ada.get(f"/api/batches/{run.pk}/results.csv")).decode()
    assert [row.split(",")[0] for row in csv_text.splitlines()] == ["id", "r1", "r2"]
    again = json_lines(streamed(as_ada.get(f"/api/batches/{run.pk}/unfinished")))
    assert [line["custom_id"] for line in again] == ["r2"]
    assert again[0]["body"]["messages"][-1]["content"] == "two"


@pytest.mark.parametrize(
    "path", ["", "/results", "/results.csv", "/unfinished"], ids=["detail", "results", "csv", "re"]
)
def test_another_users_batch_is_not_found(as_ada, bob, path):
    run = make_run(bob)
    response = as_ada.get(f"/api/batches/{run.pk}{path}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"No batch {run.pk}."}
    assert as_ada.get("/api/batches").json()["items"] == []


def test_staff_see_every_batch(ada, staff):
    run = make_run(ada)
    as_staff = api_client(staff)
    assert as_staff.get(f"/api/batches/{run.pk}").json()["owner"] == "ada"
    assert as_staff.get("/api/batches").json()["total"] == 1


def test_a_token_is_needed(ada):
    run = make_run(ada)
    assert Client().get(f"/api/batches/{run.pk}/results").status_code == 401
    assert Client().post("/api/batches", {}).status_code == 401


def test_a_deadline_with_an_unusual_offset_is_kept_as_the_same_moment(as_ada):
    """ISO 8601 allows offsets PostgreSQL cannot store (+20:56): kept in UTC."""
    response = post_file(as_ada, "p.txt", b"one\n", deadline_at="2999-07-15T13:13:48+20:56")
    assert response.status_code == 201, response.content
    assert Run.objects.get().deadline_at.isoformat() == "2999-07-14T16:17:48+00:00"
