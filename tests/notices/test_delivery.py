"""Delivering the outbox (jobs/notices/delivery.py): e-mail through Django's
mail framework for every kind of notice, webhooks signed and posted to a
receiver on loopback, failures tried again with backoff and every try
recorded, and addresses that may not be called refused in words."""

from __future__ import annotations

import json
import socket
import time

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_q.models import OrmQ

from jobs.engine import control, notices
from jobs.models import ChannelState, DeliveryOutcome, Notice, NoticeKind, NoticeSettings
from jobs.notices import addresses, choices, delivery
from jobs.notices.choices import RunNotify
from jobs.runs import services as runs
from tests.receiver import signature_ok
from tests.support import make_run, submit

pytestmark = pytest.mark.django_db

SECRET = "whsec_test"


@pytest.fixture(autouse=True)
def _short_waits(settings):
    settings.FLEX_NOTICE_BACKOFF_BASE = 0.05
    settings.FLEX_NOTICE_BACKOFF_CAP = 0.1
    settings.FLEX_WEBHOOK_TIMEOUT = 2
    settings.FLEX_SITE_URL = "https://flexdash.example.org"


def _prefs(user, *, url: str = "", email_enabled: bool = True) -> NoticeSettings:
    return NoticeSettings.objects.create(
        user=user,
        email_enabled=email_enabled,
        email="ada@example.org",
        webhook_url=url,
        webhook_secret=SECRET if url else "",
        on_paused=True,
        on_budget=True,
    )


def _finished_run_notice(user) -> Notice:
    run = make_run(user, [("a", "one"), ("b", "two")], notify=RunNotify(finished=True))
    runs.run_cancel(run=run)
    return Notice.objects.get(run=run, kind=NoticeKind.RUN_FINISHED)


def _notice_of(kind: str, user) -> Notice:
    """A notice of `kind`, written the way the engine writes it."""
    if kind == NoticeKind.RUN_FINISHED:
        return _finished_run_notice(user)
    if kind == NoticeKind.RUN_FAILURES:
        run = make_run(user, [("a", "one")], notify=RunNotify(failed_jobs=1))
        run.jobs.update(state="failed")
        notices.runs_check_failures(run_ids=[run.pk])
    elif kind == NoticeKind.BUDGET_STOPPED:
        notices.note_budget_stop(user=user, budget="user:1:2026-12:5.00", reason="$5 reached")
    elif kind == NoticeKind.DISPATCH_PAUSED:
        submit(user, "waiting")
        control.dispatch_pause(reason="Gemini refused the API key (HTTP 401)")
    else:
        choices.notice_send_test(user=user)
    return Notice.objects.get(kind=kind)


def _deliver_until_done(notice: Notice, *, tries: int = 10) -> list[str]:
    """Deliver as the sweep would: each time the notice comes due."""
    results = []
    for _ in range(tries):
        notice.refresh_from_db()
        if notice.due_at is None:
            break
        time.sleep(max(0.0, (notice.due_at - timezone.now()).total_seconds()))
        results.append(delivery.notice_deliver(notice_id=notice.pk))
    return results


@pytest.mark.parametrize("kind", [k for k in NoticeKind.values if k != NoticeKind.TEST])
def test_every_kind_of_notice_is_sent_by_email(ada, kind):
    _prefs(ada)
    notice = _notice_of(kind, ada)
    assert delivery.notice_deliver(notice_id=notice.pk) == "done"

    [sent] = mail.outbox
    assert sent.to == ["ada@example.org"]
    assert sent.subject == notice.subject
    assert "https://flexdash.example.org/account/" in sent.body
    notice.refresh_from_db()
    assert (notice.email_state, notice.email_attempts, notice.due_at) == ("sent", 1, None)
    row = notice.deliveries.get()
    assert (row.channel, row.outcome, row.target) == ("email", "sent", "ada@example.org")


def test_the_test_notice_is_sent_at_once(ada):
    _prefs(ada)
    [row] = choices.notice_send_test(user=ada)
    assert row.outcome == DeliveryOutcome.SENT
    assert mail.outbox[0].subject == "A test notification from FlexDash"


