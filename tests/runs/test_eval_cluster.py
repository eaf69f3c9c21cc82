# ruff: noqa: E501 (the definition is YAML, one setting per line)
"""An eval of 120 rows x 3 candidates x 2 graders (a check and a judge) through a
real cluster against the simulator, with planted 503s and 429s, a candidate
that fails some rows, and a judge that breaks its schema on others: every
figure of the leaderboard (and of GET /api/evals/{id} and manage.py eval)
equals a recount from the jobs written here, without the leaderboard's code,
and the run page shows those figures."""

from __future__ import annotations

import io
import json
import re
import statistics
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from jobs.engine.submitting import JobSpec
from jobs.models import ACTIVE_STATES, Job, State
from jobs.runs import eval_definitions, leaderboard
from jobs.templatetags.dashboard import duration, usd
from tests.support import MODEL, api_client, as_user, engine_env, qcluster, tag, wait_for

pytestmark = [
    pytest.mark.engine,
    pytest.mark.both_databases,
    pytest.mark.django_db(transaction=True),
]

ROWS = 120
DEFINITION = """
name: mentions
seed: 2026
max_attempts: 6
candidates:
  - {model: gemini-2.5-flash, name: plain}
  - {model: gemini-2.5-flash-lite, name: terse, prompt: "Tersely: {{ row.question }} {{ row.fail }}"}
  - {model: gemini-3-flash-preview, name: thinking, generation_config: {thinking_level: low}}
prompt: "{{ row.question }}"
graders:
  - name: mentions
    check: {type: contains, value: "{{ row.reference }}", normalize: [lower]}
  - name: judge
    model: gemini-2.5-pro
    prompt: "Q: {{ row.question }} Expected: {{ row.reference }} Answer: {{ answer }} {{ row.judge }}"
    response_schema: {type: object, properties: {score: {type: integer, minimum: 1, maximum: 10}, reason: {type: string}}, required: [score, reason]}
"""
# The default launch rate (50 a second) would make this 720-job test a minute of
# waiting on it; what is tested is the figures, not the pacing.
# Leases long enough that a loaded CI machine does not see one lapse mid-request
# (a takeover is the scale-out tests' subject, not this one's).
LAUNCH = {"FLEX_LAUNCH_RATE": 400, "FLEX_MAX_IN_FLIGHT": 60, "FLEX_LEASE_SECONDS": 30}


def table(word: str) -> bytes:
    """Row n asks about its own word; its reference is in the question on two rows
    of three (so the check passes there), and:
    n % 10 == 1: a 503 first (each prompt's count is shared by the routes);
    n % 10 == 2: a 429 first;
    n % 50 == 9: the terse candidate's prompt is refused (400): it fails the row;
    n % 15 == 7: the judge's answers break its schema: ungraded after its tries."""
    lines = ["question,reference,fail,judge"]
    for n in range(ROWS):
        reference = f"w{n}x{word}" if n % 3 else f"absent{n}"
        question = f"Tell me about w{n}x{word}"
        if n % 10 == 1:
            question += " [sim:503x1]"
        if n % 10 == 2:
            question += " [sim:429x1]"
        fail = "[sim:400]" if n % 50 == 9 else ""
        judge = "[sim:bad-json]" if n % 15 == 7 else ""
        lines.append(f"{question},{reference},{fail},{judge}")
    return ("\n".join(lines) + "\n").encode()


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def recount(run) -> dict:
    """The leaderboard's figures worked out from the jobs, directly."""
    rows = {row.line_number: row.values for row in run.rows.all()}
    jobs = list(Job.objects.filter(run=run))
    by_step: dict[str, dict[int, Job]] = {}
    for job in jobs:
        by_step.setdefault(job.step, {})[job.line_number] = job
    found = {}
    for key in ("plain", "terse", "thinking"):
        answers = by_step[f"answer_{key}"]
        judges = by_step[f"judge_{key}"]
        answered = {line for line, job in answers.items() if job.state == State.SUCCEEDED}
        passes = [
            float(rows[line]["reference"].lower() in answers[line].result_text.lower())
            for line in sorted(answered)
        ]
        scores = [
            float(judges[line].output_json["score"])
            for line in sorted(answered)
            if judges[line].state == State.SUCCEEDED and not judges[line].output_problem
        ]
        latencies = [
            (job.finished_at - job.first_started_at).total_seconds()
            for job in answers.values()
            if job.state == State.SUCCEEDED
        ]
        found[key] = {
            "answered": len(answered),
            "failed": len(answers) - len(answered),
            "pass_rate": statistics.fmean(passes),
            "checked": len(passes),
            "mean_score": statistics.fmean(scores),
            "judged": len(scores),
            "unjudged": len(answered) - len(scores),
            "cost": sum((job.cost_usd or Decimal(0) for job in answers.values()), Decimal(0)),
            "standard": sum(
                (job.standard_cost_usd or Decimal(0) for job in answers.values()), Decimal(0)
            ),
            "grading_cost": sum(
                (job.cost_usd or Decimal(0) for job in judges.values()), Decimal(0)
            ),
            "retries": sum(job.attempts - 1 for job in answers.values()),
            "http_503": sum(job.http_503 for job in answers.values()),
            "http_429": sum(job.http_429 for job in answers.values()),
            "input_tokens": sum(job.input_tokens for job in answers.values()),
            "median_latency": statistics.median(latencies),
        }
    found["total_cost"] = sum((job.cost_usd or Decimal(0) for job in jobs), Decimal(0))
    found["jobs"] = len(jobs)
    return found


