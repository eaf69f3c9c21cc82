"""The pipeline parts of the /api/batches endpoints (runs.py): the definition a
batch is uploaded with (a pipeline's, or an eval's, which compiles to one), its
steps' tallies, and the schemas of those, of an eval and of a batch's jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Sum
from django.http import HttpRequest
from ninja import Field, Schema

from jobs.api.job_schemas import JobOut
from jobs.api.schemas import MAX_ID, MAX_PAGE_SIZE, Text, decimal_text
from jobs.engine import submitting
from jobs.engine.pipelines import DefinitionError, Pipeline
from jobs.models import Job, Run, State
from jobs.runs import eval_definitions, pipeline_downloads, pipeline_runs
from jobs.web import queries

# A definition is a few kilobytes; this bounds what is read of one sent as a file.
MAX_DEFINITION_BYTES = 256 * 1024
# What a text prompt's batch takes as defaults that a pipeline's steps each say.
STEP_SETTINGS = ("system_instruction", "temperature", "max_output_tokens")
# The form fields (or file parts) a definition may come in.
DEFINITION_FIELDS = ("pipeline", "eval")


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


class EvalCandidateOut(Schema):
    key: str = Field(description="its id within the eval; its steps' names end with it")
    label: str = Field(description="its name in the definition, else its model")
    model: str
    step: str = Field(description="the pipeline step whose jobs are its answers")


class EvalGraderOut(Schema):
    name: str
    kind: Literal["check", "judge", "pairwise"] = Field(
        description="check: graded without a model; judge: a model grades each candidate's "
        "answer; pairwise: a model compares two candidates' answers, in both orders"
    )
    model: str | None = Field(None, description="a judge's or pairwise grader's model")
    score: str | None = Field(None, description="a judge's: the field of its answer that scores")
    compare: list[str] | None = Field(
        None, description="a pairwise grader's: the keys of the candidates it compares, A then B"
    )
    verdict: str | None = Field(
        None, description="a pairwise grader's: the field of its answer that names the winner"
    )
    steps: dict[str, str] = Field(
        default_factory=dict,
        description="its pipeline steps: a judge's by candidate key, a pairwise grader's by "
        "order (ab, ba); none for a check",
    )
    check: dict[str, Any] | None = Field(
        None, description="a check's settings as defined (type, expected, normalize...)"
    )


class EvaluationOut(Schema):
    name: str
    seed: int = Field(description="the seed of the leaderboard's bootstrap intervals")
    candidates: list[EvalCandidateOut]
    graders: list[EvalGraderOut]


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
@dataclass(frozen=True)
class SentDefinition:
    field: str  # the form field it came in: "pipeline" or "eval"
    source: str | bytes


@dataclass(frozen=True)
class CheckedDefinition:
    pipeline: Pipeline
    evaluation: dict | None  # Run.evaluation: an eval's compiled definition


def definition_sent(request: HttpRequest, options) -> SentDefinition | None:
    """The pipeline or eval definition, sent as the `pipeline` or `eval` form field
    or as a file part of that name; None for a batch of independent prompts."""
    sent: dict[str, object] = {}
    for name in DEFINITION_FIELDS:
        part, text = request.FILES.get(name), getattr(options, name)
        if part is not None and text is not None:
            raise DjangoValidationError({name: f"Send the {name} once: as text or as a file."})
        if part is not None or text is not None:
            sent[name] = part if part is not None else text
    if not sent:
        return None
    if len(sent) > 1:
        raise DjangoValidationError(
            {"eval": "Send a pipeline or an eval, not both: an eval runs as a pipeline of its own."}
        )
    ((name, given),) = sent.items()
    settings = [field for field in STEP_SETTINGS if getattr(options, field) not in (None, "")]
    if settings:
        says = (
            "A pipeline's steps carry their own: set it in the step."
            if name == "pipeline"
            else "An eval's candidates and judges carry their own: set it in the candidate."
        )
        raise DjangoValidationError({field: says for field in settings})
    if isinstance(given, str):
        return SentDefinition(field=name, source=given)
    definition = given.read(MAX_DEFINITION_BYTES + 1)
    if len(definition) > MAX_DEFINITION_BYTES:
        raise DjangoValidationError(
            {name: f"The definition is larger than {MAX_DEFINITION_BYTES:,} bytes."}
        )
    return SentDefinition(field=name, source=definition)


def definition_checked(sent: SentDefinition, spec: submitting.JobSpec) -> CheckedDefinition:
    """The definition checked whole; every problem answered (422) under its field,
    each naming its step (a pipeline's) or its candidate or grader (an eval's)."""
    try:
        if sent.field == "eval":
            compiled = eval_definitions.eval_read(sent.source, spec=spec)
            return CheckedDefinition(compiled.pipeline, compiled.evaluation)
        return CheckedDefinition(pipeline_runs.pipeline_read(sent.source, spec=spec), None)
    except DefinitionError as error:
        raise DjangoValidationError({sent.field: error.problems}) from None


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
