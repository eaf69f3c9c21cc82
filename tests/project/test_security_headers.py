"""Production's security headers, with DEBUG off: HSTS only once the operator
sets it, plain HTTP redirected to HTTPS only behind the proxy (never /healthz,
which load balancers probe over plain HTTP), and the Content-Security-Policy on
every page, whose HTML holds nothing inline for the policy to refuse.

The settings are read the way a deployment reads them, from the environment
in a fresh process; the requests then go through this process's test client
with those settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from jobs.models import Attempt, Job, ModelLimit, Outcome, State
from tests.support import HTMX, MODEL, ROOT, as_user, make_run

SECRET = "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_SETTINGS = (
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_SSL_REDIRECT",
    "SECURE_REDIRECT_EXEMPT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
)
READ_SETTINGS = f"""
import json, django
django.setup()
from django.conf import settings
print(json.dumps({{name: getattr(settings, name, None) for name in {SECURITY_SETTINGS!r}}}))
"""


def start_up(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Load the settings with DEBUG off, a secret key and `env`, in a new process."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "-c", READ_SETTINGS],
        cwd=ROOT,
        env={
            **base,
            "DJANGO_SETTINGS_MODULE": "flexdash.settings",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": SECRET,
            "FLEXDASH_VAR_DIR": str(tmp_path / "var"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def deployed(tmp_path: Path, **env: str) -> override_settings:
    """This process's settings as a deployment with `env` would have them."""
    result = start_up(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    if values["SECURE_PROXY_SSL_HEADER"] is not None:
        values["SECURE_PROXY_SSL_HEADER"] = tuple(values["SECURE_PROXY_SSL_HEADER"])
    return override_settings(**values)


# --- HSTS ----------------------------------------------------------------------------
# Requests through the client need the database: on PostgreSQL every GET sets
# its statement timeout first (jobs/web/statement_timeout.py).
@pytest.mark.django_db
def test_hsts_is_off_until_the_operator_sets_it(client, tmp_path):
    with deployed(tmp_path):
        response = client.get("/accounts/login/", secure=True)

    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers


@pytest.mark.django_db
def test_hsts_seconds_and_its_switches_make_the_header_on_https_only(client, tmp_path):
    env = {
        "DJANGO_HSTS_SECONDS": "31536000",
        "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "true",
        "DJANGO_HSTS_PRELOAD": "true",
    }
    with deployed(tmp_path, **env):
        over_https = client.get("/accounts/login/", secure=True)
        over_http = client.get("/accounts/login/")

    assert over_https.headers["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )
    assert "Strict-Transport-Security" not in over_http.headers


@pytest.mark.django_db
def test_hsts_seconds_alone_send_max_age_alone(client, tmp_path):
    with deployed(tmp_path, DJANGO_HSTS_SECONDS="3600"):
        response = client.get("/accounts/login/", secure=True)

    assert response.headers["Strict-Transport-Security"] == "max-age=3600"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DJANGO_HSTS_SECONDS": "-1"}, "DJANGO_HSTS_SECONDS must be at least 0"),
        ({"DJANGO_HSTS_SECONDS": "a year"}, "DJANGO_HSTS_SECONDS must be a whole number"),
        (
            {"DJANGO_HSTS_INCLUDE_SUBDOMAINS": "true"},
            "DJANGO_HSTS_INCLUDE_SUBDOMAINS and DJANGO_HSTS_PRELOAD need DJANGO_HSTS_SECONDS",
        ),
        (
            {"DJANGO_HSTS_SECONDS": "3600", "DJANGO_HSTS_PRELOAD": "true"},
            "DJANGO_HSTS_PRELOAD needs DJANGO_HSTS_INCLUDE_SUBDOMAINS and DJANGO_HSTS_SECONDS "
            "of at least 31536000",
        ),
    ],
)
def test_a_bad_hsts_setting_stops_start_up_naming_it(tmp_path, env, message):
    result = start_up(tmp_path, **env)

    assert result.returncode != 0
    assert message in result.stderr


