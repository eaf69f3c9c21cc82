"""The /api/jobs endpoints: queue prompts, list, read, cancel and retry jobs,
and the schemas only they use.

Each endpoint checks access, validates, calls one service and serialises;
the rules live in jobs/engine/submitting.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from ninja.errors import HttpError
from pydantic import AfterValidator, BaseModel, ConfigDict

from jobs.api.schemas import (
    DEADLINE_DESCRIPTION,
    ERRORS,
    MAX_ID,
    MAX_PAGE_SIZE,
    POLICY_DESCRIPTION,
    Deadline,
    Message,
    PathId,
    Text,
    decimal_text,
)
from jobs.catalog import DEFAULT_MODEL, FLEX_MODELS
from jobs.engine import actions, submitting
from jobs.models import Attempt, DeadlinePolicy, Job, State, Tier
from jobs.redaction import redact_api_key
from jobs.web import search

MAX_PROMPTS_PER_REQUEST = 1000

router = Router(tags=["jobs"])


# --- Schemas -------------------------------------------------------------------
class JobIn(BaseModel):
    """The ranges shown are checked by jobs/engine/submitting.py, which names the field."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"prompt": "Name three uses of a flex tier."}]},
    )

    prompt: Text | None = Field(
        None, description="One prompt; or send `prompts`.", json_schema_extra={"minLength": 1}
    )
    prompts: list[Text] | None = Field(
        None,
        max_length=MAX_PROMPTS_PER_REQUEST,
        description="Several prompts sharing the other settings; all or none are created.",
    )
    model: str = Field(DEFAULT_MODEL, json_schema_extra={"enum": list(FLEX_MODELS)})
    tier: str = Field(Tier.FLEX.value, json_schema_extra={"enum": list(Tier.values)})
    max_attempts: int | None = Field(
        None,
        description="The server's default (FLEX_MAX_ATTEMPTS) when absent.",
        json_schema_extra={"minimum": 1, "maximum": submitting.MAX_ATTEMPTS_LIMIT},
    )
    fallback_standard: bool = Field(
        False, description="Run the last allowed attempt on the standard tier (full price)."
    )
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


class JobOut(Schema):
    id: int
    owner: str
    # `state`, the word of the pages, the filters and ?state=; `status` is
    # what it was called before, kept for the scripts that read it.
    state: State
    status: State = Field(
        description="Deprecated: the same as `state`, which scripts should read instead.",
        json_schema_extra={"deprecated": True},
    )
    model: str
    tier_requested: Tier
    tier_served: str
    attempts: int
    max_attempts: int
    http_503: int
    http_429: int
    other_errors: int
    next_attempt_at: datetime | None
    submitted_at: datetime
    first_started_at: datetime | None
    finished_at: datetime | None
    prompt: str
    system_instruction: str
    output_text: str
    input_tokens: int
    output_tokens: int
    thought_tokens: int
    cost_usd: str | None = Field(description="USD as a decimal string")
    standard_cost_usd: str | None = Field(description="what the standard tier would have cost")
    error: str
    deadline_at: datetime | None
    deadline_policy: DeadlinePolicy

    @staticmethod
    def resolve_owner(job: Job) -> str:
        return job.owner.get_username()

    @staticmethod
    def resolve_status(job: Job) -> str:
        return job.state

    @staticmethod
    def resolve_prompt(job: Job) -> str:
        return redact_api_key(job.input_text)

    @staticmethod
    def resolve_system_instruction(job: Job) -> str:
        return redact_api_key(job.system_instruction)

    @staticmethod
    def resolve_output_text(job: Job) -> str:
        return redact_api_key(job.result_text)

    @staticmethod
    def resolve_cost_usd(job: Job) -> str | None:
        return decimal_text(job.cost_usd)

    @staticmethod
    def resolve_standard_cost_usd(job: Job) -> str | None:
        return decimal_text(job.standard_cost_usd)

    @staticmethod
    def resolve_error(job: Job) -> str:
        return redact_api_key(job.last_error)


class AttemptOut(Schema):
    number: int
    started_at: datetime
    finished_at: datetime | None
    latency_seconds: float | None
    tier_requested: str
    tier_served: str
    http_status: int | None
    google_status: str
    retry_after_seconds: float | None
    error_kind: str
    error_message: str
    outcome: str

    @staticmethod
    def resolve_error_message(attempt: Attempt) -> str:
        return redact_api_key(attempt.error_message)


