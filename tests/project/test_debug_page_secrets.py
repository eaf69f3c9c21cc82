"""The DEBUG error page (`make run` keeps DEBUG on) lists the settings and the
request's META, which under runserver is the whole environment: it shows no
password, key, secret or token, neither of DATABASE_URL, nor inside
DATABASES, nor in any other URL such as FLEX_CACHE_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from secrets import token_hex

import pytest
from django.test import Client, override_settings
from django.urls import path

from flexdash.error_reports import SecretHidingFilter
from tests.support import ROOT

HIDDEN = SecretHidingFilter.cleansed_substitute


def secret(kind: str) -> str:
    """A fresh value: the page quotes this file's source around the failing
    line, so the values must not be written in it."""
    return f"{kind}-{token_hex(8)}"


DATABASE_PASSWORD = secret("pg-password")
GEMINI_KEY = secret("gemini-key")
DJANGO_SECRET = secret("django-secret-key-for-this-test-only")
CACHE_PASSWORD = secret("redis-password")
OTHER_SECRETS = {
    "SENTRY_DSN": secret("dsn"),
    "SMTP_PASSWORD": secret("smtp-password"),
    "PARTNER_API_TOKEN": secret("partner-token"),
    "WEBHOOK_SECRET": secret("webhook-secret"),
    "STORAGE_ACCESS_KEY": secret("storage-key"),
}


def boom(request):
    raise RuntimeError("a view that fails")


urlpatterns = [path("boom/", boom)]

RENDER_ERROR_PAGE = """
import sys, django
django.setup()
from django.test import RequestFactory
from django.views.debug import technical_500_response
request = RequestFactory().get("/boom/", HTTP_HOST="localhost")
try:
    raise RuntimeError("a view that fails")
except RuntimeError:
    response = technical_500_response(request, *sys.exc_info())
sys.stdout.write(response.content.decode())
"""


def test_the_laptop_s_error_page_shows_no_database_password_or_key(tmp_path):
    """Settings as `make run` loads them from the environment, DATABASES too."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "flexdash.settings",
        "DJANGO_DEBUG": "true",
        "DATABASE_URL": f"postgres://flex:{DATABASE_PASSWORD}@db.internal:5432/flexdash",
        "GEMINI_API_KEY": GEMINI_KEY,
        "DJANGO_SECRET_KEY": DJANGO_SECRET,
        "FLEXDASH_VAR_DIR": str(tmp_path / "var"),
    }
    result = subprocess.run(
        [sys.executable, "-c", RENDER_ERROR_PAGE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    page = result.stdout
    assert result.returncode == 0, result.stderr

    assert "a view that fails" in page  # the technical page, settings and all
    assert "DATABASES" in page and "db.internal" in page
    for value in (DATABASE_PASSWORD, GEMINI_KEY, DJANGO_SECRET):
        assert value not in page
    assert "postgres://flex:" not in page  # DATABASE_URL is hidden whole


@pytest.mark.django_db
@override_settings(
    DEBUG=True,
    ROOT_URLCONF=__name__,
    FLEX_CACHE_URL=f"rediss://:{CACHE_PASSWORD}@cache.internal:6380/0",
    **{
        **OTHER_SECRETS,
        "SENTRY_DSN": f"https://public:{OTHER_SECRETS['SENTRY_DSN']}@sentry.example/3",
    },
)
def test_the_error_page_masks_every_secret_setting_and_environment_variable():
    # Under runserver META holds the environment; the test client's extra
    # WSGI variables stand in for it.
    environment = {
        "DATABASE_URL": f"postgres://flex:{DATABASE_PASSWORD}@db.internal/flexdash",
        "FLEX_CACHE_URL": f"redis://:{CACHE_PASSWORD}@cache.internal:6379/0",
        "GEMINI_API_KEY": GEMINI_KEY,
    }
    client = Client(raise_request_exception=False)

    response = client.get("/boom/", **environment)
    page = response.content.decode()

    assert response.status_code == 500
    assert "a view that fails" in page
    for value in (DATABASE_PASSWORD, CACHE_PASSWORD, GEMINI_KEY, *OTHER_SECRETS.values()):
        assert value not in page
    # What is not secret stays readable, so the page still helps.
    assert f"rediss://:{HIDDEN}@cache.internal:6380/0" in page
    assert f"https://public:{HIDDEN}@sentry.example/3" in page


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@cache:6379/0", f"redis://:{HIDDEN}@cache:6379/0"),
        ("postgres://user:p:w@x@db/flexdash", f"postgres://user:{HIDDEN}@db/flexdash"),
        ("https://user@host/path", "https://user@host/path"),
        ("https://host:8443/a@b", "https://host:8443/a@b"),
        ("see http://a:b@c and http://d:e@f", f"see http://a:{HIDDEN}@c and http://d:{HIDDEN}@f"),
    ],
)
def test_a_url_keeps_all_but_its_password(url, shown):
    assert SecretHidingFilter().cleanse_setting("SOME_URL", url) == shown
