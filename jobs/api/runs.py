"""The /api/batches endpoints: runs uploaded from a file, listed, followed and
downloaded, and the schemas only they use.

A batch may be a pipeline: a definition (jobs/engine/pipelines.py) run over the
file's rows, each row's steps one job each; its detail counts every step's jobs,
and /jobs lists them with their step and row (those parts: pipelines.py). An eval
(jobs/runs/eval_definitions.py) is such a batch whose steps are its candidates'
answers and its judges' grades; its `evaluation` says which step is whose.

The API's word for a run (jobs/runs.py) is batch: its paths, path parameter,
schema names, operation ids, summaries and messages say batch and stay as
published; the code says run. The endpoints use the same services, queries and
downloads as the run pages, answered as JSON.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, File, Form, Query, Router, Schema, Status, UploadedFile
from ninja.errors import HttpError

from jobs import formats
from jobs.api import pipelines
from jobs.api.pipelines import BatchJobFilters, BatchJobPage, EvaluationOut, PipelineOut
from jobs.api.schemas import (
    DEADLINE_DESCRIPTION,
    ERRORS,
    MAX_ID,
    MAX_PAGE_SIZE,
    POLICY_DESCRIPTION,
    Deadline,
    PathId,
    Text,
    decimal_text,
)
from jobs.catalog import DEFAULT_MODEL, FLEX_MODELS
from jobs.engine import budgets, submitting
from jobs.models import DeadlinePolicy, Job, Run, State, Tier
from jobs.notices import choices
from jobs.notices.choices import RunNotify
from jobs.runs import downloads, pipeline_downloads, pipeline_runs
from jobs.runs import limits as run_limits
from jobs.runs import queries as run_queries
from jobs.runs import services as runs
from jobs.runs.reading import RunRejected
from jobs.web import queries

router = Router(tags=["batches"])


# --- Schemas -------------------------------------------------------------------
class BatchIn(Schema):
    """The run's defaults; a line's own model, system instruction, temperature
    or output length wins. A line's model flex does not run is replaced by `model`."""

    name: Text = Field(
        "", max_length=200, description="Empty: the pipeline's or eval's name, else the file's."
    )
    pipeline: Text | None = Field(
        None,
        description="A pipeline definition (YAML or JSON) to run over the file's rows, which "
        "then make a table (CSV columns, JSON keys, a text line as `text`); it may come as a "
        "file part of the same name instead. model, tier, max_attempts and fallback_standard "
        "are then the defaults of steps that name none; each step says its own prompt and "
        "request settings. A definition with problems answers 422 listing each, by step.",
        json_schema_extra={"maxLength": pipelines.MAX_DEFINITION_BYTES},
    )
    eval: Text | None = Field(
        None,
        description="An eval definition (YAML or JSON: name, candidates, prompt, graders) to "
        "run over the file's rows, its dataset; it may come as a file part of the same name "
        "instead, and not beside a `pipeline`. Each candidate answers every row and each "
        "judge grades every answer, as the steps of a pipeline the eval compiles to; model, "
        "tier, max_attempts and fallback_standard are the defaults of those that name none. "
        "A definition with problems answers 422 listing each, by candidate or grader.",
        json_schema_extra={"maxLength": pipelines.MAX_DEFINITION_BYTES},
    )
    format: str | None = Field(
        None,
        description="Empty: detected from the file.",
        json_schema_extra={"enum": list(formats.FORMATS)},
    )
    model: str = Field(DEFAULT_MODEL, json_schema_extra={"enum": list(FLEX_MODELS)})
    tier: str = Field(Tier.FLEX.value, json_schema_extra={"enum": list(Tier.values)})
    max_attempts: int | None = Field(
        None, json_schema_extra={"minimum": 1, "maximum": submitting.MAX_ATTEMPTS_LIMIT}
    )
    fallback_standard: bool = False
    system_instruction: Text = ""
    temperature: float | None = Field(None, json_schema_extra={"minimum": 0, "maximum": 2})
    max_output_tokens: int | None = Field(
        None, json_schema_extra={"minimum": 1, "maximum": 1_000_000}
    )
    deadline_at: Deadline = Field(None, description=DEADLINE_DESCRIPTION)
    deadline_policy: str = Field(
        DeadlinePolicy.KEEP.value,
        description=POLICY_DESCRIPTION,
        json_schema_extra={"enum": list(DeadlinePolicy.values)},
    )
    budget_usd: str | None = Field(
        None,
        description="The most the batch may cost in USD, e.g. 12.50 (retries and fallbacks "
        "included). Each request's worst case is reserved before it is sent; what does not "
        "fit waits until the budget is raised. Empty: no budget of its own.",
        examples=["12.50"],
    )

    notify_finished: bool | None = Field(
        None, description="Be told when every job has ended. Empty: your account's default."
    )
    notify_failures: Text | None = Field(
        None,
        max_length=40,
        description="Be told when failed jobs reach a number (10), a share of the batch "
        "(5%), or either (10 or 5%); blank for never. Empty: your account's default.",
    )
    notify_budget: bool | None = Field(
        None, description="Be told when a budget stops its work. Empty: your account's default."
    )
    notify_paused: bool | None = Field(
        None, description="Be told when dispatch is paused. Empty: your account's default."
    )

    def notify(self, owner) -> RunNotify:
        """What the batch asks to be told: these fields over the account's defaults."""
        try:
            return RunNotify.chosen(
                owner,
                finished=self.notify_finished,
                failures=self.notify_failures,
                budget=self.notify_budget,
                paused=self.notify_paused,
            )
        except ValueError as error:
            raise DjangoValidationError({"notify_failures": str(error)}) from None


