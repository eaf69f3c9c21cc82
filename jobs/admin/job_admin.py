"""The admin of jobs and their attempts: JobAdmin (with its retry, cancel and
pause/resume-dispatch actions), AttemptAdmin, read-only, and AttemptInline,
the attempts on a job's page; ATTEMPT_COLUMNS is what both show of a try."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.admin.redacted import redacted_display
from jobs.engine import actions, control
from jobs.models import Attempt, Job
from jobs.redaction import redact_api_key

# What an operator reads about one try, in the job's inline and the list.
ATTEMPT_COLUMNS = (
    "number",
    "started_at",
    "latency_seconds",
    "route",
    "tier_requested",
    "tier_served",
    "http_status",
    "google_status",
    "retry_after_seconds",
    "outcome",
)


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = (*ATTEMPT_COLUMNS, "error_kind", "error")
    readonly_fields = fields
    ordering = ("number",)
    error = redacted_display("error_message", "error message")

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "state",
        "model",
        "tier_requested",
        "tier_served",
        "attempts",
        "http_503",
        "http_429",
        "other_errors",
        "next_attempt_at",
        "cost_usd",
        "owner",
        "submitted_at",
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
        "result",
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
        done = sum(actions.job_retry_now(job=job) for job in queryset)
        self.message_user(request, f"{done} of {queryset.count()} jobs will run again now.")

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
class AttemptAdmin(admin.ModelAdmin):
    list_display = ("job", *ATTEMPT_COLUMNS)
    list_filter = ("outcome", "http_status", "error_kind", "tier_served", "route")
    search_fields = ("=job__id", "error_message")
    list_select_related = ("job",)
    show_full_result_count = False
    exclude = ("error_message",)
    readonly_fields = ("error",)
    error = redacted_display("error_message", "error message")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
