"""The jobs bench/search.py searches: a seeded vocabulary, prompts and answers, a fast build.

Inside Django (common.django_call), on a fresh database: migrate (so migration
0007's FTS5 triggers, or PostgreSQL's generated tsvector column and its GIN
index, are in place), then insert N jobs for 10 researchers in batches inside
one transaction (executemany on SQLite, COPY on PostgreSQL, as
jobs/runs/services.py's _JobInsert does), so the database fills the search
index itself as a run's insert would; one finished Attempt per finished job
(the jobs list shows each job's latest latency). Then what autovacuum would do
soon after on PostgreSQL (VACUUM ANALYZE); nothing on SQLite, which a
deployment never ANALYZEs.

The words: prompts of 24-48 words drawn uniformly from 5,000 seeded
pseudo-words (each word in ~0.7 % of prompts), 30 % of them opening with
"summarise", 10 % carrying one of 20 two-word topics (each pair in ~0.5 %);
60 % of the jobs succeeded, with an answer of 12-36 words from the same
vocabulary. The searches are picked from that vocabulary, the same for every
size, and the build counts how many jobs each matches. A helper module
(bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

VOCABULARY_SIZE = 5_000
TOPICS = 20
TOPIC_SHARE = 0.10
COMMON_WORD = "summarise"
COMMON_SHARE = 0.30
RESEARCHERS = 10
BATCH = 10_000
START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=60)
STATES = (  # state, share, finished?
    ("succeeded", 0.60, True),
    ("failed", 0.10, True),
    ("cancelled", 0.05, True),
    ("queued", 0.15, False),
    ("retrying", 0.07, False),
    ("running", 0.03, False),
)
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def vocabulary(seed: int) -> tuple[list[str], list[tuple[str, str]]]:
    """5,000 distinct pseudo-words, and 20 topic pairs of words outside them."""
    rng = random.Random(seed)
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    seen: set[str] = {COMMON_WORD}
    words: list[str] = []
    while len(words) < VOCABULARY_SIZE + 2 * TOPICS:
        word = "".join(rng.choice(syllables) for _ in range(rng.choice((2, 3, 3, 4))))
        word += rng.choice(("", "n", "r", "s", "l"))
        if word not in seen:
            seen.add(word)
            words.append(word)
    vocab, extra = words[:VOCABULARY_SIZE], words[VOCABULARY_SIZE:]
    topics = [(extra[2 * i], extra[2 * i + 1]) for i in range(TOPICS)]
    return vocab, topics


def searches(seed: int) -> dict[str, str]:
    """The searches timed: one word, two words (a topic pair), a prefix (the
    first four letters of a word, which begin 2-4 words of the vocabulary),
    and a common word (~30 % of prompts)."""
    vocab, topics = vocabulary(seed)
    word = vocab[1234]
    prefix = next(
        w[:4]
        for w in vocab[100:]
        if len(w) > 5 and 2 <= sum(1 for v in vocab if v.startswith(w[:4])) <= 4
    )
    return {"one": word, "two": " ".join(topics[7]), "prefix": prefix, "common": COMMON_WORD}


def random_text(rng: random.Random, vocab: list[str], low: int, high: int) -> str:
    return " ".join(rng.choices(vocab, k=rng.randint(low, high)))


def _rows(jobs: int, seed: int, owner_ids: list[int]):
    """(owner_id, prompt, answer, state, submitted_at, finished_at) per job, oldest first."""
    vocab, topics = vocabulary(seed)
    rng = random.Random(seed * 1_000_003 + jobs)
    names = [s for s, _, _ in STATES]
    weights = [w for _, w, _ in STATES]
    finished = {s for s, _, f in STATES if f}
    step = SPAN / jobs
    for n in range(jobs):
        prompt = random_text(rng, vocab, 24, 48)
        if rng.random() < TOPIC_SHARE:
            a, b = topics[rng.randrange(TOPICS)]
            prompt = f"{a} {prompt} {b}"
        if rng.random() < COMMON_SHARE:
            prompt = f"{COMMON_WORD.capitalize()}: {prompt}."
        state = rng.choices(names, weights)[0]
        answer = random_text(rng, vocab, 12, 36) if state == "succeeded" else ""
        submitted = START + step * n
        done = submitted + timedelta(seconds=rng.uniform(5, 600)) if state in finished else None
        yield rng.choice(owner_ids), prompt, answer, state, submitted, done


class Inserter:
    """INSERT / COPY of whole rows: the columns every row shares prepared
    once from a template instance, a few per row."""

    def __init__(self, model, template, per_row: tuple[str, ...]) -> None:
        from django.db import connection

        self.connection = connection
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        self.shared = [
            f.get_db_prep_save(f.pre_save(template, add=True), connection) for f in fields
        ]
        self.per_row = [
            (fields.index(model._meta.get_field(n)), model._meta.get_field(n)) for n in per_row
        ]
        quote = connection.ops.quote_name
        table = f"{quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
        self.sql = f"INSERT INTO {table} VALUES ({', '.join(['%s'] * len(fields))})"
        self.copy_sql = f"COPY {table} FROM STDIN"

    def row(self, values: tuple) -> list:
        row = list(self.shared)
        for (index, field), value in zip(self.per_row, values, strict=True):
            row[index] = field.get_db_prep_save(value, self.connection)
        return row

    def execute(self, rows: list[list]) -> None:
        with self.connection.cursor() as cursor:
            if self.connection.vendor == "postgresql":
                with cursor.cursor.copy(self.copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(self.sql, rows)


def create_users(researchers: int) -> list[int]:
    """researcher0, researcher1, ... and one staff user ("staff"); the researchers' ids."""
    from django.contrib.auth import get_user_model

    users = get_user_model()
    made = [users.objects.create_user(f"researcher{i}") for i in range(researchers)]
    users.objects.create_user("staff", is_staff=True)
    return [u.pk for u in made]


