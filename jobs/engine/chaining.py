"""Pipelines move row by row: when a job of a pipeline run ends (or is tried
again by hand), its row is settled in the same transaction.

Settling a row walks its steps in order (a step's parents come before it):
- a waiting job whose earlier steps all succeeded has its request rendered from
  the row and those answers and becomes due (a step that fans out becomes one
  job per item of its list; an empty list leaves none);
- a waiting job with a parent that failed, was cancelled or was skipped is
  skipped, with the reason;
- a skipped job whose parents are all well again (one was retried) waits again.

The claim query never sees a waiting job, so it stays as cheap as for plain
runs, and a crash between an answer and its children loses nothing: both are
one transaction. Two dispatchers recording two parents of one row at once
take the row's RunRow lock first (in row order), so the second sees the
first's answer and neither leaves the child waiting forever.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from jobs.engine import control, submitting
from jobs.engine.pipelines import (
    NO_ITEM,
    Answer,
    Pipeline,
    RenderError,
    Step,
    continued,
    fan_out_items,
    render_request,
)
from jobs.models import Attempt, Job, Outcome, Run, RunRow, State

logger = logging.getLogger(__name__)

# A parent in one of these ends its waiting descendants.
_BROKEN = (State.FAILED, State.CANCELLED, State.SKIPPED)


def jobs_ended(*, job_ids: Iterable[int], now: datetime | None = None) -> int:
    """Settle the rows of these jobs (those in a pipeline run) after they
    succeeded, failed or were cancelled, or were queued again by a person.
    Call inside the transaction that changed them. Returns how many jobs
    changed state here (made due, skipped, waiting again, or failed to render)."""
    ids = list(job_ids)
    if not ids:
        return 0
    keys = set(
        Job.objects.filter(pk__in=ids, run__isnull=False)
        .exclude(step="")
        .values_list("run_id", "line_number")
        .order_by()
    )
    return rows_settle(keys=keys, now=now) if keys else 0


jobs_revived = jobs_ended


def rows_settle(*, keys: Iterable[tuple[int, int]], now: datetime | None = None) -> int:
    """Settle each (run id, line number) row; see the module's docstring."""
    now = now or timezone.now()
    ordered = sorted(keys)
    pipelines: dict[int, Pipeline | None] = {}
    changed = 0
    with transaction.atomic():
        for run_id, line_number in ordered:
            if run_id not in pipelines:
                definition = Run.objects.filter(pk=run_id).values_list("pipeline", flat=True)
                found = definition.first()
                pipelines[run_id] = Pipeline.from_json(found) if found else None
            pipeline = pipelines[run_id]
            if pipeline is None:
                continue
            row = (
                RunRow.objects.select_for_update()
                .filter(run_id=run_id, line_number=line_number)
                .first()
            )
            if row is None:
                continue
            changed += _RowSettler(pipeline, row, now).settle()
        if changed:
            transaction.on_commit(control.wake_dispatcher)
    return changed


