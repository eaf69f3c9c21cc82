"""A run's failed jobs, told apart by their last attempt's error: those a retry
may answer, and those it would not (a bad request, a blocked answer). The run
page's two retry buttons count them; services.run_retry_failed and
services.run_resend_permanent requeue each part."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Exists, F, OuterRef, QuerySet

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
    """The permanent ones counted by kind from the failed jobs' last attempts,
    the rest by subtraction; with what a retry grants each part (actions.retry_grants)."""
    failed = Job.objects.filter(run=run, state=State.FAILED)
    kinds = (
        Attempt.objects.filter(
            job__run=run,
            job__state=State.FAILED,
            number=F("job__attempts"),
            error_kind__in=PERMANENT_KINDS,
        )
        .order_by()
        .values_list("error_kind")
        .annotate(n=Count("*"))
    )
    # Most first; a tie in PERMANENT_KINDS' order.
    by_kind = sorted(
        ((n, kind) for kind, n in kinds), key=lambda c: (-c[0], PERMANENT_KINDS.index(c[1]))
    )
    permanent = sum(n for n, _ in by_kind)
    retryable = failed.count() - permanent
    worth_a_retry, for_good = failed.exclude(failed_for_good()), failed.filter(failed_for_good())
    return FailedSplit(
        retryable=retryable,
        permanent=permanent,
        retryable_grant=actions.retry_grants(worth_a_retry) if retryable else None,
        permanent_grant=actions.retry_grants(for_good) if permanent else None,
        permanent_kinds=[(n, PERMANENT_WORDS[kind][0 if n == 1 else 1]) for n, kind in by_kind],
    )