def test_a_run_finished_email_says_what_came_of_it(ada):
    _prefs(ada)
    notice = _finished_run_notice(ada)
    delivery.notice_deliver(notice_id=notice.pk)
    body = mail.outbox[0].body
    assert "Jobs: 2" in body
    assert "cancelled: 2" in body
    assert f"https://flexdash.example.org/runs/{notice.run_id}/" in body


def test_a_webhook_is_signed_with_the_persons_secret(ada, webhook_receiver):
    _prefs(ada, url=webhook_receiver.url, email_enabled=False)
    notice = _finished_run_notice(ada)
    assert delivery.notice_deliver(notice_id=notice.pk) == "done"

    [post] = webhook_receiver.posts()
    assert post.path == "/hooks/flexdash"
    assert signature_ok(SECRET, post)
    assert not signature_ok("whsec_someone_else", post)
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["FlexDash-Event"] == "run.finished"
    assert post.headers["FlexDash-Notice"] == str(notice.pk)
    event = json.loads(post.body)
    assert event["id"] == notice.pk
    assert event["type"] == "run.finished"
    assert event["data"]["run"]["url"] == f"https://flexdash.example.org/runs/{notice.run_id}/"
    assert event["data"]["counts"]["cancelled"] == 2
    row = notice.deliveries.get()
    assert (row.outcome, row.http_status, row.response_excerpt) == ("sent", 200, '{"ok": true}')
    assert row.latency_seconds > 0
    assert not mail.outbox


def test_a_receiver_that_fails_twice_gets_it_the_third_time(ada, webhook_receiver, settings):
    _prefs(ada, url=webhook_receiver.url)
    webhook_receiver.answer(500, 503)
    notice = _finished_run_notice(ada)

    assert _deliver_until_done(notice) == ["will retry", "will retry", "done"]

    rows = list(notice.deliveries.filter(channel="webhook").order_by("attempt"))
    assert [row.attempt for row in rows] == [1, 2, 3]
    assert [row.http_status for row in rows] == [500, 503, 200]
    assert [row.outcome for row in rows] == ["will_retry", "will_retry", "sent"]
    assert rows[0].error == "The receiver answered HTTP 500; only a 2xx counts."
    assert len(rows[0].response_excerpt) == 1000  # its 3,400-character answer, cut
    # Each retry waited its backoff: at least half the exponential step.
    gap = (rows[1].started_at - rows[0].started_at).total_seconds()
    assert gap >= settings.FLEX_NOTICE_BACKOFF_BASE / 2
    posts = webhook_receiver.posts()
    assert [p.headers["FlexDash-Attempt"] for p in posts] == ["1", "2", "3"]
    assert len({json.loads(p.body)["id"] for p in posts}) == 1
    assert all(signature_ok(SECRET, p) for p in posts)
    # The e-mail went the first time and was not sent again with the retries.
    assert len(mail.outbox) == 1
    notice.refresh_from_db()
    assert (notice.webhook_state, notice.webhook_attempts, notice.due_at) == ("sent", 3, None)


def test_a_receiver_that_keeps_failing_is_given_up(ada, webhook_receiver, settings):
    settings.FLEX_NOTICE_MAX_ATTEMPTS = 2
    _prefs(ada, url=webhook_receiver.url, email_enabled=False)
    webhook_receiver.answer(502, 302)
    notice = _finished_run_notice(ada)
    assert _deliver_until_done(notice) == ["will retry", "done"]
    rows = list(notice.deliveries.order_by("attempt"))
    assert [(row.http_status, row.outcome) for row in rows] == [
        (502, "will_retry"),
        (302, "failed"),  # a redirect is not followed
    ]
    notice.refresh_from_db()
    assert notice.webhook_state == ChannelState.FAILED


