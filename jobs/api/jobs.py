"""The JSON API for scripts: token auth, jobs in and out.

Each endpoint checks access, validates, calls one service and serialises;
the rules live in jobs/services.py. Every error answers `{"detail": "..."}`;
bad input (422) adds `"errors": {field: [messages]}`.
"""

from __future__ import annotations

from datetime import datetime
from functools import wraps
from typing import Annotated, Literal

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, File, Form, NinjaAPI, Path, Query, Schema, Status, UploadedFile
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from jobs import capacity, formats, queries, run_queries, run_views, runs, services, tokens
from jobs.catalog import DEFAULT_MODEL, FLEX_MODELS
from jobs.gemini import redact_api_key
from jobs.models import Attempt, DeadlinePolicy, Job, Run, State, Tier
from jobs.run_reading import RunRejected

MAX_PROMPTS_PER_REQUEST = 1000
MAX_PAGE_SIZE = 100
MAX_ID = 2**63 - 1
NO_TOKEN = "Send an API token: 'Authorization: Bearer <token>' (create one on /account/)."


class BearerToken(HttpBearer):
    def __call__(self, request: HttpRequest):
        # Parsed here rather than by HttpBearer, which logs a malformed
        # header (and so the token in it) when DEBUG is on.
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(message=NO_TOKEN)
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str):
        try:
            return tokens.api_token_user(token)
        except tokens.TokenRefused as refused:
            raise AuthenticationError(message=str(refused)) from None


def _signed_in_or_token(view):
    """The OpenAPI document, like every page, is for signed-in people and
    token holders only."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            try:
                BearerToken()(request)
            except AuthenticationError as refused:
                return _unauthorised(request, refused)
        return view(request, *args, **kwargs)

    return wrapper


api = NinjaAPI(
    title="FlexDash API",
    version="1",
    description="Submit prompts to run on Gemini's flex tier and follow them. "
    "Authenticate with 'Authorization: Bearer <token>'; tokens are made on /account/.",
    urls_namespace="api",
    auth=BearerToken(),
    # Ninja's docs page loads Swagger UI from a CDN unless ninja is an
    # installed app; the dashboard must work offline, so only the document.
    docs_url=None,
    docs_decorator=_signed_in_or_token,
)


# --- Errors --------------------------------------------------------------------
def _unprocessable(request: HttpRequest, errors: dict[str, list[str]]) -> HttpResponse:
    summary = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
    return api.create_response(request, {"detail": summary, "errors": errors}, status=422)


@api.exception_handler(NinjaValidationError)
def _invalid_input(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        # loc is (where, [parameter name,] field, index...): keep the field.
        where, *rest = error.get("loc") or ("body",)
        if where == "body":
            rest = rest[1:]
        field = ".".join(str(part) for part in rest) or where
        message = error.get("msg", "Invalid value.").removeprefix("Value error, ")
        errors.setdefault(field, []).append(message)
    return _unprocessable(request, errors)


@api.exception_handler(DjangoValidationError)
def _refused_by_service(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    return _unprocessable(request, exc.message_dict)


@api.exception_handler(AuthenticationError)
def _unauthorised(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = api.create_response(request, {"detail": exc.message}, status=401)
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    detail = f"The request body is larger than {limit:,} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)."
    return api.create_response(request, {"detail": detail}, status=413)


# --- Schemas -------------------------------------------------------------------
def _storable(text: str) -> str:
    # Neither database stores NUL characters or unpaired surrogates.
    if "\x00" in text:
        raise ValueError("must not contain a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return text


Text = Annotated[str, AfterValidator(_storable)]
# An empty form field is no deadline; a time without a zone is refused by the service.
Deadline = Annotated[datetime | None, BeforeValidator(lambda value: value or None)]
DEADLINE_DESCRIPTION = (
    "ISO 8601 with a time zone, e.g. 2030-06-01T14:00:00+02:00. Work not finished by then "
    "is handled as deadline_policy says."
)
POLICY_DESCRIPTION = (
    "At the deadline: keep (keep waiting), cancel (cancel what has not finished, running "
    "jobs too), or standard (move unfinished flex jobs to the standard tier, at its price)."
)


class JobIn(BaseModel):
    """The ranges shown are checked by jobs/services.py, which names the field."""

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
        json_schema_extra={"minimum": 1, "maximum": services.MAX_ATTEMPTS_LIMIT},
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


def _decimal_text(value) -> str | None:
    return None if value is None else str(value)


class JobOut(Schema):
    id: int
    owner: str
    status: State
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
        return job.input_text

    @staticmethod
    def resolve_output_text(job: Job) -> str:
        return redact_api_key(job.result_text)

    @staticmethod
    def resolve_cost_usd(job: Job) -> str | None:
        return _decimal_text(job.cost_usd)

    @staticmethod
    def resolve_standard_cost_usd(job: Job) -> str | None:
        return _decimal_text(job.standard_cost_usd)

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


class Message(Schema):
    detail: str


class Invalid(Schema):
    detail: str
    errors: dict[str, list[str]]


class JobFilters(Schema):
    state: State | None = None
    model: Text | None = None
    q: Text | None = Field(None, description="Text the prompt contains (case-insensitive).")
    user: Text | None = Field(None, description="Owner's username (staff see everyone's jobs).")
    limit: int = Field(50, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(0, ge=0, le=MAX_ID // 2)


JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
ERRORS = {401: Message, 404: Message, 422: Invalid}


# --- Endpoints -----------------------------------------------------------------
def _visible_jobs(request: HttpRequest):
    jobs = Job.objects.select_related("owner")
    return jobs if request.auth.is_staff else jobs.filter(owner=request.auth)


def _job_for(request: HttpRequest, job_id: int) -> Job:
    """The job if this user may see it: 404 alike for another's job and a missing one."""
    job = _visible_jobs(request).filter(pk=job_id).first()
    if job is None:
        raise HttpError(404, f"No job {job_id}.")
    return job


