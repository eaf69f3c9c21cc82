"""python manage.py apitoken NAME [--user USERNAME]"""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from jobs.engine.tokens import token_hash
from jobs.models import ApiToken

pytestmark = pytest.mark.django_db


def apitoken(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("apitoken", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def make_user(username: str, **flags):
    return get_user_model().objects.create_user(username, **flags)


def test_it_prints_a_working_token_for_the_only_superuser():
    admin = make_user("admin", is_superuser=True, is_staff=True)
    make_user("researcher")
    token, note = apitoken("nightly export")
    assert token.startswith("fd_")
    row = ApiToken.objects.get()
    assert (row.user, row.name) == (admin, "nightly export")
    assert "shown only this once" in note
    response = Client(headers={"Authorization": f"Bearer {token}"}).get("/api/jobs")
    assert response.status_code == 200


def test_it_stores_only_the_hash():
    make_user("admin", is_superuser=True)
    token, _ = apitoken("script")
    row = ApiToken.objects.get()
    assert row.token_hash == token_hash(token)
    assert token not in (row.token_hash, row.prefix)
    assert token.startswith(row.prefix)


def test_it_makes_a_token_for_the_named_user():
    make_user("admin", is_superuser=True)
    grace = make_user("grace")
    apitoken("script", "--user", "grace")
    assert ApiToken.objects.get().user == grace


def test_an_unknown_user_is_refused_by_name():
    make_user("admin", is_superuser=True)
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        apitoken("script", "--user", "nobody")
    assert not ApiToken.objects.exists()


def test_a_deactivated_user_is_refused():
    make_user("gone", is_active=False)
    with pytest.raises(CommandError, match="deactivated"):
        apitoken("script", "--user", "gone")


@pytest.mark.parametrize("superusers", [0, 2])
def test_without_exactly_one_superuser_it_asks_for_user(superusers):
    for number in range(superusers):
        make_user(f"admin{number}", is_superuser=True)
    with pytest.raises(CommandError, match="--user"):
        apitoken("script")
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_bad_name_is_refused(name):
    make_user("admin", is_superuser=True)
    with pytest.raises(CommandError, match="NAME"):
        apitoken(name)
