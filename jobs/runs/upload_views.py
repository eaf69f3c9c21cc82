"""The run upload: a file of prompts (or a table and a pipeline or eval
definition) read whole and staged, its preview, and the confirmation that
creates the run.
Like jobs/runs/views.py, each view checks access, calls one service and renders
or redirects."""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.http import require_http_methods, require_POST

from jobs import formats
from jobs.engine import budgets
from jobs.engine.pipelines import DefinitionError, Pipeline
from jobs.models import Run
from jobs.runs import eval_definitions, eval_preview, pipeline_runs
from jobs.runs import limits as run_limits
from jobs.runs import services as runs
from jobs.runs import uploads as run_uploads
from jobs.runs.eval_definitions import CompiledEval
from jobs.runs.forms import RunDeadlineForm, RunUploadForm
from jobs.runs.reading import RunRejected
from jobs.web.forms import StandardMoveQuote
from jobs.web.notifications import RunNotifyForm
from jobs.web.pages import CHANGED


# --- Upload, preview, confirm ------------------------------------------------------
@require_http_methods(["GET", "POST"])
@login_required
def run_upload(request: HttpRequest) -> HttpResponse:
    """A file of prompts, or a table and a pipeline or eval definition: read
    whole and staged for the preview; nothing is created here."""
    form = RunUploadForm(request.POST or None, request.FILES or None)
    rejected: RunRejected | None = None
    problems: list[str] = []
    if refusal := run_limits.upload_refusal(request):
        # The file was dropped as it streamed in: refused like any file over
        # the limit, the settings kept to upload it again (or a smaller one).
        rejected = RunRejected([(None, refusal)], total=1)
        form = RunUploadForm(initial=request.POST.dict())
    elif request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        spec = form.spec()
        try:
            pipeline, evaluation = _definition_read(form, spec)
            if pipeline is not None:
                preview = pipeline_runs.pipeline_preview(
                    stream=upload,
                    filename=upload.name,
                    pipeline=pipeline,
                    fmt=form.cleaned_data["format"] or None,
                )
            else:
                preview = runs.run_preview(
                    stream=upload, filename=upload.name, spec=spec, fmt=form.cleaned_data["format"]
                )
        except DefinitionError as error:
            problems = error.problems
        except ValidationError as error:
            form.add_service_errors(error)
        except RunRejected as error:
            rejected = error
        else:
            saved = run_uploads.upload_save(owner=request.user, upload=upload)
            staged = {
                "owner": request.user,
                "token": saved.token,
                "filename": upload.name,
                "name": form.cleaned_data["name"],
                "spec": spec,
                "preview": preview,
                "budget_usd": form.cleaned_data["budget_usd"],
            }
            if pipeline is not None:
                run_uploads.pipeline_stage(**staged, evaluation=evaluation)
            else:
                run_uploads.upload_stage(**staged)
            if saved.discarded:
                messages.info(request, _discarded_message(saved.discarded))
            return redirect("jobs:run_preview", token=saved.token)
    context = {
        "form": form,
        "rejected": rejected,
        "definition_problems": problems,
        "definition_kind": form.definition_kind(),
        "formats": formats.FORMAT_LABELS,
        "quote": form.standard_move_quote(),
        "previews_kept": settings.FLEX_PREVIEW_MAX_COUNT,
    }
    return render(request, "runs/run_upload.html", context)


def _definition_read(form: RunUploadForm, spec) -> tuple[Pipeline | None, dict | None]:
    """The pipeline the upload's definition makes (an eval's compiled one, with
    its Run.evaluation), or (None, None) for a plain run. Raises DefinitionError."""
    if source := form.eval_definition():
        compiled = eval_definitions.eval_read(source, spec=spec)
        return compiled.pipeline, compiled.evaluation
    if source := form.definition():
        return pipeline_runs.pipeline_read(source, spec=spec), None
    return None, None


def _discarded_message(count: int) -> str:
    kept = settings.FLEX_PREVIEW_MAX_COUNT
    size = filesizeformat(settings.FLEX_PREVIEW_MAX_BYTES)
    return (
        f"{count} older unconfirmed preview{_s(count)} discarded to make room: "
        f"up to {kept} previews ({size} in all) wait to be confirmed, for a day."
    )


def _staged(request: HttpRequest, token: str) -> run_uploads.StagedUpload:
    staged = run_uploads.staged_upload(owner=request.user, token=token)
    if staged is None:
        raise Http404("No such upload: it was confirmed, discarded or has expired.")
    return staged


