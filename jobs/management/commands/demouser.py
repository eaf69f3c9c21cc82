"""Create or reset the demo login that `make run` prints.

Idempotent: the user is created if missing, otherwise its password and flags
are reset and its log-in lock lifted, so the printed login always works (even
after someone changed it or locked it with wrong passwords).
"""

from __future__ import annotations

import os

from axes.utils import reset as forget_failed_log_ins
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

DEFAULT_USERNAME = "demo"
DEFAULT_PASSWORD = "flexdash-demo"


class Command(BaseCommand):
    help = (
        "Create or reset the demo user (staff + superuser) and print its login. "
        "The password comes from FLEXDASH_DEMO_PASSWORD (default: flexdash-demo)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--username",
            default=DEFAULT_USERNAME,
            help=f"login name to create or reset (default: {DEFAULT_USERNAME})",
        )

    def handle(self, *args, **options):
        username = options["username"].strip()
        if not username:
            raise CommandError("--username must not be empty")
        password = os.environ.get("FLEXDASH_DEMO_PASSWORD", "").strip() or DEFAULT_PASSWORD

        User = get_user_model()
        with transaction.atomic():
            user, created = User.objects.get_or_create(**{User.USERNAME_FIELD: username})
            user.is_active = True
            user.is_staff = True
            user.is_superuser = True
            user.set_password(password)
            user.save()
            forget_failed_log_ins(username=username)

        verb = "Created" if created else "Reset"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} demo login: user {username!r}, password {password!r}")
            + " (staff + superuser: it also signs in to /admin/)"
        )
