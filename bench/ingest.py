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
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import hashlib
import io
import json
import random
import re
import resource
import secrets
import shutil
import sys
import tempfile
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _databases, _procfs, common  # noqa: E402

RESULTS = ROOT / "bench" / "results"
USERNAME = "bench"
FILENAME = "eval-batch.jsonl"
UPLOAD_URL = "/runs/new/"
MIB = 1024 * 1024
# Settings limits (jobs' defaults) raised only when --lines needs it.
DEFAULT_MAX_LINES = 100_000
DEFAULT_MAX_BYTES = 200 * 1024 * 1024

STEPS = ("flexdash_accept", "naive_accept", "flexdash_export", "naive_export")
STEP_LABELS = {
    "flexdash_accept": "FlexDash accept: upload → preview → confirm (test Client)",
    "naive_accept": "naive accept: read whole file + json.loads + bulk_create",
    "flexdash_export": "FlexDash export: streamed results download (test Client)",
    "naive_export": "naive export: one list of lines joined to a string",
}


# --- The file ---------------------------------------------------------------------------
_WORD_TEXT = (
    "the model answer question data set results evaluation accuracy reviewer sample "
    "customer product support ticket delivery price quality battery screen update app "
    "account payment refund order week month report study participants method analysis "
    "paper section table figure baseline experiment training test prompt response "
    "language French German Spanish translation summary entity city company river "
    "mountain history science policy market energy climate health school teacher student "
    "because although however therefore while after before during under over between "
    "good bad slow fast clear unclear helpful useless broken working new old large small "
    "early late often rarely never always usually probably clearly really quite very "
    "is was were are has had will would could should might must can does did "
    "says found shows reports claims suggests explains compares describes lists "
    "a an of to in on for with by from as at about into than this that these those it they"
)
_WORDS = tuple(_WORD_TEXT.split())
_RARE_WORDS = ("café", "naïve", "résumé", "Zürich", "São Paulo", "“quoted”", "déjà vu", "Ω")
_TASKS = (
    "Summarize the following customer review in two sentences, keeping the product name:",
    "Classify the sentiment of this support ticket as positive, neutral or negative, "
    "and explain why in one line:",
    "Extract every person, organisation and place named in the passage below, as a JSON list:",
    "Translate the following paragraph into French, keeping technical terms in English:",
    "Write three quiz questions, with their answers, about the text below:",
    "Rate from 1 to 10 how well the answer below addresses the question, and justify it:",
    "Rewrite the paragraph below in plain English for a twelve-year-old reader:",
)
_SYSTEMS = (
    "You are a careful annotator. Answer only with the label requested, nothing else.",
    "You are a helpful assistant for a research team evaluating customer feedback. "
    "Be concise, factual and neutral; never invent details that are not in the text.",
    "Respond in valid JSON only. Use double quotes, no trailing commas, no comments.",
    "You are grading model outputs for an academic benchmark. Be strict and consistent: "
    "the same answer must always receive the same score, whatever its position.",
)


def _prompt(rnd: random.Random) -> str:
    target = rnd.randint(200, 800)
    parts = [rnd.choice(_TASKS), "\n\n"]
    size = len(parts[0]) + 2
    while size < target:
        words = rnd.choices(_WORDS, k=rnd.randint(8, 20))
        if rnd.random() < 0.1:
            words[rnd.randrange(len(words))] = rnd.choice(_RARE_WORDS)
        sentence = " ".join(words).capitalize() + rnd.choice((". ", ". ", ". ", "? ", "! "))
        parts.append(sentence)
        size += len(sentence)
    text = "".join(parts)[:target]
    return text[:-1] + "." if text.endswith(" ") else text


