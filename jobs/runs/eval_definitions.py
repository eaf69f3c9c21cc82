"""Evals: a definition of candidates and graders, checked whole and compiled
into a pipeline (jobs/engine/pipelines.py), so an eval runs, retries, resumes
after a crash and is priced like any pipeline run.

- one step per candidate, `answer_<key>`: the eval's prompt (or the
  candidate's own) with the candidate's model and settings;
- a judge grader: one step per candidate, `<grader>_<key>`, after that
  candidate's answer, which its prompt reads as `{{ answer }}`; its score is a
  field of its structured answer, and an answer that breaks the schema is
  tried again (within its attempts), then left ungraded, never a zero;
- a pairwise grader: two steps, `<grader>_ab` and `<grader>_ba`, after both
  answers, with them as `{{ a }}` and `{{ b }}` in one order and the other, so
  the leaderboard can count how often the verdict flips with the order;
- a check: no job; jobs/runs/eval_checks.py grades the answers.

The compiled definition is kept on Run.evaluation: which step is whose, what
the leaderboard (jobs/runs/leaderboard.py) reads.
"""

from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass
from typing import Any

from jobs.engine import pipelines
from jobs.engine.pipelines import DefinitionError, Pipeline, definition_check, definition_load
from jobs.engine.submitting import JobSpec
from jobs.runs import pipeline_runs

CHECK_TYPES = {
    "equals": ("expected",),
    "contains": ("value",),
    "regex": ("pattern",),
    "json_path": ("path", "expected"),
    "numeric": ("expected",),
    "json_schema": ("schema",),
}
CHECK_FIELDS = {"type", "expected", "value", "pattern", "path", "normalize", "flags",
                "tolerance", "schema"}  # fmt: skip
NORMALIZERS = ("lower", "strip", "collapse_whitespace", "strip_punctuation")
TOP_FIELDS = {"name", "candidates", "prompt", "system_instruction", "graders", "seed", "model",
              "tier", "max_attempts"}  # fmt: skip
# What a candidate may set: a pipeline step's settings, but not its place in the chain.
CANDIDATE_FIELDS = {"model", "name", "tier", "max_attempts", "fallback_standard", "prompt",
                    "system_instruction", "temperature", "max_output_tokens",
                    "generation_config", "response_schema", "tools", "safety_settings"}  # fmt: skip
JUDGE_FIELDS = {"name", "model", "tier", "max_attempts", "prompt", "system_instruction",
                "temperature", "max_output_tokens", "generation_config", "response_schema",
                "score"}  # fmt: skip
PAIRWISE_FIELDS = (JUDGE_FIELDS - {"score"}) | {"compare", "verdict"}
MAX_CANDIDATES = 8
MAX_GRADERS = 8
PAIRWISE_SCHEMA = {
    "type": "object",
    "properties": {
        "winner": {"type": "string", "enum": ["A", "B", "tie"]},
        "reason": {"type": "string"},
    },
    "required": ["winner"],
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,23}")


@dataclass(frozen=True)
class CompiledEval:
    evaluation: dict  # Run.evaluation
    pipeline: Pipeline


def eval_read(source: str | bytes, *, spec: JobSpec) -> CompiledEval:
    """The eval definition (YAML or JSON) checked whole and compiled; raises
    DefinitionError listing every problem, each naming its candidate or grader."""
    return eval_check(definition_load(source), spec=spec)


