"""The account page: a person's API tokens, created and revoked."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from jobs.engine import tokens
from jobs.models import ApiToken

pytestmark = pytest.mark.django_db

ACCOUNT = "/account/"
CREATE = "/account/tokens/"


def revoke_url(token: ApiToken) -> str:
    return f"/account/tokens/{token.pk}/revoke/"


def shown_token(html: str) -> str:
    match = re.search(r'id="new-token"[^>]*value="([^"]+)"', html)
    assert match, "the new token is not on the page"
    return match.group(1)


def test_it_needs_a_login():
    for response in (Client().get(ACCOUNT), Client().post(CREATE, {"name": "x"})):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert not ApiToken.objects.exists()


def test_it_lists_my_tokens_and_not_anyone_elses(ada, bob, signed_in):
    tokens.api_token_create(user=ada, name="nightly export")
    tokens.api_token_create(user=bob, name="bob's script")
    html = signed_in.get(ACCOUNT).content.decode()
    assert "nightly export" in html
    assert "bob&#x27;s script" not in html and "bob's script" not in html
    assert ApiToken.objects.get(user=ada).prefix in html
    assert "never" in html


def test_creating_a_token_shows_it_once_and_it_works(ada, signed_in):
    response = signed_in.post(CREATE, {"name": "analysis notebook"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    token = shown_token(html)
    assert "shown only this once" in html
    row = ApiToken.objects.get(user=ada)
    assert row.name == "analysis notebook"
    assert row.token_hash == tokens.token_hash(token)
    assert token not in signed_in.get(ACCOUNT).content.decode()
    api = Client(headers={"Authorization": f"Bearer {token}"})
    assert api.get("/api/jobs").status_code == 200


def test_a_token_needs_a_name(signed_in):
    response = signed_in.post(CREATE, {"name": "  "})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert 'id="new-token"' not in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoking_stops_the_token_working(ada, signed_in):
    row, token = tokens.api_token_create(user=ada, name="old script")
    response = signed_in.post(revoke_url(row), follow=True)
    assert response.redirect_chain[-1][0] == ACCOUNT
    assert "Revoked the token" in response.content.decode()
    row.refresh_from_db()
    assert row.revoked_at is not None
    api = Client(headers={"Authorization": f"Bearer {token}"})
    assert api.get("/api/jobs").status_code == 401


def test_revoking_twice_keeps_the_first_time(ada, signed_in):
    row, _ = tokens.api_token_create(user=ada, name="old script")
    signed_in.post(revoke_url(row))
    row.refresh_from_db()
    first = row.revoked_at
    signed_in.post(revoke_url(row))
    row.refresh_from_db()
    assert row.revoked_at == first


def test_revoke_needs_post(ada, signed_in):
    row, _ = tokens.api_token_create(user=ada, name="script")
    assert signed_in.get(revoke_url(row)).status_code == 405
    row.refresh_from_db()
    assert row.revoked_at is None


def test_someone_elses_token_is_a_404(bob, signed_in):
    row, _ = tokens.api_token_create(user=bob, name="bob's script")
    assert signed_in.post(revoke_url(row)).status_code == 404
    row.refresh_from_db()
    assert row.revoked_at is None


def test_forms_need_the_csrf_token(ada):
    row, _ = tokens.api_token_create(user=ada, name="script")
    client = Client(enforce_csrf_checks=True)
    client.force_login(ada)
    assert client.post(CREATE, {"name": "sneaky"}).status_code == 403
    assert client.post(revoke_url(row)).status_code == 403
    row.refresh_from_db()
    assert row.revoked_at is None
    assert ApiToken.objects.count() == 1
