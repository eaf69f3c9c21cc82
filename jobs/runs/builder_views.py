"""The builder pages: an eval's or a pipeline's definition built field by field,
checked as the upload checks one, and handed to the upload as its text. Like
jobs/runs/views.py, a view checks access, calls one service and renders."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from jobs.runs.builders import Builder, builder_spec
from jobs.runs.eval_builder import EvalBuilder
from jobs.runs.forms import RunUploadForm
from jobs.runs.pipeline_builder import PipelineBuilder

ADD = "add-"


@require_http_methods(["GET", "POST"])
@login_required
def run_eval_builder(request: HttpRequest) -> HttpResponse:
    return _builder_page(request, EvalBuilder, "runs/eval_builder.html", "eval.yaml")


@require_http_methods(["GET", "POST"])
@login_required
def run_pipeline_builder(request: HttpRequest) -> HttpResponse:
    return _builder_page(request, PipelineBuilder, "runs/pipeline_builder.html", "pipeline.yaml")


def _builder_page(
    request: HttpRequest, kind: type[Builder], template: str, filename: str
) -> HttpResponse:
    """GET offers empty rows; "Add a ..." posts what was typed back with one more
    row; "Check the definition" shows its problems at their rows, or its YAML with
    the download and the form that takes it, with a table, to the upload's preview;
    "Download" sends that YAML as a file."""
    action = request.POST.get("action", "")
    built = None
    if request.method != "POST":
        builder = kind()
    elif action.startswith(ADD):
        builder = kind.with_row_added(request.POST, action.removeprefix(ADD))
    else:
        builder = kind(request.POST)
        built = builder.build(spec=builder_spec())
        if built is not None and action == "download":
            response = HttpResponse(built.text, content_type="application/yaml; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
    context = {
        "builder": builder,
        "built": built,
        "checked": request.method == "POST" and not action.startswith(ADD),
        "upload_form": built and RunUploadForm(initial=builder.upload_initial(built)),
    }
    return render(request, template, context)
