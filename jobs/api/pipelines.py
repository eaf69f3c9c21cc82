"""The pipeline parts of the /api/batches endpoints (runs.py): the definition a
batch is uploaded with, its steps' tallies, and the schemas of those and of a
batch's jobs."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Sum
from django.http import HttpRequest
from ninja import Field, Schema

from jobs.api.job_schemas import JobOut
from jobs.api.schemas import MAX_ID, MAX_PAGE_SIZE, Text, decimal_text
from jobs.engine import submitting
from jobs.engine.pipelines import DefinitionError, Pipeline
from jobs.models import Job, Run, State
from jobs.runs import pipeline_downloads, pipeline_runs
from jobs.web import queries

# A definition is a few kilobytes; this bounds what is read of one sent as a file.
MAX_DEFINITION_BYTES = 256 * 1024
# What a text prompt's batch takes as defaults that a pipeline's steps each say.
STEP_SETTINGS = ("system_instruction", "temperature", "max_output_tokens")


# --- Schemas -------------------------------------------------------------------
class PipelineStepOut(Schema):
    name: str
    model: str
    tier: str
    parents: list[str] = Field(description="the steps whose answers it uses")
    for_each: str | None = Field(description="the list it fans out over, one job per item")
    continues: str | None = Field(description="the step whose conversation it continues")
    jobs: int
    counts: dict[str, int] = Field(description="its jobs by state, every state named")
    cost_usd: str | None = Field(description="what its jobs have cost so far, USD")


class PipelineOut(Schema):
    name: str
    steps: list[PipelineStepOut]


class BatchJobOut(JobOut):
    step: str | None = Field(description="its pipeline step; null outside pipelines")
    item: int | None = Field(description="its index in the list its step fans out over")
    row: str = Field(description="the id of its row (its line) in the uploaded file")
    line: int | None = Field(description="that row's line number in the file")

    @staticmethod
    def resolve_step(job: Job) -> str | None:
        return job.step or None

    @staticmethod
    def resolve_row(job: Job) -> str:
        return job.custom_id

    @staticmethod
    def resolve_line(job: Job) -> int | None:
        return job.line_number


class BatchJobPage(Schema):
    items: list[BatchJobOut]
    total: int
    limit: int
    offset: int


class BatchJobFilters(Schema):
    step: Text | None = Field(None, max_length=64, description="only this pipeline step's jobs")
    state: State | None = None
    limit: int = Field(50, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(0, ge=0, le=MAX_ID // 2)


# --- The definition sent ----------------------------------------------------------
def definition_sent(request: HttpRequest, options) -> str | bytes | None:
    """The pipeline definition, sent as the `pipeline` form field or as a file part
    of that name; None for a batch of independent prompts."""
    sent = request.FILES.get("pipeline")
    if sent is not None and options.pipeline is not None:
        raise DjangoValidationError({"pipeline": "Send the pipeline once: as text or as a file."})
    if sent is None and options.pipeline is None:
        return None
    given = [name for name in STEP_SETTINGS if getattr(options, name) not in (None, "")]
    if given:
        raise DjangoValidationError(
            {name: "A pipeline's steps carry their own: set it in the step." for name in given}
        )
    if sent is None:
        return options.pipeline
    definition = sent.read(MAX_DEFINITION_BYTES + 1)
    if len(definition) > MAX_DEFINITION_BYTES:
        raise DjangoValidationError(
            {"pipeline": f"The definition is larger than {MAX_DEFINITION_BYTES:,} bytes."}
        )
    return definition


def pipeline_checked(definition: str | bytes, spec: submitting.JobSpec) -> Pipeline:
    """The definition checked whole; every problem answered (422) under `pipeline`."""
    try:
        return pipeline_runs.pipeline_read(definition, spec=spec)
    except DefinitionError as error:
        raise DjangoValidationError({"pipeline": error.problems}) from None


# --- Its steps' tallies ----------------------------------------------------------
def pipeline_summary(run: Run) -> dict:
    """The definition's steps, each with its jobs counted by state and their cost:
    one GROUP BY (step, state) over the run's jobs."""
    tallies = (
        Job.objects.filter(run=run)
        .values("step", "state")
        .annotate(jobs=Count("id"), cost=Sum("cost_usd"))
        .order_by()
    )
    counts: dict[str, dict[str, int]] = {}
    costs: dict[str, object] = {}
    for tally in tallies:
        counts.setdefault(tally["step"], {})[tally["state"]] = tally["jobs"]
        if tally["cost"] is not None:
            costs[tally["step"]] = costs.get(tally["step"], 0) + tally["cost"]
    pipeline = pipeline_downloads.pipeline_of(run)
    steps = []
    for step in pipeline.steps:
        by_state = counts.get(step.name, {})
        steps.append(
            {
                "name": step.name,
                "model": step.model,
                "tier": step.tier,
                "parents": list(step.parents),
                "for_each": step.for_each,
                "continues": step.continues,
                "jobs": sum(by_state.values()),
                "counts": {state: by_state.get(state, 0) for state in State.values},
                "cost_usd": decimal_text(queries.money(costs.get(step.name))),
            }
        )
    return {"name": pipeline.name, "steps": steps}
