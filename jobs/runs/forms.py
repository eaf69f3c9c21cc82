"""Forms for the run pages: the upload (a file, the run's defaults and, for a
pipeline, its definition), the run's jobs filter and a pipeline's grid filter.
What may be submitted is decided by jobs/runs/services.py."""

from __future__ import annotations

from decimal import Decimal
from pathlib import PurePath

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


# A definition is a page of YAML: anything near this size is not one.
MAX_DEFINITION_BYTES = 256 * 1024
DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")


class RunUploadForm(JobSubmitForm):
    """The single-prompt form's settings become the run's defaults; a line's
    own model, system instruction, temperature or output length wins. With a
    pipeline definition the file is the pipeline's table, and the settings are
    what its steps name none of."""

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
    pipeline_file = forms.FileField(
        label="Pipeline definition file",
        required=False,
        help_text="Optional: a YAML or JSON file (.yaml, .yml, .json) of steps; the file "
        "above is then its table, one row per line.",
    )
    pipeline_text = forms.CharField(
        label="Or the definition itself",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
        help_text="The same YAML or JSON, typed or pasted here.",
    )
    eval_file = forms.FileField(
        label="Eval definition file",
        required=False,
        help_text="Optional: a YAML or JSON file (.yaml, .yml, .json) of candidates and "
        "graders; the file above is then its dataset, one row per line.",
    )
    eval_text = forms.CharField(
        label="Or the eval definition itself",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
        help_text="The same YAML or JSON, typed or pasted here (the eval builder posts it).",
    )

    field_order = ["file", "name", "format", "budget_usd", "model", "tier", "max_attempts"]

    def clean_pipeline_file(self) -> str:
        """The definition file's text ("" when none was given)."""
        return _definition_text(self.cleaned_data.get("pipeline_file"), "A pipeline")

    def clean_eval_file(self) -> str:
        """The eval definition file's text ("" when none was given)."""
        return _definition_text(self.cleaned_data.get("eval_file"), "An eval")

    def clean_pipeline_text(self) -> str:
        return _typed_definition(self.cleaned_data.get("pipeline_text"), "A pipeline")

    def clean_eval_text(self) -> str:
        return _typed_definition(self.cleaned_data.get("eval_text"), "An eval")

    def clean(self) -> dict:
        cleaned = super().clean()
        from_file, typed = cleaned.get("pipeline_file"), cleaned.get("pipeline_text", "")
        if from_file and typed.strip():
            self.add_error(
                "pipeline_text", "Give the definition as a file or in the box, not both."
            )
        eval_file, eval_typed = cleaned.get("eval_file"), cleaned.get("eval_text", "")
        if eval_file and eval_typed.strip():
            self.add_error(
                "eval_text", "Give the eval definition as a file or in the box, not both."
            )
        if (eval_file or eval_typed.strip()) and (from_file or typed.strip()):
            # An eval compiles to a pipeline of its own: there is no second one to run.
            self.add_error(
                "eval_file" if eval_file else "eval_text",
                "Give a pipeline or an eval definition, not both.",
            )
        return cleaned

    def definition(self) -> str:
        """The pipeline definition's text; "" for a plain run."""
        return self.cleaned_data.get("pipeline_file") or self.cleaned_data["pipeline_text"].strip()

    def eval_definition(self) -> str:
        """The eval definition's text; "" when the run is not an eval."""
        return self.cleaned_data.get("eval_file") or self.cleaned_data.get("eval_text", "").strip()

    def definition_kind(self) -> str:
        """Which definition was sent, as the page names it: "eval" or "pipeline"."""
        eval_sent = self.files.get("eval_file") or self.data.get("eval_text", "").strip()
        return "eval" if eval_sent else "pipeline"

    def standard_move_quote(self) -> StandardMoveQuote:
        # The file is read only once it is uploaded: the preview has the figure.
        return StandardMoveQuote(extra_usd=None, tier=self.data.get("tier") or Tier.FLEX, run=True)


def _typed_definition(text: str | None, what: str) -> str:
    """A definition typed or pasted in a box, refused when it is too large to be one."""
    text = text or ""
    if len(text.encode("utf-8")) > MAX_DEFINITION_BYTES:
        raise forms.ValidationError(
            f"{what} definition may be at most {MAX_DEFINITION_BYTES // 1024} KiB."
        )
    return text


def _definition_text(upload, what: str) -> str:
    """A definition file's text ("" when none was given); `what` names its kind."""
    if not upload:
        return ""
    if PurePath(upload.name).suffix.lower() not in DEFINITION_SUFFIXES:
        raise forms.ValidationError(
            f"{what} definition is a .yaml, .yml or .json file; this one is not."
        )
    if upload.size > MAX_DEFINITION_BYTES:
        raise forms.ValidationError(
            f"{what} definition may be at most {MAX_DEFINITION_BYTES // 1024} KiB."
        )
    try:
        return upload.read().decode("utf-8")
    except UnicodeDecodeError:
        raise forms.ValidationError("The definition file is not UTF-8 text.") from None


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


class PipelineGridForm(forms.Form):
    """A pipeline's rows-by-steps grid: all rows, the rows with a failed or
    skipped step, or one row; paged by line number (?after=, ?before=)."""

    problems = forms.BooleanField(label="Only rows with a failed or skipped step", required=False)
    row = forms.IntegerField(min_value=1, required=False, widget=forms.HiddenInput)
    after = forms.IntegerField(min_value=0, required=False, widget=forms.HiddenInput)
    before = forms.IntegerField(min_value=1, required=False, widget=forms.HiddenInput)

    def grid_filters(self) -> dict:
        """The grid query's keywords; a bad value is ignored, as the jobs filter does."""
        data = self.cleaned_data if self.is_valid() else {}
        return {
            "problems": bool(data.get("problems")),
            "row": data.get("row"),
            "after": data.get("after"),
            "before": data.get("before"),
        }
