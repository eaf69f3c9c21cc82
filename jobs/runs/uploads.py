"""An uploaded run file, kept on disk between its preview and its confirmation.

The upload page reads the file once to show what it holds (runs.run_preview);
the person then confirms, and runs.run_create reads it again. Between the two
requests the file waits in FLEXDASH_VAR_DIR/uploads/<user id>/ as two files,
<token>.upload and <token>.json (what the preview found; for a pipeline, its
checked definition and each step's estimate too, and for an eval its compiled
definition as well). Each user sees only
their own folder, which holds at most FLEX_PREVIEW_MAX_COUNT previews and
FLEX_PREVIEW_MAX_BYTES: a new upload discards the oldest to make room, as a
person who uploads again has moved on from them. A preview is removed when
confirmed or discarded, or a day after its upload by previews_sweep, which
the dispatcher task runs every minute for every user (and each upload runs too).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.crypto import get_random_string

from jobs.engine import submitting
from jobs.runs import pipeline_runs
from jobs.runs import reading as run_reading
from jobs.runs import services as runs

KEEP_SECONDS = 24 * 3600
_TOKEN = re.compile(r"[a-z0-9]{32}")


@dataclass(frozen=True)
class StagedStep:
    """One step's estimate as the preview showed it."""

    name: str
    model: str
    tier: str
    jobs: int
    input_tokens: int
    output_tokens: int
    standard_usd: Decimal
    cost_usd: Decimal
    unpriced: int
    rough: bool


@dataclass(frozen=True)
class StagedPipeline:
    """A pipeline upload's checked definition (Pipeline.to_json()), kept with
    its preview: confirming creates it without checking the text again. An
    eval's is the pipeline it compiled to, with `evaluation` (Run.evaluation)."""

    definition: dict
    rows: int
    steps: tuple[StagedStep, ...]
    first_row: tuple[pipeline_runs.StepPreview, ...]
    evaluation: dict | None = None

    @property
    def jobs(self) -> int:
        return sum(step.jobs for step in self.steps)

    @property
    def cost_usd(self) -> Decimal:
        return sum((step.cost_usd for step in self.steps), Decimal(0))

    @property
    def standard_usd(self) -> Decimal:
        return sum((step.standard_usd for step in self.steps), Decimal(0))

    @property
    def unpriced(self) -> int:
        return sum(step.unpriced for step in self.steps)


@dataclass(frozen=True)
class StagedUpload:
    token: str
    path: Path
    filename: str
    name: str
    spec: submitting.JobSpec
    preview: runs.RunPreview
    budget_usd: Decimal | None = None
    pipeline: StagedPipeline | None = None


@dataclass(frozen=True)
class SavedUpload:
    token: str
    path: Path
    discarded: int  # older previews discarded to make room for this one


def _root() -> Path:
    return Path(settings.VAR_DIR) / "uploads"


def _folder(owner) -> Path:
    return _root() / str(owner.pk)


def upload_save(*, owner, upload: UploadedFile) -> SavedUpload:
    """Copy the upload into the owner's folder, chunk by chunk (it may be
    hundreds of megabytes), after discarding the owner's oldest previews
    until it fits within FLEX_PREVIEW_MAX_COUNT and FLEX_PREVIEW_MAX_BYTES."""
    folder = _folder(owner)
    folder.mkdir(parents=True, exist_ok=True)
    previews_sweep()
    discarded = _make_room(folder, size=upload.size or 0)
    token = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
    path = folder / f"{token}.upload"
    with path.open("wb") as copy:
        for chunk in upload.chunks():
            copy.write(chunk)
    return SavedUpload(token=token, path=path, discarded=discarded)


def upload_stage(
    *,
    owner,
    token: str,
    filename: str,
    name: str,
    spec: submitting.JobSpec,
    preview: runs.RunPreview,
    budget_usd: Decimal | None = None,
) -> None:
    """Keep what the preview found next to the saved file, until confirmed."""
    record = _record(filename=filename, name=name, spec=spec, preview=preview, budget=budget_usd)
    _write(owner, token, record)


def _record(
    *,
    filename: str,
    name: str,
    spec: submitting.JobSpec,
    preview: runs.RunPreview,
    budget: Decimal | None,
) -> dict:
    estimate = preview.estimate
    return {
        "filename": filename,
        "name": name,
        "spec": {**asdict(spec), "deadline_at": _iso(spec.deadline_at)},
        "format": preview.format,
        "estimate": {**asdict(estimate), "standard_usd": str(estimate.standard_usd)},
        "rows": [asdict(row) for row in preview.rows],
        "budget_usd": None if budget is None else str(budget),
    }


def _write(owner, token: str, record: dict) -> None:
    (_folder(owner) / f"{token}.json").write_text(json.dumps(record), encoding="utf-8")


