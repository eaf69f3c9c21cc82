"""The word index of migration 0007 follows a job's prompt and answer however
they are written or removed: bulk_create, the engine's .update(), save(), a
run's raw INSERT (COPY on PostgreSQL), every kind of delete. Run on SQLite and
on PostgreSQL."""

from __future__ import annotations

import importlib
import io

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from jobs.engine import claiming, recording, submitting
from jobs.engine.gemini import GeminiResult
from jobs.models import Job, State
from jobs.runs import services as runs
from jobs.web import queries, search
from tests.run_files import prompt_file
from tests.support import MODEL, submit

pytestmark = pytest.mark.django_db

MILLION = 1_000_000
MIGRATION = importlib.import_module("jobs.migrations.0007_job_search_index")


def found(text: str) -> set[int]:
    jobs = queries.job_list(queries.Scope(owner_id=None), search=text)
    return set(jobs.values_list("pk", flat=True))


def indexed_rows(text: str) -> int:
    """Rows the index itself holds for `text`, whether or not the job still exists."""
    if connection.vendor == "postgresql":
        return len(found(text))  # the vector is a column: it goes with its row
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM jobs_job_search WHERE jobs_job_search MATCH %s", [f'"{text}"*']
        )
        return cursor.fetchone()[0]


def assert_index_consistent() -> None:
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO jobs_job_search (jobs_job_search) VALUES ('integrity-check')"
            )


def distinct_words(count: int, start: int = 0) -> str:
    return " ".join(f"w{n:07d}" for n in range(start, start + count))


# --- Writing ------------------------------------------------------------------------
def test_jobs_made_by_bulk_create_are_found(ada):
    otters, owls = submit(ada, "About otters", "About owls")
    assert found("otters") == {otters.pk}
    assert found("about") == {otters.pk, owls.pk}


def test_an_answer_the_engine_stores_with_update_is_found(ada):
    [job] = submit(ada, "Describe the ice")
    [claim] = claiming.jobs_claim(owner="d1", limit=1, lease_seconds=60)
    answer = GeminiResult("A GLACIER, slowly.", "r1", 5, 4, 0, "flex")
    assert (
        recording.attempt_succeeded(claim=claim, owner="d1", result=answer, latency=1.0)
        == "succeeded"
    )
    job.refresh_from_db()
    assert job.state == State.SUCCEEDED
    assert found("glacier slowly") == {job.pk}
    assert found("describe glacier") == {job.pk}


def test_a_changed_answer_replaces_the_old_words(ada):
    [job] = submit(ada, "Name a mountain")
    Job.objects.filter(pk=job.pk).update(result_text="Vesuvius")
    Job.objects.filter(pk=job.pk).update(result_text="Etna")
    assert found("etna") == {job.pk}
    assert found("vesuvius") == set()
    assert indexed_rows("vesuvius") == 0
    assert_index_consistent()


def test_a_prompt_changed_with_save_is_found_by_its_new_words(ada):
    [job] = submit(ada, "first draft")
    job.input_text = "second thoughts"
    job.save()
    assert found("second") == {job.pk}
    assert found("draft") == set()


def test_changes_that_leave_the_text_alone_keep_it_found(ada):
    [job] = submit(ada, "steady words")
    Job.objects.filter(pk=job.pk).update(state=State.CANCELLED, attempts=3)
    Job.objects.filter(pk=job.pk).update(result_text="steady answer", input_text="steady words")
    assert found("steady words answer") == {job.pk}
    assert_index_consistent()


def test_a_runs_bulk_insert_is_found(ada):
    filename, content = prompt_file("jsonl", [("a", "apple pie"), ("b", "banana split")])
    run = runs.run_create(
        owner=ada,
        stream=io.BytesIO(content),
        filename=filename,
        spec=submitting.JobSpec(model=MODEL),
    )
    apple = run.jobs.get(custom_id="a")
    assert found("apple") == {apple.pk}
    assert found("split") == {run.jobs.get(custom_id="b").pk}


# --- Removing -----------------------------------------------------------------------
def test_deleted_jobs_leave_the_index_however_they_are_deleted(ada, bob):
    one, *_ = submit(ada, "gone one", "gone many", "gone many")
    [bobs] = submit(bob, "gone with bob")
    filename, content = prompt_file("jsonl", [("a", "gone with the run")])
    run = runs.run_create(
        owner=ada,
        stream=io.BytesIO(content),
        filename=filename,
        spec=submitting.JobSpec(model=MODEL),
    )
    kept = submit(ada, "kept")[0]

    one.delete()
    Job.objects.filter(input_text="gone many").delete()
    runs.run_delete(run=run)  # one raw DELETE
    bob.delete()  # the cascade

    assert indexed_rows("gone") == 0
    assert found("gone") == set() and found("kept") == {kept.pk}
    assert not Job.objects.filter(pk=bobs.pk).exists()
    assert_index_consistent()


