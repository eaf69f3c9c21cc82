"""An eval run compared with another run of the same dataset: has a candidate got
better or worse, and on which rows.

- Rows are matched by line number, and only when their table values are
  equal; a row that differs (or is in one run only) is counted, not compared.
- Candidates are matched by label, graders by name (and kind; a pairwise
  grader also by the two labels it compares).
- For each candidate and grader: the mean before and now over the matched rows
  graded in both runs, the delta (now - before), and its 95% paired bootstrap
  interval, scipy.stats.bootstrap resampling those rows (RESAMPLES times, as
  the leaderboard does), seeded by the newer run's seed and the pair's places.
  Every grade here is better higher (a pass, a score, a win), so the delta is
  a regression when its interval lies below 0, an improvement above, and
  neither when it holds 0.
- A changed row is a matched row where some grade differs (its state or value).

"Before" is the run created first, whichever page it was asked from.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db.models import Count, QuerySet

from jobs.models import ACTIVE_STATES, Run
from jobs.runs.leaderboard import (
    CONFIDENCE,
    RESAMPLES,
    Grade,
    GradedRow,
    graded_rows,
    interval,
)

CHANGED_LISTED = 200  # changed rows listed (all are counted)
REGRESSION, IMPROVEMENT, UNCLEAR = "regression", "improvement", "unclear"


def comparable_runs(run: Run) -> QuerySet[Run]:
    """The owner's other eval runs with as many rows as this one, newest first."""
    rows = run.rows.count()
    return (
        Run.objects.filter(owner_id=run.owner_id, evaluation__isnull=False)
        .exclude(pk=run.pk)
        .annotate(row_count=Count("rows"))
        .filter(row_count=rows)
        .order_by("-created_at", "-id")
    )


def in_order(run: Run, other: Run) -> tuple[Run, Run]:
    """(before, now): the one created first, then the other."""
    return (other, run) if (other.created_at, other.pk) < (run.created_at, run.pk) else (run, other)


# --- The figures ----------------------------------------------------------------------
def paired_interval(
    before: list[float], now: list[float], *, seed: int, place: tuple[int, ...]
) -> tuple[float, float] | None:
    """The 95% percentile bootstrap interval of mean(now) - mean(before), resampling
    the pairs (None below two): the interval of the mean of the pairs' differences,
    as leaderboard.interval draws it (resampling the pairs is resampling those)."""
    return interval([n - b for n, b in zip(now, before, strict=True)], seed=seed, place=place)


def verdict(low: float | None, high: float | None) -> str | None:
    if low is None or high is None:
        return None
    if high < 0:
        return REGRESSION
    if low > 0:
        return IMPROVEMENT
    return UNCLEAR


@dataclass(frozen=True)
class Delta:
    candidate: str  # the label; for a pairwise grader, its first candidate's
    grader: str
    kind: str
    paired: int  # matched rows graded in both runs
    before: float | None
    now: float | None
    low: float | None
    high: float | None

    @property
    def delta(self) -> float | None:
        return None if self.now is None else self.now - self.before

    @property
    def verdict(self) -> str | None:
        return verdict(self.low, self.high)

    def as_json(self) -> dict:
        return {
            "candidate": self.candidate,
            "grader": self.grader,
            "kind": self.kind,
            "paired": self.paired,
            "before": self.before,
            "now": self.now,
            "delta": self.delta,
            "low": self.low,
            "high": self.high,
            "verdict": self.verdict,
        }


def grade_words(kind: str, grade: Grade) -> str:
    """A grade in a word or two: ✓ or ✗ for a check, a judge's score, a pairwise
    outcome for the first candidate (won, lost, even), else its state."""
    if grade.state != "graded":
        return grade.state
    if kind == "check":
        return "✓" if grade.value == 1.0 else "✗"
    if kind == "pairwise":
        return {1.0: "won", 0.0: "lost"}.get(grade.value, "even")
    return f"{grade.value:g}"


@dataclass(frozen=True)
class Change:
    candidate: str
    grader: str
    kind: str
    before: Grade
    now: Grade

    @property
    def before_words(self) -> str:
        return grade_words(self.kind, self.before)

    @property
    def now_words(self) -> str:
        return grade_words(self.kind, self.now)


