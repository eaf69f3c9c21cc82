"""Schema-driven fuzzing of the JSON API: whatever schemathesis sends, built
from /api/openapi.json (valid and invalid input alike), no answer is a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from flexdash.wsgi import application
from jobs.api import api
from jobs.engine import tokens
from jobs.models import Job, State
from tests.support import submit

MAX_EXAMPLES = 50


@contextmanager
def connection_kept_across_requests() -> Iterator[None]:
    """Requests go through the real WSGI app, whose end-of-request hook would
    close the test's database connection and with it the test transaction
    (as Django's own test client prevents in the same way)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(ada, bob) -> dict[str, str]:
    """Ada's token, with jobs of hers in every state and one of Bob's, so
    small generated ids reach real rows."""
    submit(bob, "not yours")
    jobs = submit(ada, *State.values)
    for job, state in zip(jobs, State.values, strict=True):
        Job.objects.filter(pk=job.pk).update(state=state)
    _, token = tokens.api_token_create(user=ada, name="fuzz")
    return {"Authorization": f"Bearer {token}"}


# The document /api/openapi.json serves (the first test checks they agree),
# loaded at collection: the endpoint itself needs a token, so a database.
# schemathesis.pytest.from_fixture, which would load it inside a test, breaks
# on pytest 9 (it sets Function._nodeid, which pytest 9 removed).
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(api.get_openapi_schema())))


def test_the_fuzzed_document_is_the_one_served(bearer):
    served = Client(headers=bearer).get("/api/openapi.json")
    assert served.json() == schema.raw_schema


# One test per operation, each with an id of its own: schema.parametrize()
# gives all of them the same node id on pytest 9, which pytest-xdist's group
# scheduling folds into one test.
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_no_input_makes_the_api_fail(operation, bearer):
    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def no_server_error(case):
        with connection_kept_across_requests():
            case.call_and_validate(app=application, headers=bearer, checks=[not_a_server_error])

    no_server_error()
