"""Bulk runs: creating a run from an uploaded file, and the actions on a whole run.

`jobs/engine/` changes one job at a time; this module holds the run-wide
changes, under the same rules: keyword-only `run_<action>` functions, every
transition a conditional UPDATE (`... WHERE state IN (...)`) whose row count
says what changed, and the dispatcher woken on commit when jobs become due.

Files are read as a stream (jobs/runs/reading.py over jobs/formats): a run is
inserted in batches inside one transaction, and a file with any bad line is
rolled back whole.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from jobs import formats, gemini_shape
from jobs.engine import actions, budgets, chaining, control, notices, submitting
from jobs.models import (
    WAITING_STATES,
    Attempt,
    DeadlinePolicy,
    Job,
    Run,
    State,
    Tier,
)
from jobs.notices.choices import RunNotify
from jobs.redaction import redact_api_key
from jobs.runs import failures
from jobs.runs.reading import Estimate, LineReader, RunLine, request_features

INSERT_BATCH = 1000


def _spec_checked(spec: submitting.JobSpec) -> None:
    errors = submitting.job_spec_errors(spec)
    if errors:
        raise ValidationError(errors)


def _line_defaults(spec: submitting.JobSpec) -> submitting.JobSpec:
    """The spec lines are read against. The deadline is the run's, checked
    once and copied onto every job: kept out of the lines, it does not make
    each line's settings differ from the run's (and be checked again)."""
    return replace(spec, deadline_at=None, deadline_policy=DeadlinePolicy.KEEP)


# The first lines the preview shows as they were read, and how much of each.
PREVIEW_ROWS = 5
PREVIEW_PROMPT_CHARS = 200
PREVIEW_SYSTEM_CHARS = 60


@dataclass(frozen=True)
class PreviewRow:
    """One of the first lines as it will be sent: kept with the staged upload
    (excerpts only, so the record stays small)."""

    line: int
    custom_id: str
    prompt: str
    prompt_cut: bool
    settings: list[str]


@dataclass(frozen=True)
class RunPreview:
    format: str
    estimate: Estimate
    rows: tuple[PreviewRow, ...] = ()

    @property
    def format_label(self) -> str:
        return formats.FORMAT_LABELS.get(self.format, self.format)


def _preview_row(line: RunLine, *, run_model: str) -> PreviewRow:
    source, request = line.source, line.request
    config = gemini_shape.generation(request)
    model = line.spec.model
    if source.model and source.model != model:
        settings_words = [f"{model} (the file names {source.model})"]
    elif model != run_model:
        settings_words = [f"{model} (its own)"]
    else:
        settings_words = [model]
    if system := gemini_shape.system_text(request):
        cut = "…" if len(system) > PREVIEW_SYSTEM_CHARS else ""
        settings_words.append(f"system instruction “{system[:PREVIEW_SYSTEM_CHARS]}{cut}”")
    if (temperature := config.get("temperature")) is not None:
        settings_words.append(f"temperature {temperature:g}")
    if (limit := config.get("max_output_tokens")) is not None:
        settings_words.append(f"at most {limit:,} output tokens")
    settings_words += request_features(request)
    prompt = redact_api_key(source.prompt)
    return PreviewRow(
        line=source.line,
        custom_id=line.custom_id,
        prompt=prompt[:PREVIEW_PROMPT_CHARS],
        prompt_cut=len(prompt) > PREVIEW_PROMPT_CHARS,
        settings=settings_words,
    )


def run_preview(
    *, stream: BinaryIO, filename: str, spec: submitting.JobSpec, fmt: str | None = None
) -> RunPreview:
    """Read the whole file as run_create would, creating nothing: its format,
    how many prompts, models replaced, tokens and cost, and the first
    PREVIEW_ROWS lines as they will be sent. Raises ValidationError for bad
    settings and RunRejected for a bad file."""
    _spec_checked(spec)
    reader = LineReader(stream, filename=filename, spec=_line_defaults(spec), fmt=fmt)
    rows = []
    for line in reader:
        if len(rows) < PREVIEW_ROWS:
            rows.append(_preview_row(line, run_model=spec.model))
    if rejected := reader.rejection():
        raise rejected
    return RunPreview(format=reader.format or "", estimate=reader.estimate, rows=tuple(rows))


def run_create(
    *,
    owner,
    stream: BinaryIO,
    filename: str,
    spec: submitting.JobSpec,
    name: str = "",
    fmt: str | None = None,
    notify: RunNotify | None = None,
    budget_usd: Decimal | None = None,
) -> Run:
    """Create a run and one queued job per line, all or nothing, and wake the
    dispatcher once committed. `notify` is what its owner asks to be told
    (their account's defaults when None); `budget_usd` is the most it may
    cost. Raises ValidationError for bad settings and RunRejected (listing
    the first bad lines) for a bad file."""
    _spec_checked(spec)
    if budget_usd is not None and (problem := budgets.budget_error(budget_usd)):
        raise ValidationError({"budget_usd": problem})
    notify = notify or RunNotify.defaults_for(owner)
    now = timezone.now()
    max_attempts = spec.max_attempts or settings.FLEX_MAX_ATTEMPTS
    reader = LineReader(stream, filename=filename, spec=_line_defaults(spec), fmt=fmt)
    with transaction.atomic():
        run = Run.objects.create(
            owner=owner,
            name=(name.strip() or filename or "Untitled run")[:200],
            source_name=filename[:255],
            model=spec.model,
            tier=spec.tier,
            max_attempts=max_attempts,
            fallback_standard=spec.fallback_standard,
            deadline_at=spec.deadline_at,
            deadline_policy=spec.deadline_policy,
            budget_usd=budget_usd,
            created_at=now,
            **notify.run_fields(),
        )
        if budget_usd is not None:
            budgets.run_budget_open(run=run)
        insert = _JobInsert(
            run, max_attempts=max_attempts, retry_bad_output=spec.retry_bad_output, now=now
        )
        batch: list[list] = []
        for line in reader:
            batch.append(insert.row(line))
            if len(batch) >= INSERT_BATCH:
                insert.execute(batch)
                batch = []
        if rejected := reader.rejection():
            # Leaving the block by an exception rolls back every batch inserted so far.
            raise rejected
        insert.execute(batch)
        estimate = reader.estimate
        run.source_format = reader.format or ""
        run.replaced_models = estimate.replaced_models
        run.estimated_input_tokens = estimate.input_tokens
        run.estimated_output_tokens = estimate.output_tokens
        run.estimated_cost_usd = estimate.cost_on(spec.tier)
        run.estimated_standard_cost_usd = estimate.standard_usd
        run.save()
        transaction.on_commit(control.wake_dispatcher)
    return run


class _JobInsert:
    """Inserts a run's jobs a batch at a time with one executemany.

    bulk_create spent ~10 s of a 50,000-line upload preparing each of the
    job's 30-odd columns for every row; here the columns every job of the run
    shares are prepared once, from a Job built like jobs_submit builds one,
    and only the line's own fields per row (3 s on SQLite, 3 s on PostgreSQL
    with COPY)."""

    PER_LINE = (
        "custom_id",
        "source_line",
        "line_number",
        "model",
        "input_text",
        "system_instruction",
        "temperature",
        "max_output_tokens",
        "request",
        "media_tokens",
        "reserve_input_tokens",
        "reserve_output_tokens",
        "reserve_model_caps",
    )

    def __init__(self, run: Run, *, max_attempts: int, retry_bad_output: bool, now) -> None:
        template = Job(
            retry_bad_output=retry_bad_output,
            owner_id=run.owner_id,
            run=run,
            tier_requested=run.tier,
            fallback_standard=run.fallback_standard,
            max_attempts=max_attempts,
            submitted_at=now,
            next_attempt_at=now,
            deadline_at=run.deadline_at,
            deadline_policy=run.deadline_policy,
        )
        fields = [f for f in Job._meta.concrete_fields if not f.primary_key]
        self.shared = [
            f.get_db_prep_save(f.pre_save(template, add=True), connection) for f in fields
        ]
        self.per_line = [
            (fields.index(Job._meta.get_field(n)), Job._meta.get_field(n)) for n in self.PER_LINE
        ]
        quote = connection.ops.quote_name
        table = f"{quote(Job._meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
        self.sql = f"INSERT INTO {table} VALUES ({', '.join(['%s'] * len(fields))})"
        self.copy_sql = f"COPY {table} FROM STDIN"

    def row(self, line: RunLine) -> list:
        spec = line.spec
        values = {
            "custom_id": line.custom_id,
            "source_line": line.source.source,
            "line_number": line.source.line,
            "model": spec.model,
            **submitting.request_columns(line.request),
        }
        row = list(self.shared)
        for index, column in self.per_line:
            row[index] = column.get_db_prep_save(values[column.name], connection)
        return row

    def execute(self, rows: list[list]) -> None:
        if not rows:
            return
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # One COPY stream per batch: a third of executemany's time here.
                with cursor.cursor.copy(self.copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(self.sql, rows)


# --- Actions on a run -----------------------------------------------------------------
def run_cancel(*, run: Run) -> int:
    """Cancel every job of the run that is waiting (queued, waiting to retry,
    or waiting on earlier steps). A running job finishes its attempt, as with
    a single job; in a pipeline its later steps are cancelled already."""
    now = timezone.now()
    with transaction.atomic():
        cancelled = Job.objects.filter(run=run, state__in=actions.CANCELLABLE_STATES).update(
            state=State.CANCELLED, finished_at=now, next_attempt_at=None, updated_at=now
        )
        if cancelled:
            notices.runs_settle(run_ids=[run.pk], now=now)
    return cancelled


def run_retry_failed(*, run: Run) -> int:
    """Queue again the run's failed jobs that a retry may answer (their last
    error was capacity, a rate limit, a timeout...), each with its attempt
    budget again, as a single job's retry does (actions.retried_budget). The
    permanent failures are left alone: run_resend_permanent sends those."""
    failed = Job.objects.filter(run=run, state=State.FAILED)
    return _requeue(run, failed.exclude(failures.failed_for_good()))


def run_resend_permanent(*, run: Run) -> int:
    """Queue again the failed jobs whose last error a retry meets again (a bad
    request, a blocked answer: failures.PERMANENT_KINDS), on the person's
    word that something outside the request changed."""
    failed = Job.objects.filter(run=run, state=State.FAILED)
    return _requeue(run, failed.filter(failures.failed_for_good()))


def _requeue(run: Run, failed) -> int:
    now = timezone.now()
    with transaction.atomic():
        # In a pipeline, the steps they skipped wait for them again.
        revived = list(failed.exclude(step="").values_list("pk", flat=True)) if run.pipeline else []
        changed = failed.update(
            state=State.QUEUED,
            next_attempt_at=now,
            finished_at=None,
            **actions.retried_budget(),
            deadline_policy=actions.policy_after_retry(now),
            updated_at=now,
        )
        if changed:
            chaining.jobs_revived(job_ids=revived, now=now)
            Run.objects.filter(pk=run.pk).update(finished_at=None)
            transaction.on_commit(control.wake_dispatcher)
    run.refresh_from_db(fields=["finished_at"])
    return changed


def run_move_to_standard(*, run: Run) -> int:
    """Run the unfinished flex jobs on the standard tier from their next
    attempt on. Waiting ones become due now; a running one keeps its current
    flex attempt (and is billed for it at flex) and uses standard if it
    retries; a pipeline's later steps go on standard when their turn comes."""
    now = timezone.now()
    unfinished = Job.objects.filter(run=run, tier_requested=Tier.FLEX)
    with transaction.atomic():
        waiting = unfinished.filter(state__in=WAITING_STATES).update(
            tier_requested=Tier.STANDARD, next_attempt_at=now, updated_at=now
        )
        running = unfinished.filter(state__in=(State.RUNNING, State.WAITING)).update(
            tier_requested=Tier.STANDARD, updated_at=now
        )
        if waiting:
            transaction.on_commit(control.wake_dispatcher)
    return waiting + running


