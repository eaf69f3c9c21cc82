"""The account page's notification actions: save the choices, reveal or
regenerate the webhook's signing secret, send a test. Each answers with the
account page (jobs/web/account.py), its section filled by jobs/web/notifications.py."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from jobs.models import DeliveryOutcome
from jobs.notices import choices
from jobs.web import account, notifications


def _page(request: HttpRequest, **section) -> HttpResponse:
    return account._account_page(
        request, account.ApiTokenForm(), notices=notifications.section(request.user, **section)
    )


@login_required
@require_POST
def settings_save(request: HttpRequest) -> HttpResponse:
    prefs = choices.notice_settings_for(request.user)
    form = notifications.NoticeSettingsForm.for_settings(prefs, request.POST)
    if not form.is_valid():
        return _page(request, form=form)
    try:
        choices.notice_settings_save(
            user=request.user,
            email_enabled=form.cleaned_data["email_enabled"],
            email=form.cleaned_data["email"],
            webhook_url=form.cleaned_data["webhook_url"],
            defaults=form.notify(),
        )
    except ValidationError as error:
        form.add_error(None, error)
        return _page(request, form=form)
    messages.success(request, "Notification settings saved.")
    return redirect("account:index")


@never_cache
@login_required
@require_POST
def secret_reveal(request: HttpRequest) -> HttpResponse:
    prefs = choices.notice_settings_for(request.user)
    # Rendered, not redirected, like a new API token: never kept in the session.
    return _page(request, secret=prefs.webhook_secret)


@never_cache
@login_required
@require_POST
def secret_regenerate(request: HttpRequest) -> HttpResponse:
    secret = choices.webhook_secret_regenerate(user=request.user)
    messages.success(request, "A new signing secret: the old one no longer verifies.")
    return _page(request, secret=secret)


@login_required
@require_POST
def send_test(request: HttpRequest) -> HttpResponse:
    deliveries = choices.notice_send_test(user=request.user)
    if not deliveries:
        messages.error(
            request, "Nothing to send: turn e-mail on with an address, or set a webhook URL."
        )
    for row in deliveries:
        what = "E-mail" if row.channel == "email" else "Webhook"
        if row.outcome == DeliveryOutcome.SENT:
            status = f"HTTP {row.http_status}, " if row.http_status else ""
            took = f"{row.latency_seconds * 1000:.0f} ms"
            messages.success(request, f"{what} test sent to {row.target} ({status}{took}).")
        else:
            messages.error(request, f"{what} test to {row.target} failed: {row.error}")
    return redirect("account:index")
