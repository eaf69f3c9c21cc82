"""Deadlines: what happens to unfinished work when its deadline passes is the
researcher's choice made up front (keep waiting, cancel, move to standard),
each policy does what it says, and every way in shows and checks it."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError
from django.test import override_settings
from django.utils import timezone

from jobs.engine import actions, claiming, recording
from jobs.engine.gemini import GeminiError, GeminiResult
from jobs.models import Attempt, Job, Outcome, Run, State, Tier
from jobs.templatetags.dashboard import clock as shown_clock  # with the day when not today
from tests.run_files import prompt_file
from tests.support import (
    HTMX,
    MODEL,
    api_client,
    engine_env,
    make_run,
    post_json,
    qcluster,
    submit,
    submit_command,
    tag,
    wait_for,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("uploads_in_tmp")]


def soon(**delta) -> datetime:
    return timezone.now() + timedelta(**(delta or {"hours": 1}))


def claim_one(job: Job, owner: str = "d1") -> claiming.Claim:
    (claim,) = claiming.jobs_claim(owner=owner, limit=1, lease_seconds=60)
    assert claim.job_id == job.pk
    return claim


def after(job: Job) -> datetime:
    """A moment just past the job's deadline."""
    return job.deadline_at + timedelta(seconds=1)


def answer(tier: str = "flex") -> GeminiResult:
    return GeminiResult(
        text="late answer",
        response_id="r1",
        input_tokens=10,
        output_tokens=10,
        thought_tokens=0,
        tier_served=tier,
    )


# --- Each policy does what it says -----------------------------------------------
def test_keep_leaves_the_job_waiting_past_its_deadline(ada):
    (job,) = submit(ada, "keep me", deadline_at=soon(), deadline_policy="keep")
    counts = actions.jobs_apply_deadlines(now=after(job))
    assert counts == {"cancelled": 0, "moved_waiting": 0, "moved_running": 0}
    job.refresh_from_db()
    assert (job.state, job.tier_requested) == (State.QUEUED, Tier.FLEX)


def test_cancel_cancels_waiting_jobs_at_the_deadline(ada):
    queued, retrying = submit(ada, "one", "two", deadline_at=soon(), deadline_policy="cancel")
    Job.objects.filter(pk=retrying.pk).update(state=State.RETRYING, next_attempt_at=soon(minutes=5))
    moment = after(queued)
    assert actions.jobs_apply_deadlines(now=moment)["cancelled"] == 2
    for job in (queued, retrying):
        job.refresh_from_db()
        assert (job.state, job.finished_at, job.next_attempt_at) == (State.CANCELLED, moment, None)
        assert job.last_error == "Cancelled at its deadline: it had not finished by then."


def test_cancel_cancels_a_running_job_and_discards_its_late_answer(ada):
    (job,) = submit(ada, "in flight", deadline_at=soon(), deadline_policy="cancel")
    claim = claim_one(job)
    assert actions.jobs_apply_deadlines(now=after(job))["cancelled"] == 1
    job.refresh_from_db()
    assert (job.state, job.lease_owner) == (State.CANCELLED, "")

    assert (
        recording.attempt_succeeded(claim=claim, owner="d1", result=answer(), latency=3)
        == "discarded"
    )
    job.refresh_from_db()
    assert (job.state, job.result_text, job.cost_usd) == (State.CANCELLED, "", None)
    assert Attempt.objects.get(job=job).outcome == Outcome.DISCARDED


def test_a_late_failure_of_a_cancelled_running_job_is_discarded_too(ada):
    (job,) = submit(ada, "in flight", deadline_at=soon(), deadline_policy="cancel")
    claim = claim_one(job)
    actions.jobs_apply_deadlines(now=after(job))
    shed = GeminiError("capacity", "overloaded", http_status=503)
    assert recording.attempt_failed(claim=claim, owner="d1", error=shed, latency=1) == "discarded"
    job.refresh_from_db()
    assert (job.state, job.http_503) == (State.CANCELLED, 0)


