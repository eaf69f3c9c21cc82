"""The /api/capacity endpoint: the capacity weather (jobs/capacity.py) that the
overview shows, each model's limits, usage and pacing state, and its schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Router, Schema

from jobs.api.schemas import Message
from jobs.engine import capacity

router = Router(tags=["capacity"])


class ModelWeatherOut(Schema):
    """One model's quota and pacing, as the overview's capacity weather shows it.
    A limit of 0 means no limit."""

    model: str
    state: Literal["normal", "throttled", "paused"]
    reason: str = Field(description="Why, in plain words.")
    rpm_limit: int = Field(description="Requests per minute allowed.")
    rpm_pacing: float = Field(
        description="Requests per minute it paces to now (lower after 429s or in a 503 storm), "
        "to one decimal."
    )
    requests_last_minute: int
    http_429_last_minute: int = Field(
        description="Requests started in the last minute that were answered 429."
    )
    tpm_limit: int = Field(description="Input tokens per minute allowed.")
    tokens_last_minute: int = Field(description="Input tokens sent in the last minute, estimated.")
    rpd_limit: int = Field(description="Requests per day (Pacific) allowed.")
    requests_today: int
    resumes_at: datetime | None = Field(
        description="When a model paused by its daily cap sends again (midnight Pacific)."
    )
    in_flight: int
    concurrency_cap: int | None = Field(description="Most in flight at once during a 503 storm.")
    share_503: float = Field(
        description="Share of recent calls answered 503, 0 to 1, to three decimals."
    )
    share_429: float = Field(
        description="Share of recent calls answered 429, 0 to 1, to three decimals."
    )
    recent_calls: float = Field(
        description="Recent calls the shares are of (decayed count), to one decimal."
    )

    # The weather's figures are exact floats; a reader wants what the overview shows.
    @staticmethod
    def resolve_rpm_pacing(obj: capacity.Weather) -> float:
        return round(obj.rpm_pacing, 1)

    @staticmethod
    def resolve_share_503(obj: capacity.Weather) -> float:
        return round(obj.share_503, 3)

    @staticmethod
    def resolve_share_429(obj: capacity.Weather) -> float:
        return round(obj.share_429, 3)

    @staticmethod
    def resolve_recent_calls(obj: capacity.Weather) -> float:
        return round(obj.recent_calls, 1)


class CapacityOut(Schema):
    at: datetime
    models: list[ModelWeatherOut] = Field(
        description="Models with limits set, recent calls or lowered pacing; for all users."
    )


# The operation id is pinned to the one it had when the API was one file (jobs/api.py).
@router.get(
    "",
    response={200: CapacityOut, 401: Message},
    url_name="capacity",
    operation_id="jobs_api_get_capacity",
)
def get_capacity(request: HttpRequest):
    """The capacity weather: each model's limits, usage and pacing state."""
    now = timezone.now()
    return {"at": now, "models": capacity.weather(now)}
