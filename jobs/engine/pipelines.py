"""A pipeline's definition: loaded from YAML or JSON, checked whole (every problem at
once, each naming its step) into a Pipeline, and its steps' requests rendered for one
row from the answers before them, in a Jinja2 sandbox that reaches only into the data
(dict keys and list indexes), with no globals, and with every text it can make held to
FLEX_MAX_PROMPT_CHARS. Pure logic: nothing here reads or writes the database.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
import yaml
from django.conf import settings
from jinja2 import meta, nodes
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from jobs import gemini_shape
from jobs.engine.submitting import JobSpec, job_spec_errors, request_error
from jobs.models import Tier

MAX_STEPS = 20
MAX_ITEMS = 100  # most list items a for_each fans out to per row
# What one text's rendering may do: loop turns in all, list items an operator makes,
# bits of a whole number. Loops and numbers are the ways a short template makes a
# render take minutes or memory without writing a character.
MAX_LOOP_TURNS = 100_000
MAX_LIST_ITEMS = 10_000
MAX_NUMBER_BITS = 4_096
# Output counted past the limit before a render gives up, so the refusal can say how
# long the text came to for texts a little too long, without building a huge one.
_OVERSHOOT = 4
# The angle quotes around a stand-in in the preview, which no answer is mistaken for.
OPEN, CLOSE = "\u2039", "\u203a"

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
FOR_EACH = re.compile(r"(steps\.[A-Za-z_][A-Za-z0-9_]*\.json|row\.[^.\s]+)(\.[^.\s]+)*")
TOP_FIELDS = ("name", "steps", "model", "tier", "max_attempts")
SETTINGS = ("model", "tier", "max_attempts", "fallback_standard", "retry_bad_output")
REQUEST_FIELDS = ("temperature", "max_output_tokens", "generation_config", "response_schema",
                  "tools", "safety_settings")  # fmt: skip
STEP_FIELDS = ("name", *SETTINGS, "prompt", "system_instruction", *REQUEST_FIELDS, "request",
               "for_each", "continue")  # fmt: skip
ANSWER_FIELDS = {"output": False, "json": False, "outputs": True, "jsons": True}
LOOP_FIELDS = ("index", "index0", "revindex", "revindex0", "first", "last", "length",
               "previtem", "nextitem", "depth", "depth0")  # fmt: skip
REFUSED_TAGS = {nodes.Macro: "macro", nodes.CallBlock: "call", nodes.Include: "include",
                nodes.Import: "import", nodes.FromImport: "from", nodes.Extends: "extends",
                nodes.Block: "block"}  # fmt: skip
SAFE_FILTERS = ("abs", "capitalize", "count", "d", "default", "dictsort", "first",
                "float", "groupby", "int", "items", "last", "length", "list", "lower", "map",
                "max", "min", "reject", "rejectattr", "reverse", "round", "select",
                "selectattr", "sort", "striptags", "title", "trim", "truncate", "unique",
                "upper", "urlencode", "wordcount")  # fmt: skip


class DefinitionError(Exception):
    """Every problem with a definition, each naming its step."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class RenderError(Exception):
    """Why one step's request could not be rendered for one row."""


# --- The sandbox --------------------------------------------------------------------
@dataclass
class _Render:
    """What one render has spent, and where each container of its data sits."""

    limit: int
    paths: dict[int, str]
    what: str = "prompt"
    output: int = 0
    turns: int = 0


_current: contextvars.ContextVar[_Render] = contextvars.ContextVar("pipeline_render")


def _limit() -> int:
    render = _current.get(None)
    return render.limit if render else settings.FLEX_MAX_PROMPT_CHARS


def _too_long(size: int, what: str = "an expression in the template") -> RenderError:
    return RenderError(f"{what} makes a text of {size:,} characters; the limit is "
                       f"{_limit():,} (FLEX_MAX_PROMPT_CHARS)")  # fmt: skip


def _as_text(value: Any) -> str:
    """What `value` prints as: dicts and lists as JSON, built piece by piece so a
    small list of large texts is refused before it is whole."""
    if isinstance(value, str):  # already whole: the render's output count holds it
        return value
    if not isinstance(value, dict | list | tuple):
        return str(value)
    pieces, size = [], 0
    for piece in json.JSONEncoder(ensure_ascii=False, default=str).iterencode(value):
        size += len(piece)
        if size > _limit():
            raise _too_long(size)
        pieces.append(piece)
    return "".join(pieces)


class _Undefined(jinja2.StrictUndefined):
    """Undefined, saying the whole path that is ("steps.facts.json.claimz is undefined")."""

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        if self._undefined_obj is jinja2.utils.missing:
            return f"{self._undefined_name} is undefined"
        kind = type(self._undefined_obj).__name__
        return f"{self._undefined_name!r} is undefined (it is read from a {kind})"