class JobDetailOut(JobOut):
    # `attempts` is already the count (as in `manage.py jobs --json`).
    attempt_log: list[AttemptOut]

    @staticmethod
    def resolve_attempt_log(job: Job) -> list[Attempt]:
        return list(job.attempt_log.all())


class CreatedOut(Schema):
    jobs: list[JobOut]


class JobPage(Schema):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


def _searchable(text: str) -> str:
    if problem := search.search_problem(text):
        raise ValueError(problem)
    return text.strip()


SearchText = Annotated[Text, AfterValidator(_searchable)]


class JobFilters(Schema):
    state: State | None = None
    model: Text | None = None
    q: SearchText | None = Field(
        None,
        description="Words the prompt or the answer has: each word of q must begin a word "
        "of either (case-insensitive; letters and digits make words, punctuation separates "
        "them).",
        json_schema_extra={"maxLength": search.MAX_SEARCH_CHARS},
    )
    user: Text | None = Field(None, description="Owner's username (staff see everyone's jobs).")
    limit: int = Field(50, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(0, ge=0, le=MAX_ID // 2)


# --- Endpoints -----------------------------------------------------------------
# The operation ids are pinned: they were derived from the module when the API
# was one file (jobs/api.py), and clients generated from the document use them.
def _visible_jobs(request: HttpRequest):
    return Job.objects.visible_to(request.auth).select_related("owner")


def _job_for(request: HttpRequest, job_id: int) -> Job:
    """The job if this user may see it: 404 alike for another's job and a missing one."""
    job = _visible_jobs(request).filter(pk=job_id).first()
    if job is None:
        raise HttpError(404, f"No job {job_id}.")
    return job


@router.post(
    "",
    response={201: CreatedOut, 413: Message, **ERRORS},
    url_name="jobs",
    operation_id="jobs_api_create_jobs",
)
def create_jobs(request: HttpRequest, payload: JobIn):
    """Queue one job per prompt."""
    if payload.prompt is not None and payload.prompts is not None:
        raise DjangoValidationError({"prompt": "Send prompt or prompts, not both."})
    prompts = [payload.prompt] if payload.prompt is not None else payload.prompts
    if prompts is None:
        raise DjangoValidationError({"prompt": "Send a prompt (or a list in prompts)."})
    spec = submitting.JobSpec.from_fields(dict(payload))
    created = submitting.jobs_submit(owner=request.auth, prompts=prompts, spec=spec)
    return Status(201, {"jobs": created})


@router.get(
    "", response={200: JobPage, **ERRORS}, url_name="jobs", operation_id="jobs_api_list_jobs"
)
def list_jobs(request: HttpRequest, filters: Query[JobFilters]):
    """Jobs newest first, filtered like the jobs page."""
    jobs = _visible_jobs(request).order_by("-submitted_at", "-id")
    if filters.state:
        jobs = jobs.filter(state=filters.state)
    if filters.model:
        jobs = jobs.filter(model=filters.model)
    if filters.q:
        jobs = search.matching(jobs, filters.q)
    if filters.user:
        jobs = jobs.filter(owner__username=filters.user)
    return {
        "items": jobs[filters.offset : filters.offset + filters.limit],
        "total": jobs.count(),
        "limit": filters.limit,
        "offset": filters.offset,
    }


@router.get(
    "/{job_id}",
    response={200: JobDetailOut, **ERRORS},
    url_name="job",
    operation_id="jobs_api_get_job",
)
def get_job(request: HttpRequest, job_id: PathId):
    """One job with every attempt."""
    return _job_for(request, job_id)


@router.post(
    "/{job_id}/cancel",
    response={200: JobOut, 409: Message, **ERRORS},
    url_name="job_cancel",
    operation_id="jobs_api_cancel_job",
)
def cancel_job(request: HttpRequest, job_id: PathId):
    """Cancel a job that is queued or waiting to retry."""
    job = _job_for(request, job_id)
    if not actions.job_cancel(job=job):
        raise HttpError(
            409, f"Job {job.pk} is {job.state}; only queued or retrying jobs can be cancelled."
        )
    return job


@router.post(
    "/{job_id}/retry",
    response={200: JobOut, 409: Message, **ERRORS},
    url_name="job_retry",
    operation_id="jobs_api_retry_job",
)
def retry_job(request: HttpRequest, job_id: PathId):
    """Run a failed or waiting job again now."""
    job = _job_for(request, job_id)
    if not actions.job_retry_now(job=job):
        raise HttpError(
            409, f"Job {job.pk} is {job.state}; only failed or retrying jobs can be retried."
        )
    return job