def test_standard_moves_waiting_flex_jobs_to_standard_and_makes_them_due(ada):
    queued, retrying = submit(ada, "one", "two", deadline_at=soon(), deadline_policy="standard")
    Job.objects.filter(pk=retrying.pk).update(
        state=State.RETRYING, next_attempt_at=soon(minutes=10)
    )
    moment = after(queued)
    counts = actions.jobs_apply_deadlines(now=moment)
    assert counts == {"cancelled": 0, "moved_waiting": 2, "moved_running": 0}
    for job in (queued, retrying):
        job.refresh_from_db()
        assert (job.tier_requested, job.next_attempt_at) == (Tier.STANDARD, moment)
    assert (queued.state, retrying.state) == (State.QUEUED, State.RETRYING)


def test_standard_lets_a_running_job_finish_its_flex_try_and_retry_on_standard(ada):
    (job,) = submit(ada, "in flight", deadline_at=soon(), deadline_policy="standard")
    claim = claim_one(job)
    assert claim.tier == Tier.FLEX
    assert actions.jobs_apply_deadlines(now=after(job))["moved_running"] == 1
    job.refresh_from_db()
    assert (job.state, job.tier_requested) == (State.RUNNING, Tier.STANDARD)

    shed = GeminiError("capacity", "overloaded", http_status=503)
    assert recording.attempt_failed(claim=claim, owner="d1", error=shed, latency=1) == "retry"
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    retry = claim_one(job, owner="d2")
    assert retry.tier == Tier.STANDARD
    assert list(job.attempt_log.values_list("tier_requested", flat=True)) == ["flex", "standard"]


def test_a_deadline_still_ahead_changes_nothing(ada):
    for policy in ("keep", "cancel", "standard"):
        submit(ada, f"not yet {policy}", deadline_at=soon(minutes=30), deadline_policy=policy)
    submit(ada, "no deadline at all")
    before = list(Job.objects.order_by("pk").values("state", "tier_requested", "next_attempt_at"))
    counts = actions.jobs_apply_deadlines(now=timezone.now() + timedelta(minutes=29))
    assert counts == {"cancelled": 0, "moved_waiting": 0, "moved_running": 0}
    assert list(
        Job.objects.order_by("pk").values("state", "tier_requested", "next_attempt_at")
    ) == (before)


def test_finished_jobs_and_jobs_already_on_standard_are_left_alone(ada):
    done, moved = submit(ada, "done", "moved", deadline_at=soon(), deadline_policy="standard")
    Job.objects.filter(pk=done.pk).update(state=State.SUCCEEDED)
    Job.objects.filter(pk=moved.pk).update(tier_requested=Tier.STANDARD)
    (cancel_done,) = submit(ada, "done too", deadline_at=soon(), deadline_policy="cancel")
    Job.objects.filter(pk=cancel_done.pk).update(state=State.FAILED)
    counts = actions.jobs_apply_deadlines(now=after(done))
    assert counts == {"cancelled": 0, "moved_waiting": 0, "moved_running": 0}
    assert Job.objects.get(pk=cancel_done.pk).state == State.FAILED


def test_the_dispatcher_stays_up_for_a_deadline_that_makes_work_due(ada):
    (job,) = submit(ada, "backing off", deadline_at=soon(seconds=10), deadline_policy="standard")
    Job.objects.filter(pk=job.pk).update(state=State.RETRYING, next_attempt_at=soon(minutes=10))
    assert 5 < claiming.seconds_until_next_due() <= 10
    # A cancel makes nothing due: the dispatcher need not wait for it.
    Job.objects.filter(pk=job.pk).update(deadline_policy="cancel")
    assert claiming.seconds_until_next_due() > 500


