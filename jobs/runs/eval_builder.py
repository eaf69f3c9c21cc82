"""The eval builder: an eval definition made field by field on a page, for a
researcher who would rather not write YAML. Its forms hold what was typed;
`EvalBuilder.build` turns them into the same mapping a definition file holds
and checks it with eval_definitions.eval_check, so the page refuses exactly
what the upload page would, in the same words, each problem shown at its row.

The forms only read values (numbers, JSON); every rule of a definition is
eval_check's. A row left as it was offered is no part of the eval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django import forms

from jobs.engine.submitting import JobSpec
from jobs.runs.builders import (
    CHOOSE_MODEL,
    Builder,
    Section,
    cleaned,
    json_field,
    numbered,
    sentence,
    text_field,
)
from jobs.runs.eval_definitions import (
    CHECK_TYPES,
    MAX_CANDIDATES,
    MAX_GRADERS,
    NORMALIZERS,
    CompiledEval,
    eval_check,
)
from jobs.web.request_form import THINKING_CHOICES

CHECK_LABELS = {
    "equals": "equals: the answer is the expected text",
    "contains": "contains: the answer holds the value",
    "regex": "regex: the answer matches the pattern",
    "json_path": "json_path: the answer's JSON has the expected value at the path",
    "numeric": "numeric: the answer's number is within the tolerance of the expected one",
    "json_schema": "json_schema: the answer's JSON satisfies the schema",
}
# Which check types read each field, for the labels (and runs.js, which hides the rest).
CHECK_FIELD_USERS = {
    field: [kind for kind, needs in CHECK_TYPES.items() if field in needs]
    for field in ("expected", "value", "pattern", "path", "schema")
} | {"tolerance": ["numeric"]}
# The checks that compare text, which normalize prepares.
NORMALIZED = ("equals", "contains", "regex", "json_path")
SCORE_RANGE = (1, 10)


class EvalForm(forms.Form):
    """The eval itself: its name, seed, the prompt every candidate answers."""

    name = forms.CharField(label="Eval name", required=False, max_length=200)
    seed = forms.IntegerField(
        label="Seed",
        required=False,
        min_value=0,
        help_text="Optional: fixes the leaderboard's bootstrap; empty, one is drawn.",
    )
    prompt = text_field(
        "Prompt",
        rows=4,
        help_text="A template over the table's row: {{ row.question }} is the row's "
        "question column.",
    )
    system_instruction = text_field("System instruction", rows=2, help_text="Optional.")


class CandidateForm(forms.Form):
    model = forms.ChoiceField(label="Model", choices=CHOOSE_MODEL, required=False)
    name = forms.CharField(
        label="Name",
        required=False,
        max_length=200,
        help_text="Optional: the leaderboard's name for it (needed when two use one model).",
    )
    thinking_level = forms.ChoiceField(
        label="Thinking level", choices=THINKING_CHOICES, required=False
    )
    temperature = forms.FloatField(
        label="Temperature", required=False, help_text="0 to 2; empty for the model's default."
    )


def _grader_name() -> forms.CharField:
    return forms.CharField(
        label="Grader name",
        required=False,
        max_length=24,
        help_text="Letters, digits and _; the leaderboard's column.",
    )


class CheckForm(forms.Form):
    name = _grader_name()
    check_type = forms.ChoiceField(
        label="Check",
        choices=[("", "Choose a check"), *CHECK_LABELS.items()],
        required=False,
    )
    expected = text_field("Expected", help_text="A template over row, e.g. {{ row.reference }}.")
    value = text_field("Value", help_text="A template over row.")
    pattern = text_field("Pattern", help_text="A regular expression (a template over row).")
    path = text_field("Path", help_text="e.g. answer.value or items.0")
    tolerance = forms.FloatField(label="Tolerance", required=False, help_text="Empty: 0.")
    schema = json_field("JSON Schema", help_text='e.g. {"type": "object", "required": ["city"]}')
    normalize = forms.MultipleChoiceField(
        label="Normalize both sides first",
        choices=[(name, name.replace("_", " ")) for name in NORMALIZERS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["check_type"].widget.attrs["data-check-type"] = ""
        for field, users in CHECK_FIELD_USERS.items():
            self.fields[field].label += f" ({', '.join(users)})"
            self.fields[field].widget.attrs["data-check-for"] = " ".join(users)
        self.fields["normalize"].widget.attrs["data-check-for"] = " ".join(NORMALIZED)


class JudgeForm(forms.Form):
    name = _grader_name()
    model = forms.ChoiceField(label="Judge model", choices=CHOOSE_MODEL, required=False)
    prompt = text_field(
        "Judge prompt",
        rows=4,
        help_text="{{ answer }} is the candidate's answer; {{ row.column }} the row's columns.",
    )
    score_min = forms.IntegerField(label="Lowest score", initial=SCORE_RANGE[0], required=False)
    score_max = forms.IntegerField(label="Highest score", initial=SCORE_RANGE[1], required=False)

    def clean(self) -> dict:
        cleaned = super().clean()
        low, high = cleaned.get("score_min"), cleaned.get("score_max")
        if low is not None and high is not None and low >= high:
            self.add_error("score_max", "The highest score must be above the lowest.")
        return cleaned


class PairwiseForm(forms.Form):
    name = _grader_name()
    first = forms.CharField(label="Candidate A", required=False, help_text="Its name or model.")
    second = forms.CharField(label="Candidate B", required=False, help_text="Its name or model.")
    model = forms.ChoiceField(label="Judge model", choices=CHOOSE_MODEL, required=False)
    prompt = text_field(
        "Judge prompt",
        rows=3,
        help_text="{{ a }} and {{ b }} are the two answers; each row is judged in both orders.",
    )


SECTIONS = (
    Section("candidates", CandidateForm, 2, MAX_CANDIDATES, "Candidates: the models that answer",
            "Candidate", "Add a candidate"),
    Section("checks", CheckForm, 1, MAX_GRADERS, "Checks: graders that need no model",
            "Check", "Add a check"),
    Section("judges", JudgeForm, 1, MAX_GRADERS, "Judges: a model scores each answer",
            "Judge", "Add a judge"),
    Section("pairs", PairwiseForm, 0, MAX_GRADERS,
            "Pairwise: a model compares two candidates' answers, in both orders",
            "Pairwise", "Add a pairwise comparison"),
)  # fmt: skip
# "candidate 2: ...", "grader 3: ...", "grader judge: ...": eval_check's words for a row.
_WHERE = re.compile(r"(candidate|grader) ([A-Za-z0-9_]+): ")
_EVAL_FIELD = re.compile(r"the eval: (name|seed|prompt) ")


@dataclass(frozen=True)
class BuiltEval:
    compiled: CompiledEval
    mapping: dict
    text: str  # the definition as YAML, what eval_read reads back


class EvalBuilder(Builder):
    """The page's forms: the eval's own fields (`head`) and a formset per section."""

    head_form = EvalForm
    sections_of = SECTIONS

    @staticmethod
    def check(mapping: dict, spec: JobSpec) -> CompiledEval:
        return eval_check(mapping, spec=spec)

    @staticmethod
    def built_as(compiled: CompiledEval, mapping: dict, text: str) -> BuiltEval:
        return BuiltEval(compiled=compiled, mapping=mapping, text=text)

    def upload_initial(self, built: BuiltEval) -> dict:
        return {"eval_text": built.text}

    # --- The mapping ------------------------------------------------------------------
    def mapping(self) -> tuple[dict, dict]:
        """The definition the forms make (from what they could read), and where each
        of eval_check's row names is on the page."""
        top = cleaned(self.head)
        mapping: dict[str, Any] = {"name": (top.get("name") or "").strip()}
        if top.get("seed") is not None:
            mapping["seed"] = top["seed"]
        places: dict[str, tuple[forms.Form, str]] = {}
        candidates = []
        for number, form in numbered(self.sections["candidates"][1]):
            places[f"candidate {len(candidates) + 1}"] = (form, f"candidate {number}")
            candidates.append(_candidate(cleaned(form)))
        mapping["candidates"] = candidates
        if top.get("prompt", "").strip():
            mapping["prompt"] = top["prompt"]
        if top.get("system_instruction", "").strip():
            mapping["system_instruction"] = top["system_instruction"]
        graders = []
        for prefix, make in (("checks", _check), ("judges", _judge), ("pairs", _pairwise)):
            section, formset = self.sections[prefix]
            for number, form in numbered(formset):
                grader = make(cleaned(form))
                where = f"{section.title.lower()} {number}"
                places[f"grader {len(graders) + 1}"] = (form, where)
                if grader["name"]:
                    places[f"grader {grader['name']}"] = (form, f"grader {grader['name']}")
                graders.append(grader)
        mapping["graders"] = graders
        return mapping, places

    def place(self, problem: str, places: dict) -> None:
        """A problem of eval_check's, at the row (or the eval field) it names, in the
        page's words ("candidate 3" is the page's third candidate row)."""
        if (match := _WHERE.match(problem)) and match.group(0)[:-2] in places:
            form, where = places[match.group(0)[:-2]]
            problem = f"{where}: {problem[match.end() :]}"
            form.add_error(None, sentence(problem))
        elif match := _EVAL_FIELD.match(problem):
            self.head.add_error(match.group(1), sentence(problem.removeprefix("the eval: ")))
        self.problems.append(sentence(problem))