def vacuum_analyze(tables: tuple[str, ...]) -> None:
    """What autovacuum would do soon after a bulk insert, on PostgreSQL; nothing on SQLite."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"VACUUM ANALYZE {table}")


def pg_visibility() -> dict[str, int] | None:
    """jobs_job's pages and those marked all-visible, on PostgreSQL: index-only
    scans need the mark, and VACUUM cannot set it while another session's
    transaction on the server is older."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT relpages, relallvisible FROM pg_class WHERE relname = 'jobs_job'")
        pages, visible = cursor.fetchone()
    return {"relpages": pages, "relallvisible": visible}


def check_job_ids(jobs: int) -> None:
    """A fresh table numbers the jobs 1, 2, ... in insert order: rows inserted
    after them (attempts) point at them by that number."""
    from jobs.models import Job

    if Job.objects.order_by("-id").values_list("id", flat=True).first() != jobs:
        raise RuntimeError("job ids are not 1..N in insert order: the attempts point elsewhere")


def build(jobs: int, seed: int) -> dict[str, Any]:
    """Migrate, make the users, insert `jobs` jobs and their attempts; count
    what each search matches. Returns the timings and the counts."""
    from django.db import connection, transaction

    from bench import common
    from jobs.models import Attempt, Job
    from jobs.web import search

    started = time.perf_counter()
    common.migrate_here()
    migrated = time.perf_counter()
    owner_ids = create_users(RESEARCHERS)
    job_insert = Inserter(
        Job,
        Job(owner_id=owner_ids[0], input_text="-", submitted_at=START),
        (
            "owner",
            "input_text",
            "result_text",
            "state",
            "attempts",
            "tier_served",
            "submitted_at",
            "first_started_at",
            "finished_at",
            "next_attempt_at",
        ),
    )
    with transaction.atomic():
        batch: list[list] = []
        finished: list[tuple[int, datetime, datetime, str]] = []
        rows = _rows(jobs, seed, owner_ids)
        for number, (owner, prompt, answer, state, submitted, done) in enumerate(rows, 1):
            tried = state not in ("queued",)
            batch.append(
                job_insert.row(
                    (
                        owner,
                        prompt,
                        answer,
                        state,
                        1 if tried else 0,
                        "flex" if state == "succeeded" else "",
                        submitted,
                        submitted + timedelta(seconds=2) if tried else None,
                        done,
                        submitted if state in ("queued", "retrying") else None,
                    )
                )
            )
            if done is not None:
                finished.append((number, submitted, done, state))
            if len(batch) >= BATCH:
                job_insert.execute(batch)
                batch = []
        job_insert.execute(batch)
    inserted = time.perf_counter()
    # One attempt per finished job, for the list's latency column. A fresh
    # table numbers the rows 1, 2, ... in insert order (checked at the end).
    attempt_insert = Inserter(
        Attempt,
        Attempt(job_id=1, number=1, tier_requested="flex", started_at=START),
        (
            "job",
            "started_at",
            "finished_at",
            "latency_seconds",
            "tier_served",
            "http_status",
            "outcome",
        ),
    )
    with transaction.atomic():
        batch = []
        for job_id, submitted, done, state in finished:
            ok = state == "succeeded"
            start = submitted + timedelta(seconds=2)
            batch.append(
                attempt_insert.row(
                    (
                        job_id,
                        start,
                        done,
                        (done - start).total_seconds(),
                        "flex" if ok else "",
                        200 if ok else 503,
                        "succeeded" if ok else "failed",
                    )
                )
            )
            if len(batch) >= BATCH:
                attempt_insert.execute(batch)
                batch = []
        attempt_insert.execute(batch)
    attempted = time.perf_counter()
    vacuum_analyze(("jobs_job", "jobs_attempt"))
    analysed = time.perf_counter()
    visibility = pg_visibility()
    check_job_ids(jobs)
    counts = {
        name: search.matching(Job.objects.all(), text).count()
        for name, text in searches(seed).items()
    }
    researcher_counts = {
        name: search.matching(Job.objects.filter(owner_id=owner_ids[0]), text).count()
        for name, text in searches(seed).items()
    }
    return {
        "database": connection.vendor,
        "jobs": Job.objects.count(),
        "attempts": Attempt.objects.count(),
        "researcher_jobs": Job.objects.filter(owner_id=owner_ids[0]).count(),
        "matches_all": counts,
        "pg_visibility": visibility,
        "matches_researcher": researcher_counts,
        "seconds": {
            "migrate": round(migrated - started, 2),
            "insert_jobs_and_index": round(inserted - migrated, 2),
            "insert_attempts": round(attempted - inserted, 2),
            "vacuum_analyze": round(analysed - attempted, 2),
            "total": round(analysed - started, 2),
        },
    }