def generate_file(path: Path, lines: int, *, seed: int) -> dict[str, Any]:
    """Write `lines` Gemini Batch lines; return what the file holds."""
    rnd = random.Random(seed)
    chars = []
    systems = configs = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for number in range(1, lines + 1):
            prompt = _prompt(rnd)
            chars.append(len(prompt))
            request: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
            if rnd.random() < 0.3:
                systems += 1
                request["system_instruction"] = {"parts": [{"text": rnd.choice(_SYSTEMS)}]}
            if rnd.random() < 0.5:
                configs += 1
                temperature = rnd.choice((0.0, 0.2, 0.7, 1.0))
                tokens = rnd.choice((256, 512, 1024, 2048))
                if rnd.random() < 0.3:  # the REST API's own spelling
                    request["generationConfig"] = {
                        "temperature": temperature,
                        "maxOutputTokens": tokens,
                    }
                else:
                    request["generation_config"] = {
                        "temperature": temperature,
                        "max_output_tokens": tokens,
                    }
            line = {"key": f"eval-{number:06d}", "request": request}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return {
        "lines": lines,
        "bytes": path.stat().st_size,
        "prompt_chars_mean": round(sum(chars) / len(chars), 1) if chars else 0,
        "prompt_chars_min": min(chars, default=0),
        "prompt_chars_max": max(chars, default=0),
        "with_system_instruction": systems,
        "with_generation_config": configs,
        "seed": seed,
    }


# --- Measuring inside the child process ---------------------------------------------------
def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_hwm() -> bool:
    """Set VmHWM back to the current RSS (Linux >= 4.0): a peak per phase."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """Seconds, peak RSS and (when traced) peak Python allocations of a step's
    phases, all relative to the start of the step."""

    def __init__(self, traced: bool) -> None:
        self.traced = traced
        self.phases: list[dict[str, Any]] = []
        self.hwm_reset = True
        self.rss_before_kib = 0

    def start(self) -> None:
        gc.collect()
        self.peak_before_kib = _status_kib("VmHWM")
        self.hwm_reset = _reset_hwm()
        self.rss_before_kib = _status_kib("VmRSS")
        self.cpu_before = _own_cpu()
        self.machine_before = _procfs.system_cpu_seconds()
        if self.traced:
            tracemalloc.start()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.hwm_reset = _reset_hwm() and self.hwm_reset
        if self.traced:
            tracemalloc.reset_peak()
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        hwm = _status_kib("VmHWM")
        self.phases.append(
            {
                "phase": name,
                "seconds": seconds,
                "rss_peak_delta_mib": (hwm - self.rss_before_kib) / 1024,
                "python_peak_mib": tracemalloc.get_traced_memory()[1] / MIB
                if self.traced
                else None,
            }
        )

    def stop(self) -> dict[str, Any]:
        if self.traced:
            tracemalloc.stop()
        own = _own_cpu() - self.cpu_before
        busy_after, total_after = _procfs.system_cpu_seconds()
        busy = busy_after - self.machine_before[0]
        total = total_after - self.machine_before[1]
        pythons = [p["python_peak_mib"] for p in self.phases if p["python_peak_mib"] is not None]
        return {
            "traced": self.traced,
            "seconds": sum(p["seconds"] for p in self.phases),
            "rss_before_mib": self.rss_before_kib / 1024,
            # The process's own peak before the step (Django start-up, setup).
            "rss_peak_before_step_mib": self.peak_before_kib / 1024,
            "rss_peak_delta_mib": max(p["rss_peak_delta_mib"] for p in self.phases),
            "rss_peak_reset_per_phase": self.hwm_reset,
            "python_peak_mib": max(pythons) if pythons else None,
            "phases": self.phases,
            "own_cpu_seconds": round(own, 2),
            # Everything else the machine did meanwhile (a PostgreSQL server included).
            "other_cpu_seconds": round(max(busy - own, 0.0), 2),
            "machine_busy_percent": round(100 * busy / total, 1) if total else None,
        }


class OutputCounter:
    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0
        self.digest = hashlib.sha256()
        self.head = b""

    def add(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        self.lines += chunk.count(b"\n")
        self.digest.update(chunk)
        if len(self.head) < 65536:
            self.head += chunk[:65536]

    def facts(self) -> dict[str, Any]:
        first = json.loads(self.head.split(b"\n", 1)[0]) if self.head else {}
        return {
            "rows": self.lines,
            "bytes": self.bytes,
            "sha256": self.digest.hexdigest(),
            "first_line_keys": sorted(first),
            "first_key": first.get("key"),
            "first_has_answer": bool(
                first.get("response", {}).get("candidates", [{}])[0].get("content")
            ),
        }


class _Body(io.RawIOBase):
    """A multipart request body read from its parts in turn: the form fields,
    the file from disk, the closing boundary. Only a buffer is ever in memory,
    as when a server reads an upload from its socket."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self.parts:
            count = self.parts[0].readinto(buffer)
            if count:
                return count
            self.parts.pop(0).close()
        return 0

    def close(self) -> None:
        for part in self.parts:
            part.close()
        self.parts = []
        super().close()


