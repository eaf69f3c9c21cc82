"""Searching jobs by the words of their prompt and answer, through the index
migration 0007 builds: an FTS5 table on SQLite, a GIN-indexed tsvector on
PostgreSQL. The pages and the API both search here, so both databases give
the same answer to the same search.

What a search means: every word of it must begin a word of the prompt or of
the answer (the first INDEXED_CHARS characters of each), case-insensitively.
A word is a run of letters and digits, in any script; everything else
(spaces, punctuation, "-", "_", ".", "@") only separates words. Accents count:
"ecole" does not find "école".
"""

from __future__ import annotations

import unicodedata

from django.db import connection
from django.db.models import BooleanField, Expression, F, Field, QuerySet
from django.db.models.expressions import Col, RawSQL

from jobs.models import Job

MAX_SEARCH_CHARS = 200
# Of the prompt and of the answer; the migration's own copy must say the same.
INDEXED_CHARS = 100_000

# The characters FTS5 is told are word characters (migration 0007).
_WORD_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "Mn", "Mc"})


def search_words(text: str) -> list[str]:
    """The words of a search, in order, each once."""
    words: list[str] = []
    current: list[str] = []
    for char in f"{text} ":
        if unicodedata.category(char) in _WORD_CATEGORIES:
            current.append(char)
        elif current:
            word = "".join(current)
            if word not in words:
                words.append(word)
            current = []
    return words


def search_problem(text: str) -> str | None:
    """Why this search cannot run, in words for the person who typed it; None if it can."""
    text = text.strip()
    if len(text) > MAX_SEARCH_CHARS:
        return f"Search for at most {MAX_SEARCH_CHARS} characters; this search has {len(text):,}."
    if text and not search_words(text):
        return "Search for at least one word: a search matches letters and digits, not punctuation."
    return None


def matching(jobs: QuerySet[Job], text: str) -> QuerySet[Job]:
    """The jobs whose prompt or answer has every word of `text` (checked
    first with search_problem). Counting them asks the index too: a page and
    its count never read a prompt."""
    words = search_words(text)
    if not words:
        return jobs.none()
    if connection.vendor == "postgresql":
        return jobs.filter(_VectorMatches(" ".join(words)))
    match = " ".join(f'"{word}"*' for word in words)
    return jobs.filter(pk__in=RawSQL(_FTS5_ROWIDS, [match]))


_FTS5_ROWIDS = 'SELECT rowid FROM "jobs_job_search" WHERE "jobs_job_search" MATCH %s'

# The annotation a list of matches walked newest first is ordered and paged by
# (jobs/web/pages.py): the job's id, as the index's own row id on SQLite.
NEWEST_KEY = "search_rowid"


def newest_matching(jobs: QuerySet[Job], text: str) -> QuerySet[Job]:
    """matching(), for a list read newest first (annotated NEWEST_KEY).

    On SQLite, FTS5 gathers every match of a word's prefix before it answers,
    and `id IN (...)` then copies them all into a temporary index: 110 ms for
    a word in 300,000 of 1,000,000 jobs. Here the index is joined instead and
    walked from its newest match down, stopping at the page (26 ms). The
    join only runs that way round, and only an order by NEWEST_KEY lets it
    stop early: ordered by anything else it reads every match, so a run's
    table (in file order) keeps matching()."""
    words = search_words(text)
    if connection.vendor == "postgresql" or not words:
        return matching(jobs, text).annotate(**{NEWEST_KEY: F("pk")})
    match = " ".join(f'"{word}"*' for word in words)
    joined = jobs.extra(
        tables=["jobs_job_search"],
        # The unary + keeps SQLite from turning the join around: it may only
        # look a job up by the index's row id, never the index up by the job's.
        where=['+"jobs_job_search"."rowid" = "jobs_job"."id"', '"jobs_job_search" MATCH %s'],
        params=[match],
    )
    return joined.annotate(**{NEWEST_KEY: RawSQL('"jobs_job_search"."rowid"', ())})


# The search's words as a tsquery of prefixes ('otter':* & 'owl':*), split and
# lower-cased the way migration 0007 splits what it indexes. Only immutable
# calls on a constant: PostgreSQL works it out while planning, so it can
# estimate the match from the index's statistics.
_TSQUERY = (
    "replace(regexp_replace(btrim(regexp_replace(lower(%s), '[^[:alnum:]]+', ' ', 'g')),"
    r" '([^ ]+)', '''\1'':*', 'g'), ' ', ' & ')::tsquery"
)


def _search_vector() -> Field:
    field = Field()
    field.set_attributes_from_name("search_vector")
    return field


class _VectorMatches(Expression):
    """search_vector @@ (the search): the column is not on the model (see
    migration 0007), so it is named here, on whatever alias the query gives
    jobs_job."""

    conditional = True
    output_field = BooleanField()
    _vector = _search_vector()

    def __init__(self, words: str) -> None:
        super().__init__()
        self.words = words
        self.column: Col | None = None  # set when the query it is in is known

    def get_source_expressions(self) -> list:
        return [self.column] if self.column is not None else []

    def set_source_expressions(self, exprs: list) -> None:
        self.column = exprs[0] if exprs else None

    def resolve_expression(
        self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False
    ):
        resolved = self.copy()
        resolved.column = Col(query.get_initial_alias(), self._vector)
        return resolved

    def as_sql(self, compiler, connection):
        column, params = compiler.compile(self.column)
        return f"{column} @@ {_TSQUERY}", (*params, self.words)
