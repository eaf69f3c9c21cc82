"""python manage.py apitoken NAME [--user USERNAME]"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from jobs.engine import tokens
from jobs.models import ApiToken


class Command(BaseCommand):
    help = (
        "Create an API token and print it (only the token, on stdout, so "
        "TOKEN=$(manage.py apitoken NAME) works). It cannot be shown again."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="what the token is for, e.g. the script that uses it")
        parser.add_argument(
            "--user", help="username that owns the token (default: the only superuser)"
        )

    def handle(self, *args, **options):
        name = options["name"].strip()
        if not name:
            raise CommandError("NAME must not be empty")
        limit = ApiToken._meta.get_field("name").max_length
        if len(name) > limit:
            raise CommandError(f"NAME is {len(name)} characters; the limit is {limit}")
        user = self._owner(options["user"])
        _, token = tokens.api_token_create(user=user, name=name)
        self.stderr.write(
            f"Created API token {name!r} for {user.get_username()!r}; it is shown only this once."
        )
        self.stdout.write(token)

    def _owner(self, username: str | None):
        users = get_user_model().objects
        if username is not None:
            try:
                user = users.get(**{get_user_model().USERNAME_FIELD: username})
            except get_user_model().DoesNotExist:
                raise CommandError(f"No user named {username!r}") from None
            if not user.is_active:
                raise CommandError(f"User {username!r} is deactivated; a token would not work")
            return user
        superusers = list(users.filter(is_superuser=True, is_active=True)[:2])
        if len(superusers) != 1:
            found = "no active superuser" if not superusers else "several superusers"
            raise CommandError(f"There is {found}: say whose token it is with --user USERNAME")
        return superusers[0]
