"""The account page and its API tokens, under /account/ (namespace "account")."""

from django.urls import path

from jobs.web import account, notification_views

app_name = "account"
urlpatterns = [
    path("", account.index, name="index"),
    path("tokens/", account.token_create, name="token_create"),
    path("tokens/<int:token_id>/revoke/", account.token_revoke, name="token_revoke"),
    path("notifications/", notification_views.settings_save, name="notices_save"),
    path("notifications/secret/", notification_views.secret_reveal, name="notices_secret"),
    path(
        "notifications/secret/new/",
        notification_views.secret_regenerate,
        name="notices_secret_new",
    ),
    path("notifications/test/", notification_views.send_test, name="notices_test"),
]
