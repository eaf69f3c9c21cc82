"""The /api/jobs endpoints: queue prompts or whole requests, list, read, cancel and
retry jobs. Their schemas are in job_schemas.py.

Each endpoint checks access, validates, calls one service and serialises;
the rules live in jobs/engine/submitting.py.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest
from ninja import Query, Router, Status
from ninja.errors import HttpError

from jobs import gemini_shape
from jobs.api.job_schemas import CreatedOut, JobDetailOut, JobFilters, JobIn, JobOut, JobPage
from jobs.api.schemas import ERRORS, Message, PathId
from jobs.engine import actions, submitting
from jobs.models import Job
from jobs.web import queries, search

router = Router(tags=["jobs"])
User = get_user_model()


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
    viewer = request.auth
    owner_id = None if viewer.is_staff else viewer.pk
    if filters.user and filters.user != (viewer.get_username() if owner_id else None):
        owner = User.objects.filter(username=filters.user).values_list("pk", flat=True).first()
        if owner is None or (owner_id is not None and owner != owner_id):
            return {"items": [], "total": 0, **_window(filters)}
        owner_id = owner
    scope = queries.Scope(owner_id)
    wanted = {"state": filters.state or "", "model": filters.model or "", "search": filters.q or ""}
    jobs = queries.job_filter(scope, **wanted, newest=True)
    jobs = jobs.order_by(f"-{search.NEWEST_KEY}" if filters.q else "-id")
    total = queries.job_list_total(scope.jobs_by_state(), **wanted)
    end = filters.offset + filters.limit
    # The page's ids first, then its rows: prompts are read for this page only.
    # Uncounted (a search, a model), one more id says whether more follow.
    ids = list(jobs.values_list("pk", flat=True)[filters.offset : end + 1])
    rows = Job.objects.select_related("owner")
    window = {"items": queries.in_id_order(rows, ids[: filters.limit]), **_window(filters)}
    if total is not None:
        return {**window, "total": total}
    # Past the last match, the matches before the offset are all there are.
    before = filters.offset if ids else jobs.order_by()[: filters.offset].count()
    shown = min(len(ids), filters.limit)
    return {**window, "total": before + shown, "total_capped": len(ids) > filters.limit}


def _window(filters: JobFilters) -> dict:
    return {"limit": filters.limit, "offset": filters.offset}


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
