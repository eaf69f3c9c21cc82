"""The capacity weather as people see it: the overview's panel, the note on a
held-back job's page, the admin's model limits, and GET /api/capacity."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from jobs.catalog import FLEX_MODELS
from jobs.engine import pacing
from jobs.models import Attempt, ModelLimit, Outcome, State
from tests.support import HTMX, api_client, as_user, make_job

pytestmark = pytest.mark.django_db

FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"
PROMPT = "x" * 400  # about 100 tokens


def set_limit(model: str, **fields) -> ModelLimit:
    ModelLimit.objects.filter(model=model).update(**fields)
    return ModelLimit.objects.get(model=model)


def sent_lately(owner, model: str, count: int, status: int = 200) -> None:
    """`count` attempts started within the last minute (each a 400-character prompt)."""
    now = timezone.now()
    for _ in range(count):
        job = make_job(owner, model=model, prompt=PROMPT, attempts=1)
        Attempt.objects.create(
            job=job,
            number=1,
            tier_requested="flex",
            started_at=now - timedelta(seconds=10),
            finished_at=now,
            http_status=status,
            outcome=Outcome.SUCCEEDED if status == 200 else Outcome.WILL_RETRY,
        )


def throttled_by_429(model: str = FLASH) -> ModelLimit:
    now = timezone.now()
    return set_limit(
        model,
        rpm_limit=1000,
        rate_factor=0.8,
        rate_factor_at=now,
        recent_at=now,
        recent_calls=10,
        recent_429=2,
    )


# What the dispatchers could launch at most (fallback_rpm): 50 a second, one dispatcher.
NO_LIMITS = override_settings(
    FLEX_RPM_LIMIT=0, FLEX_TPM_LIMIT=0, FLEX_RPD_LIMIT=0, FLEX_LAUNCH_RATE=50, FLEX_DISPATCHERS=1
)


def slowed_without_a_limit(model: str = FLASH) -> ModelLimit:
    """429s stepped a model with no limits down to about 79% of 3,000 a minute
    (2,367, climbing back 2.5 a second: the tests read "2,3.." so a slow
    machine does not move the figure out of what they expect)."""
    now = timezone.now()
    return set_limit(
        model,
        rpm_limit=None,
        tpm_limit=None,
        rpd_limit=None,
        rate_factor=0.7891234,
        rate_factor_at=now,
        recent_at=now,
        recent_calls=7.3482,
        recent_429=2.1234,
    )


def in_a_storm(model: str = FLASH) -> ModelLimit:
    now = timezone.now()
    return set_limit(
        model,
        storm_factor=0.25,
        storm_factor_at=now,
        recent_at=now,
        recent_calls=20,
        recent_503=15,
    )


def at_daily_cap(model: str = FLASH, cap: int = 100) -> ModelLimit:
    now = timezone.now()
    return set_limit(model, rpd_limit=cap, day=pacing.pacific_day(now), day_requests=cap)


def weather_row(page: str, model: str) -> str:
    start = page.index(f'<tr data-model="{model}"')
    return page[start : page.index("</tr>", start)]


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# --- The overview's panel ------------------------------------------------------
def test_nothing_to_report_is_one_quiet_line(client, ada, staff):
    page = as_user(client, ada).get("/").content.decode()
    assert "Capacity weather" in page
    assert "No limits set and no recent calls." in page
    assert '<table class="compact responsive weather"' not in page

    page = as_user(client, staff).get("/").content.decode()
    assert "No limits set and no recent calls; set limits in the" in page
    assert 'href="/admin/jobs/modellimit/"' in page


def test_a_normal_model_shows_usage_against_its_limits(client, ada):
    set_limit(FLASH, rpm_limit=1000, tpm_limit=0, rpd_limit=10_000, day_requests=0)
    sent_lately(ada, FLASH, 4)

    row = text(weather_row(as_user(client, ada).get("/").content.decode(), FLASH))

    assert "✓ Normal Pacing to the configured limits." in row
    assert "4 / 1,000" in row
    assert "pacing to" not in row
    assert "400 / no limit" in row  # 4 prompts of 400 characters, about 100 tokens each
    assert "0 / 10,000" in row  # the day's count is kept by the claims, none today
    assert "resumes" not in row


def test_a_model_throttled_by_429s_says_what_it_paces_to_and_why(client, ada):
    throttled_by_429()
    sent_lately(ada, FLASH, 3, status=429)

    page = as_user(client, ada).get("/").content.decode()
    row = text(weather_row(page, FLASH))

    assert 'data-pacing="throttled"' in weather_row(page, FLASH)
    assert "▼ Throttled" in row
    assert "429s: pacing to 80% of the limit, climbing back 5% a minute." in row
    assert "3 / 1,000 pacing to 800" in row
    assert "20%" in row  # 2 of 10 recent calls were 429s


@override_settings(FLEX_MAX_IN_FLIGHT=40, FLEX_DISPATCHERS=1)
@NO_LIMITS
def test_a_model_without_a_limit_slowed_by_429s_says_so_in_words_and_rounds(client, ada):
    slowed_without_a_limit()
    sent_lately(ada, FLASH, 3, status=429)
    sent_lately(ada, FLASH, 2)

    row = text(weather_row(as_user(client, ada).get("/").content.decode(), FLASH))

    assert "▼ Slowed" in row and "Throttled" not in row
    assert "of the limit" not in row
    assert re.search(
        r"429s: 3 in the last minute, so it sends at most 2,3\d\d requests a minute, "
        r"climbing back 5% a minute\.",
        row,
    )
    assert re.search(r"5 / no limit pacing to 2,3\d\d ", row)
    assert "29%" in row  # 2.1 of 7.3 recent calls were 429s
    assert not re.search(r"\d\.\d{3}", row)


@NO_LIMITS
def test_a_slowed_model_without_a_limit_says_when_no_429_came_lately(client, ada):
    slowed_without_a_limit()

    row = text(weather_row(as_user(client, ada).get("/").content.decode(), FLASH))

    assert "429s earlier, none in the last minute: it sends at most 2,3" in row


@override_settings(FLEX_MAX_IN_FLIGHT=40, FLEX_DISPATCHERS=1)  # a cap of 10 at 25%
def test_a_model_in_a_503_storm_shows_its_concurrency_cap(client, ada):
    in_a_storm()
    make_job(ada, State.RUNNING, model=FLASH, attempts=1)

    row = text(weather_row(as_user(client, ada).get("/").content.decode(), FLASH))

    assert "▼ Slowed 503 storm: 75% of recent calls shed" in row  # it has no limit
    assert "25% of its usual rate and concurrency" in row
    assert "1 storm cap 10" in row
    assert "75%" in row


@override_settings(TIME_ZONE="Europe/Berlin")
def test_a_model_at_its_daily_cap_is_paused_until_midnight_pacific(client, ada):
    at_daily_cap(cap=100)

    row = text(weather_row(as_user(client, ada).get("/").content.decode(), FLASH))

    resume = pacing.next_pacific_midnight(timezone.now())
    berlin = resume.astimezone(ZoneInfo("Europe/Berlin"))
    assert "‖ Paused Daily cap of 100 requests reached; work waits until midnight Pacific" in row
    assert "100 / 100" in row
    assert f"resumes at 00:00 Pacific ({berlin:%H:%M} CE" in row  # CET or CEST
    assert re.search(r", in (\d+ h \d\d min|\d+ min \d+ s)", row)


def test_a_limit_of_zero_reads_no_limit_and_each_model_has_its_row(client, ada):
    set_limit(FLASH, rpm_limit=0, tpm_limit=0, rpd_limit=0)
    sent_lately(ada, FLASH, 1)
    at_daily_cap(PRO, cap=5)

    page = as_user(client, ada).get("/").content.decode()

    assert text(weather_row(page, FLASH)).count("no limit") == 3
    assert "Paused" in text(weather_row(page, PRO))
    # By name, so rows keep their place from one poll to the next.
    assert page.index(f'data-model="{FLASH}"') < page.index(f'data-model="{PRO}"')


def test_staff_get_a_link_to_the_model_limits(client, ada, staff):
    set_limit(FLASH, rpm_limit=10)
    assert "Edit model limits" not in as_user(client, ada).get("/").content.decode()
    page = as_user(client, staff).get("/").content.decode()
    assert '<a href="/admin/jobs/modellimit/">Edit model limits</a>' in page


def test_the_panel_is_in_the_polled_fragment(client, ada):
    at_daily_cap()
    fragment = as_user(client, ada).get("/", headers=HTMX).content.decode()
    assert fragment.strip().startswith('<div id="overview-live"')
    assert 'id="capacity-weather"' in fragment and "Paused" in fragment


def test_a_throttled_or_paused_model_keeps_an_idle_overview_polling_slowly(client, ada):
    as_user(client, ada)
    idle = client.get("/", headers=HTMX).content.decode()
    assert 'hx-trigger="jobs-changed from:body"' in idle

    at_daily_cap()
    unsettled = client.get("/", headers=HTMX).content.decode()
    assert 'hx-trigger="every 10s, jobs-changed from:body"' in unsettled
    assert "a model is throttled or paused, so this page updates every 10 seconds" in unsettled

    make_job(ada, State.QUEUED, model=FLASH)
    busy = client.get("/", headers=HTMX).content.decode()
    assert 'hx-trigger="every 2s, jobs-changed from:body"' in busy


@NO_LIMITS
def test_an_idle_overview_does_not_call_a_model_without_a_limit_throttled(client, ada):
    slowed_without_a_limit()

    unsettled = as_user(client, ada).get("/", headers=HTMX).content.decode()

    assert 'hx-trigger="every 10s, jobs-changed from:body"' in unsettled
    assert "a model is throttled" not in unsettled
    assert (
        f"Nothing is active: {FLASH} is slowed after 429s, so this page updates every 10 seconds"
        in unsettled
    )


# --- A job held back by its model -------------------------------------------------
@pytest.mark.parametrize("state", [State.QUEUED, State.RETRYING])
def test_a_waiting_job_says_the_daily_cap_holds_it_until_midnight_pacific(client, ada, state):
    at_daily_cap(cap=250)
    job = make_job(ada, state, model=FLASH, next_attempt_at=timezone.now())

    for headers in ({}, HTMX):
        page = as_user(client, ada).get(f"/jobs/{job.pk}/", headers=headers).content.decode()
        note = text(page)
        assert (
            f"Waiting: the daily cap of 250 requests for {FLASH} is reached; "
            "resumes at midnight Pacific (" in note
        )
        assert re.search(r"UTC\), in (\d+ h \d\d min|\d+ min \d+ s|\d+ s)\.", note)


def test_a_waiting_job_of_a_throttled_model_gets_a_short_note(client, ada):
    throttled_by_429()
    job = make_job(ada, State.QUEUED, model=FLASH)

    note = text(as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode())

    assert f"{FLASH} is throttled: 429s: pacing to 80% of the limit" in note
    assert "Waiting: the daily cap" not in note


@NO_LIMITS
def test_a_waiting_job_of_a_model_without_a_limit_says_it_is_slowed(client, ada):
    slowed_without_a_limit()
    job = make_job(ada, State.QUEUED, model=FLASH)

    page = text(as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode())

    assert f"{FLASH} is slowed: 429s earlier, none in the last minute" in page
    assert "throttled" not in page


@pytest.mark.parametrize("state", [State.RUNNING, State.SUCCEEDED])
def test_a_job_not_waiting_gets_no_capacity_note(client, ada, state):
    at_daily_cap()
    job = make_job(ada, state, model=FLASH)
    page = as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()
    assert "capacity-hold" not in page


def test_a_job_of_another_model_is_not_held_by_this_ones_cap(client, ada):
    at_daily_cap(PRO)
    job = make_job(ada, State.QUEUED, model=FLASH)
    assert "capacity-hold" not in as_user(client, ada).get(f"/jobs/{job.pk}/").content.decode()


# --- The admin's model limits ------------------------------------------------------
LIST = "/admin/jobs/modellimit/"


def changelist_data(page, **changes_by_model) -> dict[str, str]:
    """The changelist's editable formset as posted, with some limits changed."""
    formset = page.context["cl"].formset
    data = {
        "form-TOTAL_FORMS": str(formset.total_form_count()),
        "form-INITIAL_FORMS": str(formset.initial_form_count()),
        "_save": "Save",
    }
    for form in formset:
        values = {
            "id": form.instance.pk,
            "rpm_limit": form.instance.rpm_limit,
            "tpm_limit": form.instance.tpm_limit,
            "rpd_limit": form.instance.rpd_limit,
        }
        values |= changes_by_model.get(form.instance.model, {})
        for name, value in values.items():
            data[f"{form.prefix}-{name}"] = "" if value is None else str(value)
    return data