class BatchOut(Schema):
    id: int
    name: str
    owner: str
    file_name: str
    format: str
    model: str
    tier: str
    max_attempts: int
    fallback_standard: bool
    replaced_models: int = Field(description="lines whose model flex does not run")
    deadline_at: datetime | None
    deadline_policy: DeadlinePolicy
    notify_finished: bool
    notify_failures: str = Field(description="the failure threshold told of; blank: none")
    notify_budget: bool
    notify_paused: bool
    created_at: datetime
    finished_at: datetime | None
    jobs: int
    finished: int
    active: int
    failed: int
    cost_usd: str | None
    standard_cost_usd: str | None
    estimated_cost_usd: str
    estimated_standard_cost_usd: str
    budget_usd: str | None
    evaluation: EvaluationOut | None = Field(
        None,
        description="An eval's candidates and graders, each with the steps whose jobs are "
        "its answers or grades, and its seed; null for a batch that is not an eval.",
    )

    @staticmethod
    def resolve_owner(run: Run) -> str:
        return run.owner.get_username()

    @staticmethod
    def resolve_notify_failures(run: Run) -> str:
        return choices.threshold_text(run.notify_failed_jobs, run.notify_failed_percent)

    @staticmethod
    def resolve_file_name(run: Run) -> str:
        return run.source_name

    @staticmethod
    def resolve_format(run: Run) -> str:
        return run.source_format

    @staticmethod
    def resolve_jobs(run: Run) -> int:
        return run.total

    @staticmethod
    def resolve_cost_usd(run: Run) -> str | None:
        return decimal_text(queries.money(run.cost))

    @staticmethod
    def resolve_standard_cost_usd(run: Run) -> str | None:
        return decimal_text(queries.money(run.standard_cost))

    @staticmethod
    def resolve_estimated_cost_usd(run: Run) -> str:
        return decimal_text(run.estimated_cost_usd)

    @staticmethod
    def resolve_estimated_standard_cost_usd(run: Run) -> str:
        return decimal_text(run.estimated_standard_cost_usd)

    @staticmethod
    def resolve_budget_usd(run: Run) -> str | None:
        return decimal_text(run.budget_usd)