def multipart_environ(fields: dict[str, str], file_field: str, path: Path) -> dict[str, Any]:
    """WSGI environ entries posting `fields` and the file at `path` as a browser would."""
    boundary = "----FlexDashBench" + secrets.token_hex(12)
    head = io.BytesIO()
    for name, value in fields.items():
        head.write(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    head.write(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
        f'filename="{path.name}"\r\nContent-Type: application/jsonl\r\n\r\n'.encode()
    )
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head.getvalue()) + path.stat().st_size + len(tail)
    head.seek(0)
    body = io.BufferedReader(_Body([head, path.open("rb"), io.BytesIO(tail)]), 64 * 1024)
    return {
        "wsgi.input": body,
        "CONTENT_LENGTH": str(length),
        "CONTENT_TYPE": f"multipart/form-data; boundary={boundary}",
    }


def _csrf_token(html: bytes) -> str:
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    if not match:
        raise RuntimeError("no CSRF token in the page")
    return match.group(1).decode()


def _expect(response: Any, status: int, what: str) -> None:
    if response.status_code != status:
        body = b"" if getattr(response, "streaming", False) else response.content[:2000]
        text = body.decode(errors="replace")
        raise RuntimeError(f"{what}: HTTP {response.status_code}, expected {status}\n{text}")


def _redirect(response: Any, pattern: str, what: str) -> str:
    _expect(response, 302, what)
    location = response["Location"]
    if not re.fullmatch(pattern, location):
        raise RuntimeError(f"{what}: redirected to {location!r}, expected /{pattern}/")
    return location


def _prepared_run(user: Any, source: Path) -> tuple[Any, dict[str, Any]]:
    """The run to export, made without measuring: run_create, then every job
    marked succeeded with an answer as long as its prompt, in one UPDATE."""
    from django.db.models import CharField, F, TextField, Value
    from django.db.models.functions import Concat, Length
    from django.utils import timezone

    from jobs.catalog import DEFAULT_MODEL
    from jobs.engine import submitting
    from jobs.models import Job, State, Tier
    from jobs.runs import services as runs

    started = time.perf_counter()
    with source.open("rb") as stream:
        run = runs.run_create(
            owner=user,
            stream=stream,
            filename=source.name,
            spec=submitting.JobSpec(model=DEFAULT_MODEL),
            name="bench ingest",
        )
    created = time.perf_counter()
    now = timezone.now()
    marked = Job.objects.filter(run=run).update(
        state=State.SUCCEEDED,
        attempts=1,
        tier_served=Tier.FLEX,
        result_text=Concat(
            Value("Answer for "),
            F("custom_id"),
            Value(": "),
            F("input_text"),
            output_field=TextField(),
        ),
        response_id=Concat(Value("resp-"), F("custom_id"), output_field=CharField()),
        input_tokens=Length("input_text") / 4 + 1,
        output_tokens=Length("input_text") / 4 + 5,
        cost_usd=Decimal("0.00012345"),
        standard_cost_usd=Decimal("0.0002469"),
        first_started_at=now,
        finished_at=now,
        next_attempt_at=None,
        updated_at=now,
    )
    marked_at = time.perf_counter()
    return run, {
        "setup_run_create_seconds": round(created - started, 2),
        "setup_mark_succeeded_seconds": round(marked_at - created, 2),
        "setup_marked_jobs": marked,
    }