def test_an_eval_of_120_rows_through_a_cluster_adds_up_to_its_jobs(
    start_simulator, ada, tmp_path: Path
):
    simulator = start_simulator(latency="0.02:0.1")
    spec = JobSpec(model=MODEL)
    compiled = eval_definitions.eval_read(DEFINITION, spec=spec)
    run = eval_definitions.eval_run_create(
        compiled=compiled,
        owner=ada,
        stream=io.BytesIO(table(tag())),
        filename="rows.csv",
        spec=spec,
    )
    jobs = Job.objects.filter(run=run)
    assert jobs.count() == ROWS * 6
    with qcluster(engine_env(simulator.url, **LAUNCH), tmp_path / "cluster.log"):
        wait_for(lambda: not jobs.filter(state__in=ACTIVE_STATES).exists(), timeout=240, interval=1.0,
                 what="every answer and grade")  # fmt: skip

    expected = recount(run)
    board = leaderboard.leaderboard(run)
    assert board.finished and board.rows == ROWS and board.usage.jobs == expected["jobs"]
    assert board.usage.cost_usd == expected["total_cost"]
    standings = {s.key: s for s in board.standings}
    for key in ("plain", "terse", "thinking"):
        mine, theirs = standings[key], expected[key]
        assert (mine.answered, mine.failed) == (theirs["answered"], theirs["failed"]), key
        check, judge = mine.scores["mentions"], mine.scores["judge"]
        assert (
            check.mean == pytest.approx(theirs["pass_rate"]) and check.graded == theirs["checked"]
        ), key
        assert judge.mean == pytest.approx(theirs["mean_score"]), key
        assert (judge.graded, judge.ungraded) == (theirs["judged"], theirs["unjudged"]), key
        assert check.low < check.mean < check.high and judge.low < judge.mean < judge.high, key
        assert mine.answers.cost_usd == theirs["cost"], key
        assert mine.answers.standard_cost_usd == theirs["standard"], key
        assert mine.grading.cost_usd == theirs["grading_cost"], key
        assert (mine.retries, mine.http_503, mine.http_429) == (
            theirs["retries"], theirs["http_503"], theirs["http_429"]), key  # fmt: skip
        assert mine.answers.input_tokens == theirs["input_tokens"], key
        assert mine.median_latency_s == pytest.approx(theirs["median_latency"]), key

    # What was planted happened: the judge broke on its rows (ungraded, never a zero),
    # the terse candidate failed its refused rows, the 503s and 429s were retried.
    broken = {n for n in range(ROWS) if n % 15 == 7}
    assert expected["plain"]["unjudged"] == len(broken)
    assert expected["terse"]["failed"] == len({n for n in range(ROWS) if n % 50 == 9})
    assert sum(expected[k]["http_503"] for k in standings) >= ROWS // 10
    assert sum(expected[k]["http_429"] for k in standings) >= ROWS // 10
    judge_jobs = jobs.filter(step__startswith="judge_", output_problem__gt="")
    # Each was asked again after its broken answers, until its tries ran out.
    assert all(job.bad_outputs >= 3 and job.state == State.SUCCEEDED for job in judge_jobs)
    assert judge_jobs.count() == 3 * len(broken)
    plain = standings["plain"].answers
    # On flex, half of standard (each job's cost rounded to 1e-8 USD).
    assert abs(plain.cost_usd * 2 - plain.standard_cost_usd) <= Decimal("2e-8") * plain.jobs

    # The run page shows the same figures, each as the recount gives it.
    page = as_user(Client(), ada).get(f"/runs/{run.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    for key in ("plain", "terse", "thinking"):
        theirs = expected[key]
        row = _text(re.search(rf'<tr id="eval-candidate-{key}".*?</tr>', html, re.DOTALL).group(0))
        assert f"{theirs['pass_rate'] * 100:.0f}% (" in row, (key, row)
        assert f"{theirs['checked']} graded" in row, (key, row)
        assert f"{theirs['mean_score']:.1f} (" in row, (key, row)
        assert f"{theirs['judged']} graded, {theirs['unjudged']} ungraded" in row, (key, row)
        assert f"{theirs['answered']} / {theirs['failed']} / 0" in row, (key, row)
        assert usd(theirs["cost"] + theirs["grading_cost"]) in row, (key, row)
        assert duration(theirs["median_latency"]) in row, (key, row)
        assert f"{theirs['retries']} {theirs['http_503']} / {theirs['http_429']}" in row, (key, row)
    total = _text(re.search(r'<tr id="eval-total".*?</tr>', html, re.DOTALL).group(0))
    assert usd(expected["total_cost"]) in total
    assert f"seed {2026}" in _text(html)

    # The API and the command give the same figures.
    board_json = board.as_json()
    assert api_client(ada).get(f"/api/evals/{run.pk}").json() == board_json
    out = io.StringIO()
    call_command("eval", "--json", str(run.pk), stdout=out)
    assert json.loads(out.getvalue()) == board_json
