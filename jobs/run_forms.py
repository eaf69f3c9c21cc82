"""Forms for the run pages: the upload (a file and the run's defaults) and the
run's jobs filter. What may be submitted is decided by jobs/runs.py."""

from __future__ import annotations

from django import forms

from jobs import formats
from jobs.forms import JobFilterForm, JobSubmitForm


class RunUploadForm(JobSubmitForm):
    """The single-prompt form's settings become the run's defaults; a line's
    own model, system instruction, temperature or output length wins."""

    prompt = None
    file = forms.FileField(
        label="Prompt file",
        allow_empty_file=True,  # refused by jobs/runs.py, which names the problem
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

    field_order = ["file", "name", "format", "model", "tier", "max_attempts"]


class RunJobFilterForm(JobFilterForm):
    """The jobs list's filters, on one run: its jobs have one owner."""

    def __init__(self, data, *, viewer) -> None:
        super().__init__(data, viewer=viewer)
        self.fields.pop("user", None)
