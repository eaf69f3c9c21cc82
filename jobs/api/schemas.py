"""What the API's routers share: text and deadline input types, paging limits,
money as text, and the error bodies every endpoint may answer.

A schema that one resource uses lives with its router (runs.py, capacity.py), or
beside it when there are many (job_schemas.py, for jobs.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from ninja import Path, Schema
from pydantic import AfterValidator, BeforeValidator

from jobs.text import storable_text_error

MAX_PAGE_SIZE = 100
MAX_ID = 2**63 - 1


def _storable(text: str) -> str:
    if problem := storable_text_error(text):
        raise ValueError(problem)
    return text


Text = Annotated[str, AfterValidator(_storable)]


# An empty form field is no deadline; a time without a zone is refused by the service.
def _in_utc(value: datetime | None) -> datetime | None:
    """The same moment in UTC: an offset ISO 8601 allows but PostgreSQL does
    not store (beyond ±15:59, e.g. +20:56) must not reach the database."""
    return value.astimezone(UTC) if value is not None and value.tzinfo else value


Deadline = Annotated[
    datetime | None, BeforeValidator(lambda value: value or None), AfterValidator(_in_utc)
]
DEADLINE_DESCRIPTION = (
    "ISO 8601 with a time zone, e.g. 2030-06-01T14:00:00+02:00. Work not finished by then "
    "is handled as deadline_policy says."
)
POLICY_DESCRIPTION = (
    "At the deadline: keep (keep waiting), cancel (cancel what has not finished, running "
    "jobs too), or standard (move unfinished flex jobs to the standard tier, at its price)."
)
# A job's or a batch's id in a path.
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]


def decimal_text(value) -> str | None:
    """An amount of USD as the API writes it: a plain decimal string ("0.00000000",
    never str()'s "0E-8" for a zero at the stored precision), or None."""
    return None if value is None else f"{Decimal(value):f}"


class Message(Schema):
    detail: str


class Invalid(Schema):
    detail: str
    errors: dict[str, list[str]]


ERRORS = {401: Message, 404: Message, 422: Invalid}
