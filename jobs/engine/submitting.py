"""Submitting: what a researcher may ask for (JobSpec and its checks) and
the service that turns prompts into queued jobs, all or nothing."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from jobs import gemini_shape, sizes
from jobs.catalog import FLEX_MODELS
from jobs.engine import control, spending
from jobs.models import DeadlinePolicy, Job, Tier
from jobs.text import storable_text_error

logger = logging.getLogger(__name__)

MAX_ATTEMPTS_LIMIT = 50


@dataclass(frozen=True)
class JobSpec:
    """What a researcher asks for; prompts share the rest of the settings."""

    model: str
    tier: str = Tier.FLEX
    max_attempts: int | None = None
    fallback_standard: bool = False
    system_instruction: str = ""
    temperature: float | None = None
    max_output_tokens: int | None = None
    deadline_at: datetime | None = None
    deadline_policy: str = DeadlinePolicy.KEEP
    # More of Gemini's generation_config for text prompts (top_p, seed, stop_sequences,
    # thinking_config, response_mime_type, response_json_schema, ...), in its shape.
    generation_config: Mapping[str, Any] | None = None
    retry_bad_output: bool = False

    @classmethod
    def from_fields(cls, values: Mapping[str, Any]) -> JobSpec:
        """The spec from anything that names its fields: a form's cleaned
        data, a command's options, an API payload. Other keys are ignored;
        a missing or None policy keeps waiting at the deadline."""
        names = {field.name for field in dataclasses.fields(cls)}
        chosen = {name: value for name, value in values.items() if name in names}
        if not chosen.get("deadline_policy"):
            chosen["deadline_policy"] = DeadlinePolicy.KEEP
        return cls(**chosen)

    @classmethod
    def of_job(cls, job: Job) -> JobSpec:
        """The settings `job` was submitted with, to run its prompt again;
        "Retry now" may have stretched its attempts past what may be asked."""
        return cls(
            model=job.model,
            tier=job.tier_requested,
            max_attempts=min(job.max_attempts, MAX_ATTEMPTS_LIMIT),
            fallback_standard=job.fallback_standard,
            system_instruction=job.system_instruction,
            temperature=job.temperature,
            max_output_tokens=job.max_output_tokens,
            retry_bad_output=job.retry_bad_output,
        )


def job_spec_errors(spec: JobSpec) -> dict[str, str]:
    """Field name -> message for every problem with the shared settings."""
    errors: dict[str, str] = {}
    if spec.model not in FLEX_MODELS:
        errors["model"] = f"Unknown model {spec.model!r}. Flex runs on: {', '.join(FLEX_MODELS)}."
    if spec.tier not in Tier.values:
        errors["tier"] = f"Unknown tier {spec.tier!r}; choose flex, standard or priority."
    if spec.max_attempts is not None and not 1 <= spec.max_attempts <= MAX_ATTEMPTS_LIMIT:
        errors["max_attempts"] = f"Max attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}."
    if spec.temperature is not None and not 0.0 <= spec.temperature <= 2.0:
        errors["temperature"] = "Temperature must be between 0 and 2."
    if spec.max_output_tokens is not None and not 1 <= spec.max_output_tokens <= 1_000_000:
        errors["max_output_tokens"] = "Max output tokens must be between 1 and 1,000,000."
    if len(spec.system_instruction) > settings.FLEX_MAX_PROMPT_CHARS:
        errors["system_instruction"] = (
            f"The system instruction is longer than {settings.FLEX_MAX_PROMPT_CHARS:,} characters."
        )
    elif problem := storable_text_error(spec.system_instruction):
        errors["system_instruction"] = f"The system instruction {problem}."
    if spec.generation_config:
        try:
            gemini_shape.normalise({"contents": [{"parts": [{"text": "-"}]}],
                                    "generation_config": dict(spec.generation_config)})  # fmt: skip
        except gemini_shape.ShapeError as error:
            errors["generation_config"] = str(error)
    errors.update(_deadline_errors(spec))
    return errors


def _deadline_errors(spec: JobSpec) -> dict[str, str]:
    if spec.deadline_policy not in DeadlinePolicy.values:
        return {
            "deadline_policy": f"Unknown deadline policy {spec.deadline_policy!r}; "
            "choose keep, cancel or standard."
        }
    if spec.deadline_at is None:
        if spec.deadline_policy == DeadlinePolicy.KEEP:
            return {}
        cancel = spec.deadline_policy == DeadlinePolicy.CANCEL
        action = "Cancelling" if cancel else "Moving to standard"
        return {
            "deadline_at": f"{action} at the deadline needs a deadline: "
            "set one, or choose to keep waiting."
        }
    if timezone.is_naive(spec.deadline_at):
        return {"deadline_at": "The deadline needs a time zone (e.g. 2030-06-01T14:00:00+00:00)."}
    if spec.deadline_at <= timezone.now():
        when = timezone.localtime(spec.deadline_at).strftime("%Y-%m-%d %H:%M %Z")
        return {"deadline_at": f"The deadline {when} has already passed; choose a later time."}
    if spec.deadline_policy == DeadlinePolicy.STANDARD and spec.tier != Tier.FLEX:
        return {
            "deadline_policy": f"Only flex work moves to standard at the deadline; this is on "
            f"{spec.tier} already. Choose flex, or keep waiting or cancel."
        }
    return {}


def prompt_error(prompt: str) -> str | None:
    if not prompt or not prompt.strip():
        return "The prompt is empty."
    if len(prompt) > settings.FLEX_MAX_PROMPT_CHARS:
        return (
            f"The prompt is {len(prompt):,} characters; the limit is "
            f"{settings.FLEX_MAX_PROMPT_CHARS:,} (FLEX_MAX_PROMPT_CHARS)."
        )
    if problem := storable_text_error(prompt):
        return f"The prompt {problem}."
    return None


def request_error(request: dict) -> str | None:
    """What stops a whole (normalised) request from being stored and run."""
    text = gemini_shape.prompt_text(request)
    limit = settings.FLEX_MAX_PROMPT_CHARS
    if not text.strip() and not gemini_shape.media(request):
        return "The request has no text and no image or document to send."
    if len(text) > limit:
        return (
            f"The prompt is {len(text):,} characters; the limit is {limit:,} "
            "(FLEX_MAX_PROMPT_CHARS)."
        )
    if len(gemini_shape.system_text(request)) > limit:
        return f"The system instruction is longer than {limit:,} characters."
    return None


def request_for(prompt: str | Mapping, spec: JobSpec) -> dict:
    """The whole request for one prompt: a text prompt with the spec's settings, or a
    request given whole (its own settings stand). Raises ShapeError naming the field."""
    if not isinstance(prompt, str):
        request = gemini_shape.normalise(prompt, "request")
        request.pop("model", None)  # the job's model is the spec's
        return request
    config = {
        name: value
        for name in ("temperature", "max_output_tokens")
        if (value := getattr(spec, name)) is not None
    }
    config.update(spec.generation_config or {})
    return gemini_shape.normalise(
        gemini_shape.simple(
            prompt, system_instruction=spec.system_instruction, generation_config=config
        )
    )


def request_columns(request: dict) -> dict[str, Any]:
    """The job columns `request` fills: what the pages show, filter and search, read
    from it, and the request itself only when those cannot say all of it (a plain
    text prompt is rebuilt from them: Job.gemini_request)."""
    config = gemini_shape.generation(request)
    columns: dict[str, Any] = {
        "input_text": gemini_shape.prompt_text(request),
        "system_instruction": gemini_shape.system_text(request),
        "temperature": config.get("temperature"),
        "max_output_tokens": config.get("max_output_tokens"),
        "request": None,
        "media_tokens": 0,
    }
    rebuilt = {k: v for k, v in config.items() if k in ("temperature", "max_output_tokens")}
    plain = gemini_shape.simple(
        columns["input_text"],
        system_instruction=columns["system_instruction"],
        generation_config=rebuilt,
    )
    if plain != request:
        columns.update(request=request, media_tokens=sizes.media_tokens(request))
    reserve = spending.request_reserve(request)
    columns.update(
        reserve_input_tokens=reserve.input_tokens,
        reserve_output_tokens=reserve.output_tokens,
        reserve_model_caps=reserve.model_caps,
    )
    return columns


def job_for(request: dict, spec: JobSpec, **fields: Any) -> Job:
    """An unsaved job that sends `request` with the spec's model, tier and choices."""
    return Job(
        model=spec.model,
        tier_requested=spec.tier,
        fallback_standard=spec.fallback_standard,
        retry_bad_output=spec.retry_bad_output,
        deadline_at=spec.deadline_at,
        deadline_policy=spec.deadline_policy,
        **request_columns(request),
        **fields,
    )


