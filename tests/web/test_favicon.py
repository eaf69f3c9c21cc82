"""The icon: every page links it, and /favicon.ico (which browsers ask for
whatever a page says) leads to the same file, with or without a login."""

from __future__ import annotations

import pytest
from django.templatetags.static import static

from tests.support import as_user

pytestmark = pytest.mark.django_db

ICON = static("img/favicon.svg")


def test_favicon_ico_leads_to_the_icon_without_a_login(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == ICON
    icon = client.get(ICON)
    assert icon.status_code == 200
    assert icon["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(icon.streaming_content)


@pytest.mark.parametrize("url", ["/", "/jobs/", "/accounts/login/"])
def test_every_page_links_the_icon(client, ada, url):
    page = as_user(client, ada).get(url).content.decode()
    assert f'<link rel="icon" href="{ICON}" type="image/svg+xml">' in page
