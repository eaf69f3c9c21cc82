"""Pipeline runs: a table of rows and a pipeline definition become one job per
(row, step[, item]), all or nothing.

The first steps (those that use no earlier answer) are rendered now, row by
row, and queued; every later step waits on its parents as a job with no
prompt yet (jobs/engine/chaining.py renders it when they answer). A step that
fans out over a list of the row itself is expanded now; one over an earlier
answer keeps one waiting job per row until that answer comes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from jobs import formats, gemini_shape, sizes
from jobs.engine import budgets, control, pricing, submitting
from jobs.engine.pipelines import (
    NO_ITEM,
    Pipeline,
    RenderError,
    Step,
    definition_check,
    definition_load,
    fan_out_items,
    preview_requests,
    render_request,
)
from jobs.models import DeadlinePolicy, Job, ModelPrice, Run, RunRow, State
from jobs.notices.choices import RunNotify
from jobs.redaction import redact_api_key
from jobs.runs.reading import MAX_LISTED_ERRORS, RunRejected

INSERT_BATCH = 1000
PREVIEW_PROMPT_CHARS = 400


def pipeline_read(source: str | bytes, *, spec: submitting.JobSpec) -> Pipeline:
    """The definition (YAML or JSON) loaded and checked whole against the run's
    settings (`spec` gives each step the model, tier and attempts it names none
    of). Raises DefinitionError listing every problem, each naming its step."""
    return definition_check(definition_load(source), defaults=spec)


@dataclass
class StepEstimate:
    """A step's jobs and cost before the run. Later steps are priced from the
    first row rendered with stand-ins for the answers they use, so their
    figure is rougher; a step that fans out over an answer counts one job per
    row until the lists are known."""

    step: Step
    jobs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    standard_usd: Decimal = Decimal(0)
    unpriced: int = 0
    rough: bool = False

    @property
    def cost_usd(self) -> Decimal:
        return pricing.tier_cost(self.standard_usd, self.step.tier)

    def count(self, request: dict, price: ModelPrice | None, times: int = 1) -> None:
        input_tokens = sizes.estimate_input_tokens(request)
        cap = gemini_shape.generation(request).get("max_output_tokens")
        output_tokens = min(input_tokens, cap or input_tokens)
        self.jobs += times
        self.input_tokens += input_tokens * times
        self.output_tokens += output_tokens * times
        if price is None:
            self.unpriced += times
        else:
            self.standard_usd += times * pricing.standard_cost(
                price, input_tokens=input_tokens, output_tokens=output_tokens
            )


@dataclass(frozen=True)
class StepPreview:
    name: str
    model: str
    tier: str
    prompt: str
    prompt_cut: bool
    problem: str
    parents: tuple[str, ...]
    for_each: str | None
    continues: str | None


@dataclass
class PipelinePreview:
    pipeline: Pipeline
    format: str
    rows: int = 0
    steps: list[StepEstimate] = field(default_factory=list)
    first_row: list[StepPreview] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        return sum(estimate.jobs for estimate in self.steps)

    @property
    def cost_usd(self) -> Decimal:
        return sum((estimate.cost_usd for estimate in self.steps), Decimal(0))

    @property
    def standard_usd(self) -> Decimal:
        return sum((estimate.standard_usd for estimate in self.steps), Decimal(0))

    @property
    def input_tokens(self) -> int:
        return sum(estimate.input_tokens for estimate in self.steps)

    @property
    def output_tokens(self) -> int:
        return sum(estimate.output_tokens for estimate in self.steps)

    @property
    def format_label(self) -> str:
        return formats.FORMAT_LABELS.get(self.format, self.format)


class _Prices:
    def __init__(self) -> None:
        self.found: dict[str, ModelPrice | None] = {}

    def __call__(self, model: str) -> ModelPrice | None:
        if model not in self.found:
            self.found[model] = ModelPrice.objects.filter(
                model=model
            ).first() or pricing.published_price(model)
        return self.found[model]


class _Reader:
    """One pass over the table: each row's first steps rendered, the estimate
    counted, and the first bad rows listed (the file is refused whole)."""

    def __init__(self, stream: BinaryIO, *, filename: str, pipeline: Pipeline, fmt: str | None):
        self.stream = stream
        self.filename = filename
        self.pipeline = pipeline
        self.fmt = fmt
        self.errors: list[tuple[int | None, str]] = []
        self.total_errors = 0
        self.prices = _Prices()
        self.preview = PipelinePreview(pipeline=pipeline, format=fmt or "")
        self.estimates = {step.name: StepEstimate(step) for step in pipeline.steps}
        self.preview.steps = list(self.estimates.values())
        # The first row's stand-in request of each later step, priced once a row.
        self.later: dict[str, dict] = {}

    def _error(self, line: int | None, message: str) -> None:
        self.total_errors += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append((line, message))

    def __iter__(self):
        try:
            for row in formats.parse_rows(
                self.stream,
                self.fmt,
                filename=self.filename,
                max_bytes=settings.FLEX_RUN_MAX_BYTES,
                max_lines=settings.FLEX_RUN_MAX_LINES,
                max_line_bytes=settings.FLEX_RUN_MAX_LINE_BYTES,
            ):
                rendered = self._rendered(row)
                if rendered is not None and not self.total_errors:
                    yield row, rendered
        except formats.FileRejected as rejected:
            self.total_errors += max(rejected.total_errors, len(rejected.errors))
            self.errors.extend(rejected.errors)

    def _rendered(self, row) -> dict[str, list[tuple[Any, dict]]] | None:
        """step name -> [(item, request)] for the steps that need no answer."""
        rendered: dict[str, list[tuple[Any, dict]]] = {}
        for step in self.pipeline.roots:
            try:
                items = [NO_ITEM]
                if step.fans_out:
                    items = list(fan_out_items(step, row=row.values, answers={}))
                requests = []
                for item in items:
                    request = render_request(step, row=row.values, answers={}, item=item)
                    if problem := submitting.request_error(request):
                        raise RenderError(problem)
                    requests.append((item, request))
            except RenderError as error:
                self._error(row.line, f"step {step.name}: {error}")
                return None
            rendered[step.name] = requests
        self.preview.rows += 1
        for step in self.pipeline.roots:
            for _, request in rendered[step.name]:
                self.estimates[step.name].count(request, self.prices(step.model))
        if self.preview.rows == 1:
            self._first_row(row)
        return rendered

    def _first_row(self, row) -> None:
        for step, request, problem in preview_requests(self.pipeline, row.values):
            prompt = redact_api_key(gemini_shape.prompt_text(request)) if request else ""
            self.preview.first_row.append(
                StepPreview(
                    name=step.name,
                    model=step.model,
                    tier=step.tier,
                    prompt=prompt[:PREVIEW_PROMPT_CHARS],
                    prompt_cut=len(prompt) > PREVIEW_PROMPT_CHARS,
                    problem=problem,
                    parents=step.parents,
                    for_each=step.for_each,
                    continues=step.continues,
                )
            )
            if step.parents and request is not None:
                self.later[step.name] = request

    def finish(self) -> None:
        """Price the later steps: the first row's stand-in request, once a row."""
        for name, request in self.later.items():
            estimate = self.estimates[name]
            estimate.rough = True
            estimate.count(request, self.prices(estimate.step.model), times=self.preview.rows)

    def rejection(self) -> RunRejected | None:
        if not self.total_errors:
            return None
        listed = sorted(self.errors, key=lambda error: (error[0] is not None, error[0] or 0))
        return RunRejected(listed[:MAX_LISTED_ERRORS], self.total_errors)