def with_defaults(request: dict, spec: JobSpec) -> dict:
    """`request` with the spec's settings where it has none of its own: a run's
    defaults for its lines (a line's own system instruction and settings win)."""
    merged = dict(request)
    if spec.system_instruction and not gemini_shape.system_text(request):
        merged["system_instruction"] = {"parts": [{"text": spec.system_instruction}]}
    defaults = {
        name: value
        for name in ("temperature", "max_output_tokens")
        if (value := getattr(spec, name)) is not None
    }
    defaults.update(spec.generation_config or {})
    config = gemini_shape.generation(request)
    if any(name not in config for name in defaults):
        merged["generation_config"] = {**defaults, **config}
    return merged


def jobs_submit(*, owner, prompts: Sequence[str | Mapping], spec: JobSpec) -> list[Job]:
    """Create one queued job per prompt, all or nothing, and wake the dispatcher
    once the rows are committed. A prompt is a text, sent with the spec's
    settings, or a whole request in Gemini's shape (jobs/gemini_shape.py). Raises
    ValidationError naming the field (and the prompt's position when there are several)."""
    errors = job_spec_errors(spec)
    if not prompts:
        errors["prompt"] = "There is no prompt to submit."
    requests = []
    for index, prompt in enumerate(prompts, start=1):
        field = "prompt" if isinstance(prompt, str) else "request"
        problem = prompt_error(prompt) if isinstance(prompt, str) else None
        if not problem and not errors:
            try:
                requests.append(request := request_for(prompt, spec))
                problem = request_error(request)
            except gemini_shape.ShapeError as error:
                problem = f"{error}."
        if problem:
            errors[field] = problem if len(prompts) == 1 else f"Prompt {index}: {problem}"
            break
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    max_attempts = spec.max_attempts or settings.FLEX_MAX_ATTEMPTS
    jobs = [
        job_for(
            request,
            spec,
            owner=owner,
            max_attempts=max_attempts,
            submitted_at=now,
            next_attempt_at=now,
        )
        for request in requests
    ]
    with transaction.atomic():
        created = Job.objects.bulk_create(jobs, batch_size=500)
        transaction.on_commit(control.wake_dispatcher)
    return created
