"""Time and peak memory to accept a 50,000-line Gemini Batch file and to stream its export.

One run generates a Gemini Batch JSONL file (prompts of 200-800 characters,
keys, some system instructions and generation configs) and measures, each step
in its own fresh database and its own Python process:

- FlexDash accept: what a person does, through Django's test Client with CSRF
  checks on: the upload page's form posted as multipart (the file streamed as
  the request body, as from a socket: never built in memory by the client),
  the preview page, and the confirmation that creates the run
  (`run_preview` + `run_create` behind the views);
- FlexDash export: the jobs marked succeeded with answers (one bulk UPDATE),
  then the results download (a StreamingHttpResponse) read chunk by chunk;
- the naive baseline: the whole file read and `json.loads`-ed line by line
  into a list, then `Job.objects.bulk_create`; and the export built as one
  list of lines joined to a string.

Each step runs twice: untimed by tracemalloc for the seconds and the peak RSS
(VmHWM reset through /proc/self/clear_refs, minus VmRSS before the step), and
under tracemalloc for the peak of Python allocations.

    python bench/ingest.py                 # 50,000 lines, SQLite: about 2 minutes
    python bench/ingest.py --lines 2000    # smoke run
    python bench/ingest.py --database-url postgres://postgres@127.0.0.1:5432/postgres

Prints a Markdown table and writes bench/results/ingest.json and
bench/results/ingest.md. Not a test: never collected by pytest.

This script is the entry point: its flags, the order of the work, what is
printed at the end and the exit code. The file is made in
bench/_ingest_file.py; each step's passes run through bench/_ingest_run.py
(measured with bench/_ingest_meter.py), the steps themselves are
bench/_ingest_flexdash.py's and bench/_ingest_naive.py's; the table, notes
and result files are bench/_ingest_report.py's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from bench._ingest_file import FILENAME, generate_file  # noqa: E402
from bench._ingest_report import notes, summary, table, write_results  # noqa: E402
from bench._ingest_run import STEPS, run_steps  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--database-url", default=None, help="postgres://… (default: SQLite)")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset")
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed passes per step (the median is reported)"
    )
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--results", default=str(RESULTS), help="directory for the result files")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    args.steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if bad := [s for s in args.steps if s not in STEPS]:
        parser.error(f"unknown step(s) {bad}; choose from {', '.join(STEPS)}")
    if args.lines < 1 or args.repeat < 1:
        parser.error("--lines and --repeat must be at least 1")
    info = common.run_info()
    workdir = Path(tempfile.mkdtemp(prefix="flexdash-bench-ingest-"))
    source = workdir / FILENAME
    try:
        with common.stopping_on_exit():
            started = time.perf_counter()
            file_facts = generate_file(source, args.lines, seed=args.seed)
            print(
                f"ingest: {args.lines:,} Gemini Batch lines, {file_facts['bytes']:,} bytes "
                f"(generated in {time.perf_counter() - started:.1f} s), database "
                f"{args.database_url or 'SQLite (temporary)'}",
                flush=True,
            )
            steps = run_steps(args, workdir, source)
    except KeyboardInterrupt:
        return common.end_run(workdir, keep=args.keep, interrupted=True)
    except Exception:
        traceback.print_exc()
        return common.end_run(workdir, keep=args.keep, failed=True)
    rows = summary(steps, args.lines)
    failed = not all(row["ok"] for row in rows if not row.get("phase"))
    text = table(rows)
    note_lines = notes(steps, file_facts)
    print("\n" + text + "\n")
    print("\n".join(f"- {line}" for line in note_lines))
    out = write_results(args, info, file_facts, steps, rows, text, note_lines)
    print(f"\nwrote {out / 'ingest.json'} and {out / 'ingest.md'}")
    return common.end_run(workdir, keep=args.keep, failed=failed)


if __name__ == "__main__":
    sys.exit(main())