def _candidate(data: dict) -> dict:
    candidate: dict[str, Any] = {}
    if data.get("model"):
        candidate["model"] = data["model"]
    if (data.get("name") or "").strip():
        candidate["name"] = data["name"].strip()
    if data.get("temperature") is not None:
        candidate["temperature"] = data["temperature"]
    if data.get("thinking_level"):
        candidate["generation_config"] = {"thinking_level": data["thinking_level"]}
    return candidate


def _check(data: dict) -> dict:
    kind = data.get("check_type") or ""
    check: dict[str, Any] = {"type": kind} if kind else {}
    for field in CHECK_TYPES.get(kind, ()):
        value = data.get(field)
        if value is not None and value != "":
            check[field] = _number_or_text(value) if kind == "numeric" else value
    if kind == "numeric" and data.get("tolerance") is not None:
        check["tolerance"] = data["tolerance"]
    if kind in NORMALIZED and data.get("normalize"):
        check["normalize"] = list(data["normalize"])
    return {"name": (data.get("name") or "").strip(), "check": check}


def _number_or_text(value: str) -> int | float | str:
    """A numeric check's expected value: a number when it is one (written as such in
    the YAML), else a template over row."""
    for kind in (int, float):
        try:
            return kind(value.strip())
        except ValueError:
            continue
    return value


def _judge(data: dict) -> dict:
    judge: dict[str, Any] = {"name": (data.get("name") or "").strip()}
    if data.get("model"):
        judge["model"] = data["model"]
    if (data.get("prompt") or "").strip():
        judge["prompt"] = data["prompt"]
    score: dict[str, Any] = {"type": "integer"}
    if data.get("score_min") is not None:
        score["minimum"] = data["score_min"]
    if data.get("score_max") is not None:
        score["maximum"] = data["score_max"]
    judge["response_schema"] = {
        "type": "object",
        "properties": {"score": score, "reason": {"type": "string"}},
        "required": ["score", "reason"],
    }
    return judge


def _pairwise(data: dict) -> dict:
    pair: dict[str, Any] = {
        "name": (data.get("name") or "").strip(),
        "compare": [(data.get("first") or "").strip(), (data.get("second") or "").strip()],
    }
    if data.get("model"):
        pair["model"] = data["model"]
    if (data.get("prompt") or "").strip():
        pair["prompt"] = data["prompt"]
    return pair
