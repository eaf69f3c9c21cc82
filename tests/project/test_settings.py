"""Settings from the environment: a bad value stops start-up naming the variable."""

from __future__ import annotations

import pytest

from tests.support import start_up


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FLEX_MAX_ATTEMPTS", "many", "FLEX_MAX_ATTEMPTS must be a whole number, got 'many'"),
        ("FLEX_MAX_ATTEMPTS", "0", "FLEX_MAX_ATTEMPTS must be at least 1"),
        ("FLEX_REQUEST_TIMEOUT", "soon", "FLEX_REQUEST_TIMEOUT must be a number"),
        ("FLEX_BACKOFF_CAP", "1", "FLEX_BACKOFF_CAP must not be smaller than FLEX_BACKOFF_BASE"),
        ("GEMINI_API", "grpc", "GEMINI_API must be one of interactions, generate_content"),
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG must be true or false"),
        ("DATABASE_URL", "nosuchdb://x", "DATABASE_URL is not a usable database URL"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(name, value, message):
    result = start_up(**{name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_the_defaults_start():
    assert start_up().returncode == 0
