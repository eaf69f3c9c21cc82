"""The FlexDash way in bench/ingest.py: accepting the file as a person does, streaming the export.

Inside Django, in a step's own process: the upload page's form posted through
Django's test Client with CSRF checks on (the file streamed as a multipart
request body from disk, never built in memory), the preview page and the
confirmation (`run_preview` + `run_create` behind the views); and the results
download (a StreamingHttpResponse) read chunk by chunk. `prepared_run` makes
the run both exports start from, unmeasured. A helper module (bench/_*.py),
not a benchmark.
"""

from __future__ import annotations

import io
import re
import secrets
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench._ingest_meter import Meter, OutputCounter

UPLOAD_URL = "/runs/new/"


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


def prepared_run(user: Any, source: Path) -> tuple[Any, dict[str, Any]]:
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


def flexdash_accept(meter: Meter, user: Any, source: Path) -> dict[str, Any]:
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


def flexdash_export(meter: Meter, user: Any, source: Path) -> dict[str, Any]:
    from django.test import Client

    run, setup = prepared_run(user, source)
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
