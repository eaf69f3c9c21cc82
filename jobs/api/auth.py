"""Who may call the API: the holder of an API token, sent as
'Authorization: Bearer <token>' (tokens are made on /account/, checked by jobs/tokens.py).

The API's 401 answer, and the gate that also lets signed-in people read the OpenAPI
document, answer through the API object, so they are in jobs/api/__init__.py.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer

from jobs.engine import tokens

NO_TOKEN = "Send an API token: 'Authorization: Bearer <token>' (create one on /account/)."


class BearerToken(HttpBearer):
    def __call__(self, request: HttpRequest):
        # Parsed here rather than by HttpBearer, which logs a malformed
        # header (and so the token in it) when DEBUG is on.
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(message=NO_TOKEN)
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str):
        try:
            return tokens.api_token_user(token)
        except tokens.TokenRefused as refused:
            raise AuthenticationError(message=str(refused)) from None
