"""The account page's notifications in a real browser: Ada sets a webhook
and what she wants to be told, reveals the signing secret, sends a test and
sees it listed; the receiver checks the signature with the secret she saw.
No cluster: the test is sent by the page itself. Screenshot in test-results/e2e/."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from jobs.models import NoticeSettings
from tests.e2e.browsing import SCREENSHOTS, log_in
from tests.receiver import signature_ok

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_webhook_is_set_up_tested_and_listed(
    live_server, browser, ada, ada_password, webhook_receiver
):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    log_in(page, live_server.url, ada_password)
    page.goto(f"{live_server.url}/account/")

    section = page.locator("#notifications")
    section.get_by_label("Webhook URL").fill(webhook_receiver.url)
    section.get_by_label("When a run finishes (all its jobs ended)").check()
    section.get_by_label("When a run's failed jobs reach").fill("10 or 5%")
    section.get_by_role("button", name="Save notification settings").click()
    expect(page.get_by_text("Notification settings saved.")).to_be_visible()
    prefs = NoticeSettings.objects.get(user=ada)
    assert (prefs.on_finished, prefs.on_failed_jobs, prefs.on_failed_percent) == (True, 10, 5)

    page.get_by_role("button", name="Reveal the signing secret").click()
    secret = page.get_by_label("Signing secret (select it and copy)").input_value()
    assert secret == prefs.webhook_secret

    page.get_by_role("button", name="Send a test notification").click()
    expect(
        page.get_by_text(f"Webhook test sent to {webhook_receiver.url} (HTTP 200")
    ).to_be_visible()
    table = page.locator("#deliveries")
    expect(
        table.get_by_role("cell", name="A test notification from FlexDash").first
    ).to_be_visible()
    expect(table.get_by_role("cell", name="Sent", exact=True).first).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "account-notifications.png", full_page=True)

    [post] = webhook_receiver.posts()
    assert json.loads(post.body)["type"] == "test"
    assert signature_ok(secret, post)
