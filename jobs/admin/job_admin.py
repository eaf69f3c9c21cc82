from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from jobs import capacity, pacing, runs, services
from jobs.catalog import FLEX_MODELS
from jobs.models import (
    Attempt,
    DispatchControl,
    DispatcherSlot,
    Job,
    ModelLimit,
    ModelPrice,
    Run,
)

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
    fields = (*ATTEMPT_COLUMNS, "error_kind", "error_message")
    readonly_fields = fields
    ordering = ("number",)

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
        "result_text",
        "response_id",
        "tier_served",
        "input_tokens",
        "output_tokens",
        "thought_tokens",
        "cost_usd",
        "standard_cost_usd",
        "last_error",
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
                    "input_text",
                    "system_instruction",
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
                    "last_error",
                    "lease_owner",
                    "lease_expires_at",
                )
            },
        ),
        (
            "Result",
            {
                "fields": (
                    "result_text",
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Jobs are submitted through the dashboard, the API or `manage.py
        # submit`, which validate and wake the dispatcher.
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra_context = {**(extra_context or {}), "title": f"Jobs (route: {settings.GEMINI_API})"}
        control = services.dispatch_control()
        if control.paused:
            self.message_user(
                request,
                f"Dispatch is paused since {control.paused_at:%Y-%m-%d %H:%M}: {control.reason}",
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    @admin.action(description="Retry selected jobs now")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done = sum(services.job_retry_now(job=job) for job in queryset)
        self.message_user(request, f"{done} of {queryset.count()} jobs will run again now.")

    @admin.action(description="Cancel selected jobs (queued or waiting to retry)")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        done = sum(services.job_cancel(job=job) for job in queryset)
        self.message_user(request, f"{done} of {queryset.count()} jobs cancelled.")

    @admin.action(description="Pause dispatch (all jobs)")
    def pause_dispatch(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        services.dispatch_pause(reason=f"Paused by {request.user} from the admin.")
        self.message_user(request, "Dispatch paused: no new requests will be sent.")

    @admin.action(description="Resume dispatch (all jobs)")
    def resume_dispatch(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        services.dispatch_resume()
        self.message_user(request, "Dispatch resumed.")


@admin.register(Attempt)
class AttemptAdmin(admin.ModelAdmin):
    list_display = ("job", *ATTEMPT_COLUMNS)
    list_filter = ("outcome", "http_status", "error_kind", "tier_served", "route")
    search_fields = ("=job__id", "error_message")
    list_select_related = ("job",)
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(DispatchControl)
class DispatchControlAdmin(admin.ModelAdmin):
    list_display = ("__str__", "paused", "reason", "paused_at", "gemini_route", "gemini_endpoint")

    @admin.display(description="Gemini API route (GEMINI_API)")
    def gemini_route(self, obj: DispatchControl) -> str:
        return settings.GEMINI_API

    @admin.display(description="Endpoint (GEMINI_BASE_URL)")
    def gemini_endpoint(self, obj: DispatchControl) -> str:
        return settings.GEMINI_BASE_URL or "Google (generativelanguage.googleapis.com)"

    actions = ("resume",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Resume dispatch")
    def resume(self, request: HttpRequest, queryset: QuerySet[DispatchControl]) -> None:
        services.dispatch_resume()
        self.message_user(request, "Dispatch resumed.")


@admin.register(DispatcherSlot)
class DispatcherSlotAdmin(admin.ModelAdmin):
    list_display = ("number", "owner", "in_flight", "heartbeat_at", "expires_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = (
        "model",
        "input_per_million",
        "output_per_million",
        "long_input_per_million",
        "long_output_per_million",
        "updated_at",
    )
    list_editable = ("input_per_million", "output_per_million")


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "owner",
        "source_format",
        "model",
        "tier",
        "deadline_at",
        "deadline_policy",
        "created_at",
        "finished_at",
    )
    list_filter = ("source_format", "model", "tier", "owner")
    search_fields = ("=id", "name", "source_name")
    list_select_related = ("owner",)
    readonly_fields = (
        "owner",
        "source_name",
        "source_format",
        "replaced_models",
        "estimated_input_tokens",
        "estimated_output_tokens",
        "estimated_cost_usd",
        "estimated_standard_cost_usd",
        "deadline_at",
        "deadline_policy",
        "created_at",
        "finished_at",
    )
    actions = ("cancel_unfinished", "retry_failed")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Runs come from an uploaded file (page, API or `manage.py submit --file`).
        return False

    @admin.action(description="Cancel the unfinished jobs of the selected runs")
    def cancel_unfinished(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        done = sum(runs.run_cancel(run=run) for run in queryset)
        self.message_user(request, f"{done} jobs cancelled.")

    @admin.action(description="Retry the failed jobs of the selected runs")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        done = sum(runs.run_retry_failed(run=run) for run in queryset)
        self.message_user(request, f"{done} failed jobs will run again.")


# --- Model limits ------------------------------------------------------------------
# Each limit field and the environment variable that fills it when it is empty.
LIMIT_DEFAULTS = {
    "rpm_limit": "FLEX_RPM_LIMIT",
    "tpm_limit": "FLEX_TPM_LIMIT",
    "rpd_limit": "FLEX_RPD_LIMIT",
}


def _limit_text(value: int) -> str:
    return f"{value:,}" if value else "no limit"


def _default_text(field: str) -> str:
    return f"default: {_limit_text(getattr(settings, LIMIT_DEFAULTS[field]))}"


class ModelLimitForm(forms.ModelForm):
    """The three limits, blank for the environment's default; the model only
    from the flex catalogue, and only when it has no row yet."""

    class Meta:
        model = ModelLimit
        fields = ("model", *LIMIT_DEFAULTS)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "model" in self.fields:
            taken = set(ModelLimit.objects.values_list("model", flat=True))
            self.fields["model"] = forms.ChoiceField(
                choices=[(model, model) for model in FLEX_MODELS if model not in taken],
                help_text="A model the flex tier runs that has no limits yet.",
            )
        for name, variable in LIMIT_DEFAULTS.items():
            if name in self.fields:
                # The field itself refuses anything but a whole number, 0 or more.
                self.fields[name].widget.attrs.update(
                    placeholder=_default_text(name), style="width: 9em"
                )
                self.fields[name].help_text = (
                    f"A whole number, 0 or more; 0: no limit. Empty: the environment's "
                    f"{variable} ({_default_text(name)})."
                )
        if "rpd_limit" in self.fields:
            self.fields["rpd_limit"].help_text += " The day resets at midnight Pacific."


def _pace_now(row: ModelLimit) -> pacing.Pace:
    """The row's learned state as the next claim will see it."""
    return pacing.observe(capacity.pace_of(row), timezone.now())


@admin.register(ModelLimit)
class ModelLimitAdmin(admin.ModelAdmin):
    """One row per flex model (seeded by migration 0006): limits editable in
    the list and the form, what the dispatchers learned read-only."""

    form = ModelLimitForm
    list_display = (
        "model",
        *LIMIT_DEFAULTS,
        "limits_in_force",
        "pacing_state",
        "current_rate_factor",
        "current_storm_factor",
        "recent_503_share",
        "recent_429_share",
        "requests_today",
    )
    list_editable = tuple(LIMIT_DEFAULTS)
    actions = ("forget_learning",)
    learned_fields = (
        "pacing_state",
        "current_rate_factor",
        "rate_factor_at",
        "current_storm_factor",
        "storm_factor_at",
        "recent_503_share",
        "recent_429_share",
        "recent_calls",
        "recent_at",
        "requests_today",
        "next_request_at",
        "next_token_at",
        "updated_at",
    )

    def get_fieldsets(self, request: HttpRequest, obj: ModelLimit | None = None):
        limits = (None, {"fields": ("model", *LIMIT_DEFAULTS)})
        if obj is None:
            return (limits,)
        return (limits, ("Learned by the dispatchers", {"fields": self.learned_fields}))

    def get_readonly_fields(self, request: HttpRequest, obj: ModelLimit | None = None):
        # A row's model is its identity: the dispatchers look it up by name.
        return ("model", *self.learned_fields) if obj else ()

    def get_changelist_form(self, request: HttpRequest, **kwargs):
        return super().get_changelist_form(request, form=ModelLimitForm, **kwargs)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Only for a flex model without a row (deleted by hand, or new to the catalogue).
        missing = set(FLEX_MODELS) - set(ModelLimit.objects.values_list("model", flat=True))
        return bool(missing) and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Every flex model keeps its row; "no limit" is 0, not a missing row.
        return False

    @admin.display(description="in force")
    def limits_in_force(self, obj: ModelLimit) -> str:
        limits = capacity.limits_of(obj)
        return format_html(
            "RPM&nbsp;{}<br>TPM&nbsp;{}<br>RPD&nbsp;{}",
            _limit_text(limits.rpm),
            _limit_text(limits.tpm),
            _limit_text(limits.rpd),
        )

    @admin.display(description="pacing")
    def pacing_state(self, obj: ModelLimit) -> str:
        now = timezone.now()
        used = pacing.day_used(obj.day, obj.day_requests, now)
        state, reason = pacing.describe(
            capacity.limits_of(obj), _pace_now(obj), now, day_requests=used
        )
        return f"{state.capitalize()}: {reason}"

    @admin.display(description="429 rate factor")
    def current_rate_factor(self, obj: ModelLimit) -> str:
        return f"{pacing.rate_factor_now(_pace_now(obj), timezone.now()):.0%}"

    @admin.display(description="503 storm factor")
    def current_storm_factor(self, obj: ModelLimit) -> str:
        return f"{_pace_now(obj).storm_factor:.0%}"

    @admin.display(description="recent 503s")
    def recent_503_share(self, obj: ModelLimit) -> str:
        pace = _pace_now(obj)
        return f"{pace.share_503():.0%}" if pace.recent_calls >= 1 else "—"

    @admin.display(description="recent 429s")
    def recent_429_share(self, obj: ModelLimit) -> str:
        pace = _pace_now(obj)
        return f"{pace.share_429():.0%}" if pace.recent_calls >= 1 else "—"

    @admin.display(description="requests today (Pacific)")
    def requests_today(self, obj: ModelLimit) -> str:
        return f"{pacing.day_used(obj.day, obj.day_requests, timezone.now()):,}"

    @admin.action(description="Forget learned 503/429 state")
    def forget_learning(self, request: HttpRequest, queryset: QuerySet[ModelLimit]) -> None:
        models = list(queryset.values_list("model", flat=True))
        for model in models:
            capacity.reset_learning(model)
        self.message_user(
            request,
            f"Forgot what 503s and 429s taught about {', '.join(models)}: "
            "they pace to their full limits again.",
        )
