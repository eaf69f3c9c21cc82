"""The admin of the per-model tables an operator tunes: ModelLimitAdmin and its
ModelLimitForm (each flex model's RPM/TPM/RPD limits, blank for the
environment's default, and what the dispatchers learned from 503s and 429s),
and ModelPriceAdmin (each model's token prices)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from jobs.admin.display import time_display
from jobs.catalog import FLEX_MODELS
from jobs.engine import capacity, pacing
from jobs.models import ModelLimit, ModelPrice

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
                self.fields[name].widget.attrs.update(placeholder=_default_text(name))
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
        "recent_calls_now",
        "recent_at",
        "requests_today",
        "next_request_at",
        "next_token_at",
        "updated_at",
    )

    class Media:
        # Widths for the limit inputs: a style="" attribute would break the CSP.
        css = {"all": ("css/admin.css",)}

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
        state, reason = capacity.pacing_state(obj)
        return f"{pacing.state_label(state, capacity.limits_of(obj))}: {reason}"

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

    @admin.display(description="recent calls")
    def recent_calls_now(self, obj: ModelLimit) -> str:
        # A decayed count: a whole number reads as what it is, an estimate.
        return f"{_pace_now(obj).recent_calls:,.0f}"

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


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = (
        "model",
        "input_per_million",
        "output_per_million",
        "long_input_per_million",
        "long_output_per_million",
        "max_output_tokens",
        "updated",
    )
    updated = time_display("updated_at", "updated")
    list_editable = ("input_per_million", "output_per_million", "max_output_tokens")