def pipeline_stage(
    *,
    owner,
    token: str,
    filename: str,
    name: str,
    spec: submitting.JobSpec,
    preview: pipeline_runs.PipelinePreview,
    budget_usd: Decimal | None = None,
    evaluation: dict | None = None,
) -> None:
    """Keep a pipeline's checked definition and its preview next to the saved
    table, as upload_stage keeps a plain run's: the same record, so the same
    room-making, expiry and discarding apply. For an eval, `evaluation` is its
    compiled definition, kept to create the run with."""
    estimate = run_reading.Estimate(
        prompts=preview.jobs,
        input_tokens=preview.input_tokens,
        output_tokens=preview.output_tokens,
        standard_usd=preview.standard_usd,
        unpriced_prompts=sum(step.unpriced for step in preview.steps),
        models=_jobs_by_model(preview),
    )
    record = _record(
        filename=filename,
        name=name,
        spec=spec,
        preview=runs.RunPreview(format=preview.format, estimate=estimate),
        budget=budget_usd,
    )
    record["pipeline"] = {
        "definition": preview.pipeline.to_json(),
        "rows": preview.rows,
        "steps": [
            {
                "name": step.step.name,
                "model": step.step.model,
                "tier": step.step.tier,
                "jobs": step.jobs,
                "input_tokens": step.input_tokens,
                "output_tokens": step.output_tokens,
                "standard_usd": str(step.standard_usd),
                "cost_usd": str(step.cost_usd),
                "unpriced": step.unpriced,
                "rough": step.rough,
            }
            for step in preview.steps
        ],
        "first_row": [asdict(step) for step in preview.first_row],
        "evaluation": evaluation,
    }
    _write(owner, token, record)


def _jobs_by_model(preview: pipeline_runs.PipelinePreview) -> dict[str, int]:
    models: dict[str, int] = {}
    for step in preview.steps:
        models[step.step.model] = models.get(step.step.model, 0) + step.jobs
    return models


def _staged_pipeline(record: dict | None) -> StagedPipeline | None:
    if record is None:
        return None
    steps = tuple(
        StagedStep(
            **{
                **step,
                "standard_usd": Decimal(step["standard_usd"]),
                "cost_usd": Decimal(step["cost_usd"]),
            }
        )
        for step in record["steps"]
    )
    first_row = tuple(
        pipeline_runs.StepPreview(**{**step, "parents": tuple(step["parents"])})
        for step in record["first_row"]
    )
    return StagedPipeline(
        definition=record["definition"],
        rows=record["rows"],
        steps=steps,
        first_row=first_row,
        evaluation=record.get("evaluation"),
    )


def staged_upload(*, owner, token: str) -> StagedUpload | None:
    """The owner's staged upload with this token, or None."""
    if not _TOKEN.fullmatch(token):
        return None
    folder = _folder(owner)
    path, record_path = folder / f"{token}.upload", folder / f"{token}.json"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not path.exists():
        return None
    estimate = run_reading.Estimate(
        **{**record["estimate"], "standard_usd": Decimal(record["estimate"]["standard_usd"])}
    )
    spec = record["spec"]
    if spec.get("deadline_at"):
        spec["deadline_at"] = datetime.fromisoformat(spec["deadline_at"])
    return StagedUpload(
        token=token,
        path=path,
        filename=record["filename"],
        name=record["name"],
        spec=submitting.JobSpec(**spec),
        preview=runs.RunPreview(
            format=record["format"],
            estimate=estimate,
            # A record staged before the rows were kept has none.
            rows=tuple(runs.PreviewRow(**row) for row in record.get("rows", [])),
        ),
        budget_usd=Decimal(record["budget_usd"]) if record.get("budget_usd") else None,
        pipeline=_staged_pipeline(record.get("pipeline")),
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def upload_discard(*, owner, token: str) -> None:
    if not _TOKEN.fullmatch(token):
        return
    for suffix in (".upload", ".json"):
        (_folder(owner) / f"{token}{suffix}").unlink(missing_ok=True)


def previews_sweep() -> int:
    """Remove every user's staged files older than KEEP_SECONDS (previews never
    confirmed); returns how many files were removed."""
    cutoff = time.time() - KEEP_SECONDS
    removed = 0
    for path in _root().glob("*/*.*"):
        with contextlib.suppress(FileNotFoundError):  # another request removed it first
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


def _make_room(folder: Path, *, size: int) -> int:
    """Discard the folder's oldest previews until one more of `size` bytes
    fits; returns how many were discarded."""
    previews: dict[str, list[os.stat_result]] = {}
    for path in folder.glob("*.*"):
        with contextlib.suppress(FileNotFoundError):
            previews.setdefault(path.stem, []).append(path.stat())
    # Oldest first, by when the upload was saved; its record comes just after.
    oldest_first = sorted(previews, key=lambda token: min(s.st_mtime for s in previews[token]))
    held = sum(s.st_size for stats in previews.values() for s in stats)
    discarded = 0
    for token in oldest_first:
        if (
            len(previews) - discarded < settings.FLEX_PREVIEW_MAX_COUNT
            and held + size <= settings.FLEX_PREVIEW_MAX_BYTES
        ):
            break
        for suffix in (".upload", ".json"):
            (folder / f"{token}{suffix}").unlink(missing_ok=True)
        held -= sum(s.st_size for s in previews[token])
        discarded += 1
    return discarded
