"""Forms for the run pages: the upload (a file and the run's defaults) and the
run's jobs filter. What may be submitted is decided by jobs/runs/services.py."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils import timezone

from jobs import formats
from jobs.engine import budgets, submitting
from jobs.models import Tier
from jobs.web.forms import DeadlineForm, JobFilterForm, JobSubmitForm, StandardMoveQuote


def budget_field() -> forms.DecimalField:
    """The run's budget, in USD: the same field on the upload, the preview and the run page."""
    return forms.DecimalField(
        label="Budget (USD)",
        required=False,
        min_value=Decimal("0.01"),
        max_value=budgets.MAX_BUDGET_USD,
        decimal_places=2,
        help_text="The most this run may cost, retries and fallbacks included; what does not "
        "fit waits. Empty: no budget of its own (monthly budgets still apply).",
        error_messages={
            "invalid": "Enter the budget as an amount in USD, e.g. 12.50.",
            "min_value": "The budget must be at least $0.01.",
            "max_decimal_places": "The budget is in dollars and cents: at most two decimals.",
        },
    )


class RunUploadForm(JobSubmitForm):
    """The single-prompt form's settings become the run's defaults; a line's
    own model, system instruction, temperature or output length wins."""

    prompt = None
    file = forms.FileField(
        label="Prompt file",
        allow_empty_file=True,  # refused by jobs/runs/services.py, which names the problem
        help_text="Plain text, JSONL, CSV, or a Gemini, OpenAI or Anthropic batch file.",
    )
    name = forms.CharField(
        label="Run name", max_length=200, required=False, help_text="Empty: the file's name."
    )
    format = forms.ChoiceField(
        label="Format",
        choices=[("", "Detect it from the file"), *formats.FORMAT_LABELS.items()],
        required=False,
    )

    budget_usd = budget_field()

    field_order = ["file", "name", "format", "budget_usd", "model", "tier", "max_attempts"]

    def standard_move_quote(self) -> StandardMoveQuote:
        # The file is read only once it is uploaded: the preview has the figure.
        return StandardMoveQuote(extra_usd=None, tier=self.data.get("tier") or Tier.FLEX, run=True)


class RunDeadlineForm(DeadlineForm):
    """The deadline and the budget again on the preview, where the cost is
    known: what was chosen on the upload, to confirm or change."""

    budget_usd = budget_field()

    @classmethod
    def for_staged(
        cls, spec: submitting.JobSpec, data=None, budget_usd: Decimal | None = None
    ) -> RunDeadlineForm:
        """Bound to what was posted, or (a confirmation that posts none) to
        what the upload chose."""
        if data is None or "deadline_policy" not in data:
            local = spec.deadline_at and timezone.localtime(spec.deadline_at)
            data = {
                "deadline_at": local.replace(tzinfo=None).isoformat() if local else "",
                "deadline_policy": spec.deadline_policy,
                "budget_usd": "" if budget_usd is None else str(budget_usd),
            }
        return cls(data)


class RunBudgetForm(forms.Form):
    """A run's budget set, raised or removed on its page."""

    budget_usd = budget_field()


class RunJobFilterForm(JobFilterForm):
    """The jobs list's filters, on one run: its jobs have one owner."""

    def __init__(self, data, *, viewer) -> None:
        super().__init__(data, viewer=viewer)
        self.fields.pop("user", None)
