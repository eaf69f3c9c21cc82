"""An eval's matrix page: rows by candidates, each answer with its grades and the
pairwise verdicts; its filters keep exactly the rows the leaderboard flags,
its pages are linkable, its cells open the jobs behind them, and only the
owner sees it. The eval is tests/runs/test_leaderboard.py's `graded_eval`
(40 rows; see its docstring for who answers what)."""

from __future__ import annotations

import re

import pytest

from jobs.models import Job
from jobs.runs import eval_matrix, leaderboard
from tests.runs import test_leaderboard
from tests.support import as_user, make_run

pytestmark = pytest.mark.django_db
ROWS = test_leaderboard.ROWS
graded_eval = test_leaderboard.graded_eval  # the fixture


def matrix_url(run, query: str = "") -> str:
    return f"/runs/{run.pk}/eval/matrix/{query}"


def shown_rows(page: str) -> list[int]:
    """The data rows the matrix shows (file line - 1: the header is line 1), in order."""
    return [int(line) - 1 for line in re.findall(r'<tr id="row-(\d+)" data-line', page)]


def row_html(page: str, n: int) -> str:
    return re.search(rf'<tr id="row-{n + 1}" .*?</tr>', page, re.S).group(0)


def job(run, step: str, n: int) -> Job:
    return Job.objects.get(run=run, step=step, line_number=n + 1)


@pytest.fixture
def judged_against_the_checks(graded_eval):
    """graded_eval, where the judge passes small's wrong answer on row 2 (9) and
    fails big's right answer on row 3 (2): there, and only there, the judge and
    the check disagree."""
    run, *_ = graded_eval
    Job.objects.filter(run=run, step="judge_small", line_number=3).update(output_json={"score": 9})
    Job.objects.filter(run=run, step="judge_big", line_number=4).update(output_json={"score": 2})
    return run


def test_it_shows_every_row_with_each_answer_and_its_grades(signed_in, graded_eval):
    run, *_ = graded_eval
    page = signed_in.get(matrix_url(run)).content.decode()
    assert shown_rows(page) == list(range(1, ROWS + 1))
    assert "big" in page and "gemini-2.5-flash-lite" in page

    right = row_html(page, 1)  # both right: big 8, small 6; the duel to big in both orders
    assert re.search(r'data-grader="exact" data-grade="pass" title="exact: passes">', right)
    assert 'data-grade="graded" title="judge: 8"' in right
    assert 'data-grade="graded" title="judge: 6"' in right
    assert "A/B: " in right and "A (big)" in right and "B (big)" in right
    assert "data-flipped" not in right

    ungraded = row_html(page, 5)  # the judge's answer for big has no score
    assert 'data-grade="ungraded" title="judge: score is missing"' in ungraded
    assert 'data-grade="fail"' in row_html(page, 35)
    failed = row_html(page, ROWS)  # small's answer failed; the duel follows position A
    assert 'data-candidate="small" data-state="failed"' in failed
    assert 'data-grade="no-answer" title="exact: nothing to grade, the answer failed"' in failed
    assert "data-flipped" in failed and ">flipped<" in failed


@pytest.mark.parametrize(
    ("show", "expected"),
    [
        # big is right on 1-30, small on 1, 4, 7, ... 37 (40 failed): they part where one is.
        ("disagree", [n for n in range(1, 31) if n % 3 != 1] + [31, 34, 37]),
        # The judge's answers for big on 5, 6 and 7 give no score; small's answer on 40 failed.
        ("ungraded", [5, 6, 7, 40]),
        ("judge-checks", [2, 3]),
        ("all", list(range(1, ROWS + 1))),
    ],
)
def test_each_filter_keeps_exactly_the_rows_it_names(
    signed_in, judged_against_the_checks, show, expected
):
    run = judged_against_the_checks
    page = signed_in.get(matrix_url(run, f"?show={show}")).content.decode()
    assert shown_rows(page) == expected
    assert re.search(
        rf'id="show-{show}" aria-current="true">[^<]*<span class="count">{len(expected)}<', page
    )
    # The leaderboard's own flags say the same.
    flag = {"disagree": "candidates_disagree", "judge-checks": "judge_checks_disagree"}.get(show)
    if flag:
        rows = leaderboard.graded_rows(run)
        assert [row.line - 1 for row, _ in rows if getattr(row, flag)] == expected


