"""Forms for the pages. They parse what was typed; the rules about what may be
submitted live in `services.jobs_submit`, whose errors are put back on the form."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef
from django.utils import timezone

from jobs.catalog import DEFAULT_MODEL, FLEX_MODELS
from jobs.engine import pricing
from jobs.engine.submitting import JobSpec
from jobs.models import DeadlinePolicy, Job, ModelPrice, State, Tier
from jobs.web import search
from jobs.web.queries import Scope

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
            # One index lookup per user, not a DISTINCT join over every job.
            has_jobs = Exists(Job.objects.filter(owner=OuterRef("pk")))
            owners = get_user_model().objects.filter(has_jobs)
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
    # The chart's window. "fit", the default, is the shortest one that holds
    # the last day's work (queries.chart_minutes): a few minutes of work in a
    # fixed three hours was a line pressed against the right edge.
    FIT = "fit"
    HOURS = (1, 3, 6, 24)

    hours = forms.ChoiceField(
        label="Chart",
        choices=[
            (FIT, "fitted to recent work"),
            *((str(h), f"last {h} hours" if h > 1 else "last hour") for h in HOURS),
        ],
        required=False,
    )

    def __init__(self, data, *, viewer) -> None:
        if "hours" not in data:
            # Bound forms ignore `initial`; the select must show the window drawn.
            data = data.copy()
            data["hours"] = self.FIT
        super().__init__(data, viewer=viewer)

    def chart_hours(self) -> int | None:
        """The hours chosen, or None to fit the window to the work."""
        self.is_valid()
        chosen = self.cleaned_data.get("hours") or self.FIT
        return None if chosen == self.FIT else int(chosen)


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
    # No maxlength on the input: a browser would cut a pasted search short
    # without a word; the form says what is wrong instead.
    q = forms.CharField(label="Words in prompt or answer", required=False)

    def clean_q(self) -> str:
        text = self.cleaned_data["q"]
        if problem := search.search_problem(text):
            raise ValidationError(problem)
        return text

    def filters(self) -> dict[str, str]:
        self.is_valid()
        return {
            "state": self.cleaned_data.get("state", ""),
            "model": self.cleaned_data.get("model", ""),
            "search": self.cleaned_data.get("q", "").strip(),
        }


DEADLINE_POLICY_CHOICES = [
    (DeadlinePolicy.KEEP, "Keep waiting until it finishes"),
    (DeadlinePolicy.CANCEL, "Cancel what has not finished"),
    (DeadlinePolicy.STANDARD, "Move what has not finished to the standard tier"),
]


class DeadlineForm(forms.Form):
    """A deadline and what happens then; the rules are in services.job_spec_errors."""

    deadline_at = forms.DateTimeField(
        label="Finish by",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={"invalid": "Enter the deadline as a date and time, e.g. 2030-06-01 14:00."},
    )
    deadline_policy = forms.ChoiceField(
        label="At the deadline",
        choices=DEADLINE_POLICY_CHOICES,
        initial=DeadlinePolicy.KEEP,
        widget=forms.RadioSelect,
        required=False,  # not sent (scripts, older pages): keep waiting
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A datetime-local input carries no zone: it is read in the site's.
        zone = timezone.get_current_timezone_name()
        self.fields["deadline_at"].help_text = f"Time zone: {zone}."

    def deadline(self) -> dict:
        return {
            "deadline_at": self.cleaned_data["deadline_at"],
            "deadline_policy": self.cleaned_data["deadline_policy"] or DeadlinePolicy.KEEP,
        }

    def add_service_errors(self, error: ValidationError) -> None:
        for field, messages in error.message_dict.items():
            self.add_error(field if field in self.fields else None, messages)


@dataclass(frozen=True)
class StandardMoveQuote:
    """What moving unfinished work to standard at the deadline may add, shown
    next to that choice. extra_usd None: no figure (no prompt, no price)."""

    extra_usd: Decimal | None
    tier: str = Tier.FLEX
    run: bool = False
    live: bool = False


class JobSubmitForm(DeadlineForm):
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
        return JobSpec.from_fields(self.cleaned_data)

    def standard_move_quote(self) -> StandardMoveQuote:
        """From what is typed so far, valid or not: tokens estimated as a
        run's are (characters / 4, the answer as long as the prompt or its
        max output tokens), priced at standard minus flex."""
        data = self.data
        tier = data.get("tier") or Tier.FLEX
        tokens = pricing.estimate_tokens(data.get("prompt", ""), data.get("system_instruction", ""))
        model = data.get("model") or DEFAULT_MODEL
        price = ModelPrice.objects.filter(model=model).first() or pricing.published_price(model)
        if not tokens or price is None:
            return StandardMoveQuote(extra_usd=None, tier=tier, live=True)
        try:
            limit = int(data.get("max_output_tokens") or 0)
        except ValueError:
            limit = 0
        output = min(tokens, limit) if limit > 0 else tokens
        standard = pricing.standard_cost(price, input_tokens=tokens, output_tokens=output)
        extra = standard - pricing.tier_cost(standard, Tier.FLEX)
        return StandardMoveQuote(extra_usd=extra, tier=tier, live=True)
