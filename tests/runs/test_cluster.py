"""A file in each format, uploaded from the page and from the API, runs on the
simulator through a real qcluster, and its results come back in the same
format, keyed by the file's own ids, carrying the simulator's answers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import ACTIVE_STATES, Job, Run, State
from jobs.simulator import ANSWER_PREFIX
from tests.run_files import answer_of, json_lines, line_id, prompt_file
from tests.support import api_client, as_user, engine_env, qcluster, streamed, tag, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.django_db(transaction=True)]

FORMATS = ("text", "jsonl", "csv", "gemini_batch", "openai_batch", "anthropic_batch")
SETTINGS = {"model": "gemini-2.5-flash-lite", "tier": "flex", "max_attempts": "4"}


def test_every_format_round_trips_through_the_engine(simulator, tmp_path: Path, client, ada):
    word = tag()
    env = engine_env(simulator.url)
    page = as_user(client, ada)
    api = api_client(ada)
    sent: dict[int, tuple[str, str, list[tuple[str, str]]]] = {}
    for fmt in FORMATS:
        for way in ("page", "api"):
            # The second prompt is shed once (503) before it is answered.
            lines = [
                (f"{fmt}-{way}-1", f"{word} {fmt} {way} first"),
                (f"{fmt}-{way}-2", f"{word} {fmt} {way} second [sim:503x1]"),
            ]
            filename, content = prompt_file(fmt, lines)
            upload = SimpleUploadedFile(filename, content)
            if way == "page":
                preview = page.post("/runs/new/", {"file": upload, **SETTINGS})
                assert preview.status_code == 302, preview.content.decode()[:2000]
                page.post(preview["Location"])
                run = Run.objects.latest("id")
            else:
                response = api.post("/api/batches", {"file": upload, **SETTINGS})
                assert response.status_code == 201, response.content
                run = Run.objects.get(pk=response.json()["id"])
            sent[run.pk] = (fmt, way, lines)
    assert Job.objects.filter(state=State.QUEUED).count() == 2 * 2 * len(FORMATS)

    with qcluster(env, tmp_path / "qcluster.log"):
        wait_for(
            lambda: not Job.objects.filter(state__in=ACTIVE_STATES).exists(),
            timeout=90,
            what="every job of every run to finish",
        )
    assert set(Job.objects.values_list("state", flat=True)) == {State.SUCCEEDED}

    for run_id, (fmt, way, lines) in sent.items():
        if way == "page":
            results = streamed(page.get(f"/runs/{run_id}/results.jsonl"))
            table = streamed(page.get(f"/runs/{run_id}/results.csv"))
            again = streamed(page.get(f"/runs/{run_id}/unfinished/"))
        else:
            results = streamed(api.get(f"/api/batches/{run_id}/results"))
            table = streamed(api.get(f"/api/batches/{run_id}/results.csv"))
            again = streamed(api.get(f"/api/batches/{run_id}/unfinished"))
        expected_ids = ["1", "2"] if fmt == "text" else [custom_id for custom_id, _ in lines]
        answers = [ANSWER_PREFIX + prompt.replace(" [sim:503x1]", "") for _, prompt in lines]
        got = json_lines(results)
        assert [line_id(fmt, line) for line in got] == expected_ids, (fmt, way)
        assert [answer_of(fmt, line) for line in got] == answers, (fmt, way)
        rows = list(csv.DictReader(io.StringIO(table.decode())))
        assert [(row["id"], row["state"], row["http_503"]) for row in rows] == [
            (expected_ids[0], "succeeded", "0"),
            (expected_ids[1], "succeeded", "1"),
        ]
        assert all(row["cost_usd"] for row in rows)
        # Nothing failed: the resubmit file holds no line (a CSV keeps its header).
        assert len(again.decode().splitlines()) == (1 if fmt == "csv" else 0)
        detail = api.get(f"/api/batches/{run_id}").json()
        assert (detail["progress"]["percent"], detail["progress"]["http_503"]) == (100, 1)
        assert detail["finished_at"] is not None