def test_a_failed_job_retried_after_its_cancel_deadline_keeps_waiting(ada):
    (job,) = submit(ada, "failed", deadline_at=soon(), deadline_policy="cancel")
    Job.objects.filter(pk=job.pk).update(state=State.FAILED, deadline_at=soon(seconds=-60))
    assert actions.job_retry_now(job=job)
    assert actions.jobs_apply_deadlines()["cancelled"] == 0
    job.refresh_from_db()
    assert (job.state, job.deadline_policy) == (State.QUEUED, "keep")


# --- What may be asked for ----------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"deadline_at": soon(seconds=-1), "deadline_policy": "cancel"}, "deadline_at", "passed"),
        ({"deadline_at": datetime(2099, 1, 1, 12, 0)}, "deadline_at", "time zone"),
        ({"deadline_policy": "cancel"}, "deadline_at", "Cancelling at the deadline needs"),
        ({"deadline_policy": "standard"}, "deadline_at", "Moving to standard at the deadline"),
        ({"deadline_at": soon(), "deadline_policy": "later"}, "deadline_policy", "Unknown"),
        (
            {"deadline_at": soon(), "deadline_policy": "standard", "tier": "standard"},
            "deadline_policy",
            "Only flex work moves",
        ),
    ],
)
def test_bad_deadlines_are_refused_with_a_clear_message(ada, spec, field, words):
    with pytest.raises(ValidationError) as refused:
        submit(ada, "a prompt", **spec)
    assert words in refused.value.message_dict[field][0]
    assert not Job.objects.exists()


# --- Runs -----------------------------------------------------------------------------
def test_a_run_carries_its_deadline_onto_every_job(ada):
    deadline = soon(hours=3)
    run = make_run(ada, deadline_at=deadline, deadline_policy="standard")
    run.refresh_from_db()
    assert (run.deadline_at, run.deadline_policy) == (deadline, "standard")
    assert set(run.jobs.values_list("deadline_at", "deadline_policy")) == {(deadline, "standard")}

    actions.jobs_apply_deadlines(now=deadline + timedelta(seconds=1))
    assert set(run.jobs.values_list("tier_requested", flat=True)) == {Tier.STANDARD}


def test_a_run_without_a_deadline_makes_jobs_without_one(ada):
    run = make_run(ada)
    assert set(run.jobs.values_list("deadline_at", "deadline_policy")) == {(None, "keep")}


def test_a_run_with_a_passed_deadline_is_refused_whole(ada):
    with pytest.raises(ValidationError) as refused:
        make_run(ada, deadline_at=soon(seconds=-5), deadline_policy="cancel")
    assert "deadline_at" in refused.value.message_dict
    assert not Run.objects.exists() and not Job.objects.exists()


# --- The pages --------------------------------------------------------------------
def local_input(moment: datetime) -> str:
    """What a datetime-local input sends: the site's local time, no zone."""
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M")


SUBMIT = {"prompt": "Summarise the flex tier", "model": MODEL, "tier": "flex", "max_attempts": "5"}


@override_settings(TIME_ZONE="Europe/Berlin")
def test_the_submit_page_offers_a_deadline_in_the_sites_time_zone(signed_in):
    page = signed_in.get("/jobs/new/").content.decode()
    assert 'type="datetime-local"' in page
    assert "Time zone: Europe/Berlin." in page
    for label in (
        "Keep waiting until it finishes",
        "Cancel what has not finished",
        "Move what has not finished to the standard tier",
    ):
        assert label in page
    assert 'id="deadline-quote"' in page


