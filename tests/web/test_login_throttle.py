"""The log-in throttle: failed log-ins per username and per address lock both
login forms for a while, in words, as 429; an operator can unlock in the admin."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.db.models import F
from django.test import Client

from tests.support import PASSWORD, ROOT

pytestmark = pytest.mark.django_db

LIMIT = settings.FLEX_LOGIN_FAILURE_LIMIT
COOL_OFF = timedelta(minutes=settings.FLEX_LOGIN_LOCKOUT_MINUTES)
WRONG = "Please enter a correct username and password"
LOCKED = "Too many failed log-ins for this username or from this address"
HERE, ELSEWHERE = "10.0.0.1", "10.0.0.2"


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    # These tests log in dozens of times; the real hasher is slow by design.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def bob_password(bob) -> str:
    """Bob's password, set as `ada_password` sets Ada's (the same one)."""
    bob.set_password(PASSWORD)
    bob.save(update_fields=["password"])
    return PASSWORD


def log_in(client, username, password, address=HERE, path="/accounts/login/", **headers):
    return client.post(
        path, {"username": username, "password": password}, REMOTE_ADDR=address, **headers
    )


def fail(client, username, times, address=HERE, **options):
    for n in range(times):
        log_in(client, username, f"guess {n}", address, **options)


def time_passes(delta: timedelta) -> None:
    """Move every failure `delta` into the past, as if that much time had gone by."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - delta)


def logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/"


def refused_as_locked(response) -> bool:
    return response.status_code == 429 and LOCKED in response.content.decode()


def test_twenty_wrong_passwords_are_answered_by_the_form_until_the_limit_then_refused(
    client, ada_password
):
    responses = [log_in(client, "ada", f"guess {n}") for n in range(20)]

    for response in responses[: LIMIT - 1]:
        assert response.status_code == 200
        assert WRONG in response.content.decode()
    for response in responses[LIMIT - 1 :]:
        assert refused_as_locked(response)
        assert WRONG not in response.content.decode()
    # A lock's guesses are not counted: only the ones up to the limit are stored.
    assert AccessAttempt.objects.get().failures_since_start == LIMIT


def test_the_lock_is_said_in_words_on_the_login_page(client, ada_password):
    fail(client, "ada", LIMIT)
    page = log_in(client, "ada", PASSWORD).content.decode()
    assert "Log in to FlexDash" in page
    assert f"{LOCKED}: locked for up to {settings.FLEX_LOGIN_LOCKOUT_MINUTES} minutes." in page
    assert "An operator can unlock it sooner." in page
    assert 'value="ada"' in page


def test_the_right_password_is_refused_while_locked(client, ada_password):
    fail(client, "ada", LIMIT)
    assert refused_as_locked(log_in(client, "ada", PASSWORD))
    assert client.get("/").status_code == 302


def test_the_lock_follows_the_username_to_another_address(client, ada_password):
    fail(client, "ada", LIMIT, address=HERE)
    assert refused_as_locked(log_in(Client(), "ada", PASSWORD, address=ELSEWHERE))


def test_the_lock_holds_the_address_for_every_username(client, ada_password, bob_password):
    for n in range(LIMIT):
        log_in(client, f"someone-{n}", "guess")
    assert refused_as_locked(log_in(Client(), "bob", PASSWORD, address=HERE))
    assert logged_in(log_in(Client(), "bob", PASSWORD, address=ELSEWHERE))


def test_the_lock_lifts_when_the_cool_off_has_passed(client, ada_password):
    fail(client, "ada", LIMIT)
    time_passes(COOL_OFF - timedelta(minutes=1))
    assert refused_as_locked(log_in(client, "ada", PASSWORD))
    time_passes(timedelta(minutes=1, seconds=1))
    assert logged_in(log_in(client, "ada", PASSWORD))


def test_guessing_during_the_lock_does_not_make_it_last_longer(client, ada_password):
    fail(client, "ada", LIMIT)
    for _ in range(2):
        time_passes(COOL_OFF / 3)
        assert refused_as_locked(log_in(client, "ada", "another guess"))
    time_passes(COOL_OFF / 3 + timedelta(seconds=1))
    assert logged_in(log_in(client, "ada", PASSWORD))


def test_a_successful_log_in_starts_the_count_again(ada_password):
    fail(Client(), "ada", LIMIT - 1)
    assert logged_in(log_in(Client(), "ada", PASSWORD))
    assert not AccessAttempt.objects.exists()

    client = Client()
    fail(client, "ada", LIMIT - 1)
    response = log_in(client, "ada", "one more guess")
    assert response.status_code == 429
    assert AccessAttempt.objects.get().failures_since_start == LIMIT


