"""Pages timed at two sizes of one database, in turns (bench/search.py, bench/scale.py).

Both databases are built first (a fresh SQLite file or PostgreSQL database
each, bench/_databases.py), then every page is timed at the small size, then
at the large one, REPEAT times, each turn a fresh process; the median of the
turns is a page's figure, so whatever else the machine does meanwhile weighs
on both sizes alike. A last turn at each size records the statements and
their plans. What is built and what is timed are the caller's (`build`,
`measure`, each a bench/common.py django_call). A helper module (bench/_*.py),
not a benchmark.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import _databases, common

# build(work directory, environment, jobs) -> the build's figures.
Build = Callable[[Path, dict, int], dict]
# measure(work directory, environment, turn, explain, build's figures) -> {"pages": [...], ...}.
Measure = Callable[[Path, dict, "int | str", bool, dict], dict]


def both_sizes(
    *,
    workdir: Path,
    env_values: dict,
    database: str,
    sizes: dict[str, int],
    postgres_url: str | None,
    database_name: str,
    build: Build,
    measure: Measure,
    repeat: int,
) -> dict[str, Any]:
    """{"small": {...}, "large": {...}}: each size's build and its pages, every
    page's `ms` the median of the turns (`ms_all`), `status` every status seen."""
    with contextlib.ExitStack() as stack:
        envs, dirs, builds = {}, {}, {}
        server = None
        for which, jobs in sizes.items():
            dirs[which] = workdir / f"{database}-{jobs}"
            dirs[which].mkdir()
            name = f"{database_name}_{which}"
            fresh = _databases.fresh_database(dirs[which], postgres_url, name=name)
            db = stack.enter_context(fresh)
            envs[which] = common.clean_env(DATABASE_URL=db.url, **env_values)
            builds[which] = build(dirs[which], envs[which], jobs)
            server = db.scalar("SHOW server_version") if db.engine == "postgresql" else None
        started = time.perf_counter()
        rounds: dict[str, list[dict]] = {which: [] for which in sizes}
        for round_ in range(repeat):
            for which in sizes:
                turn = measure(dirs[which], envs[which], round_, False, builds[which])
                rounds[which].append(turn)
        measured = {}
        for which in sizes:
            # The statements and their plans, once, after the timed turns.
            last = measure(dirs[which], envs[which], "plans", True, builds[which])
            for n, page in enumerate(last["pages"]):
                times = [r["pages"][n]["ms"] for r in rounds[which]]
                page["ms"] = round(statistics.median(times), 2)
                page["ms_all"] = times
                page["status"] = sorted({s for r in rounds[which] for s in r["pages"][n]["status"]})
            if server:
                last["server"] = server
            measured[which] = {"build": builds[which], **last}
        print(
            f"[{database}] {repeat} turns of {len(last['pages'])} pages at each size "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    return measured