def _flexdash_accept(meter: Meter, user: Any, source: Path) -> dict[str, Any]:
    from django.test import Client

    from jobs.catalog import DEFAULT_MODEL
    from jobs.models import Job, Run

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    # Opening the upload page first, as the person does (and as a warm-up).
    page = client.get(UPLOAD_URL)
    _expect(page, 200, "upload page")
    fields = {
        "csrfmiddlewaretoken": _csrf_token(page.content),
        "name": "bench ingest",
        "format": "",
        "model": DEFAULT_MODEL,
        "tier": "flex",
        "system_instruction": "",
        "temperature": "",
        "max_output_tokens": "",
        "max_attempts": "8",
    }
    environ = multipart_environ(fields, "file", source)
    meter.start()
    with meter.phase("upload + preview: POST, streamed parse (run_preview)"):
        response = client.generic("POST", UPLOAD_URL, **environ)
    preview_url = _redirect(response, r"/runs/new/[a-z0-9]{32}/", "upload")
    with meter.phase("preview page: GET"):
        page = client.get(preview_url)
    _expect(page, 200, "preview page")
    token = _csrf_token(page.content)
    with meter.phase("confirm: POST, bulk insert (run_create)"):
        response = client.post(preview_url, {"csrfmiddlewaretoken": token})
    measured = meter.stop()
    environ["wsgi.input"].close()
    run_url = _redirect(response, r"/runs/\d+/", "confirm")
    run = Run.objects.get(pk=int(run_url.strip("/").rsplit("/", 1)[1]))
    count = re.search(rb'id="prompt-count">([\d,]+)<', page.content)
    return {
        **measured,
        "path": "django.test.Client: GET upload page, POST multipart (CSRF checked), "
        "GET preview page, POST confirm",
        "rows": Job.objects.filter(run=run).count(),
        "bytes": source.stat().st_size,
        "format": run.source_format,
        "preview_prompt_count": int(count.group(1).replace(b",", b"")) if count else None,
    }


def _naive_accept(meter: Meter, user: Any, source: Path) -> dict[str, Any]:
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from jobs.catalog import DEFAULT_MODEL
    from jobs.models import Job, Run

    meter.start()
    with meter.phase("whole file read, json.loads of every line into a list"):
        data = source.read_bytes()
        records = [json.loads(line) for line in data.splitlines() if line.strip()]
    with meter.phase("Job objects built, Job.objects.bulk_create"), transaction.atomic():
        run = Run.objects.create(
            owner=user,
            name="bench naive",
            source_name=source.name,
            source_format="gemini_batch",
            model=DEFAULT_MODEL,
        )
        now = timezone.now()
        jobs = [
            _naive_job(record, user, run, now, settings.FLEX_MAX_ATTEMPTS) for record in records
        ]
        Job.objects.bulk_create(jobs)
    measured = meter.stop()
    del data, records, jobs
    return {
        **measured,
        "path": "bytes of the whole file, json.loads per line, Job(...) per record, "
        "one Job.objects.bulk_create in a transaction (no validation, no estimate)",
        "rows": Job.objects.filter(run=run).count(),
        "bytes": source.stat().st_size,
    }


