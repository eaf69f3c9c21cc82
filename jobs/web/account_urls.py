"""The account page and its API tokens, under /account/ (namespace "account")."""

from django.urls import path

from jobs.web import account

app_name = "account"
urlpatterns = [
    path("", account.index, name="index"),
    path("tokens/", account.token_create, name="token_create"),
    path("tokens/<int:token_id>/revoke/", account.token_revoke, name="token_revoke"),
]