@dataclass(frozen=True)
class ChangedRow:
    line: int
    custom_id: str
    changes: list[Change]


@dataclass
class Comparison:
    before: Run
    now: Run
    seed: int
    matched: int
    mismatched: int  # rows whose values differ, or in one run only
    deltas: list[Delta]
    changed: int
    changed_rows: list[ChangedRow]  # the first CHANGED_LISTED
    only_before: dict[str, list[str]] = field(default_factory=dict)  # candidates, graders
    only_now: dict[str, list[str]] = field(default_factory=dict)
    pending: bool = False
    confidence: float = CONFIDENCE
    resamples: int = RESAMPLES

    @property
    def not_in_both(self) -> list[tuple[str, dict[str, list[str]]]]:
        return [("before", self.only_before), ("now", self.only_now)]

    @property
    def regressions(self) -> list[Delta]:
        return [d for d in self.deltas if d.verdict == REGRESSION]

    @property
    def improvements(self) -> list[Delta]:
        return [d for d in self.deltas if d.verdict == IMPROVEMENT]

    def as_json(self) -> dict:
        def side(run: Run) -> dict:
            return {
                "run_id": run.pk,
                "name": run.name,
                "eval": run.evaluation["name"],
                "created_at": run.created_at.isoformat(),
            }

        return {
            "before": side(self.before),
            "now": side(self.now),
            "finished": not self.pending,
            "interval": {
                "confidence": self.confidence,
                "method": "paired percentile bootstrap",
                "resamples": self.resamples,
                "seed": self.seed,
                "resampled": "matched rows graded in both runs",
            },
            "rows": {"matched": self.matched, "mismatched": self.mismatched},
            "deltas": [d.as_json() for d in self.deltas],
            "regressions": len(self.regressions),
            "improvements": len(self.improvements),
            "changed_rows": {
                "count": self.changed,
                "listed": [
                    {
                        "line": row.line,
                        "custom_id": row.custom_id,
                        "changes": [
                            {
                                "candidate": c.candidate,
                                "grader": c.grader,
                                "kind": c.kind,
                                "before": _grade_json(c.before),
                                "now": _grade_json(c.now),
                            }
                            for c in row.changes
                        ],
                    }
                    for row in self.changed_rows
                ],
            },
            "not_in_both": {"before": self.only_before, "now": self.only_now},
        }


def _grade_json(grade: Grade) -> dict:
    return {"state": grade.state, "value": grade.value}


# --- Matching -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pairing:
    """One figure both runs have: where to find it in each run's graded rows."""

    candidate: str
    grader: str
    kind: str
    before_key: str  # candidate key in the run before (a pairwise grader: unused)
    now_key: str


def _pairings(before: dict, now: dict) -> tuple[list[_Pairing], dict, dict]:
    labels_before = {c["label"]: c["key"] for c in before["candidates"]}
    labels_now = {c["label"]: c["key"] for c in now["candidates"]}
    graders_before = {g["name"]: g for g in before["graders"]}
    label_of = {
        "before": {c["key"]: c["label"] for c in before["candidates"]},
        "now": {c["key"]: c["label"] for c in now["candidates"]},
    }

    def same(grader_before: dict, grader_now: dict) -> bool:
        if grader_before["kind"] != grader_now["kind"]:
            return False
        if grader_now["kind"] != "pairwise":
            return True
        return [label_of["before"][k] for k in grader_before["compare"]] == [
            label_of["now"][k] for k in grader_now["compare"]
        ]

    graders = [g for g in now["graders"] if g["name"] in graders_before]
    graders = [g for g in graders if same(graders_before[g["name"]], g)]
    names = {g["name"] for g in graders}
    pairings: list[_Pairing] = []
    for grader in graders:
        if grader["kind"] == "pairwise":
            first = label_of["now"][grader["compare"][0]]
            pairings.append(_Pairing(first, grader["name"], "pairwise", "", ""))
            continue
        for candidate in now["candidates"]:
            if (key_before := labels_before.get(candidate["label"])) is not None:
                pairings.append(
                    _Pairing(
                        candidate["label"],
                        grader["name"],
                        grader["kind"],
                        key_before,
                        candidate["key"],
                    )
                )
    only_before = {
        "candidates": sorted(set(labels_before) - set(labels_now)),
        "graders": sorted(set(graders_before) - names),
    }
    only_now = {
        "candidates": sorted(set(labels_now) - set(labels_before)),
        "graders": sorted({g["name"] for g in now["graders"]} - names),
    }
    return pairings, only_before, only_now


