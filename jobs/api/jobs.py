"""The /api/jobs endpoints: queue prompts, list, read, cancel and retry jobs,
and the schemas only they use.

Each endpoint checks access, validates, calls one service and serialises;
the rules live in jobs/engine/submitting.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from ninja.errors import HttpError
from pydantic import AfterValidator, BaseModel, ConfigDict

from jobs import gemini_shape
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
from jobs.web import answers, search

MAX_PROMPTS_PER_REQUEST = 1000

router = Router(tags=["jobs"])


# --- Schemas -------------------------------------------------------------------
REQUEST_IN = (
    "One whole request in Gemini's shape, the `request` object of a Gemini Batch line: "
    "`contents` (turns with a role and parts: `text`, `inline_data` {mime_type, data as "
    "base64}, `file_data` {mime_type, file_uri}, function calls and responses), "
    "`system_instruction`, `generation_config` (every field Gemini documents: "
    "`response_mime_type`, `response_json_schema`, `thinking_config`, `top_p`, `top_k`, "
    "`seed`, `stop_sequences`, `candidate_count`, ...), `safety_settings`, `tools`, "
    "`tool_config`, `cached_content`; camelCase or snake_case. Instead of `prompt` or "
    "`prompts`; its own settings stand, so `system_instruction`, `temperature`, "
    "`max_output_tokens` and `generation_config` go inside it. Inline data may come to "
    f"{gemini_shape.MAX_INLINE_BYTES // 1_048_576} MB; larger media as `file_data` URIs. "
    "A refusal names the field: `request.contents[0].parts[1].inline_data.mime_type: ...`."
)
GENERATION_CONFIG_IN = (
    "More of Gemini's generation_config for `prompt` or `prompts` (camelCase or snake_case): "
    "`top_p`, `top_k`, `seed`, `stop_sequences`, `thinking_config` {`thinking_level` or "
    "`thinking_budget`}, `response_mime_type` and `response_json_schema` (a JSON Schema the "
    "answer must satisfy), ... Temperature and max output tokens may be given here or "
    "beside it, not both."
)
REQUEST_OUT = (
    "The whole request sent to Gemini, in its shape (snake_case), built from the prompt "
    "and settings for a text prompt. Inline data is summarised here as "
    "{`mime_type`, `bytes`}; GET /api/jobs/{job_id} gives it whole, base64 `data` included."
)
RESPONSE_OUT = (
    "Gemini's answer as received (a GenerateContentResponse, camelCase): every candidate, "
    "its finishReason, safety ratings, function calls, usageMetadata (thought and cached "
    "tokens), modelVersion. Null until answered."
)


class JobIn(BaseModel):
    """The ranges shown are checked by jobs/engine/submitting.py, which names the field."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"prompt": "Name three uses of a flex tier."},
                {
                    "request": {
                        "contents": [{"role": "user", "parts": [{"text": "Name a city."}]}],
                        "generationConfig": {
                            "responseMimeType": "application/json",
                            "responseJsonSchema": {
                                "type": "object",
                                "properties": {"city": {"type": "string"}},
                            },
                        },
                    }
                },
            ]
        },
    )

    prompt: Text | None = Field(
        None,
        description="One prompt; or send `prompts`, or a whole `request`.",
        json_schema_extra={"minLength": 1},
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
    request: dict[str, Any] | None = Field(None, description=REQUEST_IN)
    generation_config: dict[str, Any] | None = Field(None, description=GENERATION_CONFIG_IN)
    retry_bad_output: bool = Field(
        False,
        description="With a JSON answer: try again (within max_attempts) when it does not "
        "parse or does not satisfy the schema; otherwise the job succeeds with "
        "`output_problem` saying why.",
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
    request: dict[str, Any] = Field(description=REQUEST_OUT)
    response: dict[str, Any] | None = Field(description=RESPONSE_OUT)
    finish_reason: str = Field(
        description="The answer's finishReason (STOP, MAX_TOKENS, SAFETY, ...); empty until "
        "answered."
    )
    cut_at_limit: bool = Field(
        description="The answer stopped at max output tokens: the job succeeded with the "
        "text that came before it."
    )
    output_json: Any = Field(
        None,
        description="With a JSON answer: the answer parsed (null when it did not parse).",
    )
    output_problem: str = Field(
        description="Empty, or why the JSON answer did not parse or satisfy the schema."
    )
    retry_bad_output: bool
    bad_outputs: int = Field(description="Answers that broke the schema (each tried again).")

    @staticmethod
    def resolve_request(job: Job) -> dict:
        return answers.redacted_json(job.gemini_request())

    @staticmethod
    def resolve_response(job: Job) -> dict | None:
        return answers.redacted_json(job.response)

    @staticmethod
    def resolve_output_json(job: Job) -> Any:
        return answers.redacted_json(job.output_json)

    @staticmethod
    def resolve_output_problem(job: Job) -> str:
        return redact_api_key(job.output_problem)

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
    request: dict[str, Any] = Field(
        description="The whole request sent to Gemini, in its shape (snake_case), inline "
        "data included."
    )
    response: dict[str, Any] | None = Field(
        description=RESPONSE_OUT + " Inline data (an answer's images) included."
    )

    @staticmethod
    def resolve_request(job: Job) -> dict:
        return answers.redacted_json(job.gemini_request(), keep_data=True)

    @staticmethod
    def resolve_response(job: Job) -> dict | None:
        return answers.redacted_json(job.response, keep_data=True)

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
    """Queue one job per prompt, or one for a whole request in Gemini's shape."""
    given = [
        name for name in ("prompt", "prompts", "request") if getattr(payload, name) is not None
    ]
    if len(given) > 1:
        field = "request" if payload.request is not None else "prompt"
        raise DjangoValidationError(
            {field: f"Send one of prompt, prompts or request, not {' and '.join(given)}."}
        )
    if not given:
        raise DjangoValidationError(
            {"prompt": "Send a prompt (or a list in prompts, or a whole request)."}
        )
    if payload.request is not None:
        _refuse_settings_beside(payload)
        prompts = [payload.request]
    else:
        _refuse_settings_twice(payload)
        prompts = [payload.prompt] if payload.prompt is not None else payload.prompts
    spec = submitting.JobSpec.from_fields(dict(payload))
    created = submitting.jobs_submit(owner=request.auth, prompts=prompts, spec=spec)
    return Status(201, {"jobs": created})


# Settings a text prompt takes beside it, and where a whole request carries them instead.
_INSIDE_REQUEST = {
    "system_instruction": "request.system_instruction",
    "temperature": "request.generation_config.temperature",
    "max_output_tokens": "request.generation_config.max_output_tokens",
    "generation_config": "request.generation_config",
}


def _refuse_settings_beside(payload: JobIn) -> None:
    """A whole request's own settings stand: one given beside it would be dropped."""
    errors = {
        name: f"A whole request carries its own settings: send this as {inside}."
        for name, inside in _INSIDE_REQUEST.items()
        if getattr(payload, name) not in (None, "")
    }
    named = payload.request.get("model")
    if isinstance(named, str) and named.removeprefix("models/") != payload.model:
        errors["request"] = (
            f"request.model: {named!r} is not the job's model {payload.model!r}; "
            "name the model in model."
        )
    if errors:
        raise DjangoValidationError(errors)


def _refuse_settings_twice(payload: JobIn) -> None:
    config = {gemini_shape.snake(key) for key in payload.generation_config or {}}
    twice = [
        name
        for name in ("temperature", "max_output_tokens")
        if name in config and getattr(payload, name) is not None
    ]
    if twice:
        message = f"generation_config.{twice[0]} is also given as {twice[0]}; send it once."
        raise DjangoValidationError({"generation_config": message})


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