@api.post(
    "/jobs", response={201: CreatedOut, 413: Message, **ERRORS}, tags=["jobs"], url_name="jobs"
)
def create_jobs(request: HttpRequest, payload: JobIn):
    """Queue one job per prompt."""
    if payload.prompt is not None and payload.prompts is not None:
        raise DjangoValidationError({"prompt": "Send prompt or prompts, not both."})
    prompts = [payload.prompt] if payload.prompt is not None else payload.prompts
    if prompts is None:
        raise DjangoValidationError({"prompt": "Send a prompt (or a list in prompts)."})
    spec = services.JobSpec(
        model=payload.model,
        tier=payload.tier,
        max_attempts=payload.max_attempts,
        fallback_standard=payload.fallback_standard,
        system_instruction=payload.system_instruction,
        temperature=payload.temperature,
        max_output_tokens=payload.max_output_tokens,
        deadline_at=payload.deadline_at,
        deadline_policy=payload.deadline_policy,
    )
    created = services.jobs_submit(owner=request.auth, prompts=prompts, spec=spec)
    return Status(201, {"jobs": created})


@api.get("/jobs", response={200: JobPage, **ERRORS}, tags=["jobs"], url_name="jobs")
def list_jobs(request: HttpRequest, filters: Query[JobFilters]):
    """Jobs newest first, filtered like the jobs page."""
    jobs = _visible_jobs(request).order_by("-submitted_at", "-id")
    if filters.state:
        jobs = jobs.filter(state=filters.state)
    if filters.model:
        jobs = jobs.filter(model=filters.model)
    if filters.q:
        jobs = jobs.filter(input_text__icontains=filters.q)
    if filters.user:
        jobs = jobs.filter(owner__username=filters.user)
    return {
        "items": jobs[filters.offset : filters.offset + filters.limit],
        "total": jobs.count(),
        "limit": filters.limit,
        "offset": filters.offset,
    }


@api.get("/jobs/{job_id}", response={200: JobDetailOut, **ERRORS}, tags=["jobs"], url_name="job")
def get_job(request: HttpRequest, job_id: JobId):
    """One job with every attempt."""
    return _job_for(request, job_id)


@api.post(
    "/jobs/{job_id}/cancel",
    response={200: JobOut, 409: Message, **ERRORS},
    tags=["jobs"],
    url_name="job_cancel",
)
def cancel_job(request: HttpRequest, job_id: JobId):
    """Cancel a job that is queued or waiting to retry."""
    job = _job_for(request, job_id)
    if not services.job_cancel(job=job):
        raise HttpError(
            409, f"Job {job.pk} is {job.state}; only queued or retrying jobs can be cancelled."
        )
    return job