@override_settings(FLEX_RPM_LIMIT=2000, FLEX_TPM_LIMIT=0, FLEX_RPD_LIMIT=0)
def test_the_list_shows_limits_defaults_and_pacing_per_model(admin_client, ada):
    throttled_by_429()
    set_limit(
        PRO, rpm_limit=0, rpd_limit=500, day=pacing.pacific_day(timezone.now()), day_requests=7
    )

    page = admin_client.get(LIST).content.decode()

    for model in FLEX_MODELS:
        assert f">{model}</a>" in page
    assert 'placeholder="default: 2,000"' in page
    assert 'placeholder="default: no limit"' in page
    # A model with every limit empty, and one with its own.
    assert "RPM&nbsp;2,000<br>TPM&nbsp;no limit<br>RPD&nbsp;no limit" in page
    assert "RPM&nbsp;no limit<br>TPM&nbsp;no limit<br>RPD&nbsp;500" in page
    assert "Throttled: 429s: pacing to 80% of the limit" in page
    assert "Normal: Pacing to the configured limits." in page
    flash = page[page.index(f">{FLASH}</a>") :]
    flash = flash[: flash.index("</tr>")]
    assert ">80%</td>" in flash and ">100%</td>" in flash  # rate factor, storm factor
    assert ">0%</td>" in flash and ">20%</td>" in flash  # recent 503s, 429s
    pro = page[page.index(f">{PRO}</a>") :]
    assert ">7</td>" in pro[: pro.index("</tr>")]