class _RowSettler:
    def __init__(self, pipeline: Pipeline, row: RunRow, now: datetime) -> None:
        self.pipeline = pipeline
        self.row = row
        self.now = now
        self.by_step: dict[str, list[Job]] = {}
        for job in Job.objects.filter(run_id=row.run_id, line_number=row.line_number):
            self.by_step.setdefault(job.step, []).append(job)
        for jobs in self.by_step.values():
            jobs.sort(key=lambda job: (job.item is not None, job.item or 0, job.pk))
        self.changed = 0

    def settle(self) -> int:
        for step in self.pipeline.steps:
            jobs = self.by_step.get(step.name, [])
            if not any(job.state in (State.WAITING, State.SKIPPED) for job in jobs):
                continue
            broken = self._broken_parent(step)
            if broken is not None:
                for job in jobs:
                    if job.state == State.WAITING:
                        self._end(job, State.SKIPPED, broken)
                continue
            for job in jobs:
                if job.state == State.SKIPPED:
                    self._move(job, State.SKIPPED, state=State.WAITING, last_error="",
                               finished_at=None)  # fmt: skip
            if self._parents_succeeded(step):
                for job in [job for job in jobs if job.state == State.WAITING]:
                    self._release(step, job)
        return self.changed

    # --- Reading the row ---------------------------------------------------------
    def _broken_parent(self, step: Step) -> str | None:
        """Why `step` cannot run for this row, or None."""
        for name in step.parents:
            for job in self.by_step.get(name, []):
                if job.state == State.SKIPPED:
                    return job.last_error or f"step {name} was skipped"
                if job.state == State.CANCELLED:
                    return f"step {name} was cancelled"
                if job.state == State.FAILED:
                    return f"step {name} failed: {job.last_error or 'no reason recorded'}"[:2000]
        return None

    def _parents_succeeded(self, step: Step) -> bool:
        return all(
            job.state == State.SUCCEEDED
            for name in step.parents
            for job in self.by_step.get(name, [])
        )

    def _answers(self) -> dict[str, list[Answer]]:
        """The row's answers of each step that has all of them (a fan-out over an
        empty list has none to wait for: its answers are an empty list)."""
        answers = {}
        for step in self.pipeline.steps:
            jobs = self.by_step.get(step.name, [])
            if (jobs or step.fans_out) and all(job.state == State.SUCCEEDED for job in jobs):
                answers[step.name] = [Answer(job.result_text, _parsed(job)) for job in jobs]
        return answers

    # --- Changing it -------------------------------------------------------------
    def _move(self, job: Job, expected: str, **changes) -> bool:
        """A conditional update of one job; the in-memory copy follows on success."""
        won = Job.objects.filter(pk=job.pk, state=expected).update(**changes, updated_at=self.now)
        if won:
            for name, value in changes.items():
                setattr(job, name, value)
            self.changed += 1
        return bool(won)

    def _end(self, job: Job, state: str, reason: str) -> None:
        self._move(job, State.WAITING, state=state, last_error=reason[:2000],
                   finished_at=self.now, next_attempt_at=None)  # fmt: skip

    def _release(self, step: Step, job: Job) -> None:
        answers = self._answers()
        values = self.row.values or {}
        try:
            if step.fans_out and job.item is None:
                self._expand(step, job, fan_out_items(step, row=values, answers=answers))
                return
            item = NO_ITEM
            if step.fans_out:
                items = fan_out_items(step, row=values, answers=answers)
                item = items[job.item] if job.item < len(items) else NO_ITEM
            self._queue(step, job, self._request(step, values, answers, item))
        except RenderError as error:
            self._end(job, State.FAILED, f"Could not build this step's request: {error}")

    def _expand(self, step: Step, placeholder: Job, items: list) -> None:
        """One job per item: the placeholder becomes the first, the rest are new."""
        if not items:
            Job.objects.filter(pk=placeholder.pk, state=State.WAITING).delete()
            self.by_step[step.name].remove(placeholder)
            self.changed += 1
            return
        answers, values = self._answers(), self.row.values or {}
        requests = [self._request(step, values, answers, item) for item in items]
        continues = self._continues(step)
        clones = []
        for index, request in enumerate(requests[1:], start=1):
            clone = copy.copy(placeholder)
            clone.pk = None
            clone._state = copy.copy(placeholder._state)
            clone._state.adding = True
            clone.item = index
            clone.state = State.QUEUED
            clone.next_attempt_at = self.now
            clone.submitted_at = self.now
            clone.continues_interaction = continues
            clone.last_error = ""
            for name, value in submitting.request_columns(request).items():
                setattr(clone, name, value)
            clones.append(clone)
        if not self._queue(step, placeholder, requests[0], item=0):
            return
        Job.objects.bulk_create(clones)
        self.by_step[step.name].extend(clones)
        self.changed += len(clones)

    def _request(self, step: Step, values: dict, answers: dict, item) -> dict:
        request = render_request(step, row=values, answers=answers, item=item)
        if step.continues:
            earlier = self.by_step[step.continues][0]
            request = _continued(request, earlier)
        if problem := submitting.request_error(request):
            raise RenderError(problem)
        return request

    def _continues(self, step: Step) -> str:
        if not step.continues:
            return ""
        return _interaction_id(self.by_step[step.continues][0])

    def _queue(self, step: Step, job: Job, request: dict, **fields) -> bool:
        return self._move(
            job,
            State.WAITING,
            state=State.QUEUED,
            next_attempt_at=self.now,
            continues_interaction=self._continues(step),
            last_error="",
            **submitting.request_columns(request),
            **fields,
        )


def _parsed(job: Job):
    """The structured answer, else the answer text read as JSON when it is JSON."""
    if job.output_json is not None:
        return job.output_json
    try:
        return json.loads(job.result_text)
    except (TypeError, ValueError):
        return None


def _continued(request: dict, earlier: Job) -> dict:
    return continued(
        request,
        earlier_request=earlier.gemini_request(),
        earlier_response=earlier.response,
        earlier_text=earlier.result_text,
    )


def _interaction_id(earlier: Job) -> str:
    """The earlier answer's interaction id when it came by the Interactions route
    (stored there, so the next turn may name it); "" when by generateContent."""
    if not earlier.response_id:
        return ""
    route = (
        Attempt.objects.filter(job_id=earlier.pk, outcome=Outcome.SUCCEEDED)
        .order_by("-number")
        .values_list("route", flat=True)
        .first()
    )
    return earlier.response_id if route == "interactions" else ""