def test_logging_in_to_ones_own_account_does_not_forget_guesses_at_anothers(
    ada_password, bob_password
):
    fail(Client(), "ada", LIMIT - 1)
    assert logged_in(log_in(Client(), "bob", PASSWORD))
    assert refused_as_locked(log_in(Client(), "ada", "one more guess"))


def test_the_admin_login_is_throttled_and_shares_the_count(django_user_model):
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    client = Client()
    fail(client, "root", LIMIT - 1, path="/admin/login/")
    page = log_in(client, "root", "guess", path="/admin/login/")
    assert page.status_code == 429
    assert LOCKED in page.content.decode()
    assert 'class="errornote"' in page.content.decode()
    assert refused_as_locked(log_in(client, "root", PASSWORD, path="/admin/login/"))
    assert refused_as_locked(log_in(Client(), "root", PASSWORD, address=ELSEWHERE))


def test_an_operator_unlocks_a_researcher_in_the_admin(client, ada_password, admin_client):
    fail(client, "ada", LIMIT)
    listing = admin_client.get("/admin/axes/accessattempt/").content.decode()
    assert "ada" in listing and "Unlock" in listing

    response = admin_client.post(
        "/admin/axes/accessattempt/",
        {"action": "unlock", "_selected_action": [AccessAttempt.objects.get().pk]},
        follow=True,
    )
    assert "Forgot the failed log-ins of ada (1 record)." in response.content.decode()
    assert not AccessAttempt.objects.exists()
    assert logged_in(log_in(client, "ada", PASSWORD))


def test_behind_a_trusted_proxy_the_address_is_the_one_the_proxy_added(
    client, bob_password, settings
):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxy = "10.9.9.9"
    for n in range(LIMIT):
        # What the client claims (left of the proxy's entry) changes nothing.
        forwarded = f"192.0.2.{n}, 198.51.100.7"
        log_in(client, f"someone-{n}", "guess", address=proxy, HTTP_X_FORWARDED_FOR=forwarded)

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}
    other = {"address": proxy, "HTTP_X_FORWARDED_FOR": "198.51.100.8"}
    assert logged_in(log_in(Client(), "bob", PASSWORD, **other))
    same = {"address": proxy, "HTTP_X_FORWARDED_FOR": "192.0.2.99, 198.51.100.7"}
    assert refused_as_locked(log_in(Client(), "bob", PASSWORD, **same))


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(client, bob_password):
    for n in range(LIMIT):
        log_in(client, f"someone-{n}", "guess", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {HERE}
    assert refused_as_locked(log_in(Client(), "bob", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.99"))


def test_the_test_clients_login_needs_no_request(client, ada_password):
    assert client.login(username="ada", password=PASSWORD)
    assert client.get("/").status_code == 200


def test_demouser_unlocks_the_demo_login(client, monkeypatch):
    monkeypatch.delenv("FLEXDASH_DEMO_PASSWORD", raising=False)
    call_command("demouser", stdout=io.StringIO())
    fail(client, "demo", LIMIT)
    assert refused_as_locked(log_in(client, "demo", "flexdash-demo"))

    call_command("demouser", stdout=io.StringIO())
    assert logged_in(log_in(client, "demo", "flexdash-demo"))


def settings_in_a_fresh_process(**env: str) -> subprocess.CompletedProcess:
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME.total_seconds()); "
        "print(s.AXES_COOLOFF_MESSAGE)"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "flexdash.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_limit_and_the_lock_come_from_the_environment():
    result = settings_in_a_fresh_process(
        FLEX_LOGIN_FAILURE_LIMIT="3", FLEX_LOGIN_LOCKOUT_MINUTES="1"
    )
    assert result.returncode == 0, result.stderr
    limits, message = result.stdout.splitlines()
    assert limits == "3 60.0"
    assert "locked for up to 1 minute." in message


@pytest.mark.parametrize("name", ["FLEX_LOGIN_FAILURE_LIMIT", "FLEX_LOGIN_LOCKOUT_MINUTES"])
def test_a_lock_that_would_never_come_or_never_lift_stops_start_up(name):
    result = settings_in_a_fresh_process(**{name: "0"})
    assert result.returncode != 0
    assert f"{name} must be at least 1" in result.stderr
