"""An eval's preview: the pipeline preview's step estimates grouped by whose
they are. A candidate's is its answer step; a judge's, its step over each
candidate's answer; a pairwise grader's, its two steps (both orders); a check
has no step and costs nothing. Each part is priced on flex and on standard,
and at the tiers its steps run on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from jobs.engine import pricing
from jobs.models import Tier


class _StepFigures(Protocol):
    name: str
    model: str
    tier: str
    jobs: int
    standard_usd: Decimal
    cost_usd: Decimal
    unpriced: int
    rough: bool


@dataclass(frozen=True)
class EvalPart:
    """A candidate or a grader with its steps' jobs and estimated cost."""

    key: str  # unique within its table: the candidate's key, the grader's name
    label: str
    kind: str  # candidate, check, judge or pairwise
    model: str
    detail: str
    steps: tuple[_StepFigures, ...] = ()

    @property
    def jobs(self) -> int:
        return sum(step.jobs for step in self.steps)

    @property
    def flex_usd(self) -> Decimal:
        return _sum(pricing.tier_cost(step.standard_usd, Tier.FLEX) for step in self.steps)

    @property
    def standard_usd(self) -> Decimal:
        return _sum(step.standard_usd for step in self.steps)

    @property
    def cost_usd(self) -> Decimal:
        """At the tiers its steps run on: what the run's estimate and budget count."""
        return _sum(step.cost_usd for step in self.steps)

    @property
    def rough(self) -> bool:
        return any(step.rough for step in self.steps)

    @property
    def unpriced(self) -> int:
        return sum(step.unpriced for step in self.steps)

    @property
    def tiers(self) -> str:
        return ", ".join(sorted({step.tier for step in self.steps}))


@dataclass(frozen=True)
class EvalEstimate:
    name: str
    seed: int
    candidates: list[EvalPart] = field(default_factory=list)
    graders: list[EvalPart] = field(default_factory=list)

    @property
    def parts(self) -> list[EvalPart]:
        return [*self.candidates, *self.graders]

    @property
    def jobs(self) -> int:
        return sum(part.jobs for part in self.parts)

    @property
    def flex_usd(self) -> Decimal:
        return _sum(part.flex_usd for part in self.parts)

    @property
    def standard_usd(self) -> Decimal:
        return _sum(part.standard_usd for part in self.parts)

    @property
    def cost_usd(self) -> Decimal:
        return _sum(part.cost_usd for part in self.parts)

    @property
    def all_on_flex(self) -> bool:
        return all(step.tier == Tier.FLEX for part in self.parts for step in part.steps)


def eval_estimate(*, evaluation: dict, steps: Sequence[_StepFigures]) -> EvalEstimate:
    """The preview's step estimates (StagedStep or StepEstimate figures) grouped
    by the candidates and graders of `evaluation` (Run.evaluation)."""
    by_name = {step.name: step for step in steps}
    labels = {c["key"]: c["label"] for c in evaluation["candidates"]}
    estimate = EvalEstimate(name=evaluation["name"], seed=evaluation["seed"])
    for candidate in evaluation["candidates"]:
        estimate.candidates.append(
            EvalPart(
                key=candidate["key"],
                label=candidate["label"],
                kind="candidate",
                model=candidate["model"],
                detail="one answer per row",
                steps=(by_name[candidate["step"]],),
            )
        )
    for grader in evaluation["graders"]:
        kind = grader["kind"]
        if kind == "check":
            detail = f"checks each answer ({grader['check']['type']}): no model, no cost"
            model = "—"
        elif kind == "judge":
            detail = f"grades each candidate's answer (score: {grader['score']})"
            model = grader["model"]
        else:
            a, b = (labels[key] for key in grader["compare"])
            detail = f"{a} against {b}, in both orders"
            model = grader["model"]
        estimate.graders.append(
            EvalPart(
                key=grader["name"],
                label=grader["name"],
                kind=kind,
                model=model,
                detail=detail,
                steps=tuple(by_name[name] for name in grader.get("steps", {}).values()),
            )
        )
    return estimate


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    return sum(amounts, Decimal(0))