@override_settings(TIME_ZONE="Europe/Berlin")
def test_a_deadline_typed_on_the_page_is_read_in_the_sites_time_zone(signed_in):
    response = signed_in.post(
        "/jobs/new/", {**SUBMIT, "deadline_at": "2099-06-01T14:00", "deadline_policy": "cancel"}
    )
    assert response.status_code == 302
    job = Job.objects.get()
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    assert job.deadline_at == datetime(2099, 6, 1, 14, 0, tzinfo=berlin)
    assert job.deadline_policy == "cancel"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"deadline_at": "2001-01-01T09:00", "deadline_policy": "cancel"}, "has already passed"),
        ({"deadline_at": "next tuesday", "deadline_policy": "cancel"}, "date and time, e.g."),
        ({"deadline_at": "", "deadline_policy": "standard"}, "needs a deadline"),
        ({"deadline_at": "2099-06-01T14:00", "deadline_policy": "soon"}, "Select a valid choice"),
    ],
)
def test_a_bad_deadline_on_the_page_is_explained_and_creates_nothing(signed_in, fields, message):
    response = signed_in.post("/jobs/new/", {**SUBMIT, **fields})
    assert response.status_code == 200
    page = response.content.decode()
    assert "The job was not submitted." in page and message in page
    assert not Job.objects.exists()


def test_the_submit_page_prices_a_move_to_standard_as_you_type(signed_in):
    # 4,000 characters: about 1,000 tokens in and (assumed) 1,000 out. On
    # gemini-2.5-flash standard costs $0.30 + $2.50 per million: $0.0028; flex half.
    fields = {**SUBMIT, "prompt": "x" * 4000}
    headers = {**HTMX, "HX-Target": "deadline-quote"}
    fragment = signed_in.post("/jobs/new/", fields, headers=headers).content.decode()
    assert fragment.lstrip().startswith('<p id="deadline-quote"')
    assert "Moving it to standard costs up to <strong>$0.0014</strong> more" in fragment
    assert "if it has not finished on flex by then" in fragment
    assert not Job.objects.exists()

    on_standard = signed_in.post("/jobs/new/", {**fields, "tier": "standard"}, headers=headers)
    assert "Only flex work moves to standard" in on_standard.content.decode()


def upload(client, *, lines=(("a", "x" * 400), ("b", "y" * 400)), **fields):
    filename, content = prompt_file("jsonl", list(lines))
    data = {"model": MODEL, "tier": "flex", "max_attempts": "8", **fields}
    data["file"] = SimpleUploadedFile(filename, content)
    return client.post("/runs/new/", data)


def test_the_run_preview_shows_the_cost_of_moving_to_standard_before_it_is_chosen(signed_in):
    deadline = soon(hours=2)
    response = upload(signed_in, deadline_at=local_input(deadline), deadline_policy="standard")
    assert response.status_code == 302
    page = signed_in.get(response["Location"]).content.decode()
    # 800 characters: 200 tokens in, 200 out; standard $0.00056, flex $0.00028.
    assert (
        "Moving unfinished lines to standard costs up to <strong>$0.00028</strong> more "
        "(if none has finished on flex by then)."
    ) in page
    assert f'value="{local_input(deadline)}' in page
    assert 'value="standard" id="id_deadline_policy_2" checked' in page
    assert not Run.objects.exists()

    created = signed_in.post(
        response["Location"],
        {"deadline_at": local_input(deadline), "deadline_policy": "cancel"},
    )
    assert created.status_code == 302
    run = Run.objects.get()
    expected = deadline.replace(second=0, microsecond=0)
    assert (run.deadline_at, run.deadline_policy) == (expected, "cancel")
    assert set(run.jobs.values_list("deadline_at", "deadline_policy")) == {(expected, "cancel")}


def test_a_passed_deadline_on_the_preview_is_explained_and_creates_nothing(signed_in):
    response = upload(signed_in)
    preview = response["Location"]
    refused = signed_in.post(
        preview, {"deadline_at": "2001-01-01T09:00", "deadline_policy": "standard"}
    )
    assert refused.status_code == 200
    page = refused.content.decode()
    assert "The run was not created." in page and "has already passed" in page
    assert not Run.objects.exists()
    # The upload is kept: a later deadline creates the run.
    created = signed_in.post(
        preview, {"deadline_at": local_input(soon()), "deadline_policy": "standard"}
    )
    assert created.status_code == 302 and Run.objects.get().deadline_policy == "standard"


