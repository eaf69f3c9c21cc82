"""The admin of jobs and their attempts: JobAdmin (with its retry, cancel and
pause/resume-dispatch actions; what was asked is read-only once the job was
sent), AttemptAdmin, read-only, and AttemptInline, the attempts on a job's
page; ATTEMPT_COLUMNS is what both show of a try."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.text import Truncator

from jobs.admin.display import seconds_display, time_display
from jobs.admin.redacted import redacted_display
from jobs.engine import actions, control
from jobs.models import Attempt, Job, State
from jobs.redaction import redact_api_key


def _without_bytes(value):
    """A request with each inline blob's base64 replaced by its type and size."""
    if isinstance(value, list):
        return [_without_bytes(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "data" in value and "mime_type" in value and isinstance(value["data"], str):
        size = len(value["data"]) * 3 // 4
        return {"mime_type": value["mime_type"], "data": f"({size:,} bytes, not shown)"}
    return {key: _without_bytes(item) for key, item in value.items()}


# What an operator reads about one try, in the job's inline and the list.
ATTEMPT_COLUMNS = (
    "number",
    "started",
    "latency",
    "route",
    "tier_requested",
    "tier_served",
    "http_status",
    "google_status",
    "retry_after",
    "outcome",
)

# What the submitter asked for: editable only until the job is first sent.
REQUEST_FIELDS = (
    "owner",
    "model",
    "tier_requested",
    "fallback_standard",
    "max_attempts",
    "temperature",
    "max_output_tokens",
    "retry_bad_output",
)
# A job that carries its whole request sends these from it, not from the columns.
WHOLE_REQUEST_FIELDS = ("temperature", "max_output_tokens")

PROMPT_EXCERPT_CHARS = 50


def was_sent(job: Job) -> bool:
    """Whether a dispatcher ever claimed the job: it left `queued`, or came back
    to it (a retry, a refunded attempt) with an attempt counted."""
    return job.state != State.QUEUED or job.attempts > 0


class AttemptColumns:
    """The rounded and to-the-second displays of ATTEMPT_COLUMNS."""

    started = time_display("started_at", "started")
    finished = time_display("finished_at", "finished")
    latency = seconds_display("latency_seconds", "latency")
    retry_after = seconds_display("retry_after_seconds", "Retry-After")
    error = redacted_display("error_message", "error message")


class AttemptInline(AttemptColumns, admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = (*ATTEMPT_COLUMNS, "error_kind", "error")
    readonly_fields = fields
    ordering = ("number",)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    # Ten narrow columns, so the list fits 1280 px: the tiers, the attempt
    # counts and the error counts are one column each; when a waiting job runs
    # next is on its page (and its state says it waits).
    list_display = (
        "id",
        "state",
        "prompt_excerpt",
        "model",
        "tier",
        "tries",
        "errors",
        "owner",
        "submitted",
        "cost_usd",
    )
    list_filter = ("state", "model", "tier_requested", "tier_served", "owner")
    search_fields = ("=id", "input_text", "response_id")
    date_hierarchy = "submitted_at"
    list_select_related = ("owner",)
    show_full_result_count = False
    inlines = (AttemptInline,)
    actions = ("retry_now", "cancel", "pause_dispatch", "resume_dispatch")
    readonly_fields = (
        "state",
        "attempts",
        "refunded_attempts",
        "next_attempt_at",
        "lease_owner",
        "lease_expires_at",
        "http_503",
        "http_429",
        "other_errors",
        "prompt",
        "instruction",
        "whole_request",
        "result",
        "finish_reason",
        "cut_at_limit",
        "structured_answer",
        "output_problem",
        "bad_outputs",
        "response_id",
        "tier_served",
        "input_tokens",
        "output_tokens",
        "thought_tokens",
        "cost_usd",
        "standard_cost_usd",
        "error",
        "submitted_at",
        "first_started_at",
        "finished_at",
        "deadline_at",
        "deadline_policy",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "owner",
                    "model",
                    "tier_requested",
                    "fallback_standard",
                    "max_attempts",
                    "prompt",
                    "instruction",
                    "temperature",
                    "max_output_tokens",
                    "whole_request",
                    "retry_bad_output",
                )
            },
        ),
        (
            "Progress",
            {
                "fields": (
                    "state",
                    "attempts",
                    "refunded_attempts",
                    "next_attempt_at",
                    "http_503",
                    "http_429",
                    "other_errors",
                    "error",
                    "lease_owner",
                    "lease_expires_at",
                )
            },
        ),
        (
            "Result",
            {
                "fields": (
                    "result",
                    "finish_reason",
                    "cut_at_limit",
                    "structured_answer",
                    "output_problem",
                    "bad_outputs",
                    "response_id",
                    "tier_served",
                    "input_tokens",
                    "output_tokens",
                    "thought_tokens",
                    "cost_usd",
                    "standard_cost_usd",
                )
            },
        ),
        ("Times", {"fields": ("submitted_at", "first_started_at", "finished_at")}),
        ("Deadline", {"fields": ("deadline_at", "deadline_policy")}),
    )
    # Outside text, shown read-only without the Gemini key (jobs/admin/redacted.py).
    prompt = redacted_display("input_text", "input text")
    instruction = redacted_display("system_instruction", "system instruction")
    result = redacted_display("result_text", "result text")
    error = redacted_display("last_error", "last error")
    submitted = time_display("submitted_at", "submitted")

    @admin.display(description="whole request")
    def whole_request(self, job: Job) -> str:
        """Everything the job sends beyond its prompt, as JSON; inline media as its
        type and size, not its bytes."""
        if job.request is None:
            return "(a text prompt: the fields above are the whole request)"
        return redact_api_key(json.dumps(_without_bytes(job.request), indent=2, ensure_ascii=False))

    @admin.display(description="structured answer")
    def structured_answer(self, job: Job) -> str:
        if job.output_json is None:
            return "-"
        return redact_api_key(json.dumps(job.output_json, indent=2, ensure_ascii=False))

    @admin.display(description="prompt")
    def prompt_excerpt(self, job: Job) -> str:
        # Redacted before it is cut, so no part of a key is left to show.
        return Truncator(redact_api_key(job.input_text)).chars(PROMPT_EXCERPT_CHARS)

    @admin.display(description="tier", ordering="tier_requested")
    def tier(self, job: Job) -> str:
        if job.tier_served and job.tier_served != job.tier_requested:
            return f"{job.tier_requested} → {job.tier_served}"
        return job.tier_requested

    @admin.display(description="tries", ordering="attempts")
    def tries(self, job: Job) -> str:
        return f"{job.attempts}/{job.max_attempts}"

    @admin.display(description="errors")
    def errors(self, job: Job) -> str:
        counts = {"503": job.http_503, "429": job.http_429, "other": job.other_errors}
        return ", ".join(f"{name}: {count}" for name, count in counts.items() if count) or "—"

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None):
        if obj is not None and was_sent(obj):
            # Once sent, the request is the record of what ran: changing the
            # model or the owner afterwards would misstate it.
            return (*REQUEST_FIELDS, *self.readonly_fields)
        if obj is not None and obj.request is not None:
            return (*WHOLE_REQUEST_FIELDS, *self.readonly_fields)
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Job, form: ModelForm, change: bool) -> None:
        # Only what the operator changed: a whole-row save would write back the
        # state and counters read before a dispatcher claimed the job.
        obj.save(update_fields=form.changed_data)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Jobs are submitted through the dashboard, the API or `manage.py
        # submit`, which validate and wake the dispatcher.
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra_context = {**(extra_context or {}), "title": f"Jobs (route: {settings.GEMINI_API})"}
        switch = control.dispatch_control()
        if switch.paused:
            self.message_user(
                request,
                f"Dispatch is paused since {switch.paused_at:%Y-%m-%d %H:%M}: "
                f"{redact_api_key(switch.reason)}",
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    @admin.action(description="Retry selected jobs now")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        grant = actions.retry_grants(queryset)
        done = sum(actions.job_retry_now(job=job) for job in queryset)
        granted = f"; the failed ones with {actions.grant_words(grant)}" if grant else ""
        self.message_user(
            request, f"{done} of {queryset.count()} jobs will run again now{granted}."
        )

    @admin.action(description="Cancel selected jobs (queued or waiting to retry)")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done = sum(actions.job_cancel(job=job) for job in queryset)
        self.message_user(request, f"{done} of {queryset.count()} jobs cancelled.")

    @admin.action(description="Pause dispatch (all jobs)")
    def pause_dispatch(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        control.dispatch_pause(reason=f"Paused by {request.user} from the admin.")
        self.message_user(request, "Dispatch paused: no new requests will be sent.")

    @admin.action(description="Resume dispatch (all jobs)")
    def resume_dispatch(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        control.dispatch_resume()
        self.message_user(request, "Dispatch resumed.")


@admin.register(Attempt)
class AttemptAdmin(AttemptColumns, admin.ModelAdmin):
    list_display = ("job", *ATTEMPT_COLUMNS)
    list_filter = ("outcome", "http_status", "error_kind", "tier_served", "route")
    search_fields = ("=job__id", "error_message")
    list_select_related = ("job",)
    show_full_result_count = False
    fields = ("job", "dispatcher", *ATTEMPT_COLUMNS, "finished", "error_kind", "error")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
