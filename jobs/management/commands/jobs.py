"""python manage.py jobs --json [--user NAME] [--status S] [--batch RUN_ID]

Each job names where it came from: `step` (its pipeline step; null outside
pipelines), `item` (its index in a step's fan-out), `row` (its row's or line's
id in the uploaded file) and `line` (that row's line number)."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from jobs.models import Job, Run, State
from jobs.redaction import redact_api_key
from jobs.runs import pipeline_downloads


def job_record(job: Job) -> dict:
    return {
        "id": job.pk,
        "status": job.state,
        "run": job.run_id,
        "step": job.step or None,
        "item": job.item,
        "row": job.custom_id or None,
        "line": job.line_number,
        "model": job.model,
        "tier_requested": job.tier_requested,
        "attempts": job.attempts,
        "http_503": job.http_503,
        "http_429": job.http_429,
        "other_errors": job.other_errors,
        "next_attempt_at": job.next_attempt_at.isoformat() if job.next_attempt_at else None,
        "output_text": redact_api_key(job.result_text),
        "tier_served": job.tier_served,
        "input_tokens": job.input_tokens,
        "output_tokens": job.output_tokens,
        "thought_tokens": job.thought_tokens,
        "cost_usd": str(job.cost_usd) if job.cost_usd is not None else None,
        "error": redact_api_key(job.last_error),
    }


class Command(BaseCommand):
    help = "List jobs: one JSON object per line with --json, else a table."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="one JSON object per job per line")
        parser.add_argument("--user", help="only this user's jobs")
        parser.add_argument("--status", choices=State.values, help="only jobs in this state")
        parser.add_argument(
            "--batch",
            type=int,
            metavar="RUN_ID",
            help="only this run's jobs, in file order (row by row, each row's steps in turn)",
        )
        parser.add_argument("--limit", type=int, default=None, help="at most this many (newest)")

    def handle(self, *args, **options):
        jobs = Job.objects.order_by("id")
        if options["user"]:
            if not get_user_model().objects.filter(username=options["user"]).exists():
                raise CommandError(f"No user named {options['user']!r}")
            jobs = jobs.filter(owner__username=options["user"])
        if options["batch"] is not None:
            run = Run.objects.filter(pk=options["batch"]).only("pipeline").first()
            if run is None:
                raise CommandError(f"No run {options['batch']}")
            jobs = pipeline_downloads.in_row_order(run, jobs.filter(run=run))
        if options["status"]:
            jobs = jobs.filter(state=options["status"])
        if options["limit"] is not None:
            if options["limit"] < 1:
                raise CommandError("--limit must be at least 1")
            jobs = jobs.order_by("-id")[: options["limit"]]
        for job in jobs.iterator(chunk_size=2000):
            record = job_record(job)
            if options["json"]:
                self.stdout.write(json.dumps(record))
            else:
                self.stdout.write(
                    f"{record['id']:>8}  {record['status']:<10} attempts={record['attempts']:<3} "
                    f"503s={record['http_503']:<3} 429s={record['http_429']:<3} "
                    f"tier={record['tier_served'] or '-':<8} cost={record['cost_usd'] or '-'}"
                )
