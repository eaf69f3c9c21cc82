"""What the two definition builders (an eval's, jobs/runs/eval_builder.py; a
pipeline's, jobs/runs/pipeline_builder.py) share: sections of rows as
formsets, a row added by a post without JS, the rows a person filled in, and
the definition written as the YAML a definition file holds.

A builder's forms only read values (numbers, JSON); every rule of a
definition stays its checker's, so a builder refuses exactly what the upload
page would, in the same words, each problem shown at its row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml
from django import forms
from django.conf import settings
from django.forms import BaseFormSet, formset_factory

from jobs.catalog import DEFAULT_MODEL
from jobs.engine.pipelines import DefinitionError
from jobs.engine.submitting import JobSpec
from jobs.web.forms import MODEL_CHOICES

CHOOSE_MODEL = [("", "Choose a model"), *MODEL_CHOICES]


def text_field(label: str, *, rows: int = 0, help_text: str = "") -> forms.CharField:
    """An optional text kept as typed (templates care about their spaces)."""
    widget = forms.Textarea(attrs={"rows": rows, "spellcheck": "false"}) if rows else None
    return forms.CharField(
        label=label, required=False, strip=False, widget=widget, help_text=help_text
    )


class _JSONField(forms.JSONField):
    def prepare_value(self, value):
        # Django shows an empty JSON field as "null"; an empty box reads better.
        return "" if value is None else super().prepare_value(value)


def json_field(label: str, *, help_text: str) -> forms.JSONField:
    """An optional JSON value typed in a box (a schema), empty when none is given."""
    return _JSONField(
        label=label,
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text=help_text,
    )


@dataclass(frozen=True)
class Section:
    """One list of rows on the page: its formset and how its rows are named."""

    prefix: str
    form: type[forms.Form]
    extra: int
    most: int
    heading: str
    title: str  # a row's legend: "Candidate 2"
    add_label: str

    def formset(self, data=None) -> BaseFormSet:
        factory = formset_factory(self.form, extra=self.extra, max_num=self.most)
        return factory(data, prefix=self.prefix)


class Builder:
    """A builder page's forms: its own fields (`head`) and a formset per section.
    A subclass names its head form, its sections, the checker of its definitions
    and what a checked one is built as; it makes the mapping from its forms and
    places each of the checker's problems on the page."""

    head_form: ClassVar[type[forms.Form]]
    sections_of: ClassVar[tuple[Section, ...]]
    # The checker: (mapping, spec) -> the checked definition, or DefinitionError.
    check: ClassVar[Callable[[dict, JobSpec], Any]]
    # (checked definition, mapping, YAML text) -> what build returns.
    built_as: ClassVar[Callable[[Any, dict, str], Any]]

    def __init__(self, data=None) -> None:
        self.head = self.head_form(data)
        self.sections = {s.prefix: (s, s.formset(data)) for s in self.sections_of}
        self.problems: list[str] = []

    @property
    def parts(self) -> list[tuple[Section, BaseFormSet]]:
        return list(self.sections.values())

    @classmethod
    def with_row_added(cls, data, prefix: str):
        """What was posted, with one more empty row in `prefix`'s section (none past its most)."""
        return cls(with_row_added(data, cls.sections_of, prefix))

    def build(self, *, spec: JobSpec):
        """The definition checked whole; None with every problem at its row (and in
        self.problems) when the forms or the checker refuse it."""
        valid = all([self.head.is_valid(), *(fs.is_valid() for _, fs in self.sections.values())])
        mapping, places = self.mapping()
        try:
            checked = type(self).check(mapping, spec)
        except DefinitionError as error:
            for problem in error.problems:
                self.place(problem, places)
            return None
        if not valid:
            return None
        return type(self).built_as(checked, mapping, definition_yaml(mapping))

    def mapping(self) -> tuple[dict, dict]:
        """The definition the forms make (from what they could read), and where each
        row the checker names is on the page: its name -> (form, the page's name)."""
        raise NotImplementedError

    def place(self, problem: str, places: dict) -> None:
        """One of the checker's problems, at the row or field it names."""
        raise NotImplementedError

    def upload_initial(self, built) -> dict:
        """What the continue form hands to the upload page (the definition's text)."""
        raise NotImplementedError


def builder_spec() -> JobSpec:
    """The defaults a builder checks with: the ones its continue form posts to the
    upload (every row that needs a model names one, or the definition does)."""
    return JobSpec(model=DEFAULT_MODEL, max_attempts=settings.FLEX_MAX_ATTEMPTS)


def with_row_added(data, sections: tuple[Section, ...], prefix: str):
    """What was posted, with one more empty row in `prefix`'s section (none past
    its most); the data unchanged for a prefix no section has."""
    section = next((s for s in sections if s.prefix == prefix), None)
    if section is None:
        return data
    data = data.copy()
    total = f"{prefix}-TOTAL_FORMS"
    count = count_of(data.get(total))
    if count >= section.most:
        return data
    data[total] = str(count + 1)
    # The new row carries its fields' initial values, as an offered row does,
    # so it is still a row left as offered.
    for name, field in section.form().fields.items():
        if field.initial is not None:
            data[f"{prefix}-{count}-{name}"] = str(field.initial)
    return data


def count_of(value) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def numbered(formset: BaseFormSet) -> list[tuple[int, forms.Form]]:
    """(the row's number on the page, its form) for the rows filled in."""
    return [(n, form) for n, form in enumerate(formset.forms, start=1) if form.has_changed()]


def cleaned(form: forms.Form) -> dict:
    """What the form could read: a field it could not is left out (its error is shown)."""
    if not form.is_bound:
        return {}
    form.is_valid()
    return getattr(form, "cleaned_data", {})


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def definition_yaml(mapping: dict) -> str:
    """The definition as YAML, in the order it was built, as the upload page reads it."""
    return yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True, width=100)
