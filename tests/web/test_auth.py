"""Logging in and out; nothing is shown to someone who is not logged in."""

from __future__ import annotations

import pytest
from django.test import Client

from jobs.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(ada):
    return Job.objects.create(owner=ada, input_text="hello")


def test_it_shows_the_styled_login_page(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b"Log in to FlexDash" in response.content
    assert b"css/flexdash.css" in response.content


def test_it_logs_in_and_lands_on_the_overview(client, ada_password):
    response = client.post(
        "/accounts/login/", {"username": "ada", "password": ada_password}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    assert b"<h1>Overview</h1>" in response.content


def test_it_says_when_the_password_is_wrong(client, ada_password):
    response = client.post("/accounts/login/", {"username": "ada", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert b'value="ada"' in response.content


@pytest.mark.parametrize(
    "path",
    ["/", "/jobs/", "/jobs/new/", "/jobs/{id}/"],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_every_page_and_fragment_requires_login(client, job, path, htmx):
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.get(path.format(id=job.pk), headers=headers)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("action", ["cancel", "retry", "run-again"])
def test_actions_require_login(client, job, action):
    response = client.post(f"/jobs/{job.pk}/{action}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    job.refresh_from_db()
    assert job.state == "queued"
    assert Job.objects.count() == 1


def test_logout_is_a_post_form_with_csrf(ada):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ada)
    page = client.get("/")
    assert b'<form class="logout" method="post" action="/accounts/logout/">' in page.content

    assert client.post("/accounts/logout/").status_code == 403
    assert client.get("/").status_code == 200

    token = page.context["csrf_token"]
    response = client.post("/accounts/logout/", {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.parametrize(
    ("path", "current"),
    [("/", "/"), ("/jobs/", "/jobs/"), ("/jobs/new/", "/jobs/new/"), ("/account/", "/account/")],
)
def test_the_navigation_marks_the_current_page(signed_in, path, current):
    page = signed_in.get(path).content.decode()
    for link in ("/", "/jobs/", "/jobs/new/", "/account/"):
        assert f'<a href="{link}"' in page
    assert f'<a href="{current}" aria-current="page">' in page
    assert "/admin/" not in page