def pipeline_preview(
    *, stream: BinaryIO, filename: str, pipeline: Pipeline, fmt: str | None = None
) -> PipelinePreview:
    """Read the whole table as pipeline_run_create would, creating nothing: the
    rows, each step's jobs and estimated cost, and the first row's requests.
    Raises RunRejected for a bad table."""
    reader = _Reader(stream, filename=filename, pipeline=pipeline, fmt=fmt)
    for _ in reader:
        pass
    if rejected := reader.rejection():
        raise rejected
    reader.finish()
    return reader.preview


def pipeline_run_create(
    *,
    owner,
    stream: BinaryIO,
    filename: str,
    pipeline: Pipeline,
    spec: submitting.JobSpec,
    name: str = "",
    fmt: str | None = None,
    notify: RunNotify | None = None,
    budget_usd: Decimal | None = None,
    evaluation: dict | None = None,
) -> Run:
    """Create the run, its rows and their jobs, all or nothing, and wake the
    dispatcher once committed. `spec` holds the run's deadline and what its
    steps do not set; `evaluation`, an eval's compiled definition when the
    pipeline is one (jobs/runs/eval_definitions.py). Raises ValidationError for
    bad settings and RunRejected (the first bad rows) for a bad table."""
    errors = submitting.job_spec_errors(spec)
    if budget_usd is not None and (problem := budgets.budget_error(budget_usd)):
        errors["budget_usd"] = problem
    if errors:
        raise ValidationError(errors)
    notify = notify or RunNotify.defaults_for(owner)
    now = timezone.now()
    reader = _Reader(stream, filename=filename, pipeline=pipeline, fmt=fmt)
    first = pipeline.steps[0]
    with transaction.atomic():
        run = Run.objects.create(
            owner=owner,
            name=(name.strip() or pipeline.name or filename or "Untitled pipeline")[:200],
            source_name=filename[:255],
            model=first.model,
            tier=spec.tier,
            max_attempts=spec.max_attempts or settings.FLEX_MAX_ATTEMPTS,
            fallback_standard=spec.fallback_standard,
            deadline_at=spec.deadline_at,
            deadline_policy=spec.deadline_policy,
            budget_usd=budget_usd,
            created_at=now,
            pipeline=pipeline.to_json(),
            evaluation=evaluation,
            **notify.run_fields(),
        )
        if budget_usd is not None:
            budgets.run_budget_open(run=run)
        insert = _Insert(run, pipeline, spec, now)
        for row, rendered in reader:
            insert.add(row, rendered)
        if rejected := reader.rejection():
            raise rejected
        insert.flush()
        reader.finish()
        preview = reader.preview
        run.source_format = reader.preview.format or ""
        run.estimated_input_tokens = preview.input_tokens
        run.estimated_output_tokens = preview.output_tokens
        run.estimated_cost_usd = preview.cost_usd
        run.estimated_standard_cost_usd = preview.standard_usd
        run.save()
        transaction.on_commit(control.wake_dispatcher)
    return run