def eval_check(raw: Any, *, spec: JobSpec) -> CompiledEval:
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise DefinitionError(["the eval definition must be a mapping of name, candidates, "
                               "prompt and graders"])  # fmt: skip
    for field in sorted(set(raw) - TOP_FIELDS):
        problems.append(f"the eval: {pipelines.unknown_field(field, sorted(TOP_FIELDS))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("the eval: name is required (a short text)")
    seed = raw.get("seed", random.SystemRandom().randrange(1, 2**31))
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append("the eval: seed must be a whole number of 0 or more")
    candidates = _candidates(raw, problems)
    graders = _graders(raw, candidates, problems)
    if problems:
        raise DefinitionError(problems)
    steps = [_answer_step(raw, candidate) for candidate in candidates]
    compiled_graders = []
    for grader in graders:
        kind = grader["kind"]
        if kind == "check":
            compiled_graders.append(
                {"name": grader["name"], "kind": kind, "check": grader["check"]}
            )
        elif kind == "judge":
            made = {c["key"]: _judge_step(grader, c) for c in candidates}
            steps += made.values()
            compiled_graders.append({
                "name": grader["name"], "kind": kind, "model": grader["raw"]["model"],
                "score": grader["raw"].get("score", "score"),
                "scale": _scale(grader["raw"]),
                "steps": {key: step["name"] for key, step in made.items()},
            })  # fmt: skip
        else:
            first, second = grader["compare"]
            ab = _pairwise_step(grader, first, second, "ab")
            ba = _pairwise_step(grader, second, first, "ba")
            steps += [ab, ba]
            compiled_graders.append({
                "name": grader["name"], "kind": kind, "model": grader["raw"]["model"],
                "compare": [first["key"], second["key"]],
                "verdict": grader["raw"].get("verdict", "winner"),
                "steps": {"ab": ab["name"], "ba": ba["name"]},
            })  # fmt: skip
    top = {key: raw[key] for key in ("model", "tier", "max_attempts") if key in raw}
    try:
        pipeline = definition_check({"name": name, **top, "steps": steps}, defaults=spec)
    except DefinitionError as error:
        raise DefinitionError([f"the eval compiles to a pipeline that is refused: {problem}"
                               for problem in error.problems]) from None  # fmt: skip
    evaluation = {
        "name": name,
        "seed": seed,
        "candidates": [
            {key: c[key] for key in ("key", "label", "model", "step")} for c in candidates
        ],
        "graders": compiled_graders,
    }
    return CompiledEval(evaluation=evaluation, pipeline=pipeline)


# --- Candidates ----------------------------------------------------------------------
def _candidates(raw: dict, problems: list[str]) -> list[dict]:
    given = raw.get("candidates")
    if not isinstance(given, list) or not given:
        problems.append("the eval: candidates is required: a list of models to answer")
        return []
    if len(given) > MAX_CANDIDATES:
        problems.append(f"the eval: at most {MAX_CANDIDATES} candidates, not {len(given)}")
    if not isinstance(raw.get("prompt"), str) and not all(
        isinstance(c, dict) and isinstance(c.get("prompt"), str) for c in given
    ):
        problems.append("the eval: prompt is required (a template over row), "
                        "unless every candidate has its own")  # fmt: skip
    found: list[dict] = []
    keys: set[str] = set()
    for index, candidate in enumerate(given, start=1):
        where = f"candidate {index}"
        if not isinstance(candidate, dict) or not isinstance(candidate.get("model"), str):
            problems.append(f"{where}: a candidate is a mapping with a model")
            continue
        for field in sorted(set(candidate) - CANDIDATE_FIELDS):
            problems.append(f"{where}: {pipelines.unknown_field(field, sorted(CANDIDATE_FIELDS))}")
        label = str(candidate.get("name") or candidate["model"])
        key = re.sub(r"[^A-Za-z0-9_]", "_", label)[:24].strip("_") or f"c{index}"
        if key[0].isdigit():
            key = f"c{key}"
        base, n = key, 2
        while key in keys:
            key, n = f"{base[:21]}_{n}", n + 1
        keys.add(key)
        if any(c["label"] == label for c in found):
            problems.append(f"{where}: {label!r} is already a candidate: give one a name")
        found.append({"key": key, "label": label, "model": candidate["model"],
                      "step": f"answer_{key}", "raw": candidate, "index": index})  # fmt: skip
    return found


_THINKING = ("thinking_level", "thinking_budget", "include_thoughts")


def _thinking_nested(step: dict) -> dict:
    """generation_config's thinking_level (the shorthand evals are written with)
    where Gemini keeps it: in thinking_config."""
    config = step.get("generation_config")
    if (
        isinstance(config, dict)
        and any(name in config for name in _THINKING)
        and isinstance(config.get("thinking_config") or {}, dict)
    ):
        config = dict(config)
        thinking = dict(config.get("thinking_config") or {})
        for name in _THINKING:
            if name in config:
                thinking[name] = config.pop(name)
        step["generation_config"] = {**config, "thinking_config": thinking}
    return step


def _answer_step(raw: dict, candidate: dict) -> dict:
    step = {k: copy.deepcopy(v) for k, v in candidate["raw"].items() if k != "name"}
    _thinking_nested(step)
    step["name"] = candidate["step"]
    step.setdefault("prompt", raw.get("prompt"))
    if "system_instruction" in raw:
        step.setdefault("system_instruction", raw["system_instruction"])
    return step


# --- Graders -------------------------------------------------------------------------
def _graders(raw: dict, candidates: list[dict], problems: list[str]) -> list[dict]:
    given = raw.get("graders")
    if not isinstance(given, list) or not given:
        problems.append("the eval: graders is required: a list of checks or judges")
        return []
    if len(given) > MAX_GRADERS:
        problems.append(f"the eval: at most {MAX_GRADERS} graders, not {len(given)}")
    found: list[dict] = []
    for index, grader in enumerate(given, start=1):
        if not isinstance(grader, dict):
            problems.append(f"grader {index}: a grader is a mapping with a name")
            continue
        name = grader.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.append(f"grader {index}: name is required: letters, digits and _, "
                            "at most 24, not starting with a digit")  # fmt: skip
            continue
        where = f"grader {name}"
        if any(g["name"] == name for g in found):
            problems.append(f"{where}: the name is used by an earlier grader")
            continue
        if "check" in grader:
            checked = _check(grader, where, problems)
            if checked is not None:
                found.append({"name": name, "kind": "check", "check": checked})
        elif "compare" in grader:
            pair = _pairwise(grader, candidates, where, problems)
            if pair is not None:
                found.append({"name": name, "kind": "pairwise", "compare": pair, "raw": grader})
        elif "model" in grader or "prompt" in grader:
            if _judge(grader, where, problems):
                found.append({"name": name, "kind": "judge", "raw": grader})
        else:
            problems.append(f"{where}: give a check, or a model and prompt (a judge), or "
                            "compare with a model and prompt (pairwise)")  # fmt: skip
    return found


def _check(grader: dict, where: str, problems: list[str]) -> dict | None:
    if set(grader) - {"name", "check"}:
        extra = ", ".join(sorted(set(grader) - {"name", "check"}))
        problems.append(f"{where}: a check takes only name and check, not {extra}")
    check = grader["check"]
    if not isinstance(check, dict) or not isinstance(check.get("type"), str) \
            or check["type"] not in CHECK_TYPES:  # fmt: skip
        problems.append(f"{where}: check.type must be one of {', '.join(CHECK_TYPES)}")
        return None
    kind = check["type"]
    for field in sorted(set(check) - CHECK_FIELDS):
        problems.append(f"{where}: check: {pipelines.unknown_field(field, sorted(CHECK_FIELDS))}")
    for field in CHECK_TYPES[kind]:
        if field not in check:
            problems.append(f"{where}: a {kind} check needs {field}")
    normalize = check.get("normalize", [])
    if isinstance(normalize, str):
        normalize = [normalize]
    if not isinstance(normalize, list) or any(
        not isinstance(name, str) or name not in NORMALIZERS for name in normalize
    ):
        problems.append(f"{where}: normalize takes {', '.join(NORMALIZERS)}")
    for field in ("expected", "value", "pattern"):
        if isinstance(check.get(field), str) and (
            problem := pipelines.template_problem(check[field])
        ):
            problems.append(f"{where}: check.{field}: {problem}")
    if kind == "regex" and isinstance(check.get("pattern"), str) and "{" not in check["pattern"]:
        try:
            re.compile(check["pattern"])
        except re.error as error:
            problems.append(f"{where}: check.pattern is not a regular expression: {error}")
    if kind == "numeric":
        tolerance = check.get("tolerance", 0)
        if not isinstance(tolerance, int | float) or isinstance(tolerance, bool) or tolerance < 0:
            problems.append(f"{where}: check.tolerance must be a number of 0 or more")
    if kind == "json_schema" and not isinstance(check.get("schema"), dict):
        problems.append(f"{where}: check.schema must be a JSON Schema (a mapping)")
    if kind == "json_path" and not isinstance(check.get("path"), str):
        problems.append(f"{where}: check.path must be a path such as answer.value or items.0")
    return {**check, "normalize": normalize} if isinstance(normalize, list) else dict(check)


def _judge(grader: dict, where: str, problems: list[str]) -> bool:
    ok = True
    for field in sorted(set(grader) - JUDGE_FIELDS):
        problems.append(f"{where}: {pipelines.unknown_field(field, sorted(JUDGE_FIELDS))}")
        ok = False
    for field in ("model", "prompt"):
        if not isinstance(grader.get(field), str):
            problems.append(f"{where}: a judge needs a {field}")
            ok = False
    score = grader.get("score", "score")
    if not isinstance(score, str):
        problems.append(f"{where}: score names the field of the judge's answer that is its "
                        "score (a text)")  # fmt: skip
        return False
    schema = grader.get("response_schema")
    if not isinstance(schema, dict):
        problems.append(f"{where}: a judge needs a response_schema whose {score!r} field is "
                        "its score (a number)")  # fmt: skip
        return False
    field = _properties(schema).get(score)
    if not isinstance(field, dict) or field.get("type") not in ("integer", "number"):
        problems.append(f"{where}: score names {score!r}, which the response_schema does not "
                        "give as an integer or number")  # fmt: skip
        ok = False
    return ok


def _scale(grader: dict) -> list[float] | None:
    """The judge's score range, [minimum, maximum], when its schema gives both: the
    leaderboard reads a score at or above the middle as the judge's pass."""
    field = grader["response_schema"]["properties"][grader.get("score", "score")]
    low, high = field.get("minimum"), field.get("maximum")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    return [low, high] if numbers and low < high else None


def _pairwise(grader: dict, candidates: list[dict], where: str, problems: list[str]):
    for field in sorted(set(grader) - PAIRWISE_FIELDS):
        problems.append(f"{where}: {pipelines.unknown_field(field, sorted(PAIRWISE_FIELDS))}")
    compare = grader["compare"]
    if not isinstance(compare, list) or len(compare) != 2 or compare[0] == compare[1]:
        problems.append(f"{where}: compare names two different candidates")
        return None
    found = []
    for named in compare:
        match = [c for c in candidates if named in (c["label"], c["model"], c["key"])]
        if len(match) != 1:
            words = "names no candidate" if not match else "names more than one candidate"
            problems.append(f"{where}: compare: {named!r} {words}")
            return None
        found.append(match[0])
    for field in ("model", "prompt"):
        if not isinstance(grader.get(field), str):
            problems.append(f"{where}: a pairwise grader needs a {field}")
            return None
    verdict = grader.get("verdict", "winner")
    schema = grader.get("response_schema", PAIRWISE_SCHEMA)
    if not isinstance(verdict, str) or not isinstance(schema, dict):
        problems.append(f"{where}: verdict names a field of the response_schema (a mapping) "
                        "whose value is the winner")  # fmt: skip
        return None
    if verdict not in _properties(schema):
        problems.append(f"{where}: verdict names {verdict!r}, which the response_schema lacks")
        return None
    return found


def _properties(schema: dict) -> dict:
    """A JSON Schema's properties; none when they are not a mapping."""
    properties = schema.get("properties")
    return properties if isinstance(properties, dict) else {}


def _grader_step(grader: dict, name: str, prefix: str, *, retry: bool) -> dict:
    raw = grader["raw"]
    keep = JUDGE_FIELDS - {"name", "score", "prompt"}
    step = {k: copy.deepcopy(v) for k, v in raw.items() if k in keep}
    step["name"] = name
    step["prompt"] = prefix + raw["prompt"]
    # A judge's answer that breaks its schema is asked again, within its attempts: the
    # grader's max_attempts, else the eval's, else the run's (8 by default). Fewer by
    # default would leave a judge ungraded for want of capacity alone: on flex its 503s
    # use the same attempts (bench/eval.py saw 4 of 3,000 judges fail so at 4).
    step["retry_bad_output"] = retry
    return _thinking_nested(step)


def _judge_step(grader: dict, candidate: dict) -> dict:
    answer = f"{{% set answer = steps.{candidate['step']}.output %}}"
    return _grader_step(grader, f"{grader['name']}_{candidate['key']}", answer, retry=True)


def _pairwise_step(grader: dict, a: dict, b: dict, order: str) -> dict:
    prefix = (f"{{% set a = steps.{a['step']}.output %}}"
              f"{{% set b = steps.{b['step']}.output %}}")  # fmt: skip
    step = _grader_step(grader, f"{grader['name']}_{order}", prefix, retry=True)
    step.setdefault("response_schema", PAIRWISE_SCHEMA)
    return step


def render_row_text(source: str, row: dict) -> str:
    """A check's expected value (or pattern) for this row: a template over `row`."""
    return pipelines.render_text(source, row=row, what="check")


def eval_run_create(*, compiled: CompiledEval, name: str = "", **create: Any):
    """Create the eval's run: a pipeline run of its steps over the table, with the
    compiled definition kept on it (pipeline_runs.pipeline_run_create's other
    arguments as given)."""
    return pipeline_runs.pipeline_run_create(
        pipeline=compiled.pipeline,
        evaluation=compiled.evaluation,
        name=name or compiled.evaluation["name"],
        **create,
    )