# --- Long texts ---------------------------------------------------------------------
def test_a_million_character_prompt_and_answer_are_indexed_up_to_their_first_100000(ada):
    assert MIGRATION.INDEXED_CHARS == search.INDEXED_CHARS == 100_000
    prompt = ("opening " + distinct_words(20_000) + " deepinprompt " + distinct_words(100_000))[
        :MILLION
    ]
    answer = ("answered " + distinct_words(20_000) + " deepinanswer " + "filler " * 150_000)[
        :MILLION
    ]
    [job] = submit(ada, prompt)
    Job.objects.filter(pk=job.pk).update(result_text=answer)
    assert len(prompt) == len(answer) == MILLION
    indexed = prompt[: search.INDEXED_CHARS].split()
    cut_short, whole = indexed[-1], prompt.split()[len(indexed) - 1]
    assert cut_short != whole  # the limit falls inside this word
    assert found("opening answered") == {job.pk}
    assert found(indexed[-2]) == found(cut_short) == {job.pk}
    assert found(whole) == set()
    assert found("deepinprompt") == found("deepinanswer") == set()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_column_size(search_vector) FROM jobs_job WHERE id = %s", [job.pk]
            )
            # tsvector's limit is 1 MB; 2 x 100,000 characters cannot reach it.
            assert cursor.fetchone()[0] < 1_000_000


def test_a_million_character_word_is_found_by_its_beginning(ada):
    [blob, long_word] = submit(ada, "x" * MILLION, "a" * 300 + "b tail")
    assert found("xxxxxxxx") == {blob.pk}
    assert found("a" * 200) == {long_word.pk}
    assert found("aaab") == set()
    assert found("tail") == {long_word.pk}


def test_five_million_character_prompts_are_each_found_by_their_own_word(ada):
    filler = " ".join(f"word{i % 5000}" for i in range(MILLION // 6))
    jobs = submit(ada, *((f"report{n} " + filler)[:MILLION] for n in range(5)))
    assert found("report3 word4999") == {jobs[3].pk}
    assert found("word1") == {job.pk for job in jobs}


# --- The migration ------------------------------------------------------------------
def index_objects() -> set[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'jobs_job' AND column_name = 'search_vector' "
                "AND is_generated = 'ALWAYS' "
                "UNION SELECT indexname FROM pg_indexes "
                "WHERE indexname IN ('job_search', 'job_owner_search')"
            )
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE name LIKE 'jobs_job_search%' "
                "AND type IN ('table', 'trigger') AND tbl_name IN ('jobs_job', 'jobs_job_search')"
            )
        return {row[0] for row in cursor.fetchall()}


EXPECTED_OBJECTS = {
    # Migration 0014 moved job_search into job_owner_search (owner, words).
    "postgresql": {"search_vector", "job_owner_search"},
    "sqlite": {
        "jobs_job_search",
        "jobs_job_search_insert",
        "jobs_job_search_update",
        "jobs_job_search_delete",
    },
}


def test_the_index_is_in_place_after_every_migration():
    # A later migration that rebuilds jobs_job on SQLite drops the triggers
    # with the old table: it must create them again (see migration 0007).
    assert index_objects() == EXPECTED_OBJECTS[connection.vendor]


@pytest.mark.django_db(transaction=True)
def test_the_migration_indexes_the_jobs_already_there_and_can_be_undone(ada):
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("jobs")
    executor.migrate([("jobs", "0006_capacity_and_deadlines")])
    try:
        assert index_objects() == set()
        # The job as it was then: today's model has columns added since.
        past = executor.loader.project_state(("jobs", "0006_capacity_and_deadlines")).apps
        old = past.get_model("jobs", "Job").objects.create(
            owner_id=ada.pk, input_text="written before the index"
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    assert index_objects() == EXPECTED_OBJECTS[connection.vendor]
    assert found("before index") == {old.pk}
    [new] = submit(ada, "written after the index")
    assert found("written index") == {old.pk, new.pk}
    assert_index_consistent()
