"""Forms for the pages. They parse what was typed; the rules about what may be
submitted live in `services.jobs_submit`, whose errors are put back on the form."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from jobs.catalog import DEFAULT_MODEL, FLEX_MODELS
from jobs.models import State, Tier
from jobs.queries import Scope
from jobs.services import JobSpec

MODEL_CHOICES = [(model, model) for model in FLEX_MODELS]
TIER_CHOICES = [
    (Tier.FLEX, "Flex — half the standard price; best effort, may wait minutes or be shed (503)"),
    (Tier.STANDARD, "Standard — the full price, twice flex"),
    (Tier.PRIORITY, "Priority — up to twice the standard price, answered first"),
]


class OwnerFilterForm(forms.Form):
    """Staff choose whose jobs to see; everyone else sees only their own."""

    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(),
        to_field_name="username",
        required=False,
        empty_label="Everyone",
    )

    def __init__(self, data, *, viewer) -> None:
        super().__init__(data)
        self.viewer = viewer
        if viewer.is_staff:
            owners = get_user_model().objects.filter(jobs__isnull=False).distinct()
            self.fields["user"].queryset = owners.order_by("username")
        else:
            del self.fields["user"]

    def scope(self) -> Scope:
        if not self.viewer.is_staff:
            return Scope(owner_id=self.viewer.pk)
        self.is_valid()  # an invalid field is ignored (and shown); the others still apply
        owner = self.cleaned_data.get("user")
        return Scope(owner_id=owner.pk if owner else None)


class OverviewFilterForm(OwnerFilterForm):
    HOURS = (1, 3, 6, 24)
    DEFAULT_HOURS = 3

    hours = forms.TypedChoiceField(
        label="Chart",
        choices=[(h, f"last {h} hour{'s' if h > 1 else ''}") for h in HOURS],
        coerce=int,
        required=False,
        empty_value=DEFAULT_HOURS,
    )

    def __init__(self, data, *, viewer) -> None:
        if "hours" not in data:
            # Bound forms ignore `initial`; the select must show the window drawn.
            data = data.copy()
            data["hours"] = str(self.DEFAULT_HOURS)
        super().__init__(data, viewer=viewer)

    def chart_hours(self) -> int:
        self.is_valid()
        return self.cleaned_data.get("hours") or self.DEFAULT_HOURS


class JobFilterForm(OwnerFilterForm):
    state = forms.ChoiceField(
        choices=[
            ("", "Any state"),
            ("active", "Active (queued, running, waiting)"),
            ("finished", "Finished"),
            *State.choices,
        ],
        required=False,
    )
    model = forms.ChoiceField(choices=[("", "Any model"), *MODEL_CHOICES], required=False)
    q = forms.CharField(label="Prompt contains", max_length=200, required=False)

    def filters(self) -> dict[str, str]:
        self.is_valid()
        return {
            "state": self.cleaned_data.get("state", ""),
            "model": self.cleaned_data.get("model", ""),
            "search": self.cleaned_data.get("q", "").strip(),
        }


class JobSubmitForm(forms.Form):
    # Not required here: the service says what is wrong with an empty prompt,
    # in the same words the API and the command line use.
    prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), required=False, strip=False)
    model = forms.ChoiceField(choices=MODEL_CHOICES, initial=DEFAULT_MODEL)
    tier = forms.ChoiceField(choices=TIER_CHOICES, initial=Tier.FLEX, widget=forms.RadioSelect)
    system_instruction = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, strip=False
    )
    temperature = forms.FloatField(
        required=False, help_text="0 to 2; empty for the model's default."
    )
    max_output_tokens = forms.IntegerField(
        required=False, help_text="Empty for the model's default."
    )
    max_attempts = forms.IntegerField(
        required=False,
        help_text="Tries before the job is marked failed; 503s and 429s are retried with backoff.",
    )
    fallback_standard = forms.BooleanField(
        label="Fall back to standard on the last attempt", required=False
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["max_attempts"].initial = settings.FLEX_MAX_ATTEMPTS

    def spec(self) -> JobSpec:
        data = self.cleaned_data
        return JobSpec(
            model=data["model"],
            tier=data["tier"],
            max_attempts=data["max_attempts"],
            fallback_standard=data["fallback_standard"],
            system_instruction=data["system_instruction"],
            temperature=data["temperature"],
            max_output_tokens=data["max_output_tokens"],
        )

    def add_service_errors(self, error: ValidationError) -> None:
        for field, messages in error.message_dict.items():
            self.add_error(field if field in self.fields else None, messages)
