"""The account page: a person's API tokens, made and revoked here, and their
notifications (jobs/web/notification_views.py)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from jobs.engine import budgets, tokens
from jobs.models import ApiToken
from jobs.web import notifications


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What the token is for, e.g. the script that uses it."
    )


def _account_page(
    request: HttpRequest,
    form: ApiTokenForm,
    new_token: str = "",
    new_token_name: str = "",
    notices: dict | None = None,
) -> HttpResponse:
    standings = budgets.standings_of(request.user)
    context = {
        "budgets": standings,
        "holding": [standing for standing in standings if standing.holding],
        "form": form,
        "tokens": ApiToken.objects.filter(user=request.user),
        "new_token": new_token,
        "new_token_name": new_token_name,
        **(notices or notifications.section(request.user)),
    }
    return render(request, "account/index.html", context)


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return _account_page(request, ApiTokenForm())


@never_cache
@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST)
    if not form.is_valid():
        return _account_page(request, form)
    row, token = tokens.api_token_create(user=request.user, name=form.cleaned_data["name"])
    # Rendered, not redirected: the token is shown this once and kept nowhere,
    # not even in the session. never_cache keeps it out of caches.
    return _account_page(request, ApiTokenForm(), new_token=token, new_token_name=row.name)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    if tokens.api_token_revoke(token=token):
        messages.success(request, f"Revoked the token “{token.name}”: it no longer works.")
    return redirect("account:index")