class _StandIn(str):
    """An earlier answer in the preview: prints as its path, and every field or item
    read from it is a stand-in for that path."""

    def __new__(cls, path: str, text: str | None = None) -> _StandIn:
        made = super().__new__(cls, text or f"{OPEN}{path}{CLOSE}")
        made.path = path
        return made

    def child(self, key: Any) -> _StandIn:
        return _StandIn(f"{self.path}[{key}]" if isinstance(key, int) else f"{self.path}.{key}")

    def __iter__(self) -> Iterator[_StandIn]:
        yield self.child(0)


def _key_path(path: str, key: Any) -> str:
    if isinstance(key, str) and NAME.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(autoescape=False, undefined=_Undefined, finalize=_finalize)
        self.globals.clear()
        self.filters = {name: self.filters[name] for name in SAFE_FILTERS}
        self.filters.update(join=_join, replace=_replace, tojson=_as_text, string=_as_text,
                            _loop=_loop, _text=_text, _concat=_concat)  # fmt: skip

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _guarded(super()._parse(source, name, filename))

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, LoopContext) and attribute in LOOP_FIELDS:
            return super().getattr(obj, attribute)
        return self.getitem(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, _StandIn):
            return obj.child(argument)
        if isinstance(obj, jinja2.Undefined):
            return obj  # so the message names what was undefined first
        if isinstance(obj, dict) and isinstance(argument, str | int) and argument in obj:
            return obj[argument]
        is_index = isinstance(argument, int) and not isinstance(argument, bool)
        if isinstance(obj, list | tuple) and is_index and -len(obj) <= argument < len(obj):
            return obj[argument]
        if isinstance(obj, list | tuple | str) and isinstance(argument, slice):
            return obj[argument]
        render = _current.get(None)
        path = render.paths.get(id(obj)) if render and isinstance(obj, dict | list) else None
        if path is None:
            return self.undefined(obj=obj, name=argument)
        where = f"{path}[{argument}]" if is_index else _key_path(path, argument)
        return self.undefined(f"{where} is undefined", obj=obj, name=argument)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise RenderError("% formatting of text is not available: use ~ to join texts")
        bits = abs(left).bit_length() - 1 if _whole(left) else 0
        if operator == "**" and _whole(right) and right > 0 and right * bits > MAX_NUMBER_BITS:
            raise RenderError(f"{left} ** {right} is too large a number")
        if operator == "*":
            left, right = (right, left) if _whole(left) else (left, right)
            if _whole(right) and isinstance(left, str) and len(left) * right > _limit():
                raise _too_long(len(left) * right)
            if _whole(right) and isinstance(left, list | tuple):
                _check_items(len(left) * right)
            if (
                _whole(left)
                and _whole(right)
                and (left.bit_length() + right.bit_length() > MAX_NUMBER_BITS)
            ):
                raise RenderError("a multiplication makes too large a number")
        texts = isinstance(left, str) and isinstance(right, str)
        if operator == "+" and texts and len(left) + len(right) > _limit():
            raise _too_long(len(left) + len(right))
        if operator == "+" and isinstance(left, list | tuple) and isinstance(right, list | tuple):
            _check_items(len(left) + len(right))
        return self.binop_table[operator](left, right)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_items(count: int) -> None:
    if count > MAX_LIST_ITEMS:
        raise RenderError(f"an expression makes a list of {count:,} items; the most is "
                          f"{MAX_LIST_ITEMS:,}")  # fmt: skip


@jinja2.pass_context
def _finalize(context: Any, value: Any) -> str:
    text = _as_text(value)
    render = _current.get(None)
    if render is not None:
        render.output += len(text)
        if render.output > render.limit * _OVERSHOOT:
            raise RenderError(f"the rendered {render.what} is more than "
                              f"{render.limit * _OVERSHOOT:,} characters; the limit is "
                              f"{render.limit:,} (FLEX_MAX_PROMPT_CHARS)")  # fmt: skip
    return text


@jinja2.pass_context
def _text(context: Any, value: str) -> str:
    return value  # template text, sent through finalize so it is counted too


@jinja2.pass_context
def _loop(context: Any, iterable: Any) -> Iterator[Any]:
    render = _current.get(None)
    for value in iterable:
        if render is not None:
            render.turns += 1
            if render.turns > MAX_LOOP_TURNS:
                raise RenderError(f"the template's loops turn more than {MAX_LOOP_TURNS:,} "
                                  "times")  # fmt: skip
        yield value


def _join_texts(texts: Iterator[str], separator: str = "") -> str:
    pieces, size = [], 0
    for index, text in enumerate(texts):
        size += len(text) + (len(separator) if index else 0)
        if size > _limit():
            raise _too_long(size)
        pieces.append(text)
    return separator.join(pieces)