def test_the_upload_page_refuses_a_policy_without_a_deadline(signed_in):
    response = upload(signed_in, deadline_policy="cancel")
    assert response.status_code == 200
    assert "Cancelling at the deadline needs a deadline" in response.content.decode()


def test_time_left_shows_on_the_jobs_list_and_the_job_page(signed_in, ada):
    (job,) = submit(
        ada, "timed", deadline_at=soon(hours=1, minutes=20, seconds=30), deadline_policy="cancel"
    )
    rows = signed_in.get("/jobs/").content.decode()
    assert re.search(r"deadline <time [^>]*>in 1 h 21 min</time> → cancel", rows)
    detail = signed_in.get(f"/jobs/{job.pk}/", headers=HTMX).content.decode()
    clock = shown_clock(job.deadline_at)
    assert re.search(rf">{clock}</time> \(<time [^>]*>in 1 h 21 min</time>\); then: cancel", detail)

    Job.objects.filter(pk=job.pk).update(deadline_at=soon(seconds=-60))
    job.refresh_from_db()
    actions.jobs_apply_deadlines()
    detail = signed_in.get(f"/jobs/{job.pk}/", headers=HTMX).content.decode()
    clock = shown_clock(job.deadline_at)
    assert "Deadline passed at <time" in detail and f">{clock}</time>: cancelled" in detail


def test_the_run_page_shows_time_left_then_what_the_deadline_did(signed_in, ada):
    run = make_run(ada, deadline_at=soon(hours=2, seconds=30), deadline_policy="standard")
    clock = shown_clock(run.deadline_at)
    page = signed_in.get(f"/runs/{run.pk}/").content.decode()
    assert re.search(
        rf">{clock}</time> \(<time [^>]*>in 2 h 1 min</time>\); "
        "then: move to standard",
        page,
    )

    passed = soon(seconds=-30)
    Run.objects.filter(pk=run.pk).update(deadline_at=passed)
    run.jobs.update(deadline_at=passed)
    actions.jobs_apply_deadlines()
    live = signed_in.get(f"/runs/{run.pk}/", headers={**HTMX, "HX-Target": "run-live"})
    clock = shown_clock(passed)
    assert "Deadline passed at <time" in live.content.decode()
    assert f">{clock}</time>: 2 moved to standard" in live.content.decode()


# --- The API and the command ---------------------------------------------------------
def test_the_api_takes_a_deadline_and_returns_it(ada):
    response = post_json(
        api_client(ada),
        "/api/jobs",
        {"prompt": "p", "deadline_at": "2099-06-01T14:00:00+02:00", "deadline_policy": "standard"},
    )
    assert response.status_code == 201, response.content
    (returned,) = response.json()["jobs"]
    utc = datetime(2099, 6, 1, 12, 0, tzinfo=zoneinfo.ZoneInfo("UTC"))
    assert datetime.fromisoformat(returned["deadline_at"]) == utc
    assert returned["deadline_policy"] == "standard"
    assert Job.objects.get().deadline_at == utc
    listed = api_client(ada).get("/api/jobs").json()["items"][0]
    assert (datetime.fromisoformat(listed["deadline_at"]), listed["deadline_policy"]) == (
        utc,
        "standard",
    )


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"deadline_at": "2099-06-01T14:00:00"}, "deadline_at", "needs a time zone"),
        (
            {"deadline_at": "2001-06-01T14:00:00Z", "deadline_policy": "cancel"},
            "deadline_at",
            "has already passed",
        ),
        ({"deadline_at": "soon", "deadline_policy": "cancel"}, "deadline_at", "datetime"),
        ({"deadline_policy": "cancel"}, "deadline_at", "needs a deadline"),
        (
            {"deadline_at": "2099-06-01T14:00:00Z", "deadline_policy": "x"},
            "deadline_policy",
            "Unknown deadline policy",
        ),
    ],
)
def test_the_api_refuses_a_bad_deadline_and_creates_nothing(ada, body, field, words):
    response = post_json(api_client(ada), "/api/jobs", {"prompt": "p", **body})
    assert response.status_code == 422, response.content
    assert words in " ".join(response.json()["errors"][field])
    assert not Job.objects.exists()


