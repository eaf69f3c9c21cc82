"""The dashboard's pages (namespace "jobs"); the run pages come from jobs/runs/urls.py."""

from django.urls import include, path

from jobs.web import views

app_name = "jobs"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("jobs/", views.job_list, name="job_list"),
    path("jobs/new/", views.job_submit, name="job_submit"),
    path("jobs/<int:job_id>/", views.job_detail, name="job_detail"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<int:job_id>/retry/", views.job_retry, name="job_retry"),
    path("jobs/<int:job_id>/run-again/", views.job_run_again, name="job_run_again"),
    path("runs/", include("jobs.runs.urls")),
]