@NO_LIMITS
def test_a_model_without_a_limit_reads_slowed_with_rounded_figures(admin_client, ada):
    row = slowed_without_a_limit()
    sent_lately(ada, FLASH, 3, status=429)

    listing = text(admin_client.get(LIST).content.decode())
    # The recent figures halve every 10 s: read the form at the moment they
    # were learned, or a loaded machine sees 7.35 fade below 6.5.
    with mock.patch.object(timezone, "now", return_value=row.recent_at):
        form = text(admin_client.get(f"{LIST}{row.pk}/change/").content.decode())

    assert re.search(r"Slowed: 429s: 3 in the last minute, so it sends at most 2,3\d\d ", listing)
    assert "of the limit" not in listing
    assert "Recent calls: 7 " in form or "Recent calls 7 " in form
    assert "7.348" not in form


def test_limits_are_edited_in_the_list(admin_client):
    page = admin_client.get(LIST)
    data = changelist_data(page, **{FLASH: {"rpm_limit": 600, "rpd_limit": 0}})

    response = admin_client.post(LIST, data)

    assert response.status_code == 302
    flash = ModelLimit.objects.get(model=FLASH)
    assert (flash.rpm_limit, flash.tpm_limit, flash.rpd_limit) == (600, None, 0)


@pytest.mark.parametrize(
    ("value", "error"),
    [("-1", "greater than or equal to 0"), ("1.5", "Enter a whole number."), ("lots", "whole")],
)
def test_a_limit_must_be_a_whole_number_not_below_zero(admin_client, value, error):
    page = admin_client.get(LIST)
    response = admin_client.post(LIST, changelist_data(page, **{FLASH: {"rpm_limit": value}}))

    assert response.status_code == 200
    assert error in response.content.decode()
    assert ModelLimit.objects.get(model=FLASH).rpm_limit is None


