"""The operator's Django admin for the jobs app.

Django's admin autodiscovery imports `jobs.admin`; importing the modules below
registers every jobs model's admin with the default site.
"""

from jobs.admin import job_admin  # noqa: F401