def test_a_silent_receiver_times_out(ada, settings):
    settings.FLEX_WEBHOOK_ALLOW_PRIVATE = True
    settings.FLEX_WEBHOOK_TIMEOUT = 0.3
    with socket.create_server(("127.0.0.1", 0)) as silent:
        _prefs(ada, url=f"http://127.0.0.1:{silent.getsockname()[1]}/", email_enabled=False)
        notice = _finished_run_notice(ada)
        assert delivery.notice_deliver(notice_id=notice.pk) == "will retry"
    row = notice.deliveries.get()
    assert row.outcome == DeliveryOutcome.WILL_RETRY
    assert row.error == "Timed out waiting for the receiver."
    assert row.http_status is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:8000/hook", "127.0.0.1, a loopback address"),
        ("http://localhost/hook", "a loopback address"),
        ("http://10.1.2.3/hook", "10.1.2.3, a private address"),
        ("http://192.168.1.10/hook", "a private address"),
        ("http://169.254.169.254/latest/meta-data", "a link-local address"),
        ("http://[::1]/hook", "::1, a loopback address"),
        ("http://[::ffff:127.0.0.1]/hook", "a loopback address"),
        ("http://0.0.0.0/hook", "address"),
        ("http://100.64.0.1/hook", "a non-global address"),
        ("ftp://example.org/hook", "Only http:// and https:// URLs"),
        ("https://user:secret@example.org/hook", "no user name or password"),
    ],
)
def test_addresses_that_may_not_be_called_are_refused_in_words(url, words):
    problem = addresses.url_problem(url)
    assert problem is not None and words in problem, problem


def test_a_public_address_is_allowed():
    assert addresses.url_problem("https://93.184.215.14/hook") is None


def test_a_private_address_is_refused_on_save_with_the_setting_off(ada):
    with pytest.raises(ValidationError) as refused:
        choices.notice_settings_save(
            user=ada,
            email_enabled=True,
            email="",
            webhook_url="http://127.0.0.1:9/hook",
            defaults=RunNotify(),
        )
    assert "a loopback address: webhooks go only to public addresses" in str(refused.value)
    assert "FLEX_WEBHOOK_ALLOW_PRIVATE" in str(refused.value)
    assert not NoticeSettings.objects.exists()


def test_a_private_address_is_refused_at_delivery_with_the_setting_off(
    ada, webhook_receiver, settings
):
    """Saved while allowed (or a name that resolved elsewhere then): checked
    again when sent, and refused without a request."""
    _prefs(ada, url=webhook_receiver.url, email_enabled=False)
    notice = _finished_run_notice(ada)
    settings.FLEX_WEBHOOK_ALLOW_PRIVATE = False
    assert delivery.notice_deliver(notice_id=notice.pk) == "done"
    row = notice.deliveries.get()
    assert row.outcome == DeliveryOutcome.REFUSED
    assert "127.0.0.1, a loopback address: webhooks go only to public addresses" in row.error
    assert webhook_receiver.posts() == []
    notice.refresh_from_db()
    assert notice.webhook_state == ChannelState.FAILED


def test_the_request_goes_to_the_checked_address_naming_the_host(
    ada, webhook_receiver, monkeypatch
):
    """The host is resolved once, checked, and that address connected to: a
    second lookup that could answer differently (DNS rebinding) never happens."""
    port = webhook_receiver.url.split(":")[2].split("/")[0]
    lookups = []
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        lookups.append(host)
        return real("127.0.0.1" if host == "hooks.example.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    _prefs(ada, url=f"http://hooks.example.test:{port}/hooks/flexdash", email_enabled=False)
    notice = _finished_run_notice(ada)
    assert delivery.notice_deliver(notice_id=notice.pk) == "done"
    [post] = webhook_receiver.posts()
    assert post.headers["Host"] == f"hooks.example.test:{port}"
    # Connecting to the address looks up only the address itself.
    assert lookups == ["hooks.example.test", "127.0.0.1"]


def test_a_notice_held_by_one_delivery_is_not_sent_by_another(ada):
    _prefs(ada)
    notice = _finished_run_notice(ada)
    Notice.objects.filter(pk=notice.pk).update(lease_until=timezone.now() + timezone.timedelta(60))
    assert delivery.notice_deliver(notice_id=notice.pk) == "not due"
    assert not mail.outbox


def test_the_sweep_enqueues_what_is_due_and_held_by_no_one(ada):
    _prefs(ada)
    due = _finished_run_notice(ada)
    held = _notice_of(NoticeKind.BUDGET_STOPPED, ada)
    Notice.objects.filter(pk=held.pk).update(lease_until=timezone.now() + timezone.timedelta(60))
    assert delivery.notices_sweep() == 1
    [task] = OrmQ.objects.all()
    assert (task.func(), task.task["args"]) == ("jobs.tasks.deliver_notice", (due.pk,))
