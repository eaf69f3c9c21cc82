"""/api/docs: Swagger UI for signed-in people, from ninja's bundled files,
under the site's Content-Security-Policy."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.support import as_user

pytestmark = pytest.mark.django_db


def test_it_shows_the_docs_to_a_signed_in_user(client, ada):
    page = as_user(client, ada).get("/api/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="swagger-ui"' in html and "/api/openapi.json" in html


def test_it_sends_anyone_else_to_the_login_page(client):
    page = client.get("/api/docs")
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/login/?next=/api/docs")


def test_it_loads_every_asset_from_this_site(client, ada):
    html = as_user(client, ada).get("/api/docs").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) == 4
    for url in assets:
        assert url.startswith("/api/docs/assets/")
        response = Client().get(url)
        assert response.status_code == 200, url
        assert b"".join(response.streaming_content)


def test_it_has_no_inline_script_the_policy_would_block(client, ada):
    page = as_user(client, ada).get("/api/docs")
    policy = page["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page.content.decode())
    # Only the settings, a JSON data block that no browser runs.
    assert inline == [' id="swagger-settings" type="application/json"']


def test_it_serves_only_the_files_the_page_loads(client):
    assert client.get("/api/docs/assets/redoc.standalone.js").status_code == 404
    assert client.get("/api/docs/assets/..%2F__init__.py").status_code == 404


def test_the_openapi_document_keeps_its_gate(client, ada):
    assert client.get("/api/openapi.json").status_code == 401
    assert as_user(client, ada).get("/api/openapi.json").status_code == 200