@api.post(
    "/jobs/{job_id}/retry",
    response={200: JobOut, 409: Message, **ERRORS},
    tags=["jobs"],
    url_name="job_retry",
)
def retry_job(request: HttpRequest, job_id: JobId):
    """Run a failed or waiting job again now."""
    job = _job_for(request, job_id)
    if not services.job_retry_now(job=job):
        raise HttpError(
            409, f"Job {job.pk} is {job.state}; only failed or retrying jobs can be retried."
        )
    return job


# --- Batches (runs uploaded from a file) ---------------------------------------
# A batch is a Run (jobs/runs.py): the same services, queries and downloads as
# the run pages, answered as JSON.
class BatchIn(Schema):
    """The run's defaults; a line's own model, system instruction, temperature
    or output length wins. A line's model flex does not run is replaced by `model`."""

    name: Text = Field("", max_length=200, description="Empty: the file's name.")
    format: str | None = Field(
        None,
        description="Empty: detected from the file.",
        json_schema_extra={"enum": list(formats.FORMATS)},
    )
    model: str = Field(DEFAULT_MODEL, json_schema_extra={"enum": list(FLEX_MODELS)})
    tier: str = Field(Tier.FLEX.value, json_schema_extra={"enum": list(Tier.values)})
    max_attempts: int | None = Field(
        None, json_schema_extra={"minimum": 1, "maximum": services.MAX_ATTEMPTS_LIMIT}
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

    @staticmethod
    def resolve_owner(run: Run) -> str:
        return run.owner.get_username()

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
        return _decimal_text(queries.money(run.cost))

    @staticmethod
    def resolve_standard_cost_usd(run: Run) -> str | None:
        return _decimal_text(queries.money(run.standard_cost))

    @staticmethod
    def resolve_estimated_cost_usd(run: Run) -> str:
        return str(run.estimated_cost_usd)

    @staticmethod
    def resolve_estimated_standard_cost_usd(run: Run) -> str:
        return str(run.estimated_standard_cost_usd)


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
    savings_usd: str
    projected_cost_usd: str
    projected_standard_cost_usd: str


class BatchDetailOut(BatchOut):
    progress: BatchProgressOut


class BatchPage(Schema):
    items: list[BatchOut]
    total: int
    limit: int
    offset: int


class BatchPaging(Schema):
    limit: int = Field(50, ge=1, le=MAX_PAGE_SIZE)
    offset: int = Field(0, ge=0, le=MAX_ID // 2)


BatchId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _batch_for(request: HttpRequest, batch_id: int) -> Run:
    """The run if this user may see it: 404 alike for another's and a missing one."""
    run = run_queries.run_list(request.auth).filter(pk=batch_id).first()
    if run is None:
        raise HttpError(404, f"No batch {batch_id}.")
    return run


def _batch_detail(request: HttpRequest, run: Run) -> Run:
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
        "savings_usd": str(progress.savings_usd),
        "projected_cost_usd": str(progress.projected_cost_usd),
        "projected_standard_cost_usd": str(progress.projected_standard_cost_usd),
    }
    return run


@api.post(
    "/batches",
    response={201: BatchDetailOut, **ERRORS},
    tags=["batches"],
    url_name="batches",
)
def create_batch(request: HttpRequest, file: File[UploadedFile], options: Form[BatchIn]):
    """Upload a file of prompts (multipart `file`): plain text, JSONL, CSV, or a
    Gemini, OpenAI or Anthropic batch file. All lines or none become jobs; a
    refused file answers 422 listing the first bad lines by number."""
    spec = services.JobSpec(
        model=options.model,
        tier=options.tier,
        max_attempts=options.max_attempts,
        fallback_standard=options.fallback_standard,
        system_instruction=options.system_instruction,
        temperature=options.temperature,
        max_output_tokens=options.max_output_tokens,
        deadline_at=options.deadline_at,
        deadline_policy=options.deadline_policy,
    )
    if options.format and options.format not in formats.FORMATS:
        raise DjangoValidationError({"format": f"Choose one of {', '.join(formats.FORMATS)}."})
    try:
        run = runs.run_create(
            owner=request.auth,
            stream=file,
            filename=file.name or "",
            spec=spec,
            name=options.name,
            fmt=options.format or None,
        )
    except RunRejected as rejected:
        detail = f"The file was refused; nothing was created: {rejected.summary()}"
        return api.create_response(
            request, {"detail": detail, "errors": {"file": rejected.messages()}}, status=422
        )
    return Status(201, _batch_detail(request, _batch_for(request, run.pk)))


@api.get("/batches", response={200: BatchPage, **ERRORS}, tags=["batches"], url_name="batches")
def list_batches(request: HttpRequest, paging: Query[BatchPaging]):
    """Batches newest first (staff see everyone's), with counts and cost."""
    batches = run_queries.run_list(request.auth)
    return {
        "items": batches[paging.offset : paging.offset + paging.limit],
        "total": run_queries.visible_runs(request.auth).count(),
        "limit": paging.limit,
        "offset": paging.offset,
    }


@api.get(
    "/batches/{batch_id}",
    response={200: BatchDetailOut, **ERRORS},
    tags=["batches"],
    url_name="batch",
)
def get_batch(request: HttpRequest, batch_id: BatchId):
    """One batch with its progress: counts by state, rate, ETA, tokens, cost."""
    return _batch_detail(request, _batch_for(request, batch_id))


@api.get(
    "/batches/{batch_id}/results",
    response={401: Message, 404: Message, 422: Invalid},
    tags=["batches"],
    url_name="batch_results",
)
def batch_results(request: HttpRequest, batch_id: BatchId):
    """The finished lines as JSONL, in the uploaded format's result shape, keyed by its ids."""
    return run_views.results_download(_batch_for(request, batch_id))


@api.get(
    "/batches/{batch_id}/results.csv",
    response={401: Message, 404: Message, 422: Invalid},
    tags=["batches"],
    url_name="batch_results_csv",
)
def batch_results_csv(request: HttpRequest, batch_id: BatchId):
    """Every line as CSV: id, state, attempts, 503s, 429s, tokens, cost, output."""
    return run_views.csv_download(_batch_for(request, batch_id))


@api.get(
    "/batches/{batch_id}/unfinished",
    response={401: Message, 404: Message, 422: Invalid},
    tags=["batches"],
    url_name="batch_unfinished",
)
def batch_unfinished(request: HttpRequest, batch_id: BatchId):
    """The failed, cancelled and unfinished lines in the uploaded format, to upload again."""
    return run_views.unfinished_download(_batch_for(request, batch_id))


# --- Capacity weather ----------------------------------------------------------
class ModelWeatherOut(Schema):
    """One model's quota and pacing, as the overview's capacity weather shows it.
    A limit of 0 means no limit."""

    model: str
    state: Literal["normal", "throttled", "paused"]
    reason: str = Field(description="Why, in plain words.")
    rpm_limit: int = Field(description="Requests per minute allowed.")
    rpm_pacing: float = Field(
        description="Requests per minute it paces to now (lower after 429s or in a 503 storm)."
    )
    requests_last_minute: int
    tpm_limit: int = Field(description="Input tokens per minute allowed.")
    tokens_last_minute: int = Field(description="Input tokens sent in the last minute, estimated.")
    rpd_limit: int = Field(description="Requests per day (Pacific) allowed.")
    requests_today: int
    resumes_at: datetime | None = Field(
        description="When a model paused by its daily cap sends again (midnight Pacific)."
    )
    in_flight: int
    concurrency_cap: int | None = Field(description="Most in flight at once during a 503 storm.")
    share_503: float = Field(description="Share of recent calls answered 503, 0 to 1.")
    share_429: float = Field(description="Share of recent calls answered 429, 0 to 1.")
    recent_calls: float = Field(description="Recent calls the shares are of (decayed count).")


class CapacityOut(Schema):
    at: datetime
    models: list[ModelWeatherOut] = Field(
        description="Models with limits set, recent calls or lowered pacing; for all users."
    )


@api.get(
    "/capacity", response={200: CapacityOut, 401: Message}, tags=["capacity"], url_name="capacity"
)
def get_capacity(request: HttpRequest):
    """The capacity weather: each model's limits, usage and pacing state."""
    now = timezone.now()
    return {"at": now, "models": capacity.weather(now)}
