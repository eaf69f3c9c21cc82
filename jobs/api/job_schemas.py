"""The schemas of the /api/jobs endpoints (jobs.py): what a script sends to queue jobs,
and what it reads back of a job, its attempts and pages of jobs.

A job gives back its whole request and answer: the request in Gemini's shape, inline
data summarised in lists and creation answers (a page of fifty jobs with 20 MB images
each would be a gigabyte) and whole in the job's own answer; the Gemini key redacted
from every string but inline data (jobs/web/answers.py, which the job page uses too).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from ninja import Field, Schema
from pydantic import AfterValidator, BaseModel, ConfigDict

from jobs import gemini_shape
from jobs.api.schemas import (
    DEADLINE_DESCRIPTION,
    MAX_ID,
    MAX_PAGE_SIZE,
    POLICY_DESCRIPTION,
    Deadline,
    Text,
    decimal_text,
)
from jobs.catalog import DEFAULT_MODEL, FLEX_MODELS
from jobs.engine import submitting
from jobs.models import Attempt, DeadlinePolicy, Job, State, Tier
from jobs.redaction import redact_api_key
from jobs.web import answers, search

MAX_PROMPTS_PER_REQUEST = 1000


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
    bad_outputs: int = Field(
        description="Answers that broke the schema (tried again only with retry_bad_output)."
    )

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
    total: int = Field(
        description="How many jobs match; with total_capped, at least this many: under q or "
        "model the matches are not counted (that would read every one), and total is the "
        "offset plus this page, with more to come."
    )
    total_capped: bool = False
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