def test_the_filters_count_their_rows_on_every_page(signed_in, judged_against_the_checks):
    page = signed_in.get(matrix_url(judged_against_the_checks)).content.decode()
    counts = dict(re.findall(r'id="show-([a-z-]+)"[^>]*>[^<]*<span class="count">(\d+)<', page))
    assert counts == {"all": "40", "disagree": "23", "judge-checks": "2", "ungraded": "4"}


def test_rows_come_a_page_at_a_time_and_the_filter_stays_in_the_links(
    signed_in,
    graded_eval,
    monkeypatch,
):
    monkeypatch.setattr(eval_matrix, "ROWS_PER_PAGE", 7)
    run, *_ = graded_eval
    disagree = [n for n in range(1, 31) if n % 3 != 1] + [31, 34, 37]  # 23 rows: 4 pages
    seen = []
    url = matrix_url(run, "?show=disagree")
    for number in range(1, 5):
        page = signed_in.get(url).content.decode()
        assert f"Page {number} of 4 (23 rows)" in page
        seen += shown_rows(page)
        found = re.search(r'<a href="\?([^"]+)" rel="next">', page)
        if number == 4:
            assert found is None
        else:
            url = matrix_url(run, "?" + found.group(1).replace("&amp;", "&"))
            assert "show=disagree" in url and f"page={number + 1}" in url
    assert seen == disagree
    # A page past the end is the last; a page that is no number, the first.
    assert shown_rows(signed_in.get(url.replace("page=4", "page=99")).content.decode()) == [34, 37]
    assert shown_rows(signed_in.get(matrix_url(run, "?page=x&show=nonsense")).content.decode()) == [
        1, 2, 3, 4, 5, 6, 7
    ]  # fmt: skip


def test_a_page_holds_no_more_than_its_rows(graded_eval, monkeypatch):
    monkeypatch.setattr(eval_matrix, "ROWS_PER_PAGE", 7)
    run, *_ = graded_eval
    third = eval_matrix.matrix_page(run, page=3)
    assert [row.line - 1 for row in third.rows] == list(range(15, 22))
    assert (third.number, third.pages, third.matched, third.previous, third.next) == (
        3,
        6,
        40,
        2,
        4,
    )


def test_each_cell_opens_the_jobs_behind_it(signed_in, graded_eval):
    run, *_ = graded_eval
    page = signed_in.get(matrix_url(run)).content.decode()
    row = row_html(page, 2)
    assert f'href="/runs/{run.pk}/rows/3/"' in row  # the row's page, all of its jobs
    answer, judge = job(run, "answer_small", 2), job(run, "judge_small", 2)
    assert f'<a href="/jobs/{answer.pk}/" class="answer"' in row
    assert f'<a href="/jobs/{judge.pk}/" class="judge-link">2</a>' in row
    ab, ba = job(run, "duel_ab", 2), job(run, "duel_ba", 2)
    assert f'href="/jobs/{ab.pk}/"' in row and f'href="/jobs/{ba.pk}/"' in row
    opened = signed_in.get(f"/jobs/{answer.pk}/")
    assert opened.status_code == 200
    assert signed_in.get(f"/runs/{run.pk}/rows/3/").status_code == 200


def test_a_long_answer_is_cut_to_a_readable_length(signed_in, graded_eval):
    run, *_ = graded_eval
    Job.objects.filter(run=run, step="answer_big", line_number=2).update(result_text="word " * 200)
    page = signed_in.get(matrix_url(run)).content.decode()
    answer = re.search(r'class="answer"[^>]*>([^<]*)</a>', row_html(page, 1)).group(1)
    assert len(answer) <= 240 and answer.endswith("…")


def test_only_the_owner_sees_it_and_only_for_an_eval(client, ada, bob, graded_eval):
    run, *_ = graded_eval
    assert as_user(client, bob).get(matrix_url(run)).status_code == 404
    plain = make_run(ada)
    assert as_user(client, ada).get(matrix_url(plain)).status_code == 404
    assert client.get(matrix_url(run)).status_code == 200
    client.logout()
    assert client.get(matrix_url(run)).status_code == 302  # to the login page