def _naive_job(record: dict, user: Any, run: Any, now: Any, max_attempts: int) -> Any:
    from jobs.catalog import DEFAULT_MODEL
    from jobs.models import Job

    request = record["request"]
    prompt = "\n\n".join(p["text"] for c in request["contents"] for p in c["parts"])
    system = request.get("system_instruction") or request.get("systemInstruction")
    system_text = "\n\n".join(p["text"] for p in system["parts"]) if system else ""
    config = request.get("generation_config") or request.get("generationConfig") or {}
    temperature = config.get("temperature")
    max_tokens = config.get("max_output_tokens") or config.get("maxOutputTokens")
    fields: dict[str, Any] = {"prompt": prompt}
    if system_text:
        fields["system_instruction"] = system_text
    if temperature is not None:
        fields["temperature"] = temperature
    if max_tokens is not None:
        fields["max_output_tokens"] = max_tokens
    return Job(
        owner=user,
        run=run,
        custom_id=str(record["key"]),
        request_fields=fields,
        model=DEFAULT_MODEL,
        input_text=prompt,
        system_instruction=system_text,
        temperature=temperature,
        max_output_tokens=max_tokens,
        max_attempts=max_attempts,
        submitted_at=now,
        next_attempt_at=now,
    )


def _flexdash_export(meter: Meter, user: Any, source: Path) -> dict[str, Any]:
    from django.test import Client

    run, setup = _prepared_run(user, source)
    client = Client()
    client.force_login(user)
    _expect(client.get(f"/runs/{run.pk}/"), 200, "run page")  # where the link is; a warm-up
    counter = OutputCounter()
    meter.start()
    with meter.phase("GET results.jsonl, streaming_content read chunk by chunk"):
        response = client.get(f"/runs/{run.pk}/results.jsonl")
        for chunk in response.streaming_content:
            counter.add(chunk)
        response.close()
    measured = meter.stop()
    _expect(response, 200, "results download")
    if not response.streaming:
        raise RuntimeError("the results download is not a streaming response")
    return {
        **measured,
        **setup,
        "path": "django.test.Client GET /runs/<id>/results.jsonl (StreamingHttpResponse)",
        "content_type": response["Content-Type"],
        **counter.facts(),
    }


def _naive_export(meter: Meter, user: Any, source: Path) -> dict[str, Any]:
    from jobs import formats
    from jobs.models import FINISHED_STATES, Job, State

    run, setup = _prepared_run(user, source)
    counter = OutputCounter()
    meter.start()
    with meter.phase("all jobs loaded, every line in a list, joined and encoded"):
        jobs = list(Job.objects.filter(run=run).order_by("id"))
        rows = (
            formats.ResultRow(
                custom_id=job.custom_id,
                state=job.state,
                attempts=job.attempts,
                http_503=job.http_503,
                http_429=job.http_429,
                input_tokens=job.input_tokens,
                output_tokens=job.output_tokens,
                thought_tokens=job.thought_tokens,
                cost_usd="" if job.cost_usd is None else str(job.cost_usd),
                output_text=job.result_text,
                error=job.last_error,
                model=job.model,
                response_id=job.response_id,
                finished=job.state in FINISHED_STATES,
                succeeded=job.state == State.SUCCEEDED,
            )
            for job in jobs
        )
        lines = list(formats.export_results(run.source_format, rows))
        body = "".join(lines).encode()  # what an HttpResponse would hold
        counter.add(body)
    measured = meter.stop()
    del jobs, lines, body
    return {
        **measured,
        **setup,
        "path": "list(Job.objects...), the same Gemini result line per job in a list, "
        "''.join(...).encode()",
        **counter.facts(),
    }


_STEP_FUNCTIONS: dict[str, Callable[[Meter, Any, Path], dict[str, Any]]] = {
    "flexdash_accept": _flexdash_accept,
    "naive_accept": _naive_accept,
    "flexdash_export": _flexdash_export,
    "naive_export": _naive_export,
}


def measure(step: str, traced: bool, source: str) -> dict[str, Any]:
    """Inside Django (common.django_call), on a migrated database: make the
    user and measure one step, untraced or under tracemalloc. (Migrating in
    another process keeps what migrate allocated and freed out of this one,
    where the allocator would reuse it unseen by the RSS figures.)"""
    from django.contrib.auth import get_user_model
    from django.db import connection

    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    result = _STEP_FUNCTIONS[step](Meter(traced), user, Path(source))
    result["database"] = connection.vendor
    return result


