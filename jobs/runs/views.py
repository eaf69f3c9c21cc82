"""The run pages: the list, the live run page (a pipeline's with its steps and
grid, an eval's with its leaderboard), its actions and its downloads; the
upload is jobs/runs/upload_views.py.
Like jobs/web/views.py, each view checks access, calls one service
(jobs/runs/services.py) or query (jobs/runs/queries.py), and renders or redirects."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from jobs.engine import actions, budgets, spending
from jobs.models import DeadlinePolicy, Job, Run, State, Tier
from jobs.runs import downloads, eval_board, eval_downloads, failures, pipeline_queries, structured
from jobs.runs import queries as run_queries
from jobs.runs import services as runs
from jobs.runs.forms import PipelineGridForm, RunBudgetForm, RunJobFilterForm
from jobs.web import queries
from jobs.web.pages import CHANGED, job_page

RUNS_PER_PAGE = 25


def _get_run_for_user(request: HttpRequest, run_id: int) -> Run:
    """The run, if this user may see it; 404 otherwise, so ids reveal nothing."""
    return get_object_or_404(run_queries.visible_runs(request.user), pk=run_id)


@require_safe
@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(run_queries.run_list(request.user), RUNS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "runs/run_list.html", {"page": page})


# --- The run page ------------------------------------------------------------------
@require_safe
@login_required
@vary_on_headers("HX-Request", "HX-Target")
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """The whole page, or for htmx the fragment that asked: the progress
    (#run-live) or the jobs table (#job-table: the jobs list's rows and
    filters, with the run's own columns); for a pipeline, the progress with
    each step's, and the rows-by-steps grid (#pipeline-grid) for the table;
    for an eval, its leaderboard (#eval-board) above them all."""
    run = _get_run_for_user(request, run_id)
    wants = request.htmx.target if request.htmx else None
    # The leaderboard reads every job of the run: counted once, for the page or its fragment.
    board = eval_board.board(run) if run.evaluation and wants in (None, "eval-board") else None
    if board is not None and wants == "eval-board":
        return render(request, "runs/run_detail.html#eval-board", {"run": run, "board": board})
    scope = run_queries.run_scope(run)
    filters = RunJobFilterForm(request.GET, viewer=request.user)
    counts = queries.state_counts(scope)
    context: dict = {"run": run, "filters": filters, "counts": counts, "board": board}
    if run.pipeline is not None:
        pipeline = pipeline_queries.run_pipeline(run)
        if wants != "run-live":
            grid_filters = PipelineGridForm(request.GET)
            context["grid_filters"] = grid_filters
            context["grid"] = pipeline_queries.grid_page(
                run, pipeline, **grid_filters.grid_filters()
            )
            if wants == "pipeline-grid":
                return render(request, "runs/run_detail.html#pipeline-grid", context)
        if wants != "pipeline-grid":
            context["steps"] = pipeline_queries.step_counts(run, pipeline)
    elif wants != "run-live":
        jobs = run_queries.run_job_list(scope, **filters.filters())
        page = job_page(request, jobs)
        context.update(page=page, live=any(job.is_active for job in page))
        if wants == "job-table":
            return render(request, "runs/run_detail.html#job-table", context)
    if not counts.active and run.finished_at is None:
        runs.run_settle(run=run)
    now = timezone.now()
    context["progress"] = run_queries.run_progress(run, counts, now=now)
    if context["progress"].failed:
        context["failed"] = failures.failed_split(run)
    context["deadline_acted"] = _deadline_acted(run, now=now)
    context["budget"] = budgets.run_standing(run, now=now)
    context["budget_holds"] = budgets.holds_for_run(run, now=now)
    context["budget_form"] = RunBudgetForm(initial={"budget_usd": run.budget_usd})
    if wants == "run-live":
        return render(request, "runs/run_detail.html#run-live", context)
    if run.pipeline is None:
        # A pipeline's steps each have their own schema: the grid opens each answer.
        context["structured"] = structured.preview(run)
    return render(request, "runs/run_detail.html", context)


def _deadline_acted(run: Run, *, now) -> int | None:
    """How many of the run's jobs its passed deadline cancelled or moved to
    standard (a move by hand before it counts too); None before it or for keep."""
    if run.deadline_at is None or run.deadline_at > now:
        return None
    jobs = Job.objects.filter(run=run)
    if run.deadline_policy == DeadlinePolicy.CANCEL:
        return jobs.filter(state=State.CANCELLED, last_error=actions.CANCELLED_AT_DEADLINE).count()
    if run.deadline_policy == DeadlinePolicy.STANDARD:
        return jobs.filter(tier_requested=Tier.STANDARD).count()
    return None


@require_safe
@login_required
def run_row(request: HttpRequest, run_id: int, line_number: int) -> HttpResponse:
    """A pipeline row: its values and every job of it, step by step (the grid's
    cell of a fanned-out step opens here, at that step)."""
    run = _get_run_for_user(request, run_id)
    if run.pipeline is None:
        raise Http404("This run is not a pipeline: it has no rows.")
    found = pipeline_queries.row_jobs(run, pipeline_queries.run_pipeline(run), line_number)
    if found is None:
        raise Http404("This pipeline has no such row.")
    return render(request, "runs/pipeline_row.html", {"run": run, "found": found})


# --- Actions -----------------------------------------------------------------------
@require_POST
@login_required
def run_budget(request: HttpRequest, run_id: int) -> HttpResponse:
    """Set, raise or remove the run's budget; held work is looked at again."""
    run = _get_run_for_user(request, run_id)
    form = RunBudgetForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, f"The budget was not changed: {' '.join(form.errors['budget_usd'])}"
        )
        return redirect("jobs:run_detail", run_id=run.pk)
    limit = form.cleaned_data["budget_usd"]
    budgets.run_budget_set(run=run, limit=limit)
    words = f"now {spending.dollars(limit)}" if limit is not None else "removed"
    messages.success(request, f"The run's budget is {words}.", extra_tags=CHANGED)
    return redirect("jobs:run_detail", run_id=run.pk)


@require_POST
@login_required
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _get_run_for_user(request, run_id)
    cancelled = runs.run_cancel(run=run)
    if cancelled:
        messages.success(request, f"Cancelled {cancelled:,} waiting job{_s(cancelled)}.")
    else:
        messages.error(request, "No job of this run is waiting: there was nothing to cancel.")
    return redirect("jobs:run_detail", run_id=run.pk)


@require_POST
@login_required
def run_retry(request: HttpRequest, run_id: int) -> HttpResponse:
    """Retry the failed jobs a retry may answer; the permanent failures stay."""
    run = _get_run_for_user(request, run_id)
    retried = runs.run_retry_failed(run=run)
    if retried:
        messages.success(
            request, f"{retried:,} failed job{_s(retried)} queued again.", extra_tags=CHANGED
        )
    else:
        messages.error(
            request, "No job of this run failed in a way a retry can fix: nothing was retried."
        )
    return redirect("jobs:run_detail", run_id=run.pk)


@require_POST
@login_required
def run_resend(request: HttpRequest, run_id: int) -> HttpResponse:
    """Send the permanent failures again, as the person chose to."""
    run = _get_run_for_user(request, run_id)
    resent = runs.run_resend_permanent(run=run)
    if resent:
        messages.success(
            request,
            f"{resent:,} permanent failure{_s(resent)} sent again, unchanged.",
            extra_tags=CHANGED,
        )
    else:
        messages.error(request, "No job of this run failed for good: nothing was sent again.")
    return redirect("jobs:run_detail", run_id=run.pk)


@require_http_methods(["GET", "POST"])
@login_required
def run_standard(request: HttpRequest, run_id: int) -> HttpResponse:
    """GET shows what moving to standard would cost; POST moves."""
    run = _get_run_for_user(request, run_id)
    if request.method == "POST":
        moved = runs.run_move_to_standard(run=run)
        if moved:
            messages.success(
                request,
                f"{moved:,} unfinished job{_s(moved)} moved to the standard tier.",
                extra_tags=CHANGED,
            )
        else:
            messages.error(request, "No unfinished flex job is left to move.")
        return redirect("jobs:run_detail", run_id=run.pk)
    quote = run_queries.standard_quote(run)
    return render(request, "runs/run_standard.html", {"run": run, "quote": quote})


@require_http_methods(["GET", "POST"])
@login_required
def run_delete(request: HttpRequest, run_id: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes."""
    run = _get_run_for_user(request, run_id)
    if request.method == "POST":
        name = run.name
        deleted = runs.run_delete(run=run)
        messages.success(request, f"Run “{name}” deleted with its {deleted:,} job{_s(deleted)}.")
        return redirect("jobs:run_list")
    counts = queries.state_counts(run_queries.run_scope(run))
    return render(request, "runs/run_delete.html", {"run": run, "counts": counts})


def _s(count: int) -> str:
    return "" if count == 1 else "s"


# --- The results, read on the page ---------------------------------------------------
@require_safe
@login_required
def run_results_page(request: HttpRequest, run_id: int) -> HttpResponse:
    """The prompts and their answers side by side, in file order, searchable."""
    run = _get_run_for_user(request, run_id)
    filters = RunJobFilterForm(request.GET, viewer=request.user)
    rows = run_queries.run_result_list(run_queries.run_scope(run), **filters.filters())
    context = {"run": run, "filters": filters, "page": job_page(request, rows)}
    return render(request, "runs/run_results.html", context)


# --- Downloads ---------------------------------------------------------------------
@require_safe
@login_required
def run_results(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    return downloads.results(_get_run_for_user(request, run_id))


@require_safe
@login_required
def run_results_csv(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    return downloads.results_csv(_get_run_for_user(request, run_id))


@require_safe
@login_required
def run_unfinished(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    return downloads.unfinished(_get_run_for_user(request, run_id))


# --- An eval's leaderboard and graded rows, downloaded --------------------------------
def _get_eval_for_user(request: HttpRequest, run_id: int) -> Run:
    run = _get_run_for_user(request, run_id)
    if not run.evaluation:
        raise Http404("This run is not an eval: it has no leaderboard.")
    return run


@require_safe
@login_required
def eval_leaderboard_csv(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    return eval_downloads.leaderboard_csv(_get_eval_for_user(request, run_id))


@require_safe
@login_required
def eval_leaderboard_json(request: HttpRequest, run_id: int) -> HttpResponse:
    return eval_downloads.leaderboard_json(_get_eval_for_user(request, run_id))


@require_safe
@login_required
def eval_chart_svg(request: HttpRequest, run_id: int) -> HttpResponse:
    return eval_downloads.chart_svg(_get_eval_for_user(request, run_id))


@require_safe
@login_required
def eval_rows_csv(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    return eval_downloads.rows_csv(_get_eval_for_user(request, run_id))


@require_safe
@login_required
def eval_rows_jsonl(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    return eval_downloads.rows_jsonl(_get_eval_for_user(request, run_id))
