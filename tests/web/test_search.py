"""Searching jobs (jobs/web/search.py) from the jobs page, a run's page and the
API: through the word index, never a scan of the text; one statement a page;
the same answers on SQLite and PostgreSQL (run this module on both)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Exists, OuterRef
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, Run
from jobs.web import queries, search
from tests.support import api_client, as_user, make_run, submit

pytestmark = pytest.mark.django_db

MILLION = 1_000_000


def million_char_prompt(n: int) -> str:
    """A 1,000,000-character prompt of ordinary words, its own number first."""
    head = f"report{n} "
    filler = " ".join(f"word{i % 5000}" for i in range(MILLION // 6))
    return (head + filler)[:MILLION]


def searches(captured: CaptureQueriesContext) -> list[str]:
    """The statements that asked the index (FTS5's MATCH, PostgreSQL's @@)."""
    return [
        q["sql"] for q in captured.captured_queries if " MATCH " in q["sql"] or "@@" in q["sql"]
    ]


def text_scans(captured: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in captured.captured_queries
        if "LIKE" in q["sql"].upper() or "INSTR(" in q["sql"].upper()
    ]


@pytest.fixture
def five_huge_prompts(ada) -> list[Job]:
    return submit(ada, *(million_char_prompt(n) for n in range(5)))


# --- The finding: a 2,001-character search over five 1,000,000-character prompts ---
def test_the_api_refuses_a_2001_character_search_with_a_422_and_reads_no_prompt(
    ada, five_huge_prompts
):
    client = api_client(ada)
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/api/jobs", {"q": "word1 " * 333 + "abc"})
    assert response.status_code == 422
    [message] = response.json()["errors"]["q"]
    assert message == "Search for at most 200 characters; this search has 2,001."
    assert not searches(captured) and not text_scans(captured)


def test_the_page_says_a_2001_character_search_is_too_long(client, ada, five_huge_prompts):
    with CaptureQueriesContext(connection) as captured:
        response = as_user(client, ada).get("/jobs/", {"q": "x" * 2001})
    assert response.status_code == 200
    assert "Search for at most 200 characters; this search has 2,001." in response.content.decode()
    assert not searches(captured) and not text_scans(captured)


def test_a_200_character_search_over_huge_prompts_asks_the_index_and_reads_no_prompt(
    ada, five_huge_prompts
):
    text = ("report3 " + "word1 " * 40)[:200].strip()
    client = api_client(ada)
    with CaptureQueriesContext(connection) as captured:
        answer = client.get("/api/jobs", {"q": text}).json()
    assert [item["id"] for item in answer["items"]] == [five_huge_prompts[3].pk]
    assert answer["total"] == 1
    assert_one_indexed_query(captured)


def test_a_search_page_is_one_query_on_the_index(client, ada):
    submit(ada, *(f"flash prompt {n}" for n in range(30)), "owl prompt")
    with CaptureQueriesContext(connection) as captured:
        response = as_user(client, ada).get("/jobs/", {"q": "flash"})
    page = response.context["page"]
    assert len(page.object_list) == 25 and page.older_than and page.total is None
    # The matches are not counted (that would read each one); the tabs' counts are stored.
    assert "30 jobs" not in response.content.decode()
    assert_one_indexed_query(captured)


def assert_one_indexed_query(captured: CaptureQueriesContext) -> None:
    """A page asks the index once, for its rows, and nothing else reads for
    the search (no prompt, no count of the matches)."""
    assert not text_scans(captured)
    (rows,) = searches(captured)
    assert not rows.startswith("SELECT COUNT(")


def test_the_api_says_a_search_has_at_least_the_matches_so_far(ada):
    submit(ada, *(f"flash {n}" for n in range(7)), "owl")
    api = api_client(ada)
    first = api.get("/api/jobs", {"q": "flash", "limit": 3}).json()
    assert (len(first["items"]), first["total"], first["total_capped"]) == (3, 3, True)
    last = api.get("/api/jobs", {"q": "flash", "limit": 3, "offset": 6}).json()
    assert (len(last["items"]), last["total"], last["total_capped"]) == (1, 7, False)
    every = api.get("/api/jobs").json()
    assert (every["total"], every["total_capped"]) == (8, False)


def test_a_search_that_finds_nothing_is_an_empty_first_page(client, ada):
    submit(ada, "flash prompt")
    response = as_user(client, ada).get("/jobs/", {"q": "nothing"})
    assert response.context["page"].total == 0
    assert "No jobs match these filters" in response.content.decode()


def test_the_api_total_past_the_last_page_is_still_the_number_of_matches(ada):
    submit(ada, "flash one", "flash two", "owl")
    answer = api_client(ada).get("/api/jobs", {"q": "flash", "offset": 5}).json()
    assert (answer["items"], answer["total"]) == ([], 2)


def test_a_search_of_punctuation_only_is_refused_with_a_reason(client, ada):
    response = as_user(client, ada).get("/jobs/", {"q": "?!"})
    assert "Search for at least one word" in response.content.decode()
    answer = api_client(ada).get("/api/jobs", {"q": "--"})
    assert answer.status_code == 422
    assert "Search for at least one word" in answer.json()["errors"]["q"][0]


def test_a_blank_search_is_no_search(ada):
    submit(ada, "one", "two")
    answer = api_client(ada).get("/api/jobs", {"q": "   "}).json()
    assert answer["total"] == 2


def test_a_search_finds_only_what_the_viewer_may_see(client, ada, bob):
    submit(bob, "bob's secret otters")
    [mine] = submit(ada, "my otters")
    assert [job.pk for job in as_user(client, ada).get("/jobs/?q=otters").context["page"]] == [
        mine.pk
    ]
    assert api_client(ada).get("/api/jobs", {"q": "secret"}).json()["total"] == 0


# --- What a search means, the same on both databases -----------------------------
# name: (prompt, answer)
CORPUS = {
    "otters": ("Otters hold hands while they sleep.", "They do, to keep from drifting apart."),
    "glacier": ("Summarise the report.", "The GLACIER melted faster than forecast."),
    "email": ("Write to ada.lovelace@example.com about e-mail filters.", ""),
    "code": ("Set max_output_tokens=256 in config.yaml, then call client.generate().", ""),
    "numbers": ("Pi is 3.14159; the year was 2024; the commit is 2e5f0c.", ""),
    "accents": ("L'École polytechnique de Zürich", "Die Straße"),
    "scripts": ("Σίσυφος κυλάει την πέτρα. Привет, мир! 日本語のテキスト", ""),
}

CASES = [
    ("otter", {"otters"}),  # a word's beginning
    ("OTTERS", {"otters"}),  # any case
    ("sleep hands", {"otters"}),  # every word, in any order
    ("hands glacier", set()),  # every word in the same job
    ("tters", set()),  # not the middle of a word
    ("sleep drifting", {"otters"}),  # one word in the prompt, one in the answer
    ("glacier", {"glacier"}),  # the answer alone
    ("example", {"email"}),  # punctuation separates words: the mail host's parts
    ("lovelace@example.com", {"email"}),
    ("e-mail", {"email"}),  # the words "e" and "mail"
    ("email", set()),  # ... so not the word "email"
    ("max_output", {"code"}),
    ("tokens 256", {"code"}),
    ("generate()", {"code"}),
    ("3.14", {"numbers"}),
    ("2024", {"numbers"}),
    ("2e5f", {"numbers"}),  # a hex id is one word (PostgreSQL's parser would split it)
    ("f0c", set()),
    ("école", {"accents"}),
    ("ÉCOLE", {"accents"}),
    ("ecole", set()),  # accents count
    ("zür straße", {"accents"}),
    ("strasse", set()),
    ("ΣΊΣΥΦ", {"scripts"}),
    ("привет МИР", {"scripts"}),
    ("日本", {"scripts"}),
    ("テキスト", set()),  # unspaced Japanese is one word: only its beginning is found
]


@pytest.fixture
def corpus(ada) -> dict[str, int]:
    ids = {}
    for name, (prompt, answer) in CORPUS.items():
        ids[name] = Job.objects.create(owner=ada, input_text=prompt, result_text=answer).pk
    return ids


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_every_word_must_begin_a_word_of_the_prompt_or_answer(ada, corpus, text, expected):
    assert search.search_problem(text) is None
    found = queries.job_list(queries.Scope(owner_id=ada.pk), search=text)
    names = {name for name, pk in corpus.items() if pk in {job.pk for job in found}}
    assert names == expected


def test_the_run_page_searches_its_own_jobs_by_word(client, ada):
    run = make_run(ada, [("a", "apple pie"), ("b", "banana split"), ("c", "pineapple")])
    response = as_user(client, ada).get(f"/runs/{run.pk}/", {"q": "apple"})
    assert [job.custom_id for job in response.context["page"]] == ["a"]


def test_a_search_works_inside_another_query(ada):
    # In a subquery jobs_job gets another alias (U0): the search must follow it.
    apples = make_run(ada, [("a", "apple pie")])
    make_run(ada, [("b", "banana pie")])
    with_apples = search.matching(Job.objects.filter(run=OuterRef("pk")), "apple")
    assert list(Run.objects.filter(Exists(with_apples))) == [apples]


def test_the_words_of_a_search_are_letters_and_digits():
    assert search.search_words("e-mail  2e5f0c, max_output_tokens=256!") == [
        "e",
        "mail",
        "2e5f0c",
        "max",
        "output",
        "tokens",
        "256",
    ]
    assert search.search_words("Zürich ZÜRICH zürich") == ["Zürich", "ZÜRICH", "zürich"]
    assert search.search_words("otter otter") == ["otter"]


def test_older_and_newer_walk_every_match_of_a_search_once(client, ada, bob):
    """The list reads a search newest first from the index (on SQLite, by its
    own row order); paging both ways gives exactly the jobs matching() finds."""
    submit(ada, *(f"otter {n}" for n in range(60)), "owl")
    submit(bob, "otter of bob")
    for job in Job.objects.filter(input_text__endswith="7"):
        job.state = "cancelled"
        job.save(update_fields=["state"])
    as_user(client, ada)
    expected = list(
        search.matching(Job.objects.filter(owner=ada, state="queued"), "ott")
        .order_by("-id")
        .values_list("pk", flat=True)
    )
    assert len(expected) == 54
    seen, params = [], {"q": "ott", "state": "queued"}
    while True:
        page = client.get("/jobs/", params).context["page"]
        seen += [job.pk for job in page]
        if page.older_than is None:
            break
        params["before"] = page.older_than
    assert seen == expected
    params.pop("before")
    back = client.get("/jobs/", {**params, "after": seen[-1]}).context["page"]
    assert [job.pk for job in back] == expected[-26:-1]
