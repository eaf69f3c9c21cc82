"""The admin of notifications: the outbox (each notice with every try at
delivering it, read-only: the engine and the delivery tasks write them) and
each person's notification settings, their signing secret left out."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from jobs.admin.display import time_display
from jobs.models import Delivery, Notice, NoticeSettings


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class DeliveryInline(_ReadOnly, admin.TabularInline):
    model = Delivery
    extra = 0
    can_delete = False
    fields = (
        "started_at",
        "channel",
        "attempt",
        "target",
        "outcome",
        "http_status",
        "latency_seconds",
        "response_excerpt",
        "error",
    )
    readonly_fields = fields
    ordering = ("started_at", "id")


@admin.register(Notice)
class NoticeAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ("id", "kind", "user", "subject", "created", "email_state", "webhook_state")
    created = time_display("created_at", "created")
    list_filter = ("kind", "email_state", "webhook_state")
    search_fields = ("=id", "subject", "user__username")
    list_select_related = ("user",)
    inlines = [DeliveryInline]


@admin.register(NoticeSettings)
class NoticeSettingsAdmin(admin.ModelAdmin):
    list_display = ("user", "email_enabled", "email", "webhook_url", "updated")
    updated = time_display("updated_at", "updated")
    exclude = ("webhook_secret",)
    readonly_fields = ("user",)
    list_select_related = ("user",)
    search_fields = ("user__username", "email", "webhook_url")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
