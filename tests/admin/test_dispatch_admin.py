"""The dispatch control, the one row every dispatcher reads: changed, never
added or deleted by hand."""

from __future__ import annotations

import pytest

from jobs.engine import control
from jobs.models import DispatchControl

pytestmark = pytest.mark.django_db


def test_the_dispatch_control_cannot_be_deleted_or_added(admin_client):
    switch = control.dispatch_control()
    listing = admin_client.get("/admin/jobs/dispatchcontrol/")
    assert "delete_selected" not in listing.content.decode()
    assert "resume" in listing.content.decode()
    page = admin_client.get(f"/admin/jobs/dispatchcontrol/{switch.pk}/change/").content.decode()
    assert "/delete/" not in page
    delete = admin_client.post(f"/admin/jobs/dispatchcontrol/{switch.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    assert admin_client.get("/admin/jobs/dispatchcontrol/add/").status_code == 403
    assert DispatchControl.objects.filter(pk=switch.pk).exists()
