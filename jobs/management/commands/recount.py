"""python manage.py recount [--fix]: check the stored job counts against the jobs."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from jobs.engine import counts


class Command(BaseCommand):
    help = (
        "Count the jobs by owner and state and compare with the stored counts the "
        "pages read; with --fix, rewrite the stored counts from the jobs. Exits 1 "
        "when a difference was found and not fixed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--fix", action="store_true", help="rewrite the stored counts from the jobs"
        )

    def handle(self, *args, fix: bool, **options):
        differences = counts.recount(fix=fix)
        for difference in differences:
            self.stdout.write(
                f"owner {difference.owner_id}, {difference.state}: stored "
                f"{difference.stored:,}, counted {difference.counted:,}"
            )
        if not differences:
            self.stdout.write("The stored job counts match the jobs.")
        elif fix:
            self.stdout.write(f"Fixed {len(differences)} stored counts from the jobs.")
        else:
            raise CommandError(
                f"{len(differences)} stored counts differ from the jobs; "
                "run `manage.py recount --fix` to rewrite them."
            )