def _concat(values: list) -> str:
    return _join_texts(_as_text(value) for value in values)


def _join(value: Any, d: str = "", attribute: str | None = None) -> str:
    if attribute is not None:
        value = [_SANDBOX.getitem(item, attribute) for item in value]
    return _join_texts((_as_text(item) for item in value), _as_text(d))


def _replace(value: Any, old: str, new: str, count: int | None = None) -> str:
    text, old, new = _as_text(value), _as_text(old), _as_text(new)
    found = text.count(old) if old else len(text) + 1
    found = min(found, count) if count is not None and count >= 0 else found
    if len(text) + found * (len(new) - len(old)) > _limit():
        raise _too_long(len(text) + found * (len(new) - len(old)))
    return text.replace(old, new, -1 if count is None else count)


def _guarded(template: nodes.Template) -> nodes.Template:
    """The parsed template with every loop counted, every join and text measured, and
    the tags that let a template call itself (macros, call blocks) or reach another
    file refused as a syntax error."""
    for node in template.find_all(tuple(REFUSED_TAGS)):
        raise jinja2.TemplateSyntaxError(
            f"{{% {REFUSED_TAGS[type(node)]} %}} is not available in pipeline templates",
            node.lineno,
        )
    for loop in template.find_all(nodes.For):
        if loop.recursive:  # a loop that calls itself turns uncounted
            raise jinja2.TemplateSyntaxError(
                "recursive loops are not available in pipeline templates", loop.lineno
            )
        loop.iter = nodes.Filter(loop.iter, "_loop", [], [], None, None, lineno=loop.lineno)
    for output in template.find_all(nodes.Output):
        output.nodes = [
            nodes.Filter(nodes.Const(child.data), "_text", [], [], None, None, lineno=child.lineno)
            if isinstance(child, nodes.TemplateData)
            else child
            for child in output.nodes
        ]
    _replace_concats(template)
    return template


def _replace_concats(node: nodes.Node) -> None:
    for field in node.fields:
        value = getattr(node, field, None)
        if isinstance(value, nodes.Concat):
            setattr(node, field, _concat_filter(value))
        elif isinstance(value, list):
            setattr(node, field, [_concat_filter(v) if isinstance(v, nodes.Concat) else v
                                  for v in value])  # fmt: skip
    for child in node.iter_child_nodes():
        _replace_concats(child)


def _concat_filter(node: nodes.Concat) -> nodes.Filter:
    return nodes.Filter(nodes.List(node.nodes), "_concat", [], [], None, None, lineno=node.lineno)


_SANDBOX = _Sandbox()
_compiled: dict[str, jinja2.Template] = {}


def _template(source: str) -> jinja2.Template:
    if source not in _compiled:
        if len(_compiled) > 1_000:
            _compiled.clear()
        _compiled[source] = _SANDBOX.from_string(source)
    return _compiled[source]


# --- Loading ------------------------------------------------------------------------
def definition_load(source: str | bytes) -> Any:
    """YAML or JSON text (JSON is YAML) as Python data, which must be a mapping."""
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as error:
        try:  # JSON indented with tabs, which YAML does not take
            data = json.loads(source)
        except ValueError:
            raise DefinitionError(
                [f"the pipeline definition is not YAML or JSON: {error}"]
            ) from None
    if not isinstance(data, dict):
        raise DefinitionError(["the pipeline definition must be a mapping with a name and "
                               f"steps, not {_kind(data)}"])  # fmt: skip
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "true or false",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)  # fmt: skip


# --- The checked pipeline -------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    name: str
    model: str
    tier: str
    max_attempts: int | None
    fallback_standard: bool
    retry_bad_output: bool
    request: dict  # Gemini's request shape, normalised; its text parts are template sources
    for_each: str | None
    continues: str | None
    parents: tuple[str, ...]  # the steps it needs answered first, in definition order

    @property
    def fans_out(self) -> bool:
        return self.for_each is not None


@dataclass(frozen=True)
class Pipeline:
    name: str
    steps: tuple[Step, ...]

    def to_json(self) -> dict:
        return {"name": self.name, "steps": [
            {**dataclasses.asdict(step), "parents": list(step.parents)} for step in self.steps
        ]}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict) -> Pipeline:
        steps = tuple(Step(**{**step, "parents": tuple(step["parents"])}) for step in data["steps"])
        return cls(name=data["name"], steps=steps)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def children(self, name: str) -> list[Step]:
        return [step for step in self.steps if name in step.parents]

    def descendants(self, name: str) -> list[Step]:
        found = {name}
        for step in self.steps:  # parents always come first, so one pass finds them all
            if found & set(step.parents):
                found.add(step.name)
        return [step for step in self.steps if step.name in found - {name}]

    @property
    def roots(self) -> list[Step]:
        return [step for step in self.steps if not step.parents]