def test_the_form_edits_limits_and_shows_learned_state_read_only(admin_client):
    row = in_a_storm()
    url = f"{LIST}{row.pk}/change/"

    page = admin_client.get(url).content.decode()
    assert "Empty: the environment's FLEX_RPM_LIMIT (default: no limit)" in page
    assert "0: no limit" in page and "The day resets at midnight Pacific." in page
    assert "Learned by the dispatchers" in page
    assert "503 storm: 75% of recent calls shed" in page
    assert 'name="model"' not in page and 'name="storm_factor"' not in page

    response = admin_client.post(url, {"rpm_limit": "120", "tpm_limit": "", "rpd_limit": "-5"})
    assert response.status_code == 200
    assert "greater than or equal to 0" in response.content.decode()

    response = admin_client.post(
        url, {"rpm_limit": "120", "tpm_limit": "", "rpd_limit": "0", "storm_factor": "1"}
    )
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.rpm_limit, row.tpm_limit, row.rpd_limit) == (120, None, 0)
    assert row.storm_factor == 0.25


def test_only_a_flex_model_without_a_row_can_be_added_and_none_deleted(admin_client):
    assert admin_client.get(f"{LIST}add/").status_code == 403
    ModelLimit.objects.filter(model=PRO).delete()

    page = admin_client.get(f"{LIST}add/").content.decode()
    assert f'<option value="{PRO}">' in page and f'<option value="{FLASH}">' not in page

    refused = admin_client.post(f"{LIST}add/", {"model": "gpt-9", "rpm_limit": "5"})
    assert "Select a valid choice." in refused.content.decode()
    assert not ModelLimit.objects.filter(model="gpt-9").exists()

    admin_client.post(f"{LIST}add/", {"model": PRO, "rpm_limit": "5"})
    assert ModelLimit.objects.get(model=PRO).rpm_limit == 5

    row = ModelLimit.objects.get(model=FLASH)
    assert admin_client.get(f"{LIST}{row.pk}/delete/").status_code == 403
    assert "delete_selected" not in admin_client.get(LIST).content.decode()


