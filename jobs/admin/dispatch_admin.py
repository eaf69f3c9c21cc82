"""The admin of the dispatchers' shared state: DispatchControl, the pause
switch (with the Gemini route and endpoint in force), a singleton never added
or deleted by hand, and DispatcherSlot, the dispatchers' leased slots, never
added by hand."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.admin.display import time_display
from jobs.admin.redacted import redacted_display
from jobs.engine import control
from jobs.models import DispatchControl, DispatcherSlot


@admin.register(DispatchControl)
class DispatchControlAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "paused",
        "paused_reason",
        "paused_since",
        "gemini_route",
        "gemini_endpoint",
    )
    # The reason can quote Gemini's error: shown read-only, without the key.
    exclude = ("reason",)
    readonly_fields = ("paused_reason",)
    paused_reason = redacted_display("reason", "reason")
    paused_since = time_display("paused_at", "paused at")

    @admin.display(description="Gemini API route (GEMINI_API)")
    def gemini_route(self, obj: DispatchControl) -> str:
        return settings.GEMINI_API

    @admin.display(description="Endpoint (GEMINI_BASE_URL)")
    def gemini_endpoint(self, obj: DispatchControl) -> str:
        return settings.GEMINI_BASE_URL or "Google (generativelanguage.googleapis.com)"

    actions = ("resume",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # The one row every dispatcher reads (control.dispatch_control makes it
        # again if missing): deleting it would only lose the pause reason.
        return False

    @admin.action(description="Resume dispatch")
    def resume(self, request: HttpRequest, queryset: QuerySet[DispatchControl]) -> None:
        control.dispatch_resume()
        self.message_user(request, "Dispatch resumed.")


@admin.register(DispatcherSlot)
class DispatcherSlotAdmin(admin.ModelAdmin):
    list_display = ("number", "owner", "in_flight", "heartbeat", "expires")
    heartbeat = time_display("heartbeat_at", "heartbeat at")
    expires = time_display("expires_at", "expires at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
