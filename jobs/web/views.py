"""The researcher's pages. Each GET page answers an htmx request with its live
fragment (`page.html#fragment`), which is how the pages poll themselves."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from jobs.engine import actions, budgets, submitting
from jobs.models import Job
from jobs.web import answers, queries
from jobs.web.forms import JobFilterForm, OverviewFilterForm
from jobs.web.pages import CHANGED, newest_first_page
from jobs.web.pipeline_job import pipeline_place
from jobs.web.request_form import JobRequestForm


def _get_job_for_user(request: HttpRequest, job_id: int) -> Job:
    """The job, if this user may see it; 404 otherwise, so ids reveal nothing."""
    return get_object_or_404(Job.objects.visible_to(request.user), pk=job_id)


def _page_or_fragment(request: HttpRequest, template: str, fragment: str, context: dict):
    name = f"{template}#{fragment}" if request.htmx else template
    return render(request, name, context)


@require_safe
@login_required
@vary_on_headers("HX-Request")
def overview(request: HttpRequest) -> HttpResponse:
    filters = OverviewFilterForm(request.GET, viewer=request.user)
    summary = queries.overview(filters.scope(), now=timezone.now(), hours=filters.chart_hours())
    context = {"filters": filters, "summary": summary}
    return _page_or_fragment(request, "jobs/overview.html", "overview-live", context)


@require_safe
@login_required
@vary_on_headers("HX-Request")
def job_list(request: HttpRequest) -> HttpResponse:
    filters = JobFilterForm(request.GET, viewer=request.user)
    scope = filters.scope()
    counts = queries.state_counts(scope)
    total = queries.job_list_total(counts.by_state, **filters.filters())
    jobs = queries.job_filter(scope, **filters.filters(), newest=True)
    page = newest_first_page(request, jobs, queries.jobs_by_id, total)
    context = {
        "filters": filters,
        "page": page,
        "counts": counts,
        "live": any(job.is_active for job in page),
    }
    return _page_or_fragment(request, "jobs/job_list.html", "job-table", context)


@require_http_methods(["GET", "POST"])
@login_required
def job_submit(request: HttpRequest) -> HttpResponse:
    posted = request.method == "POST"
    form = JobRequestForm(request.POST if posted else None, request.FILES if posted else None)
    if request.htmx and request.htmx.target == "deadline-quote":
        # The figure next to "move to standard", for what is typed so far; nothing is submitted.
        quote = form.standard_move_quote()
        return render(request, "jobs/job_submit.html#deadline-quote", {"quote": quote})
    if form.is_valid():
        try:
            (job,) = submitting.jobs_submit(
                owner=request.user, prompts=[form.gemini_request()], spec=form.spec()
            )
        except ValidationError as error:
            form.add_service_errors(error)
        else:
            # To the job's own page, which follows it live: on the list, a flash
            # saying "queued" stayed on while the row moved on to succeeded.
            messages.success(request, f"Job {job.pk} submitted.", extra_tags=CHANGED)
            return redirect("jobs:job_detail", job_id=job.pk)
    context = {
        "form": form,
        "prices": queries.price_table(),
        "quote": form.standard_move_quote(),
    }
    return render(request, "jobs/job_submit.html", context)


@require_safe
@login_required
@vary_on_headers("HX-Request")
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _get_job_for_user(request, job_id)
    attempts = list(job.attempt_log.order_by("number"))
    now = timezone.now()
    context = {
        "job": job,
        "asked": answers.request_view(job.gemini_request()),
        "answer": answers.answer_view(job),
        "attempts": attempts,
        "times": queries.job_times(job, attempts, now=now),
        "capacity": queries.capacity_hold(job, now=now),
        "budget_holds": budgets.holds_for_job(job, now=now),
        "can_cancel": job.state in queries.CANCELLABLE_STATES,
        "can_retry": job.state in queries.RETRYABLE_STATES,
        "retry_grant": actions.retry_grants(Job.objects.filter(pk=job.pk)),
        "pipeline": pipeline_place(job),
    }
    return _page_or_fragment(request, "jobs/job_detail.html", "job-live", context)


@require_POST
@login_required
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _get_job_for_user(request, job_id)
    if actions.job_cancel(job=job):
        messages.success(request, f"Job {job.pk} cancelled.")
    else:
        messages.error(
            request,
            f"Job {job.pk} is {job.get_state_display().lower()}: only a queued job or one "
            "waiting to retry can be cancelled.",
        )
    return redirect("jobs:job_detail", job_id=job.pk)


@require_POST
@login_required
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _get_job_for_user(request, job_id)
    if actions.job_retry_now(job=job):
        messages.success(request, f"Job {job.pk} will be tried again now.", extra_tags=CHANGED)
    else:
        messages.error(
            request,
            f"Job {job.pk} is {job.get_state_display().lower()}: only a failed job or one "
            "waiting to retry can be retried now.",
        )
    return redirect("jobs:job_detail", job_id=job.pk)


@require_POST
@login_required
def job_run_again(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _get_job_for_user(request, job_id)
    spec = submitting.JobSpec.of_job(job)
    try:
        (new_job,) = submitting.jobs_submit(
            owner=request.user, prompts=[job.gemini_request()], spec=spec
        )
    except ValidationError as error:
        messages.error(request, f"Job {job.pk} could not be run again: {' '.join(error.messages)}")
        return redirect("jobs:job_detail", job_id=job.pk)
    messages.success(
        request, f"Job {new_job.pk} submitted: a new run of job {job.pk}.", extra_tags=CHANGED
    )
    return redirect("jobs:job_detail", job_id=new_job.pk)


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask the root for /favicon.ico whatever the page says: send them to
    the icon base.html links (its hashed name when DEBUG is off)."""
    return redirect(static("img/favicon.svg"))
