"""The log-in throttle's admin (jobs/web/signin.py): the failed log-ins being
counted, django-axes' AccessAttempt, one row per username, address and browser.
Unlocking deletes the rows: the username or address starts again from no
failures. Axes' logs of successful log-ins and of every failure are not kept
(settings), so their admins are not registered."""

from __future__ import annotations

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest


@admin.register(AccessAttempt)
class FailedLogInAdmin(AccessAttemptAdmin):
    actions = ["unlock", *AccessAttemptAdmin.actions]

    @admin.action(description="Unlock: forget the selected failed log-ins", permissions=["delete"])
    def unlock(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        usernames = sorted({attempt.username or "(no username)" for attempt in queryset})
        count = queryset.count()
        queryset.delete()
        records = "1 record" if count == 1 else f"{count} records"
        self.message_user(
            request, f"Forgot the failed log-ins of {', '.join(usernames)} ({records})."
        )
