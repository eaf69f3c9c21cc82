"""The jobs bench/scale.py times the pages over: a lab's month, built fast.

Inside Django (common.django_call), on a fresh database: migrate, make the
users (bench/_search_data.py's: researcher0..9 and "staff"), then insert N
jobs and their attempts in one transaction, 10,000 jobs a batch, each batch's
attempts after it (executemany on SQLite, COPY on PostgreSQL: _search_data's
Inserter), so the database's own triggers fill the search index (migration
0007) and the stored counts (JobCount, migration 0013) as for a run's insert.
Then `manage.py recount` checks the stored counts (and with a difference,
`recount --fix` rewrites them: what a counter the triggers do not keep needs);
then VACUUM ANALYZE on PostgreSQL, nothing on SQLite.

The shape, relative to `anchor` (the moment the pages are timed at, whatever
the wall clock says then; bench/_scale_pages.py sets Django's clock to it):

- N jobs over `days` days, `last_day_share` of them finishing in the last
  day (the rest evenly before), for `owners` researchers; ids in submission
  order, as a fresh table numbers them;
- runs (Run rows) of contiguous ids holding `run_share` of the jobs, of
  N/20,000 to N/100 lines (at least 5 to 40), submitted at once half an hour
  before their first answer, each one's lines answered at the stream's pace;
- one large run of researcher0, `large_run_share` of N, submitted 6 hours
  before `anchor` and still going: its lines answered in order, its last
  `active_share` of N lines active (30 % of them running or waiting to
  retry, the rest queued); every other job is finished: 85 % succeeded,
  10 % failed, 5 % cancelled;
- attempts per tried job geometric with mean `attempts_mean` (at most 8; a
  job that failed for want of capacity has all 8): each but the last a 503
  (80 %) or a 429, with its backoff before the next; a success a 200 with
  the job's tokens and cost (gemini-2.5-flash's prices, flex half of
  standard), a permanent failure a 400; a running job's last attempt in
  flight, started in the last 90 s; a retrying job's last one ended in the
  last 4 minutes and its retry due within 5;
- prompts of 10-30 and answers of 10-30 words from _search_data's vocabulary;
- a live dispatcher slot and recent 503/429 shares on the model's row, so the
  overview's engine line and the capacity weather have something to say.

The build returns what the pages are pointed at: the large run and the job
page's job (the large run's first job waiting to retry, with 2 attempts, so
its page polls). A helper module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import io
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bench._search_data import (
    BATCH,
    Inserter,
    check_job_ids,
    create_users,
    pg_visibility,
    random_text,
    vacuum_analyze,
    vocabulary,
)

MODEL = "gemini-2.5-flash"
# Standard-tier USD per 1M tokens of MODEL (jobs/catalog.py), in units of 1e-8 USD per token.
INPUT_PRICE, OUTPUT_PRICE = 30, 250
MAX_ATTEMPTS = 8
FINISHED = (("succeeded", 0.85), ("failed", 0.10), ("cancelled", 0.05))
LARGE_RUN_START = timedelta(hours=6)
RUN_LEAD = timedelta(minutes=30)
DAY = timedelta(days=1)
# The last day's answers end a minute before the anchor.
LAST_DAY = DAY - timedelta(seconds=60)
JOB_FIELDS = (
    "owner",
    "run",
    "line_number",
    "model",
    "input_text",
    "result_text",
    "finish_reason",
    "state",
    "attempts",
    "http_503",
    "http_429",
    "other_errors",
    "next_attempt_at",
    "lease_owner",
    "lease_expires_at",
    "tier_served",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "standard_cost_usd",
    "last_error",
    "submitted_at",
    "first_started_at",
    "finished_at",
    "updated_at",
)
ATTEMPT_FIELDS = (
    "job",
    "number",
    "dispatcher",
    "route",
    "started_at",
    "finished_at",
    "latency_seconds",
    "tier_served",
    "http_status",
    "google_status",
    "retry_after_seconds",
    "error_kind",
    "error_message",
    "outcome",
    "cost_usd",
    "model",
    "prompt_chars",
)
# http_status: (google_status, error_kind, message, latency range in seconds)
ERRORS = {
    503: ("UNAVAILABLE", "capacity", "503 UNAVAILABLE: the model is overloaded", (0.5, 20.0)),
    429: ("RESOURCE_EXHAUSTED", "rate_limit", "429 RESOURCE_EXHAUSTED: quota", (0.1, 1.0)),
    400: ("INVALID_ARGUMENT", "bad_request", "400 INVALID_ARGUMENT: bad request", (0.2, 2.0)),
}


@dataclass(frozen=True)
class Shape:
    """How the jobs are laid out (the build's parameters, worked out)."""

    jobs: int
    anchor: datetime
    days: int
    last_day_share: float
    attempts_mean: float
    large_run: int  # lines of the large run
    active: int  # its last lines, active

    @property
    def rest(self) -> int:
        """Jobs outside the large run."""
        return self.jobs - self.large_run

    def finished_at(self, q: int) -> datetime:
        """When the q-th job outside the large run (0-based, submission order) finished."""
        u = q / self.rest
        early = 1 - self.last_day_share
        if u < early:
            return self.anchor - self.days * DAY + (u / early) * (self.days - 1) * DAY
        return self.anchor - DAY + ((u - early) / self.last_day_share) * LAST_DAY

    def large_run_position(self) -> int:
        """Jobs outside the large run submitted before it."""
        start = self.anchor - LARGE_RUN_START
        early = 1 - self.last_day_share
        u = early + self.last_day_share * ((start - (self.anchor - DAY)) / LAST_DAY)
        return math.floor(u * self.rest)


@dataclass
class PlannedRun:
    start: int  # first job's position outside the large run (or the large run's)
    size: int
    owner: int
    large: bool = False
    pk: int | None = None


def _plan_runs(shape: Shape, rng: random.Random, owners: list[int], share: float):
    """Runs among the jobs outside the large run: blocks of `size` jobs with
    gaps of single jobs between them, so `share` of the jobs are in runs."""
    low, high = max(5, shape.jobs // 20_000), max(40, shape.jobs // 100)
    mean_size = (high - low) / math.log(high / low)
    mean_gap = mean_size * (1 - share) / share
    runs, q, last = [], 0, shape.rest
    while True:
        q += rng.randint(0, round(2 * mean_gap))
        size = round(math.exp(rng.uniform(math.log(low), math.log(high))))
        if q >= last:
            break
        size = min(size, last - q)
        runs.append(PlannedRun(start=q, size=size, owner=rng.choice(owners)))
        q += size
    return runs


def _cost(input_tokens: int, output_tokens: int) -> tuple[Decimal, Decimal]:
    """(flex, standard) in USD."""
    standard = input_tokens * INPUT_PRICE + output_tokens * OUTPUT_PRICE
    return Decimal((standard + 1) // 2).scaleb(-8), Decimal(standard).scaleb(-8)


class _Jobs:
    """The rows, job by job in id order: the job's values, then its attempts'."""

    def __init__(self, shape: Shape, seed: int, owners: list[int], runs: list[PlannedRun]):
        self.shape = shape
        self.owners = owners
        self.runs = runs
        self.vocab, _ = vocabulary(seed)
        self.rng = random.Random(seed * 1_000_003 + shape.jobs)
        self.job_page_id: int | None = None

    def _count(self) -> int:
        """Attempts of a tried job: geometric with mean attempts_mean, at most MAX_ATTEMPTS."""
        p = min(1.0, 1 / self.shape.attempts_mean)
        k = 1
        while k < MAX_ATTEMPTS and self.rng.random() >= p:
            k += 1
        return k

    def _error(self) -> int:
        return 503 if self.rng.random() < 0.8 else 429

    def _backoff(self, number: int) -> timedelta:
        """The wait after attempt `number`'s error (as jobs/engine/backoff.py, roughly)."""
        seconds = min(600.0, 5 * 2 ** (number - 1)) * self.rng.uniform(0.5, 1.5)
        return timedelta(seconds=seconds)

    def _latency(self, status: int) -> float:
        low, high = (3.0, 90.0) if status == 200 else ERRORS[status][3]
        return self.rng.uniform(low, high)

    def _chain(self, statuses: list[int], last_end: datetime | None, last_start=None):
        """(status, start, end) per attempt, worked back from the last one's end
        (or, for one in flight, its start)."""
        out = []
        if last_end is None:
            start, end = last_start, None
        else:
            end = last_end
            start = end - timedelta(seconds=self._latency(statuses[-1]))
        out.append((statuses[-1], start, end))
        for number in range(len(statuses) - 1, 0, -1):
            status = statuses[number - 1]
            end = start - self._backoff(number)
            start = end - timedelta(seconds=self._latency(status))
            out.append((status, start, end))
        return out[::-1]

    def rows(self) -> Iterator[tuple[tuple, list[tuple]]]:
        shape, rng = self.shape, self.rng
        large = next(r for r in self.runs if r.large)
        before = shape.large_run_position()
        run_at = {r.start: r for r in self.runs if not r.large}
        run, line = None, 0
        job_id = 0
        for q in range(shape.rest + 1):
            if q == before:
                for line_number in range(1, large.size + 1):
                    job_id += 1
                    yield self._large_run_job(job_id, large, line_number)
            if q == shape.rest:
                break
            if q in run_at:
                run, line = run_at[q], 0
            if run is not None and q >= run.start + run.size:
                run = None
            job_id += 1
            line += 1
            finished = shape.finished_at(q)
            if run is not None:
                submitted = shape.finished_at(run.start) - RUN_LEAD
                yield self._finished_job(job_id, run.owner, run, line, finished, submitted)
            else:
                owner = rng.choice(self.owners)
                yield self._finished_job(job_id, owner, None, None, finished, None)

    def _large_run_job(self, job_id: int, run: PlannedRun, line: int):
        shape, rng = self.shape, self.rng
        submitted = shape.anchor - LARGE_RUN_START
        done_lines = run.size - shape.active
        if line <= done_lines:
            span = shape.anchor - timedelta(seconds=60) - (submitted + RUN_LEAD)
            finished = submitted + RUN_LEAD + span * (line / max(1, done_lines))
            return self._finished_job(job_id, run.owner, run, line, finished, submitted)
        into = (line - done_lines - 1) / shape.active  # 0 at the first active line
        if self.job_page_id is None:
            state, count = "retrying", 2
            self.job_page_id = job_id
        elif into < 0.3:
            state = "running" if rng.random() < 0.4 else "retrying"
            count = self._count()
        else:
            state, count = "queued", 0
        return self._active_job(job_id, run.owner, run, line, state, count, submitted)

    def _job(self, job_id, owner, run, line, state, submitted, chain, **values) -> tuple:
        prompt = random_text(self.rng, self.vocab, 10, 30)
        statuses = [status for status, _, _ in chain]
        row = {
            "owner": owner,
            "run": run.pk if run else None,
            "line_number": line,
            "model": MODEL,
            "input_text": prompt,
            "result_text": "",
            "finish_reason": "",
            "state": state,
            "attempts": len(chain),
            "http_503": statuses.count(503),
            "http_429": statuses.count(429),
            "other_errors": statuses.count(400),
            "next_attempt_at": None,
            "lease_owner": "",
            "lease_expires_at": None,
            "tier_served": "",
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": None,
            "standard_cost_usd": None,
            "last_error": "",
            "submitted_at": submitted,
            "first_started_at": chain[0][1] if chain else None,
            "finished_at": None,
            "updated_at": self.shape.anchor,
            **values,
        }
        if chain and statuses[-1] in ERRORS:
            row["last_error"] = ERRORS[statuses[-1]][2]
        attempts = []
        for number, (status, start, end) in enumerate(chain, 1):
            attempt = {
                "job": job_id,
                "number": number,
                "dispatcher": "bench",
                "route": "interactions",
                "started_at": start,
                "finished_at": end,
                "latency_seconds": None if end is None else (end - start).total_seconds(),
                "tier_served": "",
                "http_status": None if end is None else status,
                "google_status": "",
                "retry_after_seconds": 10.0 if status == 429 else None,
                "error_kind": "",
                "error_message": "",
                "outcome": "in_flight",
                "cost_usd": None,
                "model": row["model"],
                "prompt_chars": len(row["input_text"]),
            }
            if end is not None and status == 200:
                attempt.update(outcome="succeeded", tier_served="flex", cost_usd=row["cost_usd"])
            elif end is not None:
                google, kind, message, _ = ERRORS[status]
                failed = number == len(chain) and state == "failed"
                attempt.update(
                    google_status=google,
                    error_kind=kind,
                    error_message=message,
                    outcome="failed" if failed else "will_retry",
                )
            attempts.append(tuple(attempt[name] for name in ATTEMPT_FIELDS))
        return tuple(row[name] for name in JOB_FIELDS), attempts

    def _finished_job(self, job_id, owner, run, line, finished: datetime, submitted):
        rng = self.rng
        state = rng.choices([s for s, _ in FINISHED], [w for _, w in FINISHED])[0]
        values: dict[str, Any] = {"finished_at": finished, "updated_at": finished}
        if state == "succeeded":
            count = self._count()
            statuses = [self._error() for _ in range(count - 1)] + [200]
            chain = self._chain(statuses, finished)
            answer = random_text(rng, self.vocab, 10, 30)
            input_tokens, output_tokens = rng.randint(15, 60), rng.randint(50, 900)
            flex, standard = _cost(input_tokens, output_tokens)
            values.update(
                result_text=answer,
                finish_reason="STOP",
                tier_served="flex",
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=flex,
                standard_cost_usd=standard,
            )
        elif state == "failed":
            exhausted = rng.random() < 0.3
            count = MAX_ATTEMPTS if exhausted else self._count()
            last = 503 if exhausted else 400
            statuses = [self._error() for _ in range(count - 1)] + [last]
            chain = self._chain(statuses, finished)
        elif rng.random() < 0.4:  # cancelled while queued
            chain = []
        else:  # cancelled while waiting to retry
            statuses = [self._error() for _ in range(self._count())]
            chain = self._chain(statuses, finished - timedelta(seconds=rng.uniform(1, 60)))
        first = chain[0][1] if chain else finished
        if submitted is None:
            submitted = first - timedelta(seconds=rng.uniform(1, 30))
        return self._job(job_id, owner, run, line, state, submitted, chain, **values)

    def _active_job(self, job_id, owner, run, line, state, count, submitted):
        rng, anchor = self.rng, self.shape.anchor
        values: dict[str, Any] = {}
        if state == "queued":
            chain = []
            values["next_attempt_at"] = submitted
        elif state == "running":
            statuses = [self._error() for _ in range(count - 1)] + [200]
            start = anchor - timedelta(seconds=rng.uniform(1, 90))
            chain = self._chain(statuses, None, last_start=start)
            values.update(lease_owner="bench", lease_expires_at=anchor + timedelta(seconds=60))
        else:
            statuses = [self._error() for _ in range(count)]
            chain = self._chain(statuses, anchor - timedelta(seconds=rng.uniform(1, 240)))
            values["next_attempt_at"] = anchor + timedelta(seconds=rng.uniform(5, 300))
        return self._job(job_id, owner, run, line, state, submitted, chain, **values)


def _make_runs(shape: Shape, planned: list[PlannedRun]) -> None:
    """The Run rows, oldest first (ids in that order); sets each plan's pk."""
    from jobs.models import Run

    rows = []
    for number, plan in enumerate(planned, 1):
        if plan.large:
            created, finished = shape.anchor - LARGE_RUN_START, None
        else:
            created = shape.finished_at(plan.start) - RUN_LEAD
            finished = shape.finished_at(plan.start + plan.size - 1)
        flex, standard = _cost(40 * plan.size, 400 * plan.size)
        rows.append(
            Run(
                owner_id=plan.owner,
                name=f"batch {number:04d}",
                source_name=f"prompts-{number:04d}.jsonl",
                source_format="jsonl",
                model=MODEL,
                estimated_input_tokens=40 * plan.size,
                estimated_output_tokens=400 * plan.size,
                estimated_cost_usd=flex,
                estimated_standard_cost_usd=standard,
                created_at=created,
                finished_at=finished,
            )
        )
    for plan, run in zip(planned, Run.objects.bulk_create(rows), strict=True):
        plan.pk = run.pk


def _engine_state(shape: Shape, running: int) -> None:
    """A live dispatcher holding the running jobs, and recent 503/429 shares on the model."""
    from jobs.models import DispatcherSlot, ModelLimit

    DispatcherSlot.objects.update_or_create(
        number=1,
        defaults={
            "owner": "bench",
            "expires_at": shape.anchor + timedelta(seconds=60),
            "heartbeat_at": shape.anchor,
            "in_flight": running,
        },
    )
    ModelLimit.objects.filter(model=MODEL).update(
        recent_at=shape.anchor, recent_calls=120.0, recent_503=18.0, recent_429=4.0
    )


def _recount() -> dict[str, Any]:
    """`manage.py recount`; with a difference, `recount --fix` (and what it said)."""
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    try:
        call_command("recount", stdout=out)
        return {"matched": True, "fixed": False, "said": out.getvalue().strip()}
    except CommandError as error:
        said = out.getvalue().strip() + f"\n{error}"
    out = io.StringIO()
    call_command("recount", fix=True, stdout=out)
    return {"matched": False, "fixed": True, "said": said + "\n" + out.getvalue().strip()}


def database_bytes() -> int:
    """The whole database's size on disk: SQLite's pages, PostgreSQL's
    pg_database_size (tables, indexes, TOAST and the free space in them)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
            return cursor.fetchone()[0]
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute("PRAGMA page_size")
        return pages * cursor.fetchone()[0]


def build(
    jobs: int,
    seed: int,
    anchor: str,
    *,
    owners: int = 10,
    days: int = 30,
    last_day_share: float = 0.15,
    attempts_mean: float = 2.0,
    active_share: float = 0.02,
    run_share: float = 0.4,
    large_run_share: float = 0.05,
) -> dict[str, Any]:
    """Migrate, make the users, runs, jobs and attempts; check the stored
    counts. Returns the timings, the counts and the pages' targets."""
    from django.db import connection, transaction
    from django.db.models import Count

    from bench import common
    from jobs.models import Attempt, Job, JobCount, Run

    started = time.perf_counter()
    common.migrate_here()
    migrated = time.perf_counter()
    owner_ids = create_users(owners)
    active = max(1, round(jobs * active_share))
    shape = Shape(
        jobs=jobs,
        anchor=datetime.fromisoformat(anchor),
        days=days,
        last_day_share=last_day_share,
        attempts_mean=attempts_mean,
        large_run=min(jobs - 1, max(round(jobs * large_run_share), math.ceil(active / 0.4))),
        active=active,
    )
    rng = random.Random(seed * 7_919 + jobs)
    planned = _plan_runs(shape, rng, owner_ids, run_share)
    large = PlannedRun(
        start=shape.large_run_position(), size=shape.large_run, owner=owner_ids[0], large=True
    )
    planned = sorted([*planned, large], key=lambda p: (p.start, not p.large))
    job_insert = Inserter(
        Job, Job(owner_id=owner_ids[0], input_text="-", submitted_at=shape.anchor), JOB_FIELDS
    )
    attempt_insert = Inserter(
        Attempt, Attempt(job_id=1, number=1, tier_requested="flex"), ATTEMPT_FIELDS
    )
    made = _Jobs(shape, seed, owner_ids, planned)
    with transaction.atomic():
        _make_runs(shape, planned)
        job_rows: list[list] = []
        attempt_rows: list[list] = []
        for job, attempts in made.rows():
            job_rows.append(job_insert.row(job))
            attempt_rows.extend(attempt_insert.row(a) for a in attempts)
            if len(job_rows) >= BATCH:
                job_insert.execute(job_rows)
                attempt_insert.execute(attempt_rows)
                job_rows, attempt_rows = [], []
        job_insert.execute(job_rows)
        attempt_insert.execute(attempt_rows)
        running = Job.objects.filter(state="running").count()
        _engine_state(shape, running)
    inserted = time.perf_counter()
    check_job_ids(jobs)
    recount = _recount()
    recounted = time.perf_counter()
    vacuum_analyze(("jobs_job", "jobs_attempt", "jobs_run", "jobs_jobcount"))
    analysed = time.perf_counter()
    states = dict(Job.objects.order_by().values_list("state").annotate(n=Count("*")))
    return {
        "database": connection.vendor,
        "anchor": anchor,
        "jobs": Job.objects.count(),
        "attempts": Attempt.objects.count(),
        "states": states,
        "runs": Run.objects.count(),
        "jobcount_rows": JobCount.objects.count(),
        "researcher_jobs": Job.objects.filter(owner_id=owner_ids[0]).count(),
        "targets": {"run_id": large.pk, "run_jobs": large.size, "job_id": made.job_page_id},
        "pg_visibility": pg_visibility(),
        "database_bytes": database_bytes(),
        "recount": recount,
        "seconds": {
            "migrate": round(migrated - started, 2),
            "insert": round(inserted - migrated, 2),
            "recount": round(recounted - inserted, 2),
            "vacuum_analyze": round(analysed - recounted, 2),
            "total": round(analysed - started, 2),
        },
    }