# --- Checking ---------------------------------------------------------------------------
def unknown_field(field: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(field, known, n=1)
    return f"unknown field {field!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _template_texts(request: dict) -> Iterator[tuple[str, dict]]:
    """(where, part) for every text part that is a template."""
    for i, turn in enumerate(request.get("contents") or []):
        for j, part in enumerate(turn.get("parts") or []):
            if "text" in part:
                yield f"contents[{i}].parts[{j}].text", part
    for j, part in enumerate((request.get("system_instruction") or {}).get("parts") or []):
        if "text" in part:
            yield f"system_instruction.parts[{j}].text", part


@dataclass
class _Draft:
    """A step while it is checked: what it asked for, and the steps its texts name."""

    index: int
    name: str
    raw: dict
    request: dict | None = None
    uses: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (step, field)
    uses_item: bool = False


def _request_of(raw: dict, problem: Callable[[str], None]) -> dict | None:
    """The step's request (prompt and settings, or request and settings), normalised."""
    settings_given = {k: raw[k] for k in REQUEST_FIELDS if raw.get(k) is not None}
    if "request" in raw:
        if "prompt" in raw or "system_instruction" in raw:
            problem("takes a prompt (and system_instruction) or a request, not both")
            return None
        if not isinstance(raw["request"], dict):
            problem("request must be a mapping in Gemini's request shape")
            return None
        request = dict(raw["request"])
        request.pop("model", None)  # the step's model is the job's
        where = "request"
    elif not isinstance(raw.get("prompt"), str) or not raw["prompt"].strip():
        problem("has no prompt: give it a prompt (or a whole request)" if not raw.get("prompt")
                else "prompt must be text")  # fmt: skip
        return None
    else:
        system = raw.get("system_instruction")
        if system is not None and not isinstance(system, str):
            problem("system_instruction must be text")
            return None
        request = gemini_shape.simple(raw["prompt"], system_instruction=system or "")
        where = ""
    # A whole request may spell its fields in camelCase; step settings join its own.
    config_key = next((k for k in request if gemini_shape.snake(k) == "generation_config"),
                      "generation_config")  # fmt: skip
    config = dict(request.pop(config_key, None) or {})
    config_given = settings_given.pop("generation_config", {})
    if not isinstance(config_given, dict):
        problem("generation_config must be a mapping")
        return None
    for name, value in config_given.items():
        if gemini_shape.snake(name) in map(gemini_shape.snake, config):
            problem(f"generation_config.{name} is given in the request too")
        config[name] = value
    for name in ("temperature", "max_output_tokens"):
        if name in settings_given:
            if name in map(gemini_shape.snake, config):
                problem(f"{name} is given in generation_config (or the request) too")
            config[name] = settings_given.pop(name)
    if "response_schema" in settings_given:
        if {"response_schema", "response_json_schema", "responseSchema",
                "responseJsonSchema"} & config.keys():  # fmt: skip
            problem("response_schema is given in generation_config (or the request) too")
        config["response_json_schema"] = settings_given.pop("response_schema")
    for name, value in settings_given.items():  # tools, safety_settings
        if name in request or gemini_shape.snake(name) in map(gemini_shape.snake, request):
            problem(f"{name} is given in the request too")
        request[name] = value
    if config:
        request["generation_config"] = config
    try:
        return gemini_shape.normalise(request, where)
    except gemini_shape.ShapeError as error:
        problem(str(error))
        return None


def _references(ast: nodes.Template, where: str, problem: Callable[[str], None],
                draft: _Draft) -> None:  # fmt: skip
    """Record the steps a template names (steps.NAME.FIELD), and refuse any other use of
    `steps`, and names other than row, steps and item."""
    undeclared = meta.find_undeclared_variables(ast)
    for name in sorted(undeclared - {"row", "steps", "item"}):
        problem(f"the {where} uses {name}, which is no template name: use row, steps or item")
    draft.uses_item = draft.uses_item or "item" in undeclared
    if "steps" not in undeclared:
        return
    parents: dict[int, nodes.Node] = {}
    for node in ast.find_all(nodes.Node):
        for child in node.iter_child_nodes():
            parents[id(child)] = node
    for name in ast.find_all(nodes.Name):
        if name.name != "steps" or name.ctx != "load":
            continue
        step = _read_from(name, parents)
        if step is None:
            problem(f"the {where} uses steps on its own: name a step's answer, e.g. "
                    "steps.NAME.output")  # fmt: skip
            continue
        field = _read_from(parents[id(name)], parents)
        if field is not None and field not in ANSWER_FIELDS:
            problem(f"the {where} reads steps.{step}.{field}: a step's answer is its output, "
                    "json, outputs or jsons")  # fmt: skip
        draft.uses.append((step, field or ""))


def _read_from(node: nodes.Node, parents: dict[int, nodes.Node]) -> str | None:
    """The fixed key that `node` is read with (node.KEY or node["KEY"]), if it is."""
    parent = parents.get(id(node))
    if isinstance(parent, nodes.Getattr) and parent.node is node:
        return parent.attr
    is_item = isinstance(parent, nodes.Getitem) and parent.node is node
    if is_item and isinstance(parent.arg, nodes.Const) and isinstance(parent.arg.value, str):
        return parent.arg.value
    return None


def _settings(raw: dict, top: dict, defaults: JobSpec | None,
              problem: Callable[[str], None]) -> dict | None:  # fmt: skip
    """The step's model, tier, max attempts, fallback and retry choice: its own, else the
    pipeline's, else the run's defaults."""
    chosen: dict[str, Any] = {}
    for name in SETTINGS:
        for source in (raw, top):
            if source.get(name) is not None:
                chosen[name] = source[name]
                break
        else:
            if defaults is not None:
                value = getattr(defaults, name)
                chosen[name] = str(value) if isinstance(value, str) else value  # not an enum
    chosen.setdefault("tier", Tier.FLEX.value)
    chosen.setdefault("max_attempts", None)
    for name in ("fallback_standard", "retry_bad_output"):
        chosen.setdefault(name, False)
        if not isinstance(chosen[name], bool):
            problem(f"{name} must be true or false")
            return None
    if "model" not in chosen:
        problem("names no model: give the step (or the pipeline) a model")
        return None
    for name in ("model", "tier"):
        if not isinstance(chosen[name], str):
            problem(f"{name} must be text")
            return None
    if chosen["max_attempts"] is not None and not _whole(chosen["max_attempts"]):
        problem("max_attempts must be a whole number")
        return None
    errors = job_spec_errors(JobSpec(**chosen))
    for message in errors.values():
        problem(message)
    return None if errors else chosen


def definition_check(raw: Any, *, defaults: JobSpec | None = None) -> Pipeline:
    """The pipeline `raw` defines, checked whole; DefinitionError lists every problem.
    `defaults` (the run form's settings) gives model, tier, max attempts, fallback and
    retry_bad_output where neither the step nor the pipeline names one."""
    if not isinstance(raw, dict):
        raise DefinitionError(["the pipeline definition must be a mapping with a name and "
                               f"steps, not {_kind(raw)}"])  # fmt: skip
    problems = [f"the pipeline: {unknown_field(field, TOP_FIELDS)}"
                for field in raw if field not in TOP_FIELDS]  # fmt: skip
    if not isinstance(raw.get("name"), str) or not raw["name"].strip():
        problems.append("the pipeline needs a name (text)")
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise DefinitionError([*problems, "the pipeline needs steps: a list of at least one step"])
    if len(steps) > MAX_STEPS:
        problems.append(f"the pipeline has {len(steps)} steps; the most is {MAX_STEPS} (MAX_STEPS)")
    top = {name: raw.get(name) for name in ("model", "tier", "max_attempts")}
    drafts: dict[str, _Draft] = {}
    chosen: dict[str, dict | None] = {}
    for index, raw_step in enumerate(steps):
        draft = _draft(index, raw_step, top, defaults, drafts, chosen, problems)
        if draft is not None:
            drafts[draft.name] = draft
    problems += _reference_problems(list(drafts.values()))
    if problems:
        raise DefinitionError(list(dict.fromkeys(problems)))
    order = {name: draft.index for name, draft in drafts.items()}
    built = []
    for draft in drafts.values():
        step_settings = chosen[draft.name] or {}
        for_each, continues = draft.raw.get("for_each"), draft.raw.get("continue")
        parents = sorted({step for step, _ in draft.uses}, key=order.__getitem__)
        built.append(Step(name=draft.name, request=draft.request or {}, for_each=for_each,
                          continues=continues, parents=tuple(parents),
                          **step_settings))  # fmt: skip
    return Pipeline(name=raw["name"], steps=tuple(built))


def _draft(index: int, raw: Any, top: dict, defaults: JobSpec | None, drafts: dict,
           chosen: dict, problems: list[str]) -> _Draft | None:  # fmt: skip
    """One step checked on its own (its references are checked once all are read)."""
    if not isinstance(raw, dict):
        problems.append(f"step {index + 1} must be a mapping, not {_kind(raw)}")
        return None
    name = raw.get("name")
    label = name if isinstance(name, str) and NAME.fullmatch(name) else str(index + 1)

    def problem(message: str) -> None:
        problems.append(f"step {label}: {message}")

    if name is None:
        problem("needs a name")
    elif label != name:
        problem(f"the name {name!r} must be letters, digits and _, not starting with a digit, "
                "at most 64 characters")  # fmt: skip
    elif name in drafts:
        problem(f"the name is taken: steps {drafts[name].index + 1} and {index + 1} are both "
                f"named {name}")  # fmt: skip
        label = str(index + 1)
    for field in raw:
        if field not in STEP_FIELDS:
            problem(unknown_field(field, STEP_FIELDS))
    draft = _Draft(index=index, name=label, raw=raw)
    chosen[label] = _settings(raw, top, defaults, problem)
    draft.request = _request_of(raw, problem)
    for where, part in _template_texts(draft.request or {}):
        if "request" not in raw:
            where = where.split(".")[0] if where.startswith("system") else "prompt"
        else:
            where = f"request.{where}"
        try:
            _template(part["text"])
            _references(_SANDBOX.parse(part["text"]), where, problem, draft)
        except jinja2.TemplateSyntaxError as error:
            problem(f"the {where} does not parse: {error.message} (line {error.lineno})")
    request = draft.request
    if request is not None and not gemini_shape.prompt_text(request).strip() \
            and not gemini_shape.media(request):  # fmt: skip
        problem("its request has no text to send")
    for_each = raw.get("for_each")
    if for_each is not None:
        if not isinstance(for_each, str) or not FOR_EACH.fullmatch(for_each):
            problem("for_each must name a list: steps.STEP.json.PATH or row.COLUMN")
        elif for_each.startswith("steps."):
            draft.uses.append((for_each.split(".")[1], "for_each"))
    elif draft.uses_item:
        problem("uses item, but the step has no for_each: item is the list item of a fan-out")
    if raw.get("continue") is not None:
        if isinstance(raw["continue"], str):
            draft.uses.append((raw["continue"], "continue"))
        else:
            problem("continue must name a step")
    return draft if label == name else None


def _reference_problems(drafts: list[_Draft]) -> list[str]:
    """What is wrong with the steps each step names: unknown ones, itself, later ones
    (a cycle named as such), and answers read the wrong way for the step they name."""
    problems: list[str] = []
    by_name = {draft.name: draft for draft in drafts}
    reach = {d.name: {s for s, _ in d.uses if s in by_name and s != d.name} for d in drafts}
    for _ in drafts:  # the transitive closure; a pipeline has at most MAX_STEPS steps
        for found in reach.values():
            found |= set().union(*(reach[s] for s in found))
    cycles: list[list[str]] = []
    for draft in drafts:
        cycle = [d.name for d in drafts if d.name == draft.name
                 or (d.name in reach[draft.name] and draft.name in reach[d.name])]  # fmt: skip
        if len(cycle) > 1 and cycle not in cycles:
            cycles.append(cycle)
    for draft in drafts:
        for target, field in draft.uses:
            problems += _reference_problem(draft, target, field, by_name, cycles)
    for cycle in cycles:
        names = ", ".join(cycle[:-1]) + f" and {cycle[-1]}"
        problems.append(f"steps {names} refer to each other (a cycle)")
    return problems


def _reference_problem(draft: _Draft, target: str, field: str, by_name: dict[str, _Draft],
                       cycles: list[list[str]]) -> list[str]:  # fmt: skip
    said = {"continue": f"continue names {target}", "for_each": f"for_each names steps.{target}"}
    said = said.get(field, f"refers to steps.{target}")
    prefix = f"step {draft.name}: "
    other = by_name.get(target)
    if other is None:
        return [f"{prefix}{said}, which is no step of this pipeline"]
    if other is draft:
        return [f"{prefix}{said}, itself: a step can use only the steps before it"]
    if other.index > draft.index:
        if any(draft.name in cycle and target in cycle for cycle in cycles):
            return []
        return [f"{prefix}{said}, a later step: a step can use only the steps before it"]
    fans_out = other.raw.get("for_each") is not None
    if field == "continue" and fans_out:
        return [f"{prefix}continue names {target}, which fans out (for_each): a step can "
                "continue only one conversation"]  # fmt: skip
    if field == "for_each":
        return _for_each_problem(draft, other, fans_out)
    if field in ("output", "json") and fans_out:
        return [f"{prefix}reads steps.{target}.{field}, but step {target} fans out (for_each): "
                f"use steps.{target}.{field}s, the list in item order"]  # fmt: skip
    if field in ("outputs", "jsons") and not fans_out:
        return [f"{prefix}reads steps.{target}.{field}, but step {target} does not fan out: use "
                f"steps.{target}.{field[:-1]}"]  # fmt: skip
    if field in ("json", "jsons") and other.request and not gemini_shape.wants_json(other.request):
        return [f"{prefix}reads steps.{target}.{field}, but step {target} asks for no JSON "
                "answer: give it a response_schema"]  # fmt: skip
    return []


def _for_each_problem(draft: _Draft, other: _Draft, fans_out: bool) -> list[str]:
    path = draft.raw["for_each"]
    prefix = f"step {draft.name}: for_each names {path}, but step {other.name}"
    if fans_out:
        return [f"{prefix} fans out itself: a for_each reads one answer"]
    schema = gemini_shape.answer_schema(other.request) if other.request else None
    if schema is None:
        return [f"{prefix} has no response_schema, so its answer is not known to hold a list"]
    where = f"steps.{other.name}.json"
    for key in path.split(".")[3:]:
        properties = schema.get("properties") if isinstance(schema, dict) else None
        if key.isdigit() and isinstance(schema, dict) and isinstance(schema.get("items"), dict):
            schema = schema["items"]
        elif isinstance(properties, dict) and isinstance(properties.get(key), dict):
            schema = properties[key]
        else:
            return [f"{prefix}'s response_schema has no property {key} at {where}"]
        where = f"{where}.{key}"
    kind = schema.get("type") if isinstance(schema, dict) else None
    kinds = kind if isinstance(kind, list) else [kind]
    if "array" in kinds:
        return []
    said = f"a {kind}" if isinstance(kind, str) else "of no stated type"
    if isinstance(kind, list):
        said = "one of " + ", ".join(map(str, kind))
    return [f"{prefix}'s response_schema says it is {said}, not an array"]


# --- Rendering --------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    output: str  # the answer text
    json: Any = None  # the parsed structured answer (None when none)


NO_ITEM = object()
_ANSWER_PARTS = ("text", "inline_data", "file_data", "function_call", "function_response",
                 "executable_code", "code_execution_result")  # fmt: skip


def _steps_context(answers: Mapping[str, Sequence[Answer]]) -> dict:
    """steps.NAME for the templates: output and json of a step's one answer, outputs and
    jsons of all of them (a fanned-out step's, in item order)."""
    context = {}
    for name, given in answers.items():
        entry: dict[str, Any] = {"outputs": [a.output for a in given],
                                 "jsons": [a.json for a in given]}  # fmt: skip
        if len(given) == 1:
            entry.update(output=given[0].output, json=given[0].json)
        context[name] = entry
    return context


def _paths_of(context: dict) -> dict[int, str]:
    """Where each dict and list of the context sits ("steps.facts.json"), so that what is
    undefined can be named by its whole path."""
    paths: dict[int, str] = {}
    todo: list[tuple[Any, str]] = [(value, name) for name, value in context.items()]
    while todo:
        value, path = todo.pop()
        if isinstance(value, dict | list) and id(value) not in paths:
            paths[id(value)] = path
            if isinstance(value, dict):
                todo += [(item, _key_path(path, key)) for key, item in value.items()]
            else:
                todo += [(item, f"{path}[{i}]") for i, item in enumerate(value)]
    return paths


def _render_text(source: str, context: dict, paths: dict[int, str], what: str) -> str:
    limit = settings.FLEX_MAX_PROMPT_CHARS
    token = _current.set(_Render(limit=limit, paths=paths, what=what))
    try:
        text = _template(source).render(context)
    except RenderError:
        raise
    except jinja2.UndefinedError as error:
        raise RenderError(str(error)) from None
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError,
            RecursionError) as error:  # fmt: skip
        raise RenderError(f"the {what} template failed: {error}") from None
    finally:
        _current.reset(token)
    if len(text) > limit:
        raise RenderError(f"the rendered {what} is {len(text):,} characters; the limit is "
                          f"{limit:,} (FLEX_MAX_PROMPT_CHARS)")  # fmt: skip
    return text


