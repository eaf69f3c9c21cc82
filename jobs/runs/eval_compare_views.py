"""An eval run compared with another run of the same dataset
(jobs/runs/eval_compare.py): the chooser of the owner's other eval runs with
as many rows, the comparison page, and the same figures as JSON for a
regression test in CI."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from jobs.models import Run
from jobs.runs import eval_compare, eval_matrix
from jobs.runs.eval_matrix_views import get_eval_for_user


def _get_pair_for_user(request: HttpRequest, run_id: int, other_id: int) -> tuple[Run, Run]:
    """Both eval runs, if this user may see them and they have one owner; 404 otherwise."""
    run = get_eval_for_user(request, run_id)
    if other_id == run_id:
        raise Http404("A run compared with itself shows nothing.")
    other = get_object_or_404(
        eval_matrix.visible_evals(request.user).filter(owner_id=run.owner_id), pk=other_id
    )
    return run, other


@require_safe
@login_required
def eval_compare_choose(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_eval_for_user(request, run_id)
    return render(
        request,
        "runs/eval_compare_choose.html",
        {"run": run, "others": eval_compare.comparable_runs(run)},
    )


@require_safe
@login_required
def eval_compare_page(request: HttpRequest, run_id: int, other_id: int) -> HttpResponse:
    run, other = _get_pair_for_user(request, run_id, other_id)
    return render(
        request,
        "runs/eval_compare.html",
        {"run": run, "other": other, "comparison": eval_compare.compare(run, other)},
    )


@require_safe
@login_required
def eval_compare_json(request: HttpRequest, run_id: int, other_id: int) -> JsonResponse:
    run, other = _get_pair_for_user(request, run_id, other_id)
    return JsonResponse(eval_compare.compare(run, other).as_json())
