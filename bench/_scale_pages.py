"""Timing bench/scale.py's pages: every page and fragment that polls, for a researcher and staff.

Inside Django (common.django_call), on a database bench/_scale_data.py built,
with DEBUG off, Django's clock (django.utils.timezone.now) held at the
build's anchor, so every turn, at either size, sees the same last minute,
hour, day and month however long after the build it runs. Through Django's
test Client, each page as the browser asks for it (the URL and htmx
headers its template's hx-get sends: HX-Request, HX-Target and HX-Trigger the
id of the element that polls, HX-Current-URL), with
bench/_search_pages.py's time_page (one warm-up, REPEAT timed requests, and
in the plans turn the statements with the plans of those reading the jobs,
attempts, runs or stored counts):

- the overview `/` and its fragment #overview-live (every 2 s while a job is
  active, every 10 s while a model's weather is unsettled);
- the capacity weather, which has no URL of its own: it is drawn inside
  #overview-live, so it is timed as that fragment draws it
  (capacity.weather() and the overview's #capacity-weather partial),
  once: it is every model's, for everyone;
- the jobs list `/jobs/` and its fragment #job-table, also `?state=queued`;
- the run list `/runs/` (it does not poll; the scale issue lists it);
- the large run's page `/runs/<id>/`, its #run-live and #job-table
  fragments, and a job page `/jobs/<id>/` and its #job-live fragment (a
  job waiting to retry: its page polls), for the researcher who owns them
  (staff see the same).

A helper module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import functools
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from bench._search_pages import time_page

TABLES = ('"JOBS_JOB"', '"JOBS_ATTEMPT"', '"JOBS_RUN"', '"JOBS_JOBCOUNT"')
BOTH = ("researcher", "staff")
OWNER = ("researcher",)


def pages(run_id: int, job_id: int) -> list[dict[str, Any]]:
    """The pages timed, in table order: name, URL, htmx target (None: the
    whole page) and who they are timed for."""
    run, job = f"/runs/{run_id}/", f"/jobs/{job_id}/"
    return [
        {"page": "overview", "url": "/", "target": None, "viewers": BOTH},
        {
            "page": "overview fragment (poll)",
            "url": "/",
            "target": "overview-live",
            "viewers": BOTH,
        },
        {"page": "capacity weather", "url": None, "target": "capacity-weather", "viewers": OWNER},
        {"page": "jobs list", "url": "/jobs/", "target": None, "viewers": BOTH},
        {"page": "jobs list fragment", "url": "/jobs/", "target": "job-table", "viewers": BOTH},
        {
            "page": "jobs list, queued",
            "url": "/jobs/?state=queued",
            "target": None,
            "viewers": BOTH,
        },
        {
            "page": "jobs list fragment, queued",
            "url": "/jobs/?state=queued",
            "target": "job-table",
            "viewers": BOTH,
        },
        {"page": "run list", "url": "/runs/", "target": None, "viewers": BOTH},
        {"page": "run page", "url": run, "target": None, "viewers": OWNER},
        {"page": "run page progress fragment", "url": run, "target": "run-live", "viewers": OWNER},
        {"page": "run page jobs fragment", "url": run, "target": "job-table", "viewers": OWNER},
        {"page": "job page", "url": job, "target": None, "viewers": OWNER},
        {"page": "job page fragment", "url": job, "target": "job-live", "viewers": OWNER},
    ]


def headers(url: str, target: str | None) -> dict[str, str]:
    """What htmx sends with a poll of the element `target` (none for a page)."""
    if target is None:
        return {}
    return {
        "HX-Request": "true",
        "HX-Target": target,
        "HX-Trigger": target,
        "HX-Current-URL": f"http://testserver{url}",
    }


def _reads(sql: str) -> bool:
    head = sql.lstrip().upper()
    return head.startswith("SELECT") and any(table in head for table in TABLES)


def _hold_clock(anchor: datetime) -> None:
    """timezone.now() answers `anchor` from now on in this process."""
    from django.utils import timezone

    timezone.now = lambda: anchor


def _weather(user: Any) -> SimpleNamespace:
    """The capacity weather as #overview-live draws it, shaped like a response."""
    from django.template.loader import render_to_string
    from django.utils import timezone

    from jobs.engine import capacity

    context = {"summary": {"weather": capacity.weather(timezone.now())}, "user": user}
    html = render_to_string("jobs/overview.html#capacity-weather", context)
    return SimpleNamespace(status_code=200, content=html.encode())


def measure(anchor: str, run_id: int, job_id: int, repeat: int, explain: bool) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    _hold_clock(datetime.fromisoformat(anchor))
    users = get_user_model().objects
    viewers = {
        "researcher": users.get(username="researcher0"),
        "staff": users.get(username="staff"),
    }
    results = []
    for viewer, user in viewers.items():
        client = Client()
        client.force_login(user)
        for spec in pages(run_id, job_id):
            if viewer not in spec["viewers"]:
                continue
            if spec["url"] is None:
                request = functools.partial(_weather, user)
            else:
                request = functools.partial(
                    client.get, spec["url"], headers=headers(spec["url"], spec["target"])
                )
            timed = time_page(request, repeat=repeat, explain=explain, reads=_reads, record=explain)
            timed.pop("response")
            shown_viewer = "anyone" if spec["url"] is None else viewer
            results.append(
                {**spec, "viewers": list(spec["viewers"]), "viewer": shown_viewer, **timed}
            )
            print(
                f"  {shown_viewer:10} {spec['page']:30} {timed['ms']:9.1f} ms "
                f"(status {','.join(map(str, timed['status']))}, "
                f"{len(timed['statements'])} statements)",
                flush=True,
            )
    return {"database": connection.vendor, "anchor": anchor, "pages": results}
