"""Where a pipeline's job stands, for its page: its step and row, the item
of a fan-out, the earlier steps it waits on, why it was skipped, and how a
step that continues a conversation was sent."""

from __future__ import annotations

from dataclasses import dataclass

from jobs.engine.pipelines import Pipeline, Step
from jobs.models import Job, State


@dataclass(frozen=True)
class PipelinePlace:
    step: Step
    line_number: int | None
    custom_id: str
    item: int | None
    items: int  # the fan-out's jobs for this row; 0 outside a fan-out
    waiting_on: list[str]  # earlier steps of the row not answered yet
    skipped_reason: str
    # A step with `continue`: the interaction it was sent after
    # (previous_interaction_id), or "" when the earlier turns were resent.
    continues_interaction: str

    @property
    def continues(self) -> str | None:
        return self.step.continues


def pipeline_place(job: Job) -> PipelinePlace | None:
    """None for a job outside a pipeline (or of a step its run no longer defines)."""
    if not job.step or job.run_id is None or job.run.pipeline is None:
        return None
    try:
        step = Pipeline.from_json(job.run.pipeline).step(job.step)
    except KeyError:
        return None
    row_jobs = Job.objects.filter(run_id=job.run_id, line_number=job.line_number)
    waiting_on: list[str] = []
    if job.state == State.WAITING and step.parents:
        unanswered = set(
            row_jobs.filter(step__in=step.parents)
            .exclude(state=State.SUCCEEDED)
            .values_list("step", flat=True)
        )
        waiting_on = [name for name in step.parents if name in unanswered]
    items = 0
    if job.item is not None:
        items = row_jobs.filter(step=job.step, item__isnull=False).count()
    return PipelinePlace(
        step=step,
        line_number=job.line_number,
        custom_id=job.custom_id,
        item=job.item,
        items=items,
        waiting_on=waiting_on,
        skipped_reason=job.last_error if job.state == State.SKIPPED else "",
        continues_interaction=job.continues_interaction,
    )