# --- The HTTPS redirect -------------------------------------------------------------
@pytest.mark.django_db
def test_behind_the_proxy_plain_http_is_sent_to_https_but_healthz_answers(client, tmp_path):
    with deployed(tmp_path, DJANGO_BEHIND_PROXY="true"):
        plain = client.get("/accounts/login/?next=/jobs/", headers={"X-Forwarded-Proto": "http"})
        secure = client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
        probe = client.get("/healthz", headers={"X-Forwarded-Proto": "http"})

    assert plain.status_code == 301
    assert plain.headers["Location"] == "https://testserver/accounts/login/?next=/jobs/"
    assert secure.status_code == 200
    assert probe.status_code == 200
    assert json.loads(probe.content)["database"]["status"] == "ok"


@pytest.mark.django_db
def test_without_the_proxy_plain_http_is_served(client, tmp_path):
    with deployed(tmp_path):
        response = client.get("/accounts/login/")

    assert response.status_code == 200


def test_under_debug_the_proxy_redirects_nothing(tmp_path):
    """`make run` behind a local proxy still answers over http://."""
    result = start_up(tmp_path, DJANGO_DEBUG="true", DJANGO_BEHIND_PROXY="true")

    assert json.loads(result.stdout)["SECURE_SSL_REDIRECT"] is False, result.stderr


# --- The Content-Security-Policy -----------------------------------------------------
class InlineCode(HTMLParser):
    """Collects what the policy would refuse: inline scripts and styles,
    style="" and on*="" attributes, javascript: links, htmx's eval (hx-on)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name == "style" or name.startswith(("on", "hx-on")):
                self.found.append(f"<{tag} {name}=...>")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:...>")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("ops")


@pytest.fixture
def every_page(operator) -> list[str]:
    """Each page of the dashboard and of the admin, with something on it: the
    overview's gauges and histogram and the run page's bars included."""
    limit, _ = ModelLimit.objects.update_or_create(
        model=MODEL, defaults={"rpm_limit": 100, "tpm_limit": 100_000, "rpd_limit": 1_000}
    )
    job = Job.objects.create(owner=operator, model=MODEL, input_text="a prompt")
    run = make_run(operator)  # two lines, "a" and "b"
    answered = run.jobs.first()
    Attempt.objects.create(
        job=answered,
        number=1,
        tier_requested="flex",
        finished_at=timezone.now(),
        http_status=200,
        outcome=Outcome.SUCCEEDED,
    )
    Job.objects.filter(pk=answered.pk).update(
        state=State.SUCCEEDED, attempts=1, finished_at=timezone.now()
    )
    return [
        "/",
        "/jobs/",
        "/jobs/new/",
        f"/jobs/{job.pk}/",
        "/runs/",
        "/runs/new/",
        f"/runs/{run.pk}/",
        "/account/",
        "/admin/",
        "/admin/jobs/job/",
        f"/admin/jobs/job/{job.pk}/change/",
        "/admin/jobs/modellimit/",
        f"/admin/jobs/modellimit/{limit.pk}/change/",
        "/admin/auth/user/",
    ]


@pytest.mark.django_db
def test_every_page_carries_the_policy(client, operator, every_page):
    anonymous = [client.get("/accounts/login/"), client.get("/healthz")]
    as_user(client, operator)
    pages = [client.get(path) for path in every_page]
    fragments = [client.get(path, headers=HTMX) for path in every_page[:4]]

    for response in anonymous + pages + fragments:
        assert response.status_code == 200, response.request["PATH_INFO"]
        assert without_nonce(response.headers["Content-Security-Policy"]) == POLICY


def without_nonce(policy: str) -> str:
    """The policy less the nonce the admin's templates ask for (style-src only:
    `POLICY` shows script-src allows none)."""
    return re.sub(r"(style-src 'self') 'nonce-[\w-]+'", r"\1", policy)


@pytest.mark.django_db
def test_no_page_holds_inline_script_or_style(client, operator, every_page):
    found = {"/accounts/login/": inline_code(client.get("/accounts/login/").content.decode())}
    as_user(client, operator)
    for path in every_page:
        found[path] = inline_code(client.get(path).content.decode())

    assert {path: code for path, code in found.items() if code} == {}


@pytest.mark.django_db
def test_django_s_csrf_failure_page_styles_itself_with_the_nonce():
    response = Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "x"})

    assert response.status_code == 403
    style_src = response.headers["Content-Security-Policy"].split("; ")[2]
    nonce = style_src.removeprefix("style-src 'self' 'nonce-").removesuffix("'")
    assert style_src == f"style-src 'self' 'nonce-{nonce}'"
    assert f'<style nonce="{nonce}">' in response.content.decode()
