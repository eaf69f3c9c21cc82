"""The report of bench/search.py: the table per database, the over-budget details, the files.

From the builds' and the measurements' results (dicts, as in search.json) to
text: a row per page and viewer with its time at the small and at the large
size, the ratio and the verdict against the budget (within 1.5x of the small
size's time; pages without a search are the scale issue's, so reported, not
judged), then, for each search page over budget, its statements by time with
the plan of the slowest; and bench/results/search.json and .md. A helper
module (bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from bench import common

BUDGET = 1.5
# Rows a page shows: the jobs list's page, and /api/jobs's default limit.
ROWS_SHOWN = {"page": 25, "fragment": 25, "api": 50}
TIMES = "\N{MULTIPLICATION SIGN}"


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"


def statement_ms(statement: dict[str, Any]) -> float:
    """A statement's time: in the request, or run again to its last row (the
    SQLite driver steps a streamed query as its rows are fetched, after
    execute() returned), whichever is longer."""
    return max(statement["ms"], statement.get("full_ms") or 0.0)


def _shape(sql: str) -> str:
    """The statement without its literals: the same plan for every search word."""
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    return re.sub(r"\b\d+\b", "?", " ".join(sql.split()))


def _label(sql: str) -> str:
    """The statement to read in a list: a long select list (outside any
    parentheses, so a subquery in it is kept) shown as "…"."""
    sql = " ".join(sql.split())
    if len(sql) > 300 and sql.startswith("SELECT "):
        depth = 0
        for index, char in enumerate(sql):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0 and sql.startswith(" FROM ", index):
                columns = sql[7:index]
                subqueries = re.findall(r"\(SELECT .*?\) AS \"\w+\"", columns)
                sql = "SELECT …" + "".join(f", {q}" for q in subqueries) + sql[index:]
                break
    return sql[:400] + ("…" if len(sql) > 400 else "")


def rows(database: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per page and viewer: the small and the large figures side by side."""
    small, large = database["small"], database["large"]
    out = []
    for a, b in zip(small["pages"], large["pages"], strict=True):
        ratio = b["ms"] / a["ms"] if a["ms"] else None
        judged = a["search"] is not None
        key = "matches_researcher" if a["viewer"] == "researcher" else "matches_all"
        ok_status = a["status"] == [200] and b["status"] == [200]
        matches = (
            [small["build"][key].get(a["search"]), large["build"][key].get(a["search"])]
            if judged
            else None
        )
        # A search that fills no page at the small size (0 of a researcher's
        # jobs match) renders an empty table there: timed against a page of
        # 25 rows, that compares rendering, not the index. Shown, not judged.
        rows_shown = [min(ROWS_SHOWN[a["kind"]], m) for m in matches] if matches else None
        alike = rows_shown is None or rows_shown[0] == rows_shown[1]
        out.append(
            {
                "page": a["page"],
                "viewer": a["viewer"],
                "search": a["search"],
                "matches": matches,
                "rows_shown": rows_shown,
                "small_ms": a["ms"],
                "large_ms": b["ms"],
                "ratio": ratio,
                "small_db_ms": sum(statement_ms(q) for q in a["statements"]),
                "large_db_ms": sum(statement_ms(q) for q in b["statements"]),
                "status": [a["status"], b["status"]],
                "within": None
                if not judged or not alike
                else (ok_status and ratio is not None and ratio <= BUDGET),
            }
        )
    return out


