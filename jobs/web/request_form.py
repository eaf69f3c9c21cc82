"""The submit page's form: one prompt with every setting Gemini takes, built into one
whole request in Gemini's shape (`gemini_request`) for jobs_submit.

It extends JobSubmitForm, whose settings the run upload shares: structured output
(JSON, with a JSON Schema), thinking, seed, stop sequences, top-p and top-k, and
attached images or PDFs. Each problem goes back on the field it is about: the
shared settings in the service's words (job_spec_errors), the request in
gemini_shape's, so a person reads what the API and the command line say."""

from __future__ import annotations

import json
import re

from django import forms
from django.core.exceptions import ValidationError

from jobs import gemini_shape
from jobs.engine import submitting
from jobs.web import attachments
from jobs.web.forms import JobSubmitForm


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class AttachmentsField(forms.FileField):
    """Any number of files, none too; attachments.inline_parts checks each."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": attachments.ACCEPT}))
        super().__init__(allow_empty_file=True, **kwargs)

    def clean(self, data, initial=None) -> list:
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(AttachmentsField, self).clean(item, initial) for item in files]


OUTPUT_CHOICES = [("text", "Text"), ("json", "JSON (structured output)")]
THINKING_CHOICES = [("", "Model default"), *((lvl, lvl) for lvl in gemini_shape.THINKING_LEVELS)]

# Where gemini_shape's refusal of the built request lands: the path it names
# (longest first), the form field, and the words its message begins with.
_SHAPE_FIELDS = (
    ("generation_config.thinking_config.thinking_budget", "thinking_budget", "The thinking budget"),
    ("generation_config.thinking_config.thinking_level", "thinking_level", "The thinking level"),
    ("generation_config.thinking_config", "thinking_budget", "Thinking"),
    ("generation_config.response_json_schema", "json_schema", "The schema"),
    ("generation_config.response_mime_type", "output", "The answer's type"),
    ("generation_config.stop_sequences", "stop_sequences", "The stop sequences"),
    ("generation_config.top_p", "top_p", "Top-p"),
    ("generation_config.top_k", "top_k", "Top-k"),
    ("generation_config.seed", "seed", "The seed"),
    ("generation_config.temperature", "temperature", "Temperature"),
    ("generation_config.max_output_tokens", "max_output_tokens", "Max output tokens"),
    ("system_instruction", "system_instruction", "The system instruction"),
    ("contents", "attachments", "The request"),
)
_PART = re.compile(r"contents\[0\]\.parts\[(\d+)\]")


class JobRequestForm(JobSubmitForm):
    attachments = AttachmentsField(
        label="Attach images or PDFs (optional)",
        required=False,
        help_text="PNG, JPEG, WebP, HEIC or HEIF images, or PDFs, sent after the prompt; "
        f"{gemini_shape.MAX_INLINE_BYTES // 1_048_576} MB in all at most. "
        f"{attachments.LARGER_MEDIA}",
    )
    output = forms.ChoiceField(
        label="Answer as",
        choices=OUTPUT_CHOICES,
        initial="text",
        widget=forms.RadioSelect,
        required=False,  # not sent (scripts, older pages): text
    )
    json_schema = forms.CharField(
        label="JSON Schema (optional)",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        required=False,
        help_text='The answer must satisfy it, e.g. {"type": "object", "properties": '
        '{"city": {"type": "string"}}, "required": ["city"]}.',
    )
    retry_bad_output = forms.BooleanField(
        label="Retry answers that break the schema",
        required=False,
        help_text="An answer that is not JSON, or does not satisfy the schema, is tried again "
        "within max attempts; otherwise the job succeeds with the answer flagged.",
    )
    thinking_level = forms.ChoiceField(
        choices=THINKING_CHOICES, required=False, help_text="Gemini 3 models think by level."
    )
    thinking_budget = forms.IntegerField(
        label="Thinking budget (tokens)",
        required=False,
        help_text="Gemini 2.5 models: 0 turns thinking off (Flash), -1 lets the model decide. "
        "A level or a budget, not both.",
    )
    seed = forms.IntegerField(
        required=False, help_text="The same seed tends to give the same answer."
    )
    stop_sequences = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        strip=False,
        help_text=f"One per line, at most {gemini_shape.MAX_STOP_SEQUENCES}: the answer "
        "stops before any of them.",
    )
    top_p = forms.FloatField(label="Top-p", required=False, help_text="0 to 1.")
    top_k = forms.IntegerField(label="Top-k", required=False, help_text="1 or more.")

    JSON_FIELDS = ("output", "json_schema", "retry_bad_output")
    MORE_FIELDS = ("thinking_level", "thinking_budget", "seed", "stop_sequences", "top_p", "top_k")

    def _opens(self, names: tuple[str, ...]) -> bool:
        """A section of the page opens when one of its fields has a value or an error."""
        return any(
            self[name].errors or self[name].value() not in (None, "", False, "text")
            for name in names
        )

    @property
    def files_to_choose_again(self) -> int:
        """Files sent with a form that comes back with errors: a browser never keeps them."""
        return len(self.files.getlist("attachments")) if self.is_bound and self.errors else 0

    @property
    def json_open(self) -> bool:
        return self._opens(self.JSON_FIELDS)

    @property
    def more_open(self) -> bool:
        return self._opens(self.MORE_FIELDS)

    def clean_json_schema(self) -> dict | None:
        text = self.cleaned_data["json_schema"]
        if not text.strip():
            return None
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValidationError(
                f"The schema is not JSON: {error.msg} (line {error.lineno}, column {error.colno})."
            ) from None
        if not isinstance(schema, dict):
            raise ValidationError('A JSON Schema is an object: {"type": "object", ...}.')
        return schema

    def clean_stop_sequences(self) -> list[str]:
        sequences = [line for line in self.cleaned_data["stop_sequences"].splitlines() if line]
        if len(sequences) > gemini_shape.MAX_STOP_SEQUENCES:
            raise ValidationError(
                f"Gemini takes at most {gemini_shape.MAX_STOP_SEQUENCES} stop sequences; "
                f"there are {len(sequences)}."
            )
        return sequences

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data  # each field's own problem first
        if data["json_schema"] is not None and data["output"] != "json":
            self.add_error(
                "json_schema",
                "A schema needs the answer as JSON: choose JSON above, or clear the schema.",
            )
        if data["retry_bad_output"] and data["output"] != "json":
            self.add_error(
                "retry_bad_output",
                "Only a JSON answer can break a schema: choose JSON, or leave this unticked.",
            )
        if data["thinking_level"] and data["thinking_budget"] is not None:
            self.add_error(
                "thinking_budget", "Choose a thinking level or a thinking budget, not both."
            )
        for field, message in submitting.job_spec_errors(self.spec()).items():
            self.add_error(field if field in self.fields else None, message)
        try:
            data["parts"] = attachments.inline_parts(data["attachments"])
        except ValidationError as error:
            self.add_error("attachments", error)
        else:
            if not data["parts"] and (problem := submitting.prompt_error(data["prompt"])):
                self.add_error("prompt", problem)
        if not self.errors:
            try:
                gemini_shape.normalise(self.gemini_request())
            except gemini_shape.ShapeError as error:
                self._add_shape_error(error)
        return data

    def _add_shape_error(self, error: gemini_shape.ShapeError) -> None:
        if part := _PART.match(error.field):
            has_text = bool(self.cleaned_data["prompt"].strip()) or not self.cleaned_data["parts"]
            number = int(part[1]) + (0 if has_text else 1)  # attachments count from 1
            if has_text and number == 0:
                self.add_error("prompt", f"The prompt {error.message}.")
            else:
                self.add_error("attachments", f"Attachment {number} {error.message}.")
            return
        for path, name, subject in _SHAPE_FIELDS:
            if error.field == path or error.field.startswith((f"{path}.", f"{path}[")):
                where = error.field[len(path) :].lstrip(".")
                self.add_error(name, f"{subject}{f' at {where}' if where else ''} {error.message}.")
                return
        self.add_error(None, f"{error}.")

    def generation_config(self) -> dict:
        """Gemini's generation_config for what was chosen; empty fields are left out."""
        data = self.cleaned_data
        config = {
            name: data[name]
            for name in ("temperature", "max_output_tokens", "top_p", "top_k", "seed")
            if data.get(name) is not None
        }
        if data["stop_sequences"]:
            config["stop_sequences"] = data["stop_sequences"]
        thinking = {}
        if data["thinking_level"]:
            thinking["thinking_level"] = data["thinking_level"]
        if data["thinking_budget"] is not None:
            thinking["thinking_budget"] = data["thinking_budget"]
        if thinking:
            config["thinking_config"] = thinking
        if data["output"] == "json":
            config["response_mime_type"] = gemini_shape.JSON_MIME
            if data["json_schema"] is not None:
                config["response_json_schema"] = data["json_schema"]
        return config

    def gemini_request(self) -> dict:
        """The whole request: the prompt's text, then each attachment as inline_data
        (a prompt left blank beside an attachment sends no text part)."""
        data = self.cleaned_data
        request = gemini_shape.simple(
            data["prompt"],
            system_instruction=data["system_instruction"],
            generation_config=self.generation_config(),
        )
        if parts := data.get("parts"):
            turn = request["contents"][0]
            turn["parts"] = [p for p in turn["parts"] if p["text"].strip()] + parts
        return request

    def add_service_errors(self, error: ValidationError) -> None:
        # What jobs_submit finds wrong with the request as a whole (its length
        # above all) is the prompt's.
        renamed = {"request": "prompt"}
        for field, messages in error.message_dict.items():
            field = renamed.get(field, field)
            self.add_error(field if field in self.fields else None, messages)