@require_http_methods(["GET", "POST"])
@login_required
def run_preview(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what the file holds and costs; POST creates the run with
    the deadline confirmed (or changed) here, where its cost is shown."""
    staged = _staged(request, token)
    posted = request.POST if request.method == "POST" else None
    deadline = RunDeadlineForm.for_staged(staged.spec, posted, staged.budget_usd)
    notify = RunNotifyForm.for_user(request.user, posted)
    if posted is not None and all([deadline.is_valid(), notify.is_valid()]):
        create = _pipeline_create(staged) if staged.pipeline else runs.run_create
        try:
            with staged.path.open("rb") as stream:
                run = create(
                    owner=request.user,
                    stream=stream,
                    filename=staged.filename,
                    spec=replace(staged.spec, **deadline.deadline()),
                    name=staged.name,
                    fmt=staged.preview.format or None,
                    notify=notify.notify(),
                    budget_usd=deadline.cleaned_data["budget_usd"],
                )
        except ValidationError as error:
            if any(field in deadline.fields for field in getattr(error, "error_dict", {})):
                # A deadline that passed meanwhile, or a policy without one: choose again.
                deadline.add_service_errors(error)
                return _preview_page(request, staged, deadline, notify)
            # Only when the settings or limits changed since the preview.
            return _not_created(request, token, " ".join(error.messages))
        except RunRejected as error:
            return _not_created(request, token, error.summary())
        run_uploads.upload_discard(owner=request.user, token=token)
        messages.success(request, _created_message(run), extra_tags=CHANGED)
        return redirect("jobs:run_detail", run_id=run.pk)
    return _preview_page(request, staged, deadline, notify)


def _pipeline_create(staged: run_uploads.StagedUpload):
    """pipeline_run_create (eval_run_create for an eval) for the staged
    definition, checked when it was uploaded (its text is not read again)."""
    pipeline = Pipeline.from_json(staged.pipeline.definition)
    evaluation = staged.pipeline.evaluation

    def create(**arguments) -> Run:
        if evaluation is not None:
            compiled = CompiledEval(evaluation=evaluation, pipeline=pipeline)
            return eval_definitions.eval_run_create(compiled=compiled, **arguments)
        return pipeline_runs.pipeline_run_create(pipeline=pipeline, **arguments)

    return create


def _created_message(run: Run) -> str:
    count = run.jobs.count()
    if run.pipeline is None:
        return f"Run “{run.name}” created: {count:,} jobs queued."
    rows = run.rows.count()
    if run.evaluation is not None:
        candidates = len(run.evaluation["candidates"])
        return (
            f"Eval “{run.name}” created: {rows:,} row{_s(rows)}, {candidates} "
            f"candidate{_s(candidates)}, {count:,} job{_s(count)}; each answer is graded as "
            "it comes."
        )
    return (
        f"Pipeline “{run.name}” created: {rows:,} row{_s(rows)}, {count:,} job{_s(count)}; "
        "each row's later steps start as its earlier ones answer."
    )


def _preview_page(
    request: HttpRequest,
    staged: run_uploads.StagedUpload,
    deadline: RunDeadlineForm,
    notify: RunNotifyForm,
) -> HttpResponse:
    estimate = staged.preview.estimate
    quote = StandardMoveQuote(
        extra_usd=estimate.standard_usd - estimate.flex_usd, tier=staged.spec.tier, run=True
    )
    cost = estimate.cost_on(staged.spec.tier)
    if staged.pipeline:
        # Each step is priced at its own tier.
        cost = staged.pipeline.cost_usd
    budget = staged.budget_usd
    if deadline.is_bound and deadline.is_valid():
        budget = deadline.cleaned_data["budget_usd"]
    fit = budgets.run_fit(owner=request.user, cost=cost, budget_usd=budget)
    context = {
        "staged": staged,
        "form": deadline,
        "quote": quote,
        "fit": fit,
        "fit_cost": cost,
        "notify_form": notify,
        "eval_estimate": None,
    }
    if staged.pipeline and staged.pipeline.evaluation is not None:
        context["eval_estimate"] = eval_preview.eval_estimate(
            evaluation=staged.pipeline.evaluation, steps=staged.pipeline.steps
        )
    template = "runs/pipeline_preview.html" if staged.pipeline else "runs/run_preview.html"
    return render(request, template, context)


def _not_created(request: HttpRequest, token: str, reason: str) -> HttpResponse:
    run_uploads.upload_discard(owner=request.user, token=token)
    messages.error(request, f"The run was not created: {reason}")
    return redirect("jobs:run_upload")


@require_POST
@login_required
def run_discard(request: HttpRequest, token: str) -> HttpResponse:
    run_uploads.upload_discard(owner=request.user, token=token)
    messages.success(request, "The upload was discarded; nothing was created.")
    return redirect("jobs:run_upload")


def _s(count: int) -> str:
    return "" if count == 1 else "s"
