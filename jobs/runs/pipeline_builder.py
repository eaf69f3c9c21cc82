"""The pipeline builder: a pipeline definition made step by step on a page, for
a researcher who would rather not write YAML. Its forms hold what was typed;
`PipelineBuilder.build` turns them into the mapping a definition file holds
and checks it with pipelines.definition_check, so the page refuses exactly
what the upload page would, in the same words, each problem shown at its step.

The forms only read values (numbers, JSON); every rule of a pipeline is
definition_check's. A step left as it was offered is no part of the pipeline.
A step here takes a prompt and the common settings; a whole Gemini request,
tools, safety settings or a fallback to standard are written in the YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings

from jobs.catalog import DEFAULT_MODEL
from jobs.engine.pipelines import MAX_STEPS, Pipeline, definition_check
from jobs.engine.submitting import MAX_ATTEMPTS_LIMIT, JobSpec
from jobs.models import Tier
from jobs.runs.builders import (
    Builder,
    Section,
    cleaned,
    json_field,
    numbered,
    sentence,
    text_field,
)
from jobs.web.forms import MODEL_CHOICES, TIER_CHOICES
from jobs.web.request_form import THINKING_CHOICES

TIER_NAMES = [(tier, tier.label) for tier in (Tier.FLEX, Tier.STANDARD, Tier.PRIORITY)]


class PipelineForm(forms.Form):
    """The pipeline itself: its name, and the settings its steps name none of."""

    name = forms.CharField(label="Pipeline name", required=False, max_length=200)
    model = forms.ChoiceField(
        label="Model",
        choices=MODEL_CHOICES,
        initial=DEFAULT_MODEL,
        help_text="Every step's, unless the step chooses its own.",
    )
    tier = forms.ChoiceField(
        label="Tier", choices=TIER_CHOICES, initial=Tier.FLEX, widget=forms.RadioSelect
    )
    max_attempts = forms.IntegerField(
        label="Max attempts",
        required=False,
        min_value=1,
        max_value=MAX_ATTEMPTS_LIMIT,
        help_text=f"Per job, retries included. Empty: {settings.FLEX_MAX_ATTEMPTS}.",
    )


class StepForm(forms.Form):
    name = forms.CharField(
        label="Step name",
        required=False,
        max_length=64,
        help_text="Letters, digits and _; a later step reads its answer as "
        "{{ steps.NAME.output }}.",
    )
    model = forms.ChoiceField(
        label="Model", choices=[("", "The pipeline's model"), *MODEL_CHOICES], required=False
    )
    tier = forms.ChoiceField(
        label="Tier", choices=[("", "The pipeline's tier"), *TIER_NAMES], required=False
    )
    thinking_level = forms.ChoiceField(
        label="Thinking level",
        choices=THINKING_CHOICES,
        required=False,
        help_text="Gemini 3 models.",
    )
    temperature = forms.FloatField(
        label="Temperature", required=False, help_text="0 to 2; empty for the model's default."
    )
    for_each = forms.CharField(
        label="For each",
        required=False,
        help_text="Optional: steps.NAME.json.PATH or row.COLUMN, a list; the step runs once "
        "per item, {{ item }}.",
    )
    continues = forms.CharField(
        label="Continue the conversation of",
        required=False,
        help_text="Optional: an earlier step's name; its prompt and answer come first.",
    )
    prompt = text_field(
        "Prompt",
        rows=4,
        help_text="A template: {{ row.column }} is the table's column, "
        "{{ steps.NAME.output }} an earlier step's answer, {{ steps.NAME.json.field }} "
        "a field of its JSON answer.",
    )
    system_instruction = text_field("System instruction", rows=2, help_text="Optional.")
    response_schema = json_field(
        "Response schema (JSON Schema)",
        help_text='Optional: the answer is then JSON, e.g. {"type": "object", "properties": '
        '{"claims": {"type": "array", "items": {"type": "string"}}}}',
    )


SECTIONS = (
    Section("steps", StepForm, 2, MAX_STEPS, "Steps, in order: each may use the answers before it",
            "Step", "Add a step"),
)  # fmt: skip
# "step 2: ...", "step summary: ...": definition_check's words for a step.
_STEP = re.compile(r"step ([A-Za-z0-9_]+): ")
_PIPELINE_NAME = "the pipeline needs a name"
_CYCLE = re.compile(r"steps (.+) refer to each other \(a cycle\)")


@dataclass(frozen=True)
class BuiltPipeline:
    pipeline: Pipeline
    mapping: dict
    text: str  # the definition as YAML, what the upload page reads back


class PipelineBuilder(Builder):
    """The page's forms: the pipeline's own fields (`head`) and its steps."""

    head_form = PipelineForm
    sections_of = SECTIONS

    @staticmethod
    def check(mapping: dict, spec: JobSpec) -> Pipeline:
        return definition_check(mapping, defaults=spec)

    @staticmethod
    def built_as(pipeline: Pipeline, mapping: dict, text: str) -> BuiltPipeline:
        return BuiltPipeline(pipeline=pipeline, mapping=mapping, text=text)

    def upload_initial(self, built: BuiltPipeline) -> dict:
        """What the continue form hands to the upload: the YAML and, as the run's own
        settings, the pipeline's."""
        top = built.mapping
        initial = {"pipeline_text": built.text, "model": top["model"], "tier": top["tier"]}
        if top.get("max_attempts") is not None:
            initial["max_attempts"] = top["max_attempts"]
        return initial

    # --- The mapping ------------------------------------------------------------------
    def mapping(self) -> tuple[dict, dict]:
        """The definition the forms make (from what they could read), and where each
        of definition_check's step names is on the page."""
        top = cleaned(self.head)
        mapping: dict[str, Any] = {"name": (top.get("name") or "").strip()}
        for name in ("model", "tier", "max_attempts"):
            if top.get(name) not in (None, ""):
                mapping[name] = top[name]
        places: dict[str, tuple[forms.Form, str]] = {}
        steps = []
        for number, form in numbered(self.sections["steps"][1]):
            step = _step(cleaned(form))
            places[f"step {len(steps) + 1}"] = (form, f"step {number}")
            if step.get("name"):
                places[f"step {step['name']}"] = (form, f"step {step['name']}")
            steps.append(step)
        mapping["steps"] = steps
        return mapping, places

    def place(self, problem: str, places: dict) -> None:
        """A problem of definition_check's, at the step (or the pipeline's field) it
        names, in the page's words ("step 3" is the page's third step)."""
        if (match := _STEP.match(problem)) and match.group(0)[:-2] in places:
            form, where = places[match.group(0)[:-2]]
            problem = f"{where}: {problem[match.end() :]}"
            form.add_error(None, sentence(problem))
        elif problem.startswith(_PIPELINE_NAME):
            self.head.add_error("name", sentence(problem.removeprefix("the pipeline ")))
        elif match := _CYCLE.match(problem):
            for name in match.group(1).replace(" and ", ", ").split(", "):
                if f"step {name}" in places:
                    places[f"step {name}"][0].add_error(None, sentence(problem))
        self.problems.append(sentence(problem))


def _step(data: dict) -> dict:
    """One step's mapping, in the order a person would write it."""
    step: dict[str, Any] = {}
    if (data.get("name") or "").strip():
        step["name"] = data["name"].strip()
    for name in ("model", "tier"):
        if data.get(name):
            step[name] = data[name]
    for name in ("for_each", "continues"):
        if (data.get(name) or "").strip():
            step["continue" if name == "continues" else name] = data[name].strip()
    if (data.get("prompt") or "").strip():
        step["prompt"] = data["prompt"]
    if (data.get("system_instruction") or "").strip():
        step["system_instruction"] = data["system_instruction"]
    if data.get("temperature") is not None:
        step["temperature"] = data["temperature"]
    if data.get("thinking_level"):
        step["generation_config"] = {"thinking_config": {"thinking_level": data["thinking_level"]}}
    if data.get("response_schema") is not None:
        step["response_schema"] = data["response_schema"]
    return step
