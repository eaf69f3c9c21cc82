"""Reading an uploaded file into a run's lines: each line checked as the
engine would check a job, over the run's defaults, and counted for the
estimate shown before anything is created. jobs/runs/services.py inserts what this
yields; nothing here writes a row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import BinaryIO

from django.conf import settings

from jobs import formats, gemini_shape, sizes
from jobs.catalog import FLEX_MODELS
from jobs.engine import pricing, submitting
from jobs.models import DeadlinePolicy, ModelPrice, Tier

# Bad lines listed back to the person; the rest are only counted.
MAX_LISTED_ERRORS = 20
# Enough of the file for formats.detect_format to tell the formats apart.
DETECT_BYTES = 64 * 1024


class RunRejected(Exception):
    """The file is refused as a whole: nothing was created."""

    def __init__(self, errors: list[tuple[int | None, str]], total: int) -> None:
        self.errors = errors
        self.total = max(total, len(errors))
        super().__init__(self.summary())

    @property
    def more(self) -> int:
        return self.total - len(self.errors)

    def messages(self) -> list[str]:
        return [f"line {line}: {text}" if line else text for line, text in self.errors]

    def summary(self) -> str:
        listed = "; ".join(self.messages())
        return f"{listed} (and at least {self.more:,} more)" if self.more else listed


def request_features(request: dict) -> list[str]:
    """What a request asks for beyond a text prompt, in words the preview lists, so
    nothing a line asked for goes by unseen."""
    config = gemini_shape.generation(request)
    features = []
    if gemini_shape.answer_schema(request) is not None:
        features.append("JSON answers checked against a schema")
    elif gemini_shape.wants_json(request):
        features.append("JSON answers")
    if gemini_shape.media(request):
        features.append("images or documents")
    if len(request.get("contents") or []) > 1:
        features.append("conversations of several turns")
    if "thinking_config" in config:
        features.append("a thinking level or budget")
    if request.get("tools"):
        features.append("tools (function declarations)")
    tuned = {"top_p", "top_k", "seed", "stop_sequences", "candidate_count", "presence_penalty",
             "frequency_penalty", "response_logprobs", "logprobs"} & config.keys()  # fmt: skip
    if tuned:
        features.append("sampling settings (" + ", ".join(sorted(tuned)) + ")")
    if request.get("safety_settings"):
        features.append("safety settings")
    if settings.GEMINI_API == "interactions" and gemini_shape.interactions_gaps(request):
        features.append("fields only generateContent carries (sent by that route)")
    return features


# --- Reading a file -----------------------------------------------------------------
@dataclass
class Estimate:
    """Tokens are characters / 4 (as Google counts English, roughly). Output is
    unknown before the run: each answer is assumed as long as its prompt, or
    its max output tokens when that is smaller."""

    prompts: int = 0
    replaced_models: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    standard_usd: Decimal = Decimal(0)
    unpriced_prompts: int = 0
    models: dict[str, int] = field(default_factory=dict)
    # What the lines ask for beyond a text prompt (request_features), line counts.
    features: dict[str, int] = field(default_factory=dict)

    def cost_on(self, tier: str) -> Decimal:
        return pricing.tier_cost(self.standard_usd, tier)

    @property
    def flex_usd(self) -> Decimal:
        return self.cost_on(Tier.FLEX)

    @property
    def priority_usd(self) -> Decimal:
        return self.cost_on(Tier.PRIORITY)


@dataclass(frozen=True)
class RunLine:
    """A line as it will be stored: its whole request, the run's defaults filled in
    where the line has no setting of its own."""

    source: formats.PromptLine
    spec: submitting.JobSpec
    request: dict

    @property
    def custom_id(self) -> str:
        return self.source.custom_id or str(self.source.line)


class LineReader:
    """One pass over a file: yields its lines while none is bad, and keeps
    reading after a bad one only to count and list the problems."""

    def __init__(
        self, stream: BinaryIO, *, filename: str, spec: submitting.JobSpec, fmt: str | None
    ):
        self.stream = stream
        self.filename = filename
        self.spec = spec
        self.format = fmt
        self.estimate = Estimate()
        self.errors: list[tuple[int | None, str]] = []
        self.total_errors = 0
        self._prices: dict[str, ModelPrice | None] = {}

    def _error(self, line: int | None, message: str) -> None:
        self.total_errors += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append((line, message))

    def __iter__(self) -> Iterator[RunLine]:
        head = self.stream.read(DETECT_BYTES)
        self.stream.seek(0)
        try:
            self.format = self.format or formats.detect_format(head, self.filename)
            for source in formats.parse(
                self.stream,
                self.format,
                filename=self.filename,
                max_bytes=settings.FLEX_RUN_MAX_BYTES,
                max_lines=settings.FLEX_RUN_MAX_LINES,
                max_prompt_chars=settings.FLEX_MAX_PROMPT_CHARS,
                max_line_bytes=settings.FLEX_RUN_MAX_LINE_BYTES,
            ):
                line = self._checked(source)
                if line is not None and not self.total_errors:
                    yield line
        except formats.FileRejected as rejected:
            self.total_errors += max(rejected.total_errors, len(rejected.errors))
            self.errors.extend(rejected.errors)

    def _checked(self, source: formats.PromptLine) -> RunLine | None:
        model = self.spec.model
        if source.model and source.model in FLEX_MODELS:
            model = source.model
        elif source.model:
            self.estimate.replaced_models += 1
        # The deadline is the run's, acted on for the run as a whole.
        spec = replace(
            self.spec, model=model, deadline_at=None, deadline_policy=DeadlinePolicy.KEEP
        )
        request = submitting.with_defaults(source.request, spec)
        problems = [submitting.request_error(request)]
        if model != self.spec.model:
            # The run's own settings were checked once, before reading.
            problems += submitting.job_spec_errors(spec).values()
        problems = [problem for problem in problems if problem]
        if problems:
            self._error(source.line, " ".join(problems))
            return None
        self._count(request, spec)
        return RunLine(source=source, spec=spec, request=request)

    def _count(self, request: dict, spec: submitting.JobSpec) -> None:
        estimate = self.estimate
        estimate.prompts += 1
        estimate.models[spec.model] = estimate.models.get(spec.model, 0) + 1
        for feature in request_features(request):
            estimate.features[feature] = estimate.features.get(feature, 0) + 1
        input_tokens = sizes.estimate_input_tokens(request)
        cap = gemini_shape.generation(request).get("max_output_tokens")
        output_tokens = min(input_tokens, cap or input_tokens)
        estimate.input_tokens += input_tokens
        estimate.output_tokens += output_tokens
        if spec.model not in self._prices:
            self._prices[spec.model] = ModelPrice.objects.filter(
                model=spec.model
            ).first() or pricing.published_price(spec.model)
        price = self._prices[spec.model]
        if price is None:
            estimate.unpriced_prompts += 1
            return
        estimate.standard_usd += pricing.standard_cost(
            price, input_tokens=input_tokens, output_tokens=output_tokens
        )

    def rejection(self) -> RunRejected | None:
        if not self.total_errors:
            return None
        # Problems with the file as a whole first, then by line.
        listed = sorted(self.errors, key=lambda error: (error[0] is not None, error[0] or 0))
        return RunRejected(listed[:MAX_LISTED_ERRORS], self.total_errors)
