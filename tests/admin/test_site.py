"""The admin says whose it is."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_admin_is_named_flexdash(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert "<title>FlexDash operations | FlexDash admin</title>" in page
    assert "FlexDash administration" in page
    assert "Django administration" not in page
