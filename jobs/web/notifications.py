"""The forms of notifications: a person's channels and defaults (the account
page's section, templates/account/_notifications.html) and what one run asks
to be told (the upload preview). The rules live in jobs/notices/choices.py."""

from __future__ import annotations

from django import forms

from jobs.models import NoticeSettings
from jobs.notices import choices
from jobs.notices.choices import RunNotify

THRESHOLD_HELP = (
    "A number of failed jobs (10), a share of the run's jobs (5%), or both "
    "(10 or 5%, whichever comes first). Empty: not told."
)


class _ThresholdField(forms.CharField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("help_text", THRESHOLD_HELP)
        super().__init__(**kwargs)

    def clean(self, value):
        text = super().clean(value)
        try:
            return choices.threshold_parse(text)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None


class _EventFields(forms.Form):
    finished = forms.BooleanField(label="When a run finishes (all its jobs ended)", required=False)
    failures = _ThresholdField(label="When a run's failed jobs reach")
    budget = forms.BooleanField(label="When a budget stops its work", required=False)
    paused = forms.BooleanField(
        label="When dispatch is paused (e.g. Gemini refused the API key)", required=False
    )

    def notify(self) -> RunNotify:
        jobs, percent = self.cleaned_data["failures"]
        return RunNotify(
            finished=self.cleaned_data["finished"],
            failed_jobs=jobs,
            failed_percent=percent,
            budget=self.cleaned_data["budget"],
            paused=self.cleaned_data["paused"],
        )

    @staticmethod
    def initial_for(notify: RunNotify) -> dict:
        return {
            "finished": notify.finished,
            "failures": notify.threshold,
            "budget": notify.budget,
            "paused": notify.paused,
        }


class NoticeSettingsForm(_EventFields):
    email_enabled = forms.BooleanField(label="Send e-mail", required=False)
    email = forms.EmailField(
        label="E-mail address", required=False, widget=forms.EmailInput(attrs={"size": 40})
    )
    webhook_url = forms.URLField(
        label="Webhook URL",
        required=False,
        max_length=2000,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"size": 60}),
        help_text="Receives a signed JSON POST for each notification. Empty: no webhook.",
    )

    field_order = ["email_enabled", "email", "webhook_url"]

    @classmethod
    def for_settings(cls, prefs: NoticeSettings, data=None) -> NoticeSettingsForm:
        initial = {
            "email_enabled": prefs.email_enabled,
            "email": prefs.email,
            "webhook_url": prefs.webhook_url,
            **cls.initial_for(
                RunNotify(
                    finished=prefs.on_finished,
                    failed_jobs=prefs.on_failed_jobs,
                    failed_percent=prefs.on_failed_percent,
                    budget=prefs.on_budget,
                    paused=prefs.on_paused,
                )
            ),
        }
        form = cls(data, initial=initial, prefix="notify")
        account_email = prefs.user.email if prefs.user_id else ""
        form.fields["email"].help_text = (
            f"Empty: your account's address ({account_email})."
            if account_email
            else "Your account has no address: give one here, or no e-mail can be sent."
        )
        return form


class RunNotifyForm(_EventFields):
    """On the upload preview, filled from the account's defaults. A
    confirmation that posts none of these fields (a script, an older page)
    gets the defaults; `shown` tells an unticked box from an absent one."""

    shown = forms.CharField(widget=forms.HiddenInput, initial="1", required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["finished"].label = "When this run finishes (all its jobs ended)"
        self.fields["failures"].label = "When its failed jobs reach"

    @classmethod
    def for_user(cls, user, data=None) -> RunNotifyForm:
        defaults = RunNotify.defaults_for(user)
        initial = {**cls.initial_for(defaults), "shown": "1"}
        if data is not None and data.get("notify-shown"):
            return cls(data, initial=initial, prefix="notify")
        form = cls(initial=initial, prefix="notify")
        form.defaults = defaults
        return form

    def is_valid(self) -> bool:
        return not self.is_bound or super().is_valid()

    def notify(self) -> RunNotify:
        if not self.is_bound:
            return self.defaults
        return super().notify()


def section(user, *, form: NoticeSettingsForm | None = None, secret: str = "") -> dict:
    """The account page's notifications section: its form, the signing
    secret when just revealed or made, and the recent deliveries."""
    prefs = choices.notice_settings_for(user)
    return {
        "notice_settings": prefs,
        "notice_form": form or NoticeSettingsForm.for_settings(prefs),
        "webhook_secret": secret,
        "deliveries": choices.recent_deliveries(user),
    }
