"""The eval builder's page: an eval definition built field by field, checked as
the upload checks one, and handed to the upload as its text. Like
jobs/runs/views.py, the view checks access, calls one service and renders."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from jobs.runs.eval_builder import EvalBuilder, builder_spec
from jobs.runs.forms import RunUploadForm

ADD = "add-"


@require_http_methods(["GET", "POST"])
@login_required
def run_eval_builder(request: HttpRequest) -> HttpResponse:
    """GET offers empty rows; "Add a ..." posts what was typed back with one more
    row; "Check the definition" shows its problems at their rows, or its YAML with
    the download and the form that takes it, with a table, to the upload's preview;
    "Download eval.yaml" sends that YAML as a file."""
    action = request.POST.get("action", "")
    built = None
    if request.method != "POST":
        builder = EvalBuilder()
    elif action.startswith(ADD):
        builder = EvalBuilder.with_row_added(request.POST, action.removeprefix(ADD))
    else:
        builder = EvalBuilder(request.POST)
        built = builder.build(spec=builder_spec())
        if built is not None and action == "download":
            response = HttpResponse(built.text, content_type="application/yaml; charset=utf-8")
            response["Content-Disposition"] = 'attachment; filename="eval.yaml"'
            return response
    context = {
        "builder": builder,
        "built": built,
        "checked": request.method == "POST" and not action.startswith(ADD),
        "upload_form": built and RunUploadForm(initial={"eval_text": built.text}),
    }
    return render(request, "runs/eval_builder.html", context)
