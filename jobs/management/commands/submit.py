"""python manage.py submit --user NAME --model M (--prompt TEXT | --request FILE | --file PATH)
python manage.py submit --user NAME --pipeline DEF.yaml --file ROWS
python manage.py submit --user NAME --eval DEF.yaml --file ROWS

--prompt is one text prompt, with --system, --temperature, --json-schema, --thinking-level
and the rest of the flags; --request is one whole request in Gemini's shape (the
`request` of a Gemini Batch line, a JSON file, "-" for stdin), whose own settings stand.
A file becomes a run (jobs/runs/services.py) in any upload format: plain text, JSONL,
CSV, or a Gemini, OpenAI or Anthropic batch file; --budget and the --notify-* flags
are the run's, as on the upload page.
With --pipeline (a definition in YAML or JSON, jobs/engine/pipelines.py) the file is a
table of rows and the run a pipeline over them (jobs/runs/pipeline_runs.py); --model,
--tier, --max-attempts, --fallback-standard and --retry-bad-output are the defaults of
the steps that name none.
With --eval (candidates and graders, jobs/runs/eval_definitions.py) the file is the
eval's dataset and the run the pipeline it compiles to, with the eval kept on the run;
the same flags are the defaults of its candidates and judges.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from jobs import formats, gemini_shape
from jobs.catalog import DEFAULT_MODEL, FLEX_MODELS
from jobs.engine import budgets, submitting
from jobs.engine.pipelines import DefinitionError
from jobs.models import DeadlinePolicy, Tier
from jobs.notices.choices import RunNotify
from jobs.runs import eval_definitions, pipeline_runs
from jobs.runs import reading as run_reading
from jobs.runs import services as runs
from jobs.runs.reading import RunRejected

RELATIVE = re.compile(r"\+(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?")


def parse_deadline(text: str) -> datetime:
    """An ISO 8601 time (read in TIME_ZONE when it names no zone), or one
    relative to now: "+2h", "+30m", "+1d", "+1h30m"."""
    text = text.strip()
    relative = RELATIVE.fullmatch(text)
    if relative and any(relative.groups()):
        days, hours, minutes = (int(part or 0) for part in relative.groups())
        return timezone.now() + timedelta(days=days, hours=hours, minutes=minutes)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--deadline {text!r}: give an ISO 8601 time (2030-06-01T14:00, with or without "
            'a zone) or one relative to now ("+2h", "+30m", "+1d")'
        ) from None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def read_prompts(path: Path) -> list[str]:
    """One prompt per line (.txt and anything else), or JSONL with a "prompt"
    field (.jsonl / .json). Blank lines are skipped; a bad line stops it all."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise CommandError(f"{path}: cannot read it ({exc.strerror})") from None
    is_jsonl = path.suffix.lower() in (".jsonl", ".json", ".ndjson")
    prompts: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if not is_jsonl:
            prompts.append(line)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        prompt = record.get("prompt") if isinstance(record, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise CommandError(f'{path}, line {number}: needs a non-empty "prompt" string')
        prompts.append(prompt)
    if not prompts:
        raise CommandError(f"{path}: no prompts in the file")
    return prompts


class Command(BaseCommand):
    help = "Submit prompts to run on the flex tier; prints the new job ids as JSON."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username that owns the jobs")
        parser.add_argument(
            "--model", default=DEFAULT_MODEL, help=f"one of {', '.join(FLEX_MODELS)}"
        )
        parser.add_argument("--tier", default=Tier.FLEX, choices=Tier.values)
        parser.add_argument("--max-attempts", type=int, default=None)
        parser.add_argument(
            "--fallback-standard",
            action="store_true",
            help="run the last allowed attempt on the standard tier",
        )
        parser.add_argument(
            "--system", dest="system_instruction", default="", help="system instruction"
        )
        parser.add_argument("--temperature", type=float, default=None)
        parser.add_argument("--max-output-tokens", type=int, default=None)
        parser.add_argument(
            "--deadline",
            help="when unfinished work is acted on: ISO 8601 (without a zone: TIME_ZONE) or "
            '"+2h", "+30m" from now',
        )
        parser.add_argument(
            "--at-deadline",
            dest="deadline_policy",
            default=DeadlinePolicy.KEEP,
            choices=DeadlinePolicy.values,
            help="keep waiting (default), cancel, or move unfinished flex jobs to standard",
        )
        parser.add_argument(
            "--json-schema",
            type=Path,
            help="with --prompt: a JSON file holding the JSON Schema the answer must satisfy "
            "(the answer comes as JSON)",
        )
        parser.add_argument(
            "--thinking-level", choices=gemini_shape.THINKING_LEVELS, help="with --prompt"
        )
        parser.add_argument(
            "--thinking-budget",
            type=int,
            help="with --prompt: thinking tokens (0 off on Flash, -1 the model decides)",
        )
        parser.add_argument("--seed", type=int, help="with --prompt")
        parser.add_argument(
            "--retry-bad-output",
            action="store_true",
            help="try again (within max attempts) when a JSON answer breaks the schema",
        )
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--prompt", help="one prompt")
        source.add_argument(
            "--request",
            dest="request_file",
            help="a JSON file of one whole request in Gemini's shape (camelCase or snake_case); "
            '"-" reads it from stdin',
        )
        source.add_argument(
            "--file",
            type=Path,
            help="a file of prompts, submitted as a run: .txt (one prompt per line), .jsonl, "
            ".csv, or a Gemini, OpenAI or Anthropic batch file",
        )
        definition = parser.add_mutually_exclusive_group()
        definition.add_argument(
            "--pipeline",
            type=Path,
            help="with --file: a pipeline definition (YAML or JSON) run over the file's rows",
        )
        definition.add_argument(
            "--eval",
            type=Path,
            help="with --file: an eval definition (YAML or JSON): its candidates answer the "
            "file's rows and its graders grade them",
        )
        parser.add_argument(
            "--name",
            default="",
            help="the run's name (default: the pipeline's or eval's, else the file's)",
        )
        parser.add_argument(
            "--budget",
            default=None,
            metavar="USD",
            help="with --file: the most the run may cost, e.g. 12.50 (retries and fallbacks "
            "included); what does not fit waits until the budget is raised",
        )
        parser.add_argument(
            "--format", choices=formats.FORMATS, help="the file's format (default: detected)"
        )
        told = parser.add_argument_group(
            "notifications (with --file; each defaults to your account page's choice)"
        )
        for flag, when in (
            ("--notify-finished", "every job has ended"),
            ("--notify-budget", "a budget stops its work"),
            ("--notify-paused", "dispatch is paused"),
        ):
            told.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"tell me when {when}",
            )
        told.add_argument(
            "--notify-failures",
            metavar="THRESHOLD",
            default=None,
            help='tell me when failed jobs reach a number ("10"), a share of the run ("5%%") '
            'or either ("10 or 5%%"); "" for never',
        )

    def handle(self, *args, **options):
        try:
            owner = get_user_model().objects.get(username=options["user"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {options['user']!r}") from None
        deadline = parse_deadline(options["deadline"]) if options["deadline"] else None
        if options["pipeline"] and not options["file"]:
            raise CommandError("--pipeline: a pipeline runs over a table; give its --file of rows")
        if options["eval"] and not options["file"]:
            raise CommandError("--eval: an eval runs over a dataset; give its --file of rows")
        parse_budget_option(options)
        options["notify"] = notify_option(owner, options)
        config = generation_config(options)
        spec = submitting.JobSpec.from_fields(
            {**options, "deadline_at": deadline, "generation_config": config}
        )
        try:
            if options["pipeline"]:
                printed = submit_pipeline(owner, options["pipeline"], spec, options)
            elif options["eval"]:
                printed = submit_eval(owner, options["eval"], spec, options)
            elif options["file"]:
                printed = submit_file(owner, options["file"], spec, options)
            else:
                prompt = options["prompt"]
                if options["request_file"]:
                    prompt = read_request(options["request_file"])
                jobs = submitting.jobs_submit(owner=owner, prompts=[prompt], spec=spec)
                printed = {"jobs": [job.pk for job in jobs]}
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            ) from None
        self.stdout.write(json.dumps(printed))


def parse_budget_option(options: dict) -> Decimal | None:
    """--budget as an amount (kept in options["budget_usd"] for submit_file). A
    budget belongs to a run: the jobs of --prompt and --request have none."""
    if options["budget"] is None:
        options["budget_usd"] = None
        return None
    if not options["file"]:
        raise CommandError(
            "--budget: a budget belongs to a run; submit a --file of prompts to give it one "
            "(single prompts count against your monthly budget)."
        )
    try:
        options["budget_usd"] = budgets.parse_budget(options["budget"])
    except ValueError as problem:
        raise CommandError(f"--budget: {problem}") from None
    return options["budget_usd"]


_NOTIFY_FLAGS = ("notify_finished", "notify_failures", "notify_budget", "notify_paused")


def notify_option(owner, options: dict) -> RunNotify | None:
    """What the --notify-* flags ask the run to tell, over the account's defaults.
    They belong to a run: beside --prompt or --request they are refused."""
    given = [name for name in _NOTIFY_FLAGS if options.get(name) is not None]
    if not given:
        return None
    if not options["file"]:
        flag = "--" + given[0].replace("_", "-")
        raise CommandError(
            f"{flag}: notifications belong to a run; submit a --file of prompts to be told of it"
        )
    try:
        return RunNotify.chosen(
            owner,
            finished=options["notify_finished"],
            failures=options["notify_failures"],
            budget=options["notify_budget"],
            paused=options["notify_paused"],
        )
    except ValueError as problem:
        raise CommandError(f"--notify-failures: {problem}") from None


# The flags a text prompt takes that a whole request carries inside itself.
_PROMPT_ONLY = {
    "system_instruction": ("--system", "system_instruction"),
    "temperature": ("--temperature", "generation_config.temperature"),
    "max_output_tokens": ("--max-output-tokens", "generation_config.max_output_tokens"),
    "json_schema": ("--json-schema", "generation_config.response_json_schema"),
    "thinking_level": ("--thinking-level", "generation_config.thinking_config.thinking_level"),
    "thinking_budget": ("--thinking-budget", "generation_config.thinking_config.thinking_budget"),
    "seed": ("--seed", "generation_config.seed"),
}
# Where a pipeline's step says what those flags would (the rest: as in a request).
_IN_A_STEP = {
    "temperature": "temperature",
    "max_output_tokens": "max_output_tokens",
    "json_schema": "response_schema",
}
# Those a run's defaults cannot carry: a line's own request says them.
_GENERATION_FLAGS = ("json_schema", "thinking_level", "thinking_budget", "seed")


def generation_config(options: dict) -> dict | None:
    """The generation_config the --json-schema, --thinking-* and --seed flags ask for.
    Refused beside --request (the request says it) and --file (its lines do):
    never dropped without a word."""
    given = [name for name in _PROMPT_ONLY if options.get(name) not in (None, "")]
    if options["request_file"] and given:
        flag, inside = _PROMPT_ONLY[given[0]]
        raise CommandError(f"{flag}: with --request, the request says it: set {inside} in it")
    if options["pipeline"] and given:
        flag, inside = _PROMPT_ONLY[given[0]]
        field = _IN_A_STEP.get(given[0], inside)
        raise CommandError(f"{flag}: with --pipeline, each step says it: set {field} in the step")
    if options["eval"] and given:
        flag, inside = _PROMPT_ONLY[given[0]]
        field = _IN_A_STEP.get(given[0], inside)
        raise CommandError(
            f"{flag}: with --eval, each candidate and judge says it: set {field} in the "
            "candidate (or the judge)"
        )
    flags = [_PROMPT_ONLY[name][0] for name in given if name in _GENERATION_FLAGS]
    if options["file"] and flags:
        raise CommandError(
            f"{flags[0]} goes with --prompt, not --file: a file's lines carry their own settings"
        )
    config: dict = {}
    if options["json_schema"]:
        config["response_mime_type"] = gemini_shape.JSON_MIME
        config["response_json_schema"] = read_json(options["json_schema"], "--json-schema")
    thinking = {
        name: options[name]
        for name in ("thinking_level", "thinking_budget")
        if options[name] is not None
    }
    if thinking:
        config["thinking_config"] = thinking
    if options["seed"] is not None:
        config["seed"] = options["seed"]
    return config or None


def read_json(path: Path | str, what: str) -> object:
    """The JSON value in the file at `path` ("-": stdin)."""
    name = "stdin" if str(path) == "-" else str(path)
    try:
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{what} {name}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CommandError(f"{what} {name}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise CommandError(f"{what} {name}: cannot read it ({exc.strerror})") from None
    if problem := formats.json_shape_problem(text):
        raise CommandError(f"{what} {name}: {problem}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{what} {name}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None


def read_request(path: str) -> dict:
    request = read_json(path, "--request")
    if not isinstance(request, dict):
        raise CommandError(
            f"--request {'stdin' if path == '-' else path}: a request is a JSON object "
            '({"contents": [...], ...})'
        )
    return request


def _opened(path: Path):
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except OSError as exc:
        raise CommandError(f"{path}: cannot read it ({exc.strerror})") from None


def _refused(path: Path, rejected: RunRejected) -> CommandError:
    lines = "\n".join(f"  {message}" for message in rejected.messages())
    more = f"\n  and at least {rejected.more:,} more" if rejected.more else ""
    return CommandError(f"{path}: refused, nothing was created:\n{lines}{more}")


def _printed(run) -> dict:
    return {"run": run.pk, "jobs": list(run.jobs.order_by("id").values_list("id", flat=True))}


def _definition(path: Path, read, what: str):
    """The definition at `path` read by `read` and checked whole; every problem
    listed, each naming its step (or candidate or grader)."""
    with _opened(path) as stream:
        source = stream.read()
    try:
        return read(source)
    except DefinitionError as error:
        problems = "\n".join(f"  {problem}" for problem in error.problems)
        raise CommandError(f"{path}: the {what} was refused:\n{problems}") from None


def _submit_table(create, options: dict, **arguments) -> dict:
    """Create a run over the --file's rows with `create`; prints its job ids and the run's."""
    rows = options["file"]
    with _opened(rows) as stream:
        try:
            run = create(
                stream=stream,
                filename=rows.name,
                name=options["name"],
                fmt=options["format"],
                notify=options["notify"],
                budget_usd=options["budget_usd"],
                **arguments,
            )
        except RunRejected as rejected:
            raise _refused(rows, rejected) from None
    return _printed(run)


def submit_pipeline(owner, path: Path, spec: submitting.JobSpec, options: dict) -> dict:
    """A pipeline run over the --file's rows."""
    pipeline = _definition(
        path, lambda text: pipeline_runs.pipeline_read(text, spec=spec), "pipeline"
    )
    return _submit_table(
        pipeline_runs.pipeline_run_create, options, owner=owner, pipeline=pipeline, spec=spec
    )


def submit_eval(owner, path: Path, spec: submitting.JobSpec, options: dict) -> dict:
    """An eval run over the --file's rows."""
    compiled = _definition(path, lambda text: eval_definitions.eval_read(text, spec=spec), "eval")
    return _submit_table(
        eval_definitions.eval_run_create, options, owner=owner, compiled=compiled, spec=spec
    )


def submit_file(owner, path: Path, spec: submitting.JobSpec, options: dict) -> dict:
    """Create a run from the file, streamed; prints its job ids and the run's."""
    with _opened(path) as stream:
        try:
            run = runs.run_create(
                owner=owner,
                stream=stream,
                filename=path.name,
                spec=spec,
                name=options["name"],
                fmt=options["format"],
                budget_usd=options["budget_usd"],
                notify=options["notify"],
            )
        except RunRejected as rejected:
            stream.seek(0)
            if options["format"] is None and _detected(stream, path) in ("text", "jsonl"):
                # The words this command has always used for these two formats.
                read_prompts(path)
            raise _refused(path, rejected) from None
    return _printed(run)


def _detected(stream, path: Path) -> str | None:
    try:
        return formats.detect_format(stream.read(run_reading.DETECT_BYTES), path.name)
    except formats.FileRejected:
        return None
