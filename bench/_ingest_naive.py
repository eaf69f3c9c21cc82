"""The naive baseline in bench/ingest.py: the whole file in memory, the whole export in memory.

Inside Django, in a step's own process: the file read whole and `json.loads`-ed
line by line into a list, one `Job` built per record and a single
`Job.objects.bulk_create` (no request, no validation, no estimate); the
export as every job loaded, every result line in one list, joined to one
string and encoded, as an HttpResponse would hold it. A helper module
(bench/_*.py), not a benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench._ingest_flexdash import prepared_run
from bench._ingest_meter import Meter, OutputCounter


def naive_accept(meter: Meter, user: Any, source: Path) -> dict[str, Any]:
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


def naive_export(meter: Meter, user: Any, source: Path) -> dict[str, Any]:
    from jobs import formats
    from jobs.models import FINISHED_STATES, Job, State

    run, setup = prepared_run(user, source)
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
                prompt=job.input_text,
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