# --- The benchmark process --------------------------------------------------------------
def run_steps(args: argparse.Namespace, workdir: Path, source: Path) -> dict[str, Any]:
    env_values: dict[str, Any] = {
        "FLEXDASH_VAR_DIR": workdir / "var",
        # As in production: DEBUG off (no query log), static files collected.
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-" + secrets.token_hex(24),
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DJANGO_STATIC_ROOT": workdir / "static",
        "DJANGO_SECURE_COOKIES": "false",
        "FLEX_LOG_LEVEL": "WARNING",
    }
    size = source.stat().st_size
    if args.lines > DEFAULT_MAX_LINES:
        env_values["FLEX_RUN_MAX_LINES"] = args.lines
    if size > DEFAULT_MAX_BYTES:
        env_values["FLEX_RUN_MAX_BYTES"] = size
    (workdir / "var").mkdir(exist_ok=True)
    base_env = common.clean_env(
        DATABASE_URL=f"sqlite:///{workdir / 'unused.sqlite3'}", **env_values
    )
    print("collectstatic (DEBUG off needs the manifest) ...", flush=True)
    common.run_checked(["collectstatic", "--no-input", "-v", "0"], base_env, workdir / "setup.log")
    timeout = max(600.0, args.lines / 50)
    steps: dict[str, Any] = {}
    for step in args.steps:
        timed_runs = []
        passes = [(False, n) for n in range(1, args.repeat + 1)] + [(True, 1)]
        for traced, number in passes:
            kind = "traced" if traced else "timed"
            name = kind if traced or args.repeat == 1 else f"{kind} {number}/{args.repeat}"
            sdir = workdir / f"{step}-{kind}-{number}"
            sdir.mkdir()
            print(f"[{step}] {name}: fresh database, migrate, measure ...", flush=True)
            with _databases.fresh_database(sdir, args.database_url) as db:
                env = common.clean_env(DATABASE_URL=db.url, **env_values)
                common.migrate(env, sdir / "step.log")
                result = common.django_call(
                    "bench.ingest:measure",
                    env,
                    sdir / "step.log",
                    timeout=timeout,
                    step=step,
                    traced=traced,
                    source=str(source),
                )
            print(
                f"[{step}] {name}: {result['seconds']:.2f} s, RSS +"
                f"{result['rss_peak_delta_mib']:.1f} MiB"
                + (f", Python peak {result['python_peak_mib']:.1f} MiB" if traced else "")
                + f", {result['rows']:,} rows",
                flush=True,
            )
            if traced:
                steps[step]["traced"] = result
            else:
                timed_runs.append(result)
                # The timed pass reported is the one with the median time.
                ranked = sorted(timed_runs, key=lambda r: r["seconds"])
                steps[step] = {
                    "timed": ranked[(len(ranked) - 1) // 2],
                    "timed_seconds_all": [round(r["seconds"], 3) for r in timed_runs],
                    "timed_runs": timed_runs,
                }
    return steps


def summary(steps: dict[str, Any], lines: int) -> list[dict[str, Any]]:
    """One row per step (seconds and RSS from the timed pass, Python peak from
    the traced one), then one per phase."""
    rows = []
    for step, passes in steps.items():
        timed, traced = passes["timed"], passes["traced"]
        rows.append(
            {
                "step": step,
                "label": STEP_LABELS[step],
                "seconds": timed["seconds"],
                "python_peak_mib": traced["python_peak_mib"],
                "rss_peak_delta_mib": timed["rss_peak_delta_mib"],
                "rows": timed["rows"],
                "bytes": timed["bytes"],
                "ok": timed["rows"] == lines and traced["rows"] == lines,
            }
        )
        for t_phase, m_phase in zip(timed["phases"], traced["phases"], strict=True):
            rows.append(
                {
                    "step": step,
                    "label": "  · " + t_phase["phase"],
                    "seconds": t_phase["seconds"],
                    "python_peak_mib": m_phase["python_peak_mib"],
                    "rss_peak_delta_mib": t_phase["rss_peak_delta_mib"],
                    "rows": None,
                    "bytes": None,
                    "phase": True,
                }
            )
    return rows


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| step | seconds | peak Python MiB | peak RSS Δ MiB | rows | bytes |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        label = row["label"] if row.get("phase") else f"**{row['label']}**"
        if not row.get("phase") and not row.get("ok"):
            label += " (NOT OK: rows ≠ lines)"
        out.append(
            f"| {label} | {_cell(row['seconds'], '{:.2f}')} "
            f"| {_cell(row['python_peak_mib'], '{:,.1f}')} "
            f"| {_cell(row['rss_peak_delta_mib'], '{:,.1f}')} "
            f"| {_cell(row['rows'], '{:,}')} | {_cell(row['bytes'], '{:,}')} |"
        )
    return "\n".join(out)


def notes(steps: dict[str, Any], file_facts: dict[str, Any]) -> list[str]:
    out = []
    pairs = (
        ("accept", "flexdash_accept", "naive_accept"),
        ("export", "flexdash_export", "naive_export"),
    )
    for what, ours, naive in pairs:
        if ours in steps and naive in steps:
            a, b = steps[ours]["timed"], steps[naive]["timed"]
            pa, pb = steps[ours]["traced"], steps[naive]["traced"]
            out.append(
                f"{what}: FlexDash {a['seconds']:.2f} s vs naive {b['seconds']:.2f} s "
                f"(naive takes {b['seconds'] / a['seconds']:.1f} x the time); peak Python "
                f"{pa['python_peak_mib']:,.1f} vs {pb['python_peak_mib']:,.1f} MiB; peak RSS "
                f"delta {a['rss_peak_delta_mib']:,.1f} vs {b['rss_peak_delta_mib']:,.1f} MiB "
                f"(the file is {file_facts['bytes'] / MIB:,.1f} MiB)."
            )
    spread = [
        f"{step} {min(p['timed_seconds_all']):.2f}-{max(p['timed_seconds_all']):.2f} s"
        for step, p in steps.items()
        if len(p["timed_seconds_all"]) > 1
    ]
    if spread:
        out.append(
            "seconds are the median of the timed passes (their RSS from that pass); "
            "the range over all of them: " + ", ".join(spread) + "."
        )
    exports = [steps[s]["timed"] for s in ("flexdash_export", "naive_export") if s in steps]
    if len(exports) == 2:
        same = exports[0]["sha256"] == exports[1]["sha256"]
        out.append(
            "export output: "
            + (
                "byte-identical (same SHA-256) from both ways"
                if same
                else "DIFFERS between FlexDash and the naive baseline"
            )
            + f"; first line keys {exports[0]['first_line_keys']}, key {exports[0]['first_key']!r}."
        )
        setup = exports[0]
        out.append(
            f"export setup (not measured): run_create {setup['setup_run_create_seconds']:.2f} s, "
            f"then {setup['setup_marked_jobs']:,} jobs marked succeeded in one UPDATE "
            f"{setup['setup_mark_succeeded_seconds']:.2f} s."
        )
    if "flexdash_accept" in steps:
        accept = steps["flexdash_accept"]["timed"]
        out.append(
            f"FlexDash accept: the preview page counted "
            f"{_cell(accept.get('preview_prompt_count'), '{:,}')} prompts, "
            f"format {accept.get('format')!r}."
        )
    busy = []
    for step, passes in steps.items():
        timed = passes["timed"]
        busy.append(
            f"{step} {timed['other_cpu_seconds']:.1f} CPU-s "
            f"(machine {timed['machine_busy_percent']}% busy)"
        )
    out.append(
        "other processes during the timed passes (the database server included): "
        + ", ".join(busy)
        + "."
    )
    measured = [r for p in steps.values() for r in (*p["timed_runs"], p["traced"])]
    if not all(r["rss_peak_reset_per_phase"] for r in measured):
        out.append("VmHWM could not be reset: RSS peaks include the child's start-up and migrate.")
    return out


def write_results(
    args: argparse.Namespace,
    info: dict[str, Any],
    file_facts: dict[str, Any],
    steps: dict[str, Any],
    rows: list[dict[str, Any]],
    text: str,
    note_lines: list[str],
) -> Path:
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    database = args.database_url or "SQLite (temporary file, WAL)"
    payload = {
        "benchmark": "ingest",
        "command": info["command"],
        "date": info["date"],
        "machine": info["machine"],
        "database": database,
        "file": file_facts,
        "memory": "seconds and peak RSS from an untraced pass; peak Python from a pass "
        "under tracemalloc (tracemalloc slows allocation and adds its own memory). "
        "RSS: /proc/self/status VmHWM after resetting it (clear_refs 5) at each phase, "
        "minus VmRSS at the step's start. Each pass: a fresh database, a fresh process.",
        "summary": rows,
        "steps": steps,
        "notes": note_lines,
    }
    (out / "ingest.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    machine = info["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    bullet_notes = "\n".join(f"- {line}" for line in note_lines)
    f = file_facts
    if args.repeat == 1:
        passes, median = "Each step ran twice (untraced, then under tracemalloc)", ""
    else:
        passes = f"Each step ran {args.repeat} times untraced and once under tracemalloc"
        median = " with the median time"
    md = f"""# bench/ingest.py results

Accepting a {f["lines"]:,}-line Gemini Batch JSONL file and streaming its
{f["lines"]:,}-line results export, against the naive way, in one run.

- Command: `{info["command"]}`
- Date: {info["date"]}
- File: {f["bytes"]:,} bytes ({f["bytes"] / MIB:,.1f} MiB); prompts of \
{f["prompt_chars_min"]}-{f["prompt_chars_max"]} characters (mean {f["prompt_chars_mean"]:g}); \
{f["with_system_instruction"]:,} lines with a system instruction, \
{f["with_generation_config"]:,} with a generation config
- Machine: {machine["nproc"]} CPUs ({machine["cpu"]}), {machine["memory_gib"]} GiB, \
Linux {machine["kernel"]}, load average at start {machine["load_average"]}
- Python {machine["python"]}; {versions}
- Database: {database}; Django with DEBUG off

{text}

{passes}, each in a fresh database and a fresh Python process
(migrated by another one): seconds and peak RSS come from the untraced
pass{median}, peak Python from the pass under tracemalloc. Peak RSS Δ is
VmHWM (reset at each phase through `/proc/self/clear_refs`) minus VmRSS when
the step started: memory the process had to take from the system. Peak Python
is tracemalloc's peak of the allocations made during the step; it counts bytes
requested even where no page is ever touched (`str.encode` asks for 3 bytes a
character when the text is not all Latin-1, then shrinks), so it can exceed
RSS. Phase rows are relative to the start of their step too. FlexDash accept
goes through Django's test Client with CSRF checks on: the upload page's form
(the file streamed as the request body, spooled by Django to a temporary
file), the preview page, the confirmation; its bytes column is the uploaded
file. The naive baseline reads the file from disk (no request), validates
nothing and estimates nothing. Export rows count the output's lines and bytes.

{bullet_notes}
"""
    (out / "ingest.md").write_text(md)
    return out


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
    info = {
        "command": common.command_line(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": common.machine_info(),
    }
    workdir = Path(tempfile.mkdtemp(prefix="flexdash-bench-ingest-"))
    source = workdir / FILENAME
    failed = False
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
        print("\ninterrupted: every process started here was stopped", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"failed; logs and databases kept in {workdir}", file=sys.stderr)
        return 1
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
