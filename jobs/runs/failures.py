"""A run's failed jobs, told apart by their last attempt's error: those a retry
may answer, and those it would not (a bad request, a blocked answer). The run
page's two retry buttons count them; services.run_retry_failed and
services.run_resend_permanent requeue each part."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import (
    Count,
    Exists,
    F,
    FilteredRelation,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
)

from jobs.engine import actions
from jobs.models import Attempt, ErrorKind, Job, Run, State

# Errors a retry of the same request meets again: Gemini refused the request
# (400, 404) or answered that it will not answer it (a safety block, a failed
# interaction). The other kinds (capacity, rate limits, timeouts, a lost
# worker, an answer that broke its schema) may well pass next time.
PERMANENT_KINDS = (ErrorKind.BAD_REQUEST, ErrorKind.NOT_FOUND, ErrorKind.FAILED_IN_BODY)
PERMANENT_WORDS = {
    ErrorKind.BAD_REQUEST: ("bad request", "bad requests"),
    ErrorKind.NOT_FOUND: ("model or file not found", "models or files not found"),
    ErrorKind.FAILED_IN_BODY: ("blocked or refused answer", "blocked or refused answers"),
}


def last_attempt() -> QuerySet[Attempt]:
    """The job's last attempt (numbered by its attempts: one row, by the unique index)."""
    return Attempt.objects.filter(job=OuterRef("pk"), number=OuterRef("attempts")).order_by()


def failed_for_good() -> Exists:
    """A job whose last attempt ended in one of PERMANENT_KINDS."""
    return Exists(last_attempt().filter(error_kind__in=PERMANENT_KINDS))


@dataclass(frozen=True)
class FailedSplit:
    """The run's failed jobs: those a retry may answer, and those it would not."""

    retryable: int
    permanent: int
    retryable_grant: tuple[int, int] | None
    permanent_grant: tuple[int, int] | None
    permanent_kinds: list[tuple[int, str]]  # (count, words), most first

    @property
    def permanent_words(self) -> str:
        """ "2 bad requests, 1 blocked or refused answer"."""
        return ", ".join(f"{count:,} {words}" for count, words in self.permanent_kinds)


def failed_split(run: Run) -> FailedSplit:
    """The run's failed jobs by their last attempt's error kind, in one pass
    (a run page and its 2 s poll read it: a 50,000-job run has thousands
    failed): the permanent ones counted by kind, the rest together, each part
    with what a retry grants it (actions.attempts_per_retry)."""
    grant = actions.attempts_per_retry()
    groups = (
        Job.objects.filter(run=run, state=State.FAILED)
        # Joined, not a subquery: SQLite would look the attempt up twice per
        # job, once to select its kind and once to group by it.
        .annotate(
            last=FilteredRelation("attempt_log", condition=Q(attempt_log__number=F("attempts")))
        )
        .order_by()
        .values(kind=F("last__error_kind"))
        .annotate(n=Count("*"), fewest=Min(grant), most=Max(grant))
    )
    retryable, permanent, by_kind = _Part(), _Part(), []
    for group in groups:
        kind = group["kind"]
        part = permanent if kind in PERMANENT_KINDS else retryable
        part.add(group["n"], group["fewest"], group["most"])
        if kind in PERMANENT_KINDS:
            by_kind.append((group["n"], kind))
    # Most first; a tie in PERMANENT_KINDS' order.
    by_kind.sort(key=lambda c: (-c[0], PERMANENT_KINDS.index(c[1])))
    return FailedSplit(
        retryable=retryable.n,
        permanent=permanent.n,
        retryable_grant=retryable.grant,
        permanent_grant=permanent.grant,
        permanent_kinds=[(n, PERMANENT_WORDS[kind][0 if n == 1 else 1]) for n, kind in by_kind],
    )


@dataclass
class _Part:
    """Failed jobs added up group by group: how many, and the fewest and most
    attempts a retry grants them."""

    n: int = 0
    fewest: int | None = None
    most: int | None = None

    def add(self, n: int, fewest: int, most: int) -> None:
        self.n += n
        self.fewest = fewest if self.fewest is None else min(self.fewest, fewest)
        self.most = most if self.most is None else max(self.most, most)

    @property
    def grant(self) -> tuple[int, int] | None:
        return None if self.n == 0 else (self.fewest, self.most)