def _rendered(step: Step, context: dict) -> dict:
    paths = _paths_of(context)
    request = copy.deepcopy(step.request)
    for where, part in _template_texts(request):
        what = "system instruction" if where.startswith("system") else "prompt"
        part["text"] = _render_text(part["text"], context, paths, what)
    try:
        request = gemini_shape.normalise(request)
    except gemini_shape.ShapeError as error:
        raise RenderError(f"the rendered request is refused: {error}") from None
    if problem := request_error(request):
        raise RenderError(problem)
    return request


def render_request(step: Step, *, row: dict, answers: Mapping[str, Sequence[Answer]],
                   item: Any = NO_ITEM) -> dict:  # fmt: skip
    """The step's request with every template rendered for `row`, from the row's answers
    of the steps before it (`answers[name]`: one Answer for a plain step, the items'
    answers in order for a fanned-out one) and, for a fan-out, its `item`."""
    context: dict[str, Any] = {"row": row, "steps": _steps_context(answers)}
    if step.fans_out:
        if item is NO_ITEM:
            raise RenderError(f"step {step.name} fans out: its request is rendered per item")
        context["item"] = item
    return _rendered(step, context)


def fan_out_items(step: Step, *, row: dict, answers: Mapping[str, Sequence[Answer]]) -> list:
    """The list the step's for_each names, for this row. A row's text that holds JSON (a
    CSV cell such as ["a", "b"]) is read as that JSON."""
    keys = (step.for_each or "").split(".")
    if keys[0] == "row":
        value, where, keys = row, "row", keys[1:]
    else:
        given = answers.get(keys[1])
        if not given:
            raise RenderError(f"step {keys[1]} has no answer for this row")
        value, where, keys = given[0].json, f"steps.{keys[1]}.json", keys[3:]
    for key in keys:
        if isinstance(value, str) and where.startswith("row"):
            value = _json_in(value)
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise RenderError(f"{where}.{key} is missing")
        where = f"{where}.{key}"
    if isinstance(value, str) and where.startswith("row"):
        value = _json_in(value)
    if not isinstance(value, list):
        raise RenderError(f"{step.for_each} is {_kind(value)}, not a list")
    if len(value) > MAX_ITEMS:
        raise RenderError(f"{step.for_each} has {len(value):,} items; a for_each takes at most "
                          f"{MAX_ITEMS} (MAX_ITEMS)")  # fmt: skip
    return list(value)


