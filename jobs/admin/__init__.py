"""The operator's Django admin for the jobs app, one module per admin family:

- job_admin: jobs and their attempts;
- run_admin: runs, the jobs of one uploaded file;
- budget_admin: the account's and each person's monthly limits, and what each budget used;
- dispatch_admin: the dispatch pause switch and the dispatchers' slots;
- per_model_admin: each model's limits (and what pacing learned) and prices;
- signin_admin: the failed log-ins the log-in throttle counts, and unlocking;
- notice_admin: the notifications' outbox with its deliveries, and each person's settings.

Django's admin autodiscovery imports `jobs.admin`; importing the modules here
registers every jobs model's admin with the default site, and names the site
once, here. Shared displays: redacted (outside text without the Gemini key),
display (times to the second, rounded seconds).
"""

from django.contrib import admin

from jobs.admin import (  # noqa: F401
    budget_admin,
    dispatch_admin,
    job_admin,
    notice_admin,
    per_model_admin,
    run_admin,
    signin_admin,
)

admin.site.site_header = "FlexDash administration"
admin.site.site_title = "FlexDash admin"
admin.site.index_title = "FlexDash operations"
# The model list beside every page repeats the index and takes 280 px the
# jobs list needs to fit a 1280 px screen next to its filters.
admin.site.enable_nav_sidebar = False