def test_the_action_forgets_learned_503_and_429_state(admin_client):
    storm = in_a_storm(FLASH)
    throttled = throttled_by_429(PRO)

    response = admin_client.post(
        LIST,
        {"action": "forget_learning", "_selected_action": [storm.pk, throttled.pk]},
        follow=True,
    )

    assert "they pace to their full limits again" in response.content.decode()
    for row in (storm, throttled):
        row.refresh_from_db()
        assert (row.storm_factor, row.rate_factor, row.recent_calls) == (1.0, 1.0, 0.0)
    assert ModelLimit.objects.get(model=PRO).rpm_limit == 1000  # limits are kept


# --- GET /api/capacity ---------------------------------------------------------------
def test_the_api_reports_the_weather_per_model(ada):
    as_ada = api_client(ada)
    at_daily_cap(cap=100)
    throttled_by_429(PRO)

    response = as_ada.get("/api/capacity")

    assert response.status_code == 200
    models = {report["model"]: report for report in response.json()["models"]}
    assert set(models) == {FLASH, PRO}
    flash, pro = models[FLASH], models[PRO]
    assert flash["state"] == "paused" and "Daily cap of 100 requests" in flash["reason"]
    assert (flash["rpd_limit"], flash["requests_today"], flash["rpm_limit"]) == (100, 100, 0)
    resume = pacing.next_pacific_midnight(timezone.now())
    assert datetime.fromisoformat(flash["resumes_at"]) == resume
    assert pro["state"] == "throttled" and pro["resumes_at"] is None
    assert pro["rpm_limit"] == 1000 and pro["rpm_pacing"] == pytest.approx(800, abs=1)
    assert pro["share_429"] == pytest.approx(0.2, abs=0.01)


@NO_LIMITS
def test_the_api_rounds_the_figures_of_a_model_without_a_limit(ada):
    slowed_without_a_limit()
    sent_lately(ada, FLASH, 3, status=429)

    (flash,) = api_client(ada).get("/api/capacity").json()["models"]

    assert flash["state"] == "throttled" and flash["rpm_limit"] == 0
    assert flash["rpm_pacing"] == pytest.approx(2367.4, abs=1)
    assert flash["rpm_pacing"] == round(flash["rpm_pacing"], 1)
    assert flash["http_429_last_minute"] == 3
    assert flash["reason"].startswith("429s: 3 in the last minute, so it sends at most 2,3")
    for name, digits in (("share_429", 3), ("share_503", 3), ("recent_calls", 1)):
        assert flash[name] == round(flash[name], digits)
    assert flash["recent_calls"] < 8  # decayed from 7.3 plus the 3 attempts, not counted there


def test_the_api_needs_a_token():
    response = Client().get("/api/capacity")
    assert response.status_code == 401
