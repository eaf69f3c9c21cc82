"""The admin of runs (the jobs of one uploaded file): RunAdmin, with actions
that cancel a run's unfinished jobs and retry its failed ones."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.admin.display import time_display
from jobs.engine import actions, budgets
from jobs.models import Job, Run
from jobs.runs import failures
from jobs.runs import services as runs


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "owner",
        "source_format",
        "model",
        "tier",
        "deadline",
        "deadline_policy",
        "budget_usd",
        "created",
        "finished",
    )
    deadline = time_display("deadline_at", "deadline")
    created = time_display("created_at", "created")
    finished = time_display("finished_at", "finished")
    list_filter = ("source_format", "model", "tier", "owner")
    search_fields = ("=id", "name", "source_name")
    list_select_related = ("owner",)
    readonly_fields = (
        "owner",
        "source_name",
        "source_format",
        "replaced_models",
        "estimated_input_tokens",
        "estimated_output_tokens",
        "estimated_cost_usd",
        "estimated_standard_cost_usd",
        "deadline_at",
        "deadline_policy",
        "created_at",
        "finished_at",
    )
    actions = ("cancel_unfinished", "retry_failed")

    def save_model(self, request, obj: Run, form, change) -> None:
        # A budget set or changed here looks at the run's held work again.
        super().save_model(request, obj, form, change)
        if "budget_usd" in form.changed_data:
            budgets.run_budget_set(run=obj, limit=obj.budget_usd)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Runs come from an uploaded file (page, API or `manage.py submit --file`).
        return False

    @admin.action(description="Cancel the unfinished jobs of the selected runs")
    def cancel_unfinished(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        done = sum(runs.run_cancel(run=run) for run in queryset)
        self.message_user(request, f"{done} jobs cancelled.")

    @admin.action(description="Retry the failed jobs of the selected runs")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        # What run_retry_failed sends again: not the failures a retry cannot mend.
        retried = Job.objects.filter(run__in=queryset).exclude(failures.failed_for_good())
        grant = actions.retry_grants(retried)
        done = sum(runs.run_retry_failed(run=run) for run in queryset)
        granted = f", with {actions.grant_words(grant)} each" if grant else ""
        self.message_user(
            request,
            f"{done} failed jobs will run again{granted}; failures a retry cannot mend "
            "(a 400, a blocked prompt or answer) are left as they are.",
        )
