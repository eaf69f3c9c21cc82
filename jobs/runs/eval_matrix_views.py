"""An eval run's matrix page (jobs/runs/eval_matrix.py): rows by candidates,
filtered and paged by plain links, as the pipeline grid is, so a page can be
linked and works without script."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from jobs.models import Run
from jobs.runs import eval_matrix


def get_eval_for_user(request: HttpRequest, run_id: int) -> Run:
    """The eval run, if this user may see it; 404 for another's run and for a run
    that is not an eval, so ids reveal nothing."""
    return get_object_or_404(eval_matrix.visible_evals(request.user), pk=run_id)


class MatrixForm(forms.Form):
    show = forms.ChoiceField(choices=[(f.key, f.label) for f in eval_matrix.FILTERS])
    page = forms.IntegerField(min_value=1)

    def page_asked(self) -> dict:
        """matrix_page's keywords; a bad value is ignored, as the jobs filter does."""
        self.is_valid()
        data = self.cleaned_data
        return {"show": data.get("show") or "all", "page": data.get("page") or 1}


@require_safe
@login_required
def eval_matrix_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_eval_for_user(request, run_id)
    page = eval_matrix.matrix_page(run, **MatrixForm(request.GET).page_asked())
    return render(request, "runs/eval_matrix.html", {"run": run, "matrix": page})
