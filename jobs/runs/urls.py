"""The run pages, included by jobs/web/urls.py under runs/ (names in the jobs namespace)."""

from django.urls import path

from jobs.runs import builder_views, eval_compare_views, eval_matrix_views, upload_views
from jobs.runs import views as run_views

urlpatterns = [
    path("", run_views.run_list, name="run_list"),
    path("new/", upload_views.run_upload, name="run_upload"),
    path("new/eval/", builder_views.run_eval_builder, name="run_eval_builder"),
    path("new/pipeline/", builder_views.run_pipeline_builder, name="run_pipeline_builder"),
    path("new/<str:token>/", upload_views.run_preview, name="run_preview"),
    path("new/<str:token>/discard/", upload_views.run_discard, name="run_discard"),
    path("<int:run_id>/", run_views.run_detail, name="run_detail"),
    path("<int:run_id>/rows/<int:line_number>/", run_views.run_row, name="run_row"),
    path("<int:run_id>/cancel/", run_views.run_cancel, name="run_cancel"),
    path("<int:run_id>/budget/", run_views.run_budget, name="run_budget"),
    path("<int:run_id>/retry/", run_views.run_retry, name="run_retry"),
    path("<int:run_id>/resend/", run_views.run_resend, name="run_resend"),
    path("<int:run_id>/standard/", run_views.run_standard, name="run_standard"),
    path("<int:run_id>/delete/", run_views.run_delete, name="run_delete"),
    path("<int:run_id>/results/", run_views.run_results_page, name="run_results_page"),
    path("<int:run_id>/results.jsonl", run_views.run_results, name="run_results"),
    path("<int:run_id>/results.csv", run_views.run_results_csv, name="run_results_csv"),
    path("<int:run_id>/unfinished/", run_views.run_unfinished, name="run_unfinished"),
    path("<int:run_id>/eval/matrix/", eval_matrix_views.eval_matrix_page, name="eval_matrix"),
    path(
        "<int:run_id>/eval/compare/",
        eval_compare_views.eval_compare_choose,
        name="eval_compare_choose",
    ),
    path(
        "<int:run_id>/eval/compare/<int:other_id>/",
        eval_compare_views.eval_compare_page,
        name="eval_compare",
    ),
    path(
        "<int:run_id>/eval/compare/<int:other_id>.json",
        eval_compare_views.eval_compare_json,
        name="eval_compare_json",
    ),
    path(
        "<int:run_id>/eval/leaderboard.csv",
        run_views.eval_leaderboard_csv,
        name="eval_leaderboard_csv",
    ),
    path(
        "<int:run_id>/eval/leaderboard.json",
        run_views.eval_leaderboard_json,
        name="eval_leaderboard_json",
    ),
    path("<int:run_id>/eval/chart.svg", run_views.eval_chart_svg, name="eval_chart_svg"),
    path("<int:run_id>/eval/rows.csv", run_views.eval_rows_csv, name="eval_rows_csv"),
    path("<int:run_id>/eval/rows.jsonl", run_views.eval_rows_jsonl, name="eval_rows_jsonl"),
]