def run_delete(*, run: Run) -> int:
    """Delete the run with its jobs and their attempts; returns how many jobs.

    A dispatcher holding one of them records nothing: its updates find no row."""
    jobs = Job.objects.filter(run=run)
    with transaction.atomic():
        if connection.features.has_select_for_update:
            # Hold the jobs, so no dispatcher opens an attempt on one meanwhile
            # (on SQLite the transaction's write lock already does).
            list(jobs.select_for_update().values_list("pk", flat=True))
        # Tries still in flight give their reservations back to the month's budgets.
        budgets.attempts_release_held(Attempt.objects.filter(job__run=run))
        Attempt.objects.filter(job__run=run).delete()
        # One DELETE: the ORM's cascade would first load every job (50,000
        # took 6 s and 40 MB), only to find their attempts already gone.
        table, column = Job._meta.db_table, Job._meta.get_field("run").column
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {quote(table)} WHERE {quote(column)} = %s", [run.pk])
            deleted = cursor.rowcount
        run.delete()
    return deleted


def run_settle(*, run: Run) -> bool:
    """Record when the run finished, once none of its jobs is active. Called
    by the pages that count its jobs; a retry clears it again."""
    if run.finished_at is not None:
        return False
    with transaction.atomic():
        changed = notices.runs_settle(run_ids=[run.pk])
    run.refresh_from_db(fields=["finished_at"])
    return bool(changed)