class _Insert:
    def __init__(self, run: Run, pipeline: Pipeline, spec: submitting.JobSpec, now) -> None:
        self.run = run
        self.pipeline = pipeline
        self.now = now
        self.deadline = {"deadline_at": spec.deadline_at, "deadline_policy": spec.deadline_policy}
        if spec.deadline_at is None:
            self.deadline["deadline_policy"] = DeadlinePolicy.KEEP
        self.rows: list[RunRow] = []
        self.jobs: list[Job] = []

    def _job(self, step: Step, row, **fields) -> Job:
        return Job(
            owner_id=self.run.owner_id,
            run=self.run,
            step=step.name,
            custom_id=row.custom_id,
            line_number=row.line,
            model=step.model,
            tier_requested=step.tier,
            fallback_standard=step.fallback_standard,
            retry_bad_output=step.retry_bad_output,
            max_attempts=step.max_attempts or self.run.max_attempts,
            submitted_at=self.now,
            **self.deadline,
            **fields,
        )

    def add(self, row, rendered: dict[str, list[tuple[Any, dict]]]) -> None:
        self.rows.append(
            RunRow(
                run=self.run,
                line_number=row.line,
                custom_id=row.custom_id,
                values=row.values,
                source_line=row.source,
            )
        )
        for step in self.pipeline.steps:
            if step.name not in rendered:
                self.jobs.append(self._job(step, row, state=State.WAITING, input_text=""))
                continue
            for index, (item, request) in enumerate(rendered[step.name]):
                self.jobs.append(
                    self._job(
                        step,
                        row,
                        state=State.QUEUED,
                        next_attempt_at=self.now,
                        item=None if item is NO_ITEM else index,
                        **submitting.request_columns(request),
                    )
                )
        if len(self.jobs) >= INSERT_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            RunRow.objects.bulk_create(self.rows)
        if self.jobs:
            Job.objects.bulk_create(self.jobs)
        self.rows, self.jobs = [], []