def table(database: dict[str, Any]) -> str:
    small, large = size_label(database["jobs_small"]), size_label(database["jobs_large"])
    out = [
        f"| page | viewer | matches {small} / {large} | {small} ms | {large} ms | ratio "
        f"| within {BUDGET}{TIMES}? | SQL ms {small} / {large} |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for row in database["rows"]:
        shown = row.get("rows_shown")
        if row["within"] is None and shown and shown[0] != shown[1]:
            verdict = f"(not alike: {shown[0]} / {shown[1]} rows)"
        elif row["within"] is None:
            verdict = "(reference: scale issue)"
        else:
            verdict = "yes" if row["within"] else "**NO**"
        if row["status"] != [[200], [200]]:
            verdict += f" (HTTP {row['status'][0]} / {row['status'][1]})"
        matches = (
            "-" if row["matches"] is None else f"{row['matches'][0]:,} / {row['matches'][1]:,}"
        )
        out.append(
            f"| {row['page']} | {row['viewer']} | {matches} | {row['small_ms']:.1f} "
            f"| {row['large_ms']:.1f} | {common.cell(row['ratio'], '{:.2f}')} | {verdict} "
            f"| {row['small_db_ms']:.1f} / {row['large_db_ms']:.1f} |"
        )
    return "\n".join(out)


def over_budget(database: dict[str, Any]) -> list[str]:
    """For the pages over budget at the large size (rows whose `within` is
    False; bench/_scale_report.py's rows too): each page's slowest
    statements, then the plan of each distinct slow statement once."""
    large = {(p["viewer"], p["page"]): p for p in database["large"]["pages"]}
    out: list[str] = []
    plans: dict[str, dict[str, Any]] = {}
    for row in database["rows"]:
        if row["within"] is not False:
            continue
        page = large[(row["viewer"], row["page"])]
        statements = sorted(page["statements"], key=statement_ms, reverse=True)
        total = sum(statement_ms(s) for s in statements)
        slow = [s for s in statements[:3] if statement_ms(s) >= 1.0]
        listed = "; ".join(f"{statement_ms(s):.1f} ms `{_label(s['sql'])[:110]}`" for s in slow)
        out.append(
            f"- **{row['page']}, {row['viewer']}**: {row['large_ms']:.0f} ms, "
            f"{len(statements)} statements, {total:.0f} ms in SQL. Slowest: {listed or '-'}"
        )
        for s in slow:
            shape = _shape(s["sql"])
            if s.get("plan") and statement_ms(s) > statement_ms(plans.get(shape, {"ms": -1.0})):
                plans[shape] = s
    if plans:
        out += ["", "Plans of those statements (one per statement shape, at the large size):"]
    for s in sorted(plans.values(), key=statement_ms, reverse=True):
        out += ["", f"{statement_ms(s):.1f} ms: `{_label(s['sql'])}`", "", "```", s["plan"], "```"]
    return [*out, ""]


def builds(database: dict[str, Any]) -> str:
    parts = []
    for which in ("small", "large"):
        b = database[which]["build"]
        s = b["seconds"]
        parts.append(
            f"{b['jobs']:,} jobs + {b['attempts']:,} attempts built in {s['total']:.1f} s "
            f"(migrate {s['migrate']:.1f}, jobs and their search index "
            f"{s['insert_jobs_and_index']:.1f}, "
            f"attempts {s['insert_attempts']:.1f}, VACUUM ANALYZE {s['vacuum_analyze']:.1f})"
        )
    return "; ".join(parts)


def write_results(
    args: argparse.Namespace,
    info: dict[str, Any],
    commit: str,
    searches: dict[str, str],
    databases: list[dict[str, Any]],
    text: str,
) -> Path:
    figures = {
        "commit": commit,
        "jobs_small": args.jobs_small,
        "jobs_large": args.jobs_large,
        "repeat": args.repeat,
        "seed": args.seed,
        "budget_ratio": BUDGET,
        "searches": searches,
        "databases": databases,
    }
    out = common.write_results_json(args.results, "search", info, figures, indent=1)
    machine = info["machine"]
    head = [
        "# bench/search.py: the jobs search at two sizes",
        "",
        f"- command: `{info['command']}`",
        f"- date: {info['date']}; commit {commit}",
        f"- machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"Linux {machine['kernel']}, Python {machine['python']}, Django "
        f"{machine['versions']['django']}, psycopg {machine['versions']['psycopg']}; load "
        f"average at the start {machine['load_average']}",
        f"- searches: {', '.join(f'{k} `{v}`' for k, v in searches.items())}",
        f"- median of {args.repeat} timed requests after one warm-up, through Django's test "
        "Client with DEBUG off; the budget: a search page within "
        f"{BUDGET}{TIMES} of its time at {args.jobs_small:,} jobs",
        "",
    ]
    (out / "search.md").write_text("\n".join(head) + "\n" + text + "\n")
    return out
