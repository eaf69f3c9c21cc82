"""Production serving: DEBUG off needs a secret key, cookies go over HTTPS only,
and gunicorn with WhiteNoise serves pages, /healthz and static files."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import ROOT, stop_process, wait_for

SECRET = "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
HTMX = ROOT / "static" / "vendor" / "htmx-2.0.11.min.js"


def production_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """DEBUG off, a secret key, and state of its own: a SQLite database and
    collected static files in tmp_path, whatever database the suite uses."""
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SECRET_KEY", "DATABASE_URL")
    }
    return {
        **base,
        "DJANGO_SETTINGS_MODULE": "flexdash.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": SECRET,
        "FLEXDASH_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_STATIC_ROOT": str(tmp_path / "staticfiles"),
        "PYTHONUNBUFFERED": "1",
        **env,
    }


def settings_value(env: dict[str, str], expression: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; print({expression})",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_debug_off_without_a_secret_key_stops_start_up_with_the_reason(tmp_path):
    env = production_env(tmp_path)
    del env["DJANGO_SECRET_KEY"]

    result = settings_value(env, "settings.DEBUG")

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off" in result.stderr


def test_debug_off_sends_cookies_over_https_only(tmp_path):
    result = settings_value(
        production_env(tmp_path), "settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE"
    )

    assert result.stdout.strip() == "True True", result.stderr


def test_secure_cookies_can_be_turned_off_for_plain_http(tmp_path):
    env = production_env(tmp_path, DJANGO_SECURE_COOKIES="false")

    result = settings_value(env, "settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE")

    assert result.stdout.strip() == "False False", result.stderr


def test_the_proxy_s_https_header_is_trusted_only_when_behind_a_proxy(tmp_path):
    expression = "getattr(settings, 'SECURE_PROXY_SSL_HEADER', None)"

    alone = settings_value(production_env(tmp_path), expression)
    proxied = settings_value(production_env(tmp_path, DJANGO_BEHIND_PROXY="true"), expression)

    assert alone.stdout.strip() == "None", alone.stderr
    assert proxied.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')", proxied.stderr


def test_trusted_origins_are_read_as_a_list(tmp_path):
    env = production_env(
        tmp_path, DJANGO_CSRF_TRUSTED_ORIGINS=" https://flex.example.org, https://b.example.org "
    )

    result = settings_value(env, "settings.CSRF_TRUSTED_ORIGINS")

    assert result.stdout.strip() == "['https://flex.example.org', 'https://b.example.org']"


def test_a_trusted_origin_without_its_scheme_stops_start_up(tmp_path):
    env = production_env(tmp_path, DJANGO_CSRF_TRUSTED_ORIGINS="flex.example.org")

    result = settings_value(env, "settings.CSRF_TRUSTED_ORIGINS")

    assert result.returncode != 0
    assert (
        "DJANGO_CSRF_TRUSTED_ORIGINS entries must start with https:// (or http://), "
        "got 'flex.example.org'"
    ) in result.stderr


def manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def answering(url: str, process: subprocess.Popen, log: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
    try:
        fetch(url)
    except OSError:
        return False
    return True


@pytest.mark.skipif(not HTMX.exists(), reason="static/vendor has no htmx to fetch")
def test_gunicorn_serves_healthz_pages_and_static_files_with_debug_off(tmp_path):
    env = production_env(tmp_path)
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "collectstatic", "--no-input", "-v", "0")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "flexdash.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--no-control-socket",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: answering(f"{base}/healthz", process, log),
            timeout=60,
            what="gunicorn to answer",
        )

        status, _, body = fetch(f"{base}/healthz")
        assert status == 200
        health = json.loads(body)
        assert health["database"]["status"] == "ok"
        assert health["status"] == "degraded"  # no qcluster in this test
        assert SECRET not in body.decode()

        status, headers, body = fetch(f"{base}/static/vendor/htmx-2.0.11.min.js")
        assert status == 200
        assert body == HTMX.read_bytes()

        status, _, page = fetch(f"{base}/accounts/login/")
        assert status == 200
        hashed = re.search(
            r'src="(/static/vendor/htmx-2\.0\.11\.min\.[0-9a-f]{12}\.js)"', page.decode()
        )
        assert hashed, "the page links htmx by its hashed name"
        status, headers, body = fetch(base + hashed[1])
        assert status == 200
        assert body == HTMX.read_bytes()
        assert "immutable" in headers["Cache-Control"]
    finally:
        stop_process(process)
    assert process.returncode == 0, log.read_text()