def _json_in(text: str) -> Any:
    if not text.lstrip().startswith(("[", "{")):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def continued(request: dict, *, earlier_request: dict, earlier_response: dict | None,
              earlier_text: str) -> dict:  # fmt: skip
    """`request` as the next turn of an earlier conversation: the earlier request's turns,
    the earlier answer as the model's turn (its first candidate's parts without thoughts or
    thought signatures, which would tie the request to generateContent; else its text),
    then this request's turns. This request's system instruction, else the earlier one's."""
    found = gemini_shape.candidates(earlier_response)
    content = (found[0].get("content") or {}) if found else {}
    answer = [
        {key: value for key, value in part.items() if gemini_shape.snake(key) in _ANSWER_PARTS}
        for part in content.get("parts") or []
        if not part.get("thought")
    ]
    answer = [part for part in answer if part] or [{"text": earlier_text}]
    merged = {**request, "contents": [*earlier_request.get("contents", []),
                                      {"role": "model", "parts": answer},
                                      *request.get("contents", [])]}  # fmt: skip
    if "system_instruction" not in request and "system_instruction" in earlier_request:
        merged["system_instruction"] = earlier_request["system_instruction"]
    return gemini_shape.normalise(copy.deepcopy(merged))


def preview_requests(pipeline: Pipeline, row: dict) -> list[tuple[Step, dict | None, str]]:
    """Each step's request rendered for `row`, for the upload preview: earlier answers are
    stand-ins that read as their path in angle quotes (OPEN steps.facts.output CLOSE), a
    fan-out's item as OPEN item of steps.facts.json.claims CLOSE (a row's list gives its
    first item). With each,
    the problem that stops it ("" when none)."""
    previews: list[tuple[Step, dict | None, str]] = []
    for index, step in enumerate(pipeline.steps):
        stand_ins = {}
        for earlier in pipeline.steps[:index]:
            fields = ("outputs", "jsons") if earlier.fans_out else ("output", "json")
            stand_ins[earlier.name] = {f: _StandIn(f"steps.{earlier.name}.{f}") for f in fields}
        context: dict[str, Any] = {"row": row, "steps": stand_ins}
        try:
            if step.fans_out and (step.for_each or "").startswith("steps."):
                context["item"] = _StandIn("item", f"{OPEN}item of {step.for_each}{CLOSE}")
            elif step.fans_out:
                items = fan_out_items(step, row=row, answers={})
                if not items:
                    previews.append((step, None, f"{step.for_each} is empty for this row: "
                                     "the step makes no job"))  # fmt: skip
                    continue
                context["item"] = items[0]
            previews.append((step, _rendered(step, context), ""))
        except RenderError as error:
            previews.append((step, None, str(error)))
    return previews


def template_problem(source: str) -> str | None:
    """Why a template over `row` alone does not parse, or uses a name other than row
    (a grader's expected value, say); None when it is fine."""
    try:
        ast = _SANDBOX.parse(source)
    except jinja2.TemplateSyntaxError as error:
        return f"the template does not parse: {error.message} (line {error.lineno})"
    names = meta.find_undeclared_variables(ast) - {"row"}
    if names:
        return f"the template uses {', '.join(sorted(names))}; only row is known here"
    return None


def render_text(source: str, *, row: dict, what: str = "text") -> str:
    """A template over `row` rendered in the sandbox (RenderError on failure)."""
    context = {"row": row}
    return _render_text(source, context, _paths_of(context), what)
