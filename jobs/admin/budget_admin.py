"""The admin of budgets: AccountBudget (the operator's monthly limit on the
whole account, a singleton), UserBudget (each researcher's monthly limit, set
by staff) and BudgetUse (what each budget has spent and holds reserved, read
only). Saving a limit goes through the engine (jobs/engine/budgets.py), so
work it held back is looked at again at once."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from jobs.admin.display import time_display
from jobs.engine import budgets, spending
from jobs.models import AccountBudget, BudgetUse, UserBudget


def _money(value) -> str:
    return "no limit" if value is None else spending.dollars(value)


@admin.register(AccountBudget)
class AccountBudgetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "monthly_limit_usd", "this_month")
    fields = ("monthly_limit_usd",)

    @admin.display(description="this month (UTC): spent + reserved")
    def this_month(self, obj: AccountBudget) -> str:
        (account,) = budgets.standings_of(None)
        return f"{spending.dollars(account.spent)} + {spending.dollars(account.reserved)}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not AccountBudget.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the row every claim holds; clear the limit instead

    def save_model(self, request, obj: AccountBudget, form, change) -> None:
        budgets.account_limit_set(limit=obj.monthly_limit_usd)


@admin.register(UserBudget)
class UserBudgetAdmin(admin.ModelAdmin):
    list_display = ("user", "monthly_limit_usd", "updated")
    updated = time_display("updated_at", "updated")
    search_fields = ("user__username",)
    list_select_related = ("user",)

    def save_model(self, request, obj: UserBudget, form, change) -> None:
        budgets.user_limit_set(user=obj.user, limit=obj.monthly_limit_usd)

    def delete_model(self, request, obj: UserBudget) -> None:
        budgets.user_limit_set(user=obj.user, limit=None)
        obj.delete()

    def delete_queryset(self, request, queryset) -> None:
        for row in queryset:
            self.delete_model(request, row)


@admin.register(BudgetUse)
class BudgetUseAdmin(admin.ModelAdmin):
    list_display = ("key", "scope", "spent_usd", "reserved_usd", "stopped", "blocked_reason")
    list_filter = ("scope", "month")
    search_fields = ("key", "user__username", "run__name")
    stopped = time_display("blocked_since", "stopped work at")
    readonly_fields = [f.name for f in BudgetUse._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the engine keeps these rows; a limit is changed on its own row
