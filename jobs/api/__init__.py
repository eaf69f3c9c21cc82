"""The JSON API for scripts: the NinjaAPI object, its routers, and the answers
every endpoint shares.

One router per resource: jobs.py (/api/jobs), runs.py (/api/batches, runs
uploaded from a file), capacity.py (/api/capacity), evals.py (/api/evals, an
eval batch's leaderboard). Shared schemas are in schemas.py (the jobs' own in
job_schemas.py), token auth in auth.py, the docs page in docs.py, the URLconf
in urls.py.

Here: the gate on the OpenAPI document and the error handlers, which answer
through this object. Every error answers `{"detail": "..."}`, an unexpected
one too (500, its traceback logged as Django logs a page's); bad input (422)
adds `"errors": {field: [messages]}`.
"""

from __future__ import annotations

import json
import logging
from functools import wraps

from django.conf import settings
from django.core import signals
from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.log import log_response
from ninja import NinjaAPI
from ninja.errors import AuthenticationError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser

from jobs import formats
from jobs.api import capacity, evals, jobs, runs
from jobs.api.auth import BearerToken
from jobs.runs import limits as run_limits
from jobs.runs.reading import RunRejected
from jobs.web import statement_timeout

__all__ = ["api"]


def _signed_in_or_token(view):
    """The OpenAPI document, like every page, is for signed-in people and
    token holders only."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            try:
                BearerToken()(request)
            except AuthenticationError as refused:
                return _unauthorised(request, refused)
        return view(request, *args, **kwargs)

    return wrapper


class _BoundedJsonParser(Parser):
    """JSON bodies pass the check a file's JSON lines pass before json.loads
    builds them: nested or wide enough to exhaust the stack or the memory of
    the process, they are refused as unreadable (400) instead."""

    def parse_body(self, request: HttpRequest) -> dict:
        text = request.body.decode()
        if problem := formats.json_shape_problem(text):
            raise ValueError(problem)
        return json.loads(text)


api = NinjaAPI(
    title="FlexDash API",
    version="1",
    description="Submit prompts to run on Gemini's flex tier and follow them. "
    "Authenticate with 'Authorization: Bearer <token>'; tokens are made on /account/.",
    urls_namespace="api",
    auth=BearerToken(),
    parser=_BoundedJsonParser(),
    # The docs page, /api/docs, is ours (jobs/api/docs.py): ninja's would load
    # Swagger UI from a CDN, and be gated like the document, not by a log-in.
    docs_url=None,
    docs_decorator=_signed_in_or_token,
)
api.add_router("/jobs", jobs.router)
api.add_router("/batches", runs.router)
api.add_router("/capacity", capacity.router)
api.add_router("/evals", evals.router)


# --- Errors --------------------------------------------------------------------
def _unprocessable(request: HttpRequest, errors: dict[str, list[str]]) -> HttpResponse:
    summary = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
    return api.create_response(request, {"detail": summary, "errors": errors}, status=422)


@api.exception_handler(RunRejected)
def _file_refused(request: HttpRequest, exc: RunRejected) -> HttpResponse:
    detail = f"The file was refused; nothing was created: {exc.summary()}"
    body = {"detail": detail, "errors": {"file": exc.messages()}}
    return api.create_response(request, body, status=422)


@api.exception_handler(NinjaValidationError)
def _invalid_input(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    if refusal := run_limits.upload_refusal(request):
        # The file was dropped as it streamed in, so it is missing: say why.
        return _file_refused(request, RunRejected([(None, refusal)], total=1))
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        # loc is (where, [parameter name,] field, index...): keep the field.
        where, *rest = error.get("loc") or ("body",)
        if where == "body":
            rest = rest[1:]
        field = ".".join(str(part) for part in rest) or where
        message = error.get("msg", "Invalid value.").removeprefix("Value error, ")
        errors.setdefault(field, []).append(message)
    return _unprocessable(request, errors)


@api.exception_handler(DjangoValidationError)
def _refused_by_service(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    return _unprocessable(request, exc.message_dict)


@api.exception_handler(AuthenticationError)
def _unauthorised(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = api.create_response(request, {"detail": exc.message}, status=401)
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(OperationalError)
def _too_slow(request: HttpRequest, exc: OperationalError) -> HttpResponse:
    """A statement cut off by the web's statement timeout; any other database error is a 500."""
    if not statement_timeout.is_statement_timeout(exc):
        raise exc
    detail = statement_timeout.too_slow_message()
    return api.create_response(request, {"detail": detail}, status=503)


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    detail = f"The request body is larger than {limit:,} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)."
    return api.create_response(request, {"detail": detail}, status=413)


@api.exception_handler(PermissionDenied)
@api.exception_handler(BadRequest)
@api.exception_handler(MultiPartParserError)
@api.exception_handler(SuspiciousOperation)
def _refused_by_django(request: HttpRequest, exc: Exception) -> HttpResponse:
    """What Django itself answers 403 or 400 (a malformed multipart body, too
    many fields), answered as JSON, and logged where Django logs it."""
    if isinstance(exc, PermissionDenied):
        status, detail, logger = 403, "Permission denied.", "django.request"
    elif isinstance(exc, SuspiciousOperation):
        # Its message is for the log only, as on Django's own 400 page.
        status, detail, logger = 400, "Bad request.", f"django.security.{type(exc).__name__}"
    else:
        status, detail, logger = 400, f"Bad request: {exc}", "django.request"
    response = api.create_response(request, {"detail": detail}, status=status)
    log_response(
        "%s: %s",
        detail,
        request.path,
        response=response,
        request=request,
        logger=logging.getLogger(logger),
        exception=exc,
    )
    return response


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    """A bug, or a failure nothing above expects (the database gone): a JSON
    500 rather than Django's HTML page, or ninja's plain-text traceback under
    DEBUG. Logged and signalled as Django does for an uncaught exception, so
    the traceback reaches the log and error reporters alike."""
    detail = "Internal server error; it has been logged."
    if settings.DEBUG:
        detail += f" {type(exc).__name__}: {exc}"
    response = api.create_response(request, {"detail": detail}, status=500)
    signals.got_request_exception.send(sender=None, request=request)
    log_response(
        "Internal Server Error: %s", request.path, response=response, request=request, exception=exc
    )
    return response
