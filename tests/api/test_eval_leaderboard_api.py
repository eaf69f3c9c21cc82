"""GET /api/evals/{id}: an eval batch's leaderboard, for its owner only."""

from __future__ import annotations

import pytest

from jobs.runs import leaderboard
from tests.runs.test_leaderboard import graded_eval  # noqa: F401 (the fixture)
from tests.support import api_client

pytestmark = pytest.mark.django_db


def test_the_owner_gets_the_leaderboard_that_the_jobs_give(ada, graded_eval):  # noqa: F811
    run, *_ = graded_eval
    response = api_client(ada).get(f"/api/evals/{run.pk}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body == leaderboard.leaderboard(run).as_json()
    big = body["candidates"][0]
    assert (big["label"], big["scores"]["exact"]["mean"], big["scores"]["exact"]["rank"]) == (
        "big",
        0.75,
        1,
    )
    assert body["interval"]["seed"] == 11 and body["pairwise"][0]["flips"] == 15


def test_another_users_eval_and_a_batch_that_is_no_eval_are_not_found(bob, graded_eval):  # noqa: F811
    run, *_ = graded_eval
    response = api_client(bob).get(f"/api/evals/{run.pk}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"No eval {run.pk}."}
    run.evaluation = None
    run.save(update_fields=["evaluation"])
    assert api_client(run.owner).get(f"/api/evals/{run.pk}").status_code == 404
