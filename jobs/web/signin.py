"""The log-in throttle: the hooks settings give django-axes, for both login forms
(the researcher's /accounts/login/ and the admin's /admin/login/).

- ThrottleBackend: refuses a locked-out username or address before the
  password is checked;
- Attempts: where failures are counted (axes' database table, which the admin
  lists and an operator deletes rows of to unlock);
- client_address: the address failures are counted against;
- locked_out: the login page again, with the lock in words, answered 429.
"""

from __future__ import annotations

import ipaddress

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_lockout_message
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


class ThrottleBackend(AxesStandaloneBackend):
    """Axes' check, first in AUTHENTICATION_BACKENDS, for every authenticate()
    that comes with a request: both login forms pass theirs.

    Without a request there is no address to count against and nobody at a
    form: the test client's login() and code on the server. Axes would raise;
    this backend steps aside and lets ModelBackend answer."""

    def authenticate(self, request: HttpRequest | None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


class Attempts(AxesDatabaseHandler):
    """Axes' database handler, except that a successful log-in forgets only the
    failures of the username that logged in.

    Axes would also forget every failure from the address, whoever they were
    for: a researcher could then guess at a colleague's password and wipe the
    count by logging in to their own account every few guesses."""

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        username = get_client_username(request, credentials)
        if not username:
            return 0
        return self.reset_attempts(username=username)


def client_address(request: HttpRequest) -> str | None:
    """The address a request came from. Behind a trusted proxy (the one whose
    X-Forwarded-Proto settings trust: SECURE_PROXY_SSL_HEADER) it is the last
    entry of X-Forwarded-For, the one that proxy added; entries to its left
    come from the client and could be anything. Otherwise X-Forwarded-For is
    ignored: anyone could send it."""
    if settings.SECURE_PROXY_SSL_HEADER:
        nearest = request.META.get("HTTP_X_FORWARDED_FOR", "").rpartition(",")[2].strip()
        if _is_address(nearest):
            return nearest
    return request.META.get("REMOTE_ADDR") or None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """The page the login view answered (the researcher's or the admin's), with
    the lock in place of "wrong password", as 429 Too Many Requests. It is the
    same response rendered again, so the login view's no-cache headers stay."""
    message = get_lockout_message()
    status = settings.AXES_HTTP_RESPONSE_CODE
    context = getattr(original_response, "context_data", None) or {}
    form = context.get("form")
    if not isinstance(original_response, TemplateResponse) or not isinstance(form, Form):
        return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    form.errors.pop(NON_FIELD_ERRORS, None)
    form.add_error(None, message)
    original_response.content = original_response.rendered_content
    original_response.status_code = status
    return original_response