def _grade(row: GradedRow, pairing: _Pairing, key: str) -> Grade:
    """The grade a figure reads from a row; for a pairwise grader, its outcome for
    the first candidate (ungraded without both verdicts)."""
    if pairing.kind == "pairwise":
        outcome = row.pairs[pairing.grader].outcome
        return Grade("ungraded") if outcome is None else Grade("graded", value=outcome)
    return row.cells[key].grades[pairing.grader]


def _matched_rows(
    before: Run, now: Run, counts: dict[str, int]
) -> Iterator[tuple[tuple[GradedRow, dict], tuple[GradedRow, dict]]]:
    """The rows of both runs (each with its jobs by step) with the same line and
    values, in line order; the rest counted in counts["mismatched"]."""
    earlier, later = graded_rows(before), graded_rows(now)
    a, b = next(earlier, None), next(later, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0].line < b[0].line):
            counts["mismatched"] += 1
            a = next(earlier, None)
        elif a is None or b[0].line < a[0].line:
            counts["mismatched"] += 1
            b = next(later, None)
        else:
            if a[0].values == b[0].values:
                counts["matched"] += 1
                yield a, b
            else:
                counts["mismatched"] += 1
            a, b = next(earlier, None), next(later, None)


def compare(run: Run, other: Run) -> Comparison:
    """The two eval runs compared, the earlier as before (ValueError for a run that
    is not an eval)."""
    for given in (run, other):
        if not given.evaluation:
            raise ValueError(f"run {given.pk} is not an eval")
    before, now = in_order(run, other)
    pairings, only_before, only_now = _pairings(before.evaluation, now.evaluation)
    values: list[tuple[list[float], list[float]]] = [([], []) for _ in pairings]
    counts = {"matched": 0, "mismatched": 0}
    changed, listed, pending = 0, [], False
    for (row_before, jobs_before), (row_now, jobs_now) in _matched_rows(before, now, counts):
        jobs = [*jobs_before.values(), *jobs_now.values()]
        pending = pending or any(job["state"] in ACTIVE_STATES for job in jobs)
        changes = []
        for pairing, (was, is_now) in zip(pairings, values, strict=True):
            grade_before = _grade(row_before, pairing, pairing.before_key)
            grade_now = _grade(row_now, pairing, pairing.now_key)
            if grade_before.state == grade_now.state == "graded":
                was.append(grade_before.value)
                is_now.append(grade_now.value)
            if (grade_before.state, grade_before.value) != (grade_now.state, grade_now.value):
                changes.append(
                    Change(pairing.candidate, pairing.grader, pairing.kind, grade_before, grade_now)
                )
        if changes:
            changed += 1
            if len(listed) < CHANGED_LISTED:
                listed.append(ChangedRow(row_now.line, row_now.custom_id, changes))
    seed = int(now.evaluation["seed"])
    deltas = []
    for place, (pairing, (was, is_now)) in enumerate(zip(pairings, values, strict=True)):
        bounds = paired_interval(was, is_now, seed=seed, place=(place,))
        low, high = bounds if bounds else (None, None)
        deltas.append(
            Delta(
                candidate=pairing.candidate,
                grader=pairing.grader,
                kind=pairing.kind,
                paired=len(is_now),
                before=statistics.fmean(was) if was else None,
                now=statistics.fmean(is_now) if is_now else None,
                low=low,
                high=high,
            )
        )
    return Comparison(
        before=before,
        now=now,
        seed=seed,
        matched=counts["matched"],
        mismatched=counts["mismatched"],
        deltas=deltas,
        changed=changed,
        changed_rows=listed,
        only_before=only_before,
        only_now=only_now,
        pending=pending,
    )
