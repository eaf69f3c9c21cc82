"""python manage.py recount [--fix]: check the stored counts (jobs by state,
by attempts, outcomes per minute, cost per hour) against the jobs and
attempts, and the budgets' reservations against the tries in flight."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from jobs.engine import budgets, counts, spending


class Command(BaseCommand):
    help = (
        "Count the jobs and attempts (by owner and state, by attempts, outcomes per "
        "minute, cost per hour) and compare with the stored counts the pages read, "
        "and each budget's reserved amount with its tries in flight; with "
        "--fix, rewrite them from the jobs. Exits 1 when a difference was found and "
        "not fixed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--fix", action="store_true", help="rewrite the stored counts from the jobs"
        )

    def handle(self, *args, fix: bool, **options):
        differences = counts.recount(fix=fix)
        for difference in differences:
            self.stdout.write(difference.describe())
        reserved = budgets.reservations_recount(fix=fix)
        for difference in reserved:
            self.stdout.write(
                f"budget {difference.key}: reserved {spending.dollars(difference.stored)}, "
                f"in flight {spending.dollars(difference.held)}"
            )
        found = len(differences) + len(reserved)
        if not found:
            self.stdout.write(
                "The stored job counts match the jobs, and the budgets' reservations "
                "the tries in flight."
            )
        elif fix:
            self.stdout.write(f"Fixed {found} stored counts from the jobs.")
        else:
            raise CommandError(
                f"{found} stored counts differ from the jobs; "
                "run `manage.py recount --fix` to rewrite them."
            )
