"""Notifications as a researcher meets them: the account page's section
(channels, defaults, the signing secret, "send test", recent deliveries),
each run's choices on the upload preview, and the API's batch fields."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import NoticeSettings, Run
from jobs.notices.choices import RunNotify
from tests.receiver import signature_ok
from tests.run_files import prompt_file
from tests.support import MODEL, api_client, make_run

pytestmark = pytest.mark.django_db

SAVE = "/account/notifications/"


def _save(client, **fields):
    data = {"notify-email_enabled": "on", **{f"notify-{k}": v for k, v in fields.items()}}
    return client.post(SAVE, data)


def test_the_account_page_shows_the_section_with_nothing_sent_yet(signed_in):
    page = signed_in.get("/account/").content.decode()
    assert 'id="notifications-heading">Notifications</h2>' in page
    assert "When a run finishes (all its jobs ended)" in page
    assert "Send a test notification" in page
    assert "No notification has been sent yet." in page
    assert "Reveal the signing secret" not in page  # no webhook yet


def test_settings_are_saved_and_a_first_webhook_gets_a_secret(signed_in, ada, webhook_receiver):
    response = _save(
        signed_in,
        email="ada@example.org",
        webhook_url=webhook_receiver.url,
        finished="on",
        failures="10 or 5%",
        paused="on",
    )
    assert response.status_code == 302
    prefs = NoticeSettings.objects.get(user=ada)
    assert (prefs.email, prefs.webhook_url) == ("ada@example.org", webhook_receiver.url)
    assert (prefs.on_finished, prefs.on_budget, prefs.on_paused) == (True, False, True)
    assert (prefs.on_failed_jobs, prefs.on_failed_percent) == (10, 5)
    assert prefs.webhook_secret.startswith("whsec_")
    page = signed_in.get("/account/").content.decode()
    assert 'value="10 or 5%"' in page
    assert prefs.webhook_secret not in page  # shown only when asked for


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"failures": "lots"}, "“lots” is not a threshold"),
        ({"failures": "150%"}, "A share is one number from 1% to 100%."),
        ({"webhook_url": "http://127.0.0.1:9/hook"}, "127.0.0.1, a loopback address"),
        ({"webhook_url": "http://10.0.0.5/hook"}, "webhooks go only to public addresses"),
        ({"webhook_url": "not a url at all"}, "Enter a valid URL."),
    ],
)
def test_bad_settings_are_refused_on_their_page_and_nothing_saved(signed_in, fields, words):
    response = _save(signed_in, **fields)
    assert response.status_code == 200
    page = response.content.decode()
    assert "The notification settings were not saved." in page
    assert words in page
    assert not NoticeSettings.objects.exists()


def test_the_secret_is_revealed_on_asking_and_can_be_replaced(signed_in, ada, webhook_receiver):
    _save(signed_in, webhook_url=webhook_receiver.url)
    secret = NoticeSettings.objects.get(user=ada).webhook_secret
    shown = signed_in.post("/account/notifications/secret/")
    assert shown["Cache-Control"].startswith("max-age=0")
    assert f'value="{secret}"' in shown.content.decode()

    replaced = signed_in.post("/account/notifications/secret/new/")
    new = NoticeSettings.objects.get(user=ada).webhook_secret
    assert new != secret
    page = replaced.content.decode()
    assert f'value="{new}"' in page
    assert "the old one no longer verifies" in page


def test_send_test_reaches_the_receiver_and_the_mailbox_and_is_listed(
    signed_in, ada, webhook_receiver
):
    _save(signed_in, email="ada@example.org", webhook_url=webhook_receiver.url)
    response = signed_in.post("/account/notifications/test/", follow=True)
    page = response.content.decode()
    assert f"Webhook test sent to {webhook_receiver.url} (HTTP 200," in page
    assert "E-mail test sent to ada@example.org" in page
    [post] = webhook_receiver.posts()
    assert signature_ok(NoticeSettings.objects.get(user=ada).webhook_secret, post)
    assert json.loads(post.body)["type"] == "test"
    assert mail.outbox[0].subject == "A test notification from FlexDash"
    # The deliveries table lists both tries.
    assert page.count("A test notification from FlexDash") >= 2
    assert '<td data-label="HTTP" class="num">200</td>' in page


def test_send_test_says_when_a_receiver_fails(signed_in, webhook_receiver):
    _save(signed_in, webhook_url=webhook_receiver.url, email_enabled="")
    webhook_receiver.answer(500)
    page = signed_in.post("/account/notifications/test/", follow=True).content.decode()
    assert "failed: The receiver answered HTTP 500; only a 2xx counts." in page


def test_send_test_with_nowhere_to_send_says_so(signed_in):
    page = signed_in.post("/account/notifications/test/", follow=True).content.decode()
    assert "Nothing to send: turn e-mail on with an address, or set a webhook URL." in page


# --- A run's own choices -----------------------------------------------------------
@pytest.fixture
def preview(signed_in, uploads_in_tmp) -> str:
    filename, content = prompt_file("jsonl", [("a", "one"), ("b", "two")])
    response = signed_in.post(
        "/runs/new/",
        {
            "model": MODEL,
            "tier": "flex",
            "max_attempts": "8",
            "file": SimpleUploadedFile(filename, content),
        },
    )
    assert response.status_code == 302
    return response["Location"]


def test_the_preview_offers_the_account_defaults(signed_in, ada, preview):
    NoticeSettings.objects.create(user=ada, on_finished=True, on_failed_percent=5)
    page = signed_in.get(preview).content.decode()
    assert "<legend>Notify me</legend>" in page
    assert 'name="notify-finished" id="id_notify-finished" checked' in page
    assert 'value="5%"' in page


def test_a_run_keeps_what_the_preview_chose(signed_in, ada, preview):
    NoticeSettings.objects.create(user=ada, on_finished=True)
    response = signed_in.post(
        preview, {"deadline_policy": "keep", "notify-shown": "1", "notify-failures": "3"}
    )
    assert response.status_code == 302
    run = Run.objects.get()
    assert (run.notify_finished, run.notify_failed_jobs, run.notify_failed_percent) == (
        False,
        3,
        None,
    )


def test_a_confirmation_without_the_fields_takes_the_defaults(signed_in, ada, preview):
    NoticeSettings.objects.create(user=ada, on_finished=True, on_budget=True)
    signed_in.post(preview)
    run = Run.objects.get()
    assert (run.notify_finished, run.notify_budget, run.notify_paused) == (True, True, False)


def test_a_bad_threshold_on_the_preview_creates_nothing(signed_in, preview):
    response = signed_in.post(preview, {"notify-shown": "1", "notify-failures": "0"})
    assert response.status_code == 200
    assert "A number of failed jobs is one whole number, at least 1." in response.content.decode()
    assert not Run.objects.exists()


def test_the_api_sets_a_batchs_choices_over_the_account_defaults(ada):
    NoticeSettings.objects.create(user=ada, on_paused=True)
    api = api_client(ada)
    filename, content = prompt_file("jsonl", [("a", "one")])
    response = api.post(
        "/api/batches",
        {
            "file": SimpleUploadedFile(filename, content),
            "notify_finished": "true",
            "notify_failures": "5%",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["notify_finished"], body["notify_failures"], body["notify_paused"]) == (
        True,
        "5%",
        True,
    )
    refused = api.post(
        "/api/batches",
        {"file": SimpleUploadedFile(filename, content), "notify_failures": "many"},
    )
    assert refused.status_code == 422
    assert "is not a threshold" in refused.json()["errors"]["notify_failures"][0]
    assert Run.objects.count() == 1


def test_the_run_page_says_what_the_run_asked_to_be_told(signed_in, ada):
    run = make_run(ada, notify=RunNotify(finished=True, failed_jobs=10, failed_percent=5))
    page = signed_in.get(f"/runs/{run.pk}/").content.decode()
    assert '<dd id="run-notify">when it finishes; at 10 failed jobs or 5% failed</dd>' in page
    quiet = make_run(ada)
    assert (
        '<dd id="run-notify">nothing</dd>' in signed_in.get(f"/runs/{quiet.pk}/").content.decode()
    )
