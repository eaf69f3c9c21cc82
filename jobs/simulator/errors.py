"""The simulator's one exception, `ApiError`, and Google's status name for each code it uses.

Every part of a request that can end it in an error raises `ApiError`: the directives, the
reading of a request body, the key check, the rate limit. It lives below all of them so each
can raise it; how one looks on the wire is `wire.error_response`.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass
class ApiError(Exception):
    """An error answer; raised anywhere in a request, rendered once by `wire.error_response`."""

    status: int
    message: str
    _: KW_ONLY
    retry_after: int | None = None
    retry_info: int | None = None