def test_a_batch_takes_a_deadline_for_every_line(ada):
    filename, content = prompt_file("jsonl", [("a", "one"), ("b", "two")])
    response = api_client(ada).post(
        "/api/batches",
        {
            "file": SimpleUploadedFile(filename, content),
            "deadline_at": "2099-06-01T14:00:00Z",
            "deadline_policy": "cancel",
        },
    )
    assert response.status_code == 201, response.content
    assert (response.json()["deadline_at"], response.json()["deadline_policy"]) == (
        "2099-06-01T14:00:00Z",
        "cancel",
    )
    assert Job.objects.filter(deadline_policy="cancel").count() == 2


def test_the_command_takes_a_relative_deadline_and_a_policy(ada):
    submit_command("--prompt", "x", "--deadline", "+2h", "--at-deadline", "standard")
    job = Job.objects.get()
    assert abs((job.deadline_at - soon(hours=2)).total_seconds()) < 60
    assert job.deadline_policy == "standard"


def test_the_command_takes_an_iso_deadline(ada):
    submit_command(
        "--prompt", "x", "--deadline", "2099-06-01T14:00:00+00:00", "--at-deadline", "cancel"
    )
    assert Job.objects.get().deadline_at == datetime(
        2099, 6, 1, 14, tzinfo=zoneinfo.ZoneInfo("UTC")
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--deadline", "tomorrow"], "give an ISO 8601 time"),
        (["--at-deadline", "cancel"], "needs a deadline"),
        (["--deadline", "2001-01-01T00:00Z"], "has already passed"),
    ],
)
def test_the_command_refuses_a_bad_deadline_and_creates_nothing(ada, args, words):
    with pytest.raises(CommandError, match=words):
        submit_command("--prompt", "x", *args)
    assert not Job.objects.exists()


def test_the_admin_shows_the_deadline(admin_client, admin_user):
    (job,) = submit(admin_user, "p", deadline_at=soon(), deadline_policy="cancel")
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert "At the deadline" in page and "Cancel it" in page


# --- End to end ------------------------------------------------------------------------
@pytest.mark.engine
@pytest.mark.django_db(transaction=True)
def test_flex_work_shed_until_its_deadline_finishes_on_standard(start_simulator, tmp_path, ada):
    """Flex is always shed here; at the deadline the job moves to standard,
    which the simulator never sheds, and is answered there."""
    simulator = start_simulator(p503=1.0)
    word = tag()
    with qcluster(engine_env(simulator.url), tmp_path / "q.log"):
        # A standard job first: once it is answered the cluster is up, and the
        # deadline job's flex tries begin before its deadline (a worker's first
        # dispatcher takes a few seconds to start).
        (warm,) = submit(ada, f"warm up {word}", tier="standard")
        wait_for(
            lambda: Job.objects.filter(pk=warm.pk, state=State.SUCCEEDED).exists(),
            timeout=60,
            what="the cluster to answer",
        )
        (job,) = submit(
            ada,
            f"deadline {word}",
            max_attempts=50,
            # Room for the first flex tries on a loaded machine (CI's is slower).
            deadline_at=soon(seconds=12),
            deadline_policy="standard",
        )
        wait_for(
            lambda: Job.objects.filter(pk=job.pk, state=State.SUCCEEDED).exists(),
            timeout=60,
            what="the job to finish on standard",
        )
    job.refresh_from_db()
    assert (job.tier_requested, job.tier_served) == (Tier.STANDARD, "standard")
    tries = list(job.attempt_log.order_by("number").values_list("tier_requested", "http_status"))
    assert tries[0] == ("flex", 503)
    assert tries[-1] == ("standard", 200)
    assert job.http_503 == len(tries) - 1
