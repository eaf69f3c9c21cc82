"""The API's callers: Ada's and Bob's scripts, each with a token of its own."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.support import api_client


@pytest.fixture
def as_ada(ada) -> Client:
    return api_client(ada)


@pytest.fixture
def as_bob(bob) -> Client:
    return api_client(bob)
