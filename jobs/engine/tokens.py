"""API tokens: the one place that creates, revokes and checks them.

A token is `fd_` + 32 random bytes (URL-safe base64). Only its SHA-256 is
stored, so a copy of the database does not let anyone in; the token itself is
shown once, when it is created. A fast hash is enough here: the token has 256
bits of entropy, so there is nothing to brute-force that a slow hash would
protect.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from jobs.models import ApiToken

TOKEN_PREFIX = "fd_"
VISIBLE_CHARS = len(TOKEN_PREFIX) + 6
# Recording every request's time would be one write per API call; a minute's
# precision is all the account page needs.
LAST_USED_PRECISION = timedelta(minutes=1)


class TokenRefused(Exception):
    """The token is unknown, revoked, or its user may no longer sign in."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the token, which is not
    stored anywhere and cannot be shown again."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        user=user, name=name, token_hash=token_hash(token), prefix=token[:VISIBLE_CHARS]
    )
    return row, token


def api_token_revoke(*, token: ApiToken) -> bool:
    """Revoke a token for good; False when it already was."""
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token.refresh_from_db()
    return bool(changed)


def api_token_user(token: str):
    """The active user a token belongs to; raises TokenRefused otherwise."""
    row = ApiToken.objects.select_related("user").filter(token_hash=token_hash(token)).first()
    if row is None or not row.user.is_active:
        raise TokenRefused("The API token is not valid.")
    if row.is_revoked:
        raise TokenRefused("The API token was revoked.")
    now = timezone.now()
    ApiToken.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION), pk=row.pk
    ).update(last_used_at=now)
    return row.user