class BatchProgressOut(Schema):
    counts: dict[str, int]
    percent: int
    http_503: int
    http_429: int
    jobs_per_minute: float | None
    eta_seconds: float | None
    input_tokens: int
    output_tokens: int
    thought_tokens: int
    unfinished_lines: int = Field(
        description="lines without an answer (failed, cancelled or not finished): "
        "what /unfinished holds"
    )
    savings_usd: str
    projected_cost_usd: str
    projected_standard_cost_usd: str


class BatchDetailOut(BatchOut):
    progress: BatchProgressOut
    pipeline: PipelineOut | None = Field(
        None,
        description="A pipeline's steps with their jobs' counts by state and cost; "
        "null for a batch of independent prompts.",
    )

    @staticmethod
    def resolve_pipeline(run: Run) -> dict | None:
        return getattr(run, "pipeline_summary", None)


class BatchPage(Schema):
    items: list[BatchOut]
    total: int
    limit: int
    offset: int


class BatchPaging(Schema):
    limit: int = Field(50, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(0, ge=0, le=MAX_ID // 2)


# --- Endpoints -----------------------------------------------------------------
# Each operation's id and summary are pinned to the published batch names: ninja
# would derive them from the module and the function.
def _run_for(request: HttpRequest, run_id: int) -> Run:
    """The run if this user may see it: 404 alike for another's and a missing one."""
    run = run_queries.run_list(request.auth).filter(pk=run_id).first()
    if run is None:
        raise HttpError(404, f"No batch {run_id}.")
    return run


def _run_detail(run: Run) -> Run:
    counts = queries.state_counts(run_queries.run_scope(run))
    if not counts.active and run.finished_at is None:
        runs.run_settle(run=run)
    progress = run_queries.run_progress(run, counts, now=timezone.now())
    run.progress = {
        "counts": {state: counts.by_state.get(state, 0) for state in State.values},
        "percent": progress.percent,
        "http_503": progress.errors.http_503,
        "http_429": progress.errors.http_429,
        "jobs_per_minute": progress.rate_per_minute,
        "eta_seconds": progress.eta.total_seconds() if progress.eta else None,
        "input_tokens": progress.input_tokens,
        "output_tokens": progress.output_tokens,
        "thought_tokens": progress.thought_tokens,
        "unfinished_lines": progress.unanswered,
        "savings_usd": decimal_text(progress.savings_usd),
        "projected_cost_usd": decimal_text(progress.projected_cost_usd),
        "projected_standard_cost_usd": decimal_text(progress.projected_standard_cost_usd),
    }
    if run.pipeline:
        run.pipeline_summary = pipelines.pipeline_summary(run)
    return run


@router.post(
    "",
    response={201: BatchDetailOut, **ERRORS},
    url_name="batches",
    operation_id="jobs_api_create_batch",
    summary="Create Batch",
)
def create_run(request: HttpRequest, file: File[UploadedFile], options: Form[BatchIn]):
    """Upload a file of prompts (multipart `file`): plain text, JSONL, CSV, or a
    Gemini, OpenAI or Anthropic batch file. All lines or none become jobs; a
    refused file answers 422 listing the first bad lines by number. With a
    `pipeline` definition the file is a table of rows, each run through its steps;
    with an `eval` definition, the dataset its candidates answer and its judges grade."""
    if refusal := run_limits.upload_refusal(request):
        # Another file of this request was dropped as it streamed in.
        raise RunRejected([(None, refusal)], total=1)
    spec = submitting.JobSpec.from_fields(dict(options))
    notify = options.notify(request.auth)
    if options.format and options.format not in formats.FORMATS:
        raise DjangoValidationError({"format": f"Choose one of {', '.join(formats.FORMATS)}."})
    try:
        budget = budgets.parse_budget(options.budget_usd)
    except ValueError as problem:
        raise DjangoValidationError({"budget_usd": str(problem)}) from None
    sent = pipelines.definition_sent(request, options)
    if sent is not None:
        definition = pipelines.definition_checked(sent, spec)
        run = pipeline_runs.pipeline_run_create(
            owner=request.auth,
            stream=file,
            filename=file.name or "",
            pipeline=definition.pipeline,
            evaluation=definition.evaluation,
            spec=spec,
            name=options.name,
            fmt=options.format or None,
            notify=notify,
            budget_usd=budget,
        )
        return Status(201, _run_detail(_run_for(request, run.pk)))
    # A refused file raises RunRejected, answered as 422 (jobs/api/__init__.py).
    run = runs.run_create(
        owner=request.auth,
        stream=file,
        filename=file.name or "",
        spec=spec,
        name=options.name,
        fmt=options.format or None,
        notify=notify,
        budget_usd=budget,
    )
    return Status(201, _run_detail(_run_for(request, run.pk)))


@router.get(
    "",
    response={200: BatchPage, **ERRORS},
    url_name="batches",
    operation_id="jobs_api_list_batches",
    summary="List Batches",
)
def list_runs(request: HttpRequest, paging: Query[BatchPaging]):
    """Batches newest first (staff see everyone's), with counts and cost."""
    listed = run_queries.run_list(request.auth)
    return {
        "items": listed[paging.offset : paging.offset + paging.limit],
        "total": run_queries.visible_runs(request.auth).count(),
        "limit": paging.limit,
        "offset": paging.offset,
    }


@router.get(
    "/{batch_id}",
    response={200: BatchDetailOut, **ERRORS},
    url_name="batch",
    operation_id="jobs_api_get_batch",
    summary="Get Batch",
)
def get_run(request: HttpRequest, batch_id: PathId):
    """One batch with its progress: counts by state, rate, ETA, tokens, cost."""
    return _run_detail(_run_for(request, batch_id))


@router.get(
    "/{batch_id}/results",
    response=ERRORS,
    url_name="batch_results",
    operation_id="jobs_api_batch_results",
    summary="Batch Results",
)
def run_results(request: HttpRequest, batch_id: PathId):
    """The finished lines as JSONL, in the uploaded format's result shape, keyed by its ids."""
    return downloads.results(_run_for(request, batch_id))


@router.get(
    "/{batch_id}/results.csv",
    response=ERRORS,
    url_name="batch_results_csv",
    operation_id="jobs_api_batch_results_csv",
    summary="Batch Results Csv",
)
def run_results_csv(request: HttpRequest, batch_id: PathId):
    """Every line as CSV: id, state, attempts, 503s, 429s, tokens, cost, prompt, output."""
    return downloads.results_csv(_run_for(request, batch_id))


@router.get(
    "/{batch_id}/unfinished",
    response=ERRORS,
    url_name="batch_unfinished",
    operation_id="jobs_api_batch_unfinished",
    summary="Batch Unfinished",
)
def run_unfinished(request: HttpRequest, batch_id: PathId):
    """The failed, cancelled and unfinished lines in the uploaded format, to upload again."""
    return downloads.unfinished(_run_for(request, batch_id))


@router.get(
    "/{batch_id}/jobs",
    response={200: BatchJobPage, **ERRORS},
    url_name="batch_jobs",
    operation_id="jobs_api_batch_jobs",
    summary="Batch Jobs",
)
def run_jobs(request: HttpRequest, batch_id: PathId, filters: Query[BatchJobFilters]):
    """The batch's jobs in file order (row by row; a pipeline's in step order within
    each row), each with its step, fan-out item, row id and line."""
    run = _run_for(request, batch_id)
    jobs = Job.objects.filter(run=run)
    if filters.step:
        jobs = jobs.filter(step=filters.step)
    if filters.state:
        jobs = jobs.filter(state=filters.state)
    end = filters.offset + filters.limit
    page = pipeline_downloads.in_row_order(run, jobs).select_related("owner")
    return {
        "items": list(page[filters.offset : end]),
        "total": jobs.count(),
        "limit": filters.limit,
        "offset": filters.offset,
    }
