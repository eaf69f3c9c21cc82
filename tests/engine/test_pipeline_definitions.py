"""A pipeline's definition: checked whole (every problem named with its step, nothing
else returned), its steps and their parents as the engine reads them, and each step's
request rendered for a row from the answers before it, in a sandbox that reaches only
into the data and holds every text to FLEX_MAX_PROMPT_CHARS."""

from __future__ import annotations

import copy
import json
import time

import pytest

from jobs import gemini_shape
from jobs.engine import pipelines, submitting
from jobs.engine.pipelines import (
    Answer,
    DefinitionError,
    Pipeline,
    RenderError,
    definition_check,
    definition_load,
    render_request,
)
from jobs.engine.submitting import JobSpec

EXAMPLE = """
name: extract-then-summarise
steps:
  - name: facts
    model: gemini-2.5-flash
    prompt: "List the claims in: {{ row.text }}"
    response_schema: {type: object, properties: {claims: {type: array, items: {type: string}}}, required: [claims]}
  - name: check
    model: gemini-2.5-flash
    for_each: steps.facts.json.claims        # optional fan-out: one job per list item
    prompt: "Is this claim supported by the text? {{ item }} Text: {{ row.text }}"
  - name: summary
    model: gemini-2.5-pro
    tier: flex
    prompt: "Summarise, using only supported claims: {{ steps.check.outputs }}"
    continue: facts                          # optional: same conversation as step facts
"""  # noqa: E501
CLAIMS = {"type": "object", "properties": {"claims": {"type": "array", "items": {"type": "string"}},
          "title": {"type": "string"}}}  # fmt: skip
ROW = {"text": "The sky is blue. Grass is red.", "items": "a column named items", "n": 3}


def _example() -> Pipeline:
    return definition_check(definition_load(EXAMPLE))


def _definition(*steps: dict, **top) -> dict:
    return {"name": "p", "steps": list(steps), **top}


def _step(name: str, prompt: str = "Say hi", **fields) -> dict:
    return {"name": name, "model": "gemini-2.5-flash", "prompt": prompt, **fields}


def _facts(**fields) -> dict:
    return _step("facts", "Claims in {{ row.text }}", response_schema=CLAIMS, **fields)


def _one(prompt: str, **fields) -> pipelines.Step:
    return definition_check(_definition(_step("only", prompt, **fields))).steps[0]


def _text(request: dict) -> str:
    return request["contents"][-1]["parts"][0]["text"]


def _rendered(prompt: str, row: dict | None = None, **answers) -> str:
    step = pipelines.Step("t", "gemini-2.5-flash", "flex", None, False, False,
                          gemini_shape.simple(prompt), None, None, ())  # fmt: skip
    return _text(render_request(step, row=ROW if row is None else row, answers=answers))


# --- Bad definitions: each refused with its reason, and nothing else --------------------
BAD = [
    ("not a mapping", ["a", "b"], "must be a mapping with a name and steps, not a list"),
    ("no steps", {"name": "p", "steps": []}, "the pipeline needs steps"),
    ("no name", {"steps": [_step("a")]}, "the pipeline needs a name"),
    ("too many steps", _definition(*[_step(f"s{i}") for i in range(21)]),
     "the pipeline has 21 steps; the most is 20 (MAX_STEPS)"),
    ("unknown top field", _definition(_step("a"), stpes=[]),
     "the pipeline: unknown field 'stpes' (did you mean 'steps'?)"),
    ("unknown step field", _definition({**_step("a"), "promt": "x"}),
     "step a: unknown field 'promt' (did you mean 'prompt'?)"),
    ("bad step name", _definition(_step("2nd")), "step 1: the name '2nd' must be letters"),
    ("duplicate step name", _definition(_step("a"), _step("a")),
     "step a: the name is taken: steps 1 and 2 are both named a"),
    ("unknown model", _definition(_step("a", model="gpt-4")), "step a: Unknown model 'gpt-4'"),
    ("no model anywhere", _definition({"name": "a", "prompt": "x"}), "step a: names no model"),
    ("bad tier", _definition(_step("a", tier="cheap")), "step a: Unknown tier 'cheap'"),
    ("bad max_attempts", _definition(_step("a", max_attempts=99)),
     "step a: Max attempts must be between 1 and 50."),
    ("bad temperature", _definition(_step("a", temperature=3)),
     "step a: generation_config.temperature: must be a number from 0 to 2"),
    ("bad request shape", _definition({"name": "a", "model": "gemini-2.5-flash",
                                       "request": {"contents": [{"partz": []}]}}),
     "step a: request.contents[0].partz: is not a field Gemini knows here"),
    ("prompt and request", _definition(_step("a", request={"contents": [{"parts": [{"text": "x"}]}]})),  # noqa: E501
     "step a: takes a prompt (and system_instruction) or a request, not both"),
    ("no prompt", _definition({"name": "a", "model": "gemini-2.5-flash"}), "step a: has no prompt"),
    ("template syntax", _definition(_step("a", "Hi {{ row.text ")),
     "step a: the prompt does not parse: unexpected end of template"),
    ("macro", _definition(_step("a", "{% macro m() %}x{% endmacro %}")),
     "step a: the prompt does not parse: {% macro %} is not available in pipeline templates"),
    ("unknown filter", _definition(_step("a", "{{ row.text|format(1) }}")),
     "step a: the prompt does not parse: No filter named 'format'."),
    ("recursive loop", _definition(_step("a", "{% for x in row.l recursive %}{{ loop(x) }}{% endfor %}")),  # noqa: E501
     "step a: the prompt does not parse: recursive loops are not available in pipeline templates (line 1)"),  # noqa: E501
    ("unknown name", _definition(_step("a", "{{ rwo.text }}")),
     "step a: the prompt uses rwo, which is no template name: use row, steps or item"),
    ("unknown step", _definition(_step("a", "{{ steps.nope.output }}")),
     "step a: refers to steps.nope, which is no step of this pipeline"),
    ("later step", _definition(_step("a", "{{ steps.summary.output }}"), _step("summary")),
     "step a: refers to steps.summary, a later step: a step can use only the steps before it"),
    ("itself", _definition(_step("a", "{{ steps.a.output }}")),
     "step a: refers to steps.a, itself: a step can use only the steps before it"),
    ("cycle", _definition(_step("a", "{{ steps.b.output }}"), _step("b", "{{ steps.a.output }}")),
     "steps a and b refer to each other (a cycle)"),
    ("cycle of three", _definition(_step("a", "{{ steps.c.output }}"), _step("b", "{{ steps.a.output }}"),  # noqa: E501
                                   _step("c", "{{ steps.b.output }}")),
     "steps a, b and c refer to each other (a cycle)"),
    ("steps bare", _definition(_step("a"), _step("b", "{{ steps }}")),
     "step b: the prompt uses steps on its own"),
    ("unknown answer field", _definition(_step("a"), _step("b", "{{ steps.a.text }}")),
     "step b: the prompt reads steps.a.text: a step's answer is its output, json, outputs or jsons"),  # noqa: E501
    ("output of a fan-out", _definition(_facts(), _step("c", "{{ item }}", for_each="steps.facts.json.claims"),  # noqa: E501
                                        _step("s", "{{ steps.c.output }}")),
     "step s: reads steps.c.output, but step c fans out (for_each): use steps.c.outputs"),
    ("outputs of a plain step", _definition(_step("a"), _step("b", "{{ steps.a.outputs }}")),
     "step b: reads steps.a.outputs, but step a does not fan out: use steps.a.output"),
    ("json of a step without JSON", _definition(_step("a"), _step("b", "{{ steps.a.json.x }}")),
     "step b: reads steps.a.json, but step a asks for no JSON answer"),
    ("item without for_each", _definition(_step("a", "{{ item }}")),
     "step a: uses item, but the step has no for_each"),
    ("for_each not a path", _definition(_facts(), _step("c", "{{ item }}", for_each="facts.claims")),  # noqa: E501
     "step c: for_each must name a list: steps.STEP.json.PATH or row.COLUMN"),
    ("for_each without schema", _definition(_step("a"), _step("c", "{{ item }}", for_each="steps.a.json.x")),  # noqa: E501
     "step c: for_each names steps.a.json.x, but step a has no response_schema"),
    ("for_each over a string", _definition(_facts(), _step("c", "{{ item }}", for_each="steps.facts.json.title")),  # noqa: E501
     "step c: for_each names steps.facts.json.title, but step facts's response_schema says it is a string, not an array"),  # noqa: E501
    ("for_each over a missing property", _definition(_facts(), _step("c", "{{ item }}", for_each="steps.facts.json.claimz")),  # noqa: E501
     "step facts's response_schema has no property claimz at steps.facts.json"),
    ("for_each over a later step", _definition(_step("c", "{{ item }}", for_each="steps.facts.json.claims"), _facts()),  # noqa: E501
     "step c: for_each names steps.facts, a later step"),
    ("continue unknown", _definition(_step("a", **{"continue": "nope"})),
     "step a: continue names nope, which is no step of this pipeline"),
    ("continue itself", _definition(_step("a", **{"continue": "a"})),
     "step a: continue names a, itself"),
    ("continue later", _definition(_step("a", **{"continue": "b"}), _step("b")),
     "step a: continue names b, a later step"),
    ("continue a fan-out", _definition(_facts(), _step("c", "{{ item }}", for_each="steps.facts.json.claims"),  # noqa: E501
                                       _step("s", **{"continue": "c"})),
     "step s: continue names c, which fans out (for_each)"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "message"), [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])  # fmt: skip
def test_it_refuses_each_bad_definition_with_its_reason(raw, message):
    with pytest.raises(DefinitionError) as refused:
        definition_check(raw)
    assert len(refused.value.problems) == 1, refused.value.problems
    assert message in refused.value.problems[0]
    assert str(refused.value) == "; ".join(refused.value.problems)


def test_it_collects_every_problem_at_once():
    raw = _definition({**_step("a", "{{ steps.nope.output }}"), "promt": "x"},
                      _step("b", tier="cheap"), stpes=1)  # fmt: skip
    with pytest.raises(DefinitionError) as refused:
        definition_check(raw)
    assert len(refused.value.problems) == 4
    assert refused.value.problems[0].startswith("the pipeline: unknown field 'stpes'")


def test_it_says_a_cycle_once_and_not_as_later_steps():
    raw = _definition(_step("a", "{{ steps.b.output }}"), _step("b", "{{ steps.a.output }}"))
    with pytest.raises(DefinitionError) as refused:
        definition_check(raw)
    assert refused.value.problems == ["steps a and b refer to each other (a cycle)"]


def test_it_refuses_text_that_is_not_yaml_naming_the_line():
    with pytest.raises(DefinitionError) as refused:
        definition_load("name: p\nsteps:\n  - name: [a\n")
    assert str(refused.value).startswith("the pipeline definition is not YAML or JSON:")
    assert "line" in str(refused.value)


def test_it_loads_json_as_yaml_and_refuses_a_list():
    assert definition_load(b'{"name": "p", "steps": []}') == {"name": "p", "steps": []}
    assert definition_load('{\n\t"name": "p",\n\t"steps": []\n}') == {"name": "p", "steps": []}
    with pytest.raises(DefinitionError, match="not a list"):
        definition_load("[1, 2]")


# --- Good definitions ------------------------------------------------------------------------
def test_it_reads_the_issues_example_into_steps_and_parents():
    facts, check, summary = _example().steps
    assert (facts.name, facts.model, facts.tier, facts.parents) == ("facts", "gemini-2.5-flash",
                                                                    "flex", ())  # fmt: skip
    assert facts.request["generation_config"] == {"response_json_schema": {
        "type": "object", "properties": {"claims": {"type": "array", "items": {"type": "string"}}},
        "required": ["claims"]}, "response_mime_type": "application/json"}  # fmt: skip
    assert (check.for_each, check.fans_out, check.parents) == ("steps.facts.json.claims", True,
                                                               ("facts",))  # fmt: skip
    assert (summary.model, summary.continues, summary.fans_out) == (
        "gemini-2.5-pro",
        "facts",
        False,
    )
    assert summary.parents == ("facts", "check")
    assert (
        _text(summary.request)
        == "Summarise, using only supported claims: {{ steps.check.outputs }}"
    )


def test_it_answers_the_engines_questions_about_the_steps():
    pipeline = _example()
    assert [s.name for s in pipeline.roots] == ["facts"]
    assert [s.name for s in pipeline.children("facts")] == ["check", "summary"]
    assert [s.name for s in pipeline.children("check")] == ["summary"]
    assert [s.name for s in pipeline.descendants("facts")] == ["check", "summary"]
    assert pipeline.descendants("summary") == []
    assert pipeline.step("check").for_each == "steps.facts.json.claims"
    with pytest.raises(KeyError):
        pipeline.step("nope")


def test_it_round_trips_through_json_as_stored_on_the_run():
    pipeline = _example()
    stored = json.loads(json.dumps(pipeline.to_json()))
    assert Pipeline.from_json(stored) == pipeline


def test_it_takes_settings_from_the_step_then_the_pipeline_then_the_run_form():
    raw = _definition({"name": "a", "prompt": "x"}, {"name": "b", "prompt": "y", "tier": "standard"},  # noqa: E501
                      tier="priority", max_attempts=4)  # fmt: skip
    defaults = JobSpec(model="gemini-2.5-pro", max_attempts=9, fallback_standard=True,
                       retry_bad_output=True)  # fmt: skip
    a, b = definition_check(raw, defaults=defaults).steps
    assert (a.model, a.tier, a.max_attempts, a.fallback_standard, a.retry_bad_output) == (
        "gemini-2.5-pro", "priority", 4, True, True)  # fmt: skip
    assert (b.tier, b.max_attempts) == ("standard", 4)


def test_it_merges_a_steps_settings_into_its_request():
    step = _one("Hi", system_instruction="Be brief {{ row.n }}", temperature=0.2,
                max_output_tokens=50, generation_config={"topP": 0.5},
                tools=[{"google_search": {}}])  # fmt: skip
    assert step.request["system_instruction"] == {"parts": [{"text": "Be brief {{ row.n }}"}]}
    assert step.request["generation_config"] == {"temperature": 0.2, "max_output_tokens": 50,
                                                 "top_p": 0.5}  # fmt: skip
    assert step.request["tools"] == [{"google_search": {}}]


def test_it_takes_a_whole_request_whose_texts_are_templates():
    raw = _definition({"name": "a", "model": "gemini-2.5-flash", "request": {
        "systemInstruction": {"parts": [{"text": "Judge {{ row.n }}"}]},
        "contents": [{"role": "user", "parts": [{"text": "Q: {{ row.text }}"}]},
                     {"role": "model", "parts": [{"text": "ok"}]},
                     {"role": "user", "parts": [{"text": "{{ row.items }}"}]}]}})  # fmt: skip
    step = definition_check(raw).steps[0]
    request = render_request(step, row=ROW, answers={})
    assert [t["parts"][0]["text"] for t in request["contents"]] == [
        f"Q: {ROW['text']}", "ok", "a column named items"]  # fmt: skip
    assert request["system_instruction"] == {"parts": [{"text": "Judge 3"}]}


def test_it_refuses_a_template_error_in_a_whole_requests_text_by_its_place():
    raw = _definition({"name": "a", "model": "gemini-2.5-flash",
                       "request": {"contents": [{"parts": [{"text": "{% if %}"}]}]}})  # fmt: skip
    with pytest.raises(DefinitionError, match=r"step a: the request.contents\[0\].parts\[0\].text "
                       "does not parse"):  # fmt: skip
        definition_check(raw)


# --- Rendering ------------------------------------------------------------------------------------
def test_it_renders_row_columns_and_earlier_answers():
    pipeline = _example()
    answers = {"facts": [Answer('{"claims": ["a"]}', {"claims": ["sky", "grass"]})]}
    request = render_request(pipeline.step("facts"), row=ROW, answers={})
    assert _text(request) == f"List the claims in: {ROW['text']}"
    assert request["generation_config"]["response_mime_type"] == "application/json"
    assert pipelines.fan_out_items(pipeline.step("check"), row=ROW, answers=answers) == [
        "sky", "grass"]  # fmt: skip
    request = render_request(pipeline.step("check"), row=ROW, answers=answers, item="sky")
    assert _text(request) == f"Is this claim supported by the text? sky Text: {ROW['text']}"
    assert submitting.request_error(request) is None


def test_it_renders_a_fanned_out_steps_outputs_as_json_in_item_order():
    answers = {"facts": [Answer("{}", {"claims": ["a", "b"]})],
               "check": [Answer("yes «1»"), Answer("no")]}  # fmt: skip
    request = render_request(_example().step("summary"), row=ROW, answers=answers)
    assert _text(request) == 'Summarise, using only supported claims: ["yes «1»", "no"]'


def test_it_renders_json_paths_and_dicts_as_json():
    facts = Answer("{}", {"who": {"name": "Ada", "tags": ["x", "y"]}})
    assert _rendered("{{ steps.facts.json.who.name }} {{ steps.facts.json.who.tags[1] }}",
                     facts=[facts]) == "Ada y"  # fmt: skip
    assert _rendered("{{ steps.facts.json.who }}", facts=[facts]) == json.dumps(
        {"name": "Ada", "tags": ["x", "y"]})  # fmt: skip
    assert _rendered("{{ steps.facts.json.who.tags|join(', ') }}", facts=[facts]) == "x, y"


def test_it_names_the_whole_path_that_is_undefined():
    facts = [Answer("{}", {"claims": []})]
    with pytest.raises(RenderError, match=r"^steps\.facts\.json\.claimz is undefined$"):
        _rendered("{{ steps.facts.json.claimz }}", facts=facts)
    with pytest.raises(RenderError, match=r"^row\.nope is undefined$"):
        _rendered("{{ row.nope }}")
    with pytest.raises(RenderError, match=r"^steps\.facts\.json\.claims\[3\] is undefined$"):
        _rendered("{{ steps.facts.json.claims[3] }}", facts=facts)


def test_it_fans_out_over_a_row_list_and_a_csv_cell_holding_json():
    step = _one("{{ item.id }}", for_each="row.things")
    assert pipelines.fan_out_items(step, row={"things": [{"id": 1}]}, answers={}) == [{"id": 1}]
    assert pipelines.fan_out_items(step, row={"things": '["a", "b"]'}, answers={}) == ["a", "b"]
    assert _text(render_request(step, row={}, answers={}, item={"id": 7})) == "7"


@pytest.mark.parametrize(("row", "message"), [
    ({}, "row.things is missing"),
    ({"things": "plain text"}, "row.things is a string, not a list"),
    ({"things": list(range(101))}, "row.things has 101 items; a for_each takes at most 100"),
])  # fmt: skip
def test_it_refuses_a_fan_out_that_is_not_a_short_list(row, message):
    step = _one("{{ item }}", for_each="row.things")
    with pytest.raises(RenderError, match=message):
        pipelines.fan_out_items(step, row=row, answers={})


def test_it_continues_an_earlier_conversation_without_its_thoughts():
    earlier = gemini_shape.simple("List the claims", system_instruction="Be exact")
    response = {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "thinking...", "thought": True},
        {"text": '{"claims": ["a"]}', "thoughtSignature": "c2ln"}]}}]}  # fmt: skip
    request = pipelines.continued(gemini_shape.simple("Now summarise"), earlier_request=earlier,
                                  earlier_response=response, earlier_text="ignored")  # fmt: skip
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "List the claims"}]},
        {"role": "model", "parts": [{"text": '{"claims": ["a"]}'}]},
        {"role": "user", "parts": [{"text": "Now summarise"}]},
    ]
    assert request["system_instruction"] == {"parts": [{"text": "Be exact"}]}
    own = pipelines.continued(gemini_shape.simple("Go", system_instruction="Mine"),
                              earlier_request=earlier, earlier_response=None,
                              earlier_text="the answer")  # fmt: skip
    assert own["contents"][1] == {"role": "model", "parts": [{"text": "the answer"}]}
    assert own["system_instruction"] == {"parts": [{"text": "Mine"}]}


# --- The sandbox -------------------------------------------------------------------------------
@pytest.mark.parametrize("template", [
    "{{ row.__class__ }}", "{{ row.text.__class__.__mro__ }}", "{{ ''.join }}",
    "{{ row.text.upper() }}", "{{ range(3) }}", "{{ lipsum() }}", "{{ cycler(1) }}",
    "{{ joiner() }}", "{{ namespace() }}", "{{ dict(a=1) }}", "{{ row.keys() }}",
    "{{ row|attr('__class__') }}", "{{ (row|attr('keys'))() }}", "{{ '%s' % row.text }}",
    "{{ '{0}'.format(row) }}",
])  # fmt: skip
def test_it_reaches_nothing_but_the_data(template):
    with pytest.raises(RenderError):
        _rendered(template)


def test_it_reads_a_column_named_like_a_dict_method():
    assert (
        _rendered("{{ row.items }} / {{ row['items'] }}")
        == "a column named items / a column named items"
    )
    assert _rendered("{{ row.values }}", row={"values": "v"}) == "v"


def test_it_keeps_filters_and_loops_that_only_read():
    template = "{% for c in row.cs %}{{ loop.index }}={{ c|upper }} {% endfor %}{{ row.cs|length }}"
    assert _rendered(template, row={"cs": ["a", "b"]}) == "1=A 2=B 2"
    assert _rendered("{{ row.text|truncate(9, True, '') }}~{{ row.n * 2 }}") == "The sky i~6"


@pytest.mark.parametrize("template", [
    "{{ 'x' * 10**9 }}", "{{ 10 ** 100000 }}", "{{ (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) * (10 ** 1000) }}", "{{ [row.text] * 10**8 }}",  # noqa: E501
    "{% set a = row.big ~ row.big %}{% set a = a ~ a %}{{ a }}",
    "{{ [row.big, row.big, row.big]|join }}", "{{ row.big|replace('', row.big) }}",
    "{% for a in row.cs %}{% for b in row.cs %}{% for c in row.cs %}{% endfor %}{% endfor %}{% endfor %}",  # noqa: E501
    "{% for a in row.cs %}{% for b in row.cs %}{{ row.big }}{% endfor %}{% endfor %}",
    "{{ [row.big, row.big, row.big] }}",
])  # fmt: skip
def test_it_refuses_quickly_what_would_grow_past_the_cap(template, settings):
    settings.FLEX_MAX_PROMPT_CHARS = 100_000
    started = time.monotonic()
    with pytest.raises(RenderError):
        _rendered(template, row={"big": "x" * 40_000, "cs": list(range(100)), "text": "t"})
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("template", "row"), [
    ("{{ row.a }}{{ row.a }}", {"a": "x" * 600}),
    ("{{ row.a }}", {"a": "x" * 1_200}),
    ("{{ row.a }}" + "y" * 600, {"a": "x" * 600}),
])  # fmt: skip
def test_it_says_how_long_a_rendered_prompt_is_past_the_cap(template, row, settings):
    settings.FLEX_MAX_PROMPT_CHARS = 1_000
    with pytest.raises(RenderError) as refused:
        _rendered(template, row=row)
    assert str(refused.value) == ("the rendered prompt is 1,200 characters; the limit is 1,000 "
                                  "(FLEX_MAX_PROMPT_CHARS)")  # fmt: skip


def test_it_holds_the_whole_request_to_the_cap(settings):
    settings.FLEX_MAX_PROMPT_CHARS = 1_000
    step = definition_check(_definition({"name": "a", "model": "gemini-2.5-flash", "request": {
        "contents": [{"parts": [{"text": "{{ row.a }}"}]}, {"role": "model", "parts": [{"text": "ok"}]},  # noqa: E501
                     {"parts": [{"text": "{{ row.a }}"}]}]}})).steps[0]  # fmt: skip
    with pytest.raises(RenderError, match="the limit is 1,000 .FLEX_MAX_PROMPT_CHARS."):  # noqa: RUF043
        render_request(step, row={"a": "x" * 600}, answers={})


def test_it_leaves_the_stored_step_untouched_by_rendering():
    step = _example().step("facts")
    before = copy.deepcopy(step.request)
    render_request(step, row=ROW, answers={})
    assert step.request == before


# --- The preview -----------------------------------------------------------------------------------  # noqa: E501
def test_it_previews_every_step_with_stand_ins_for_earlier_answers():
    raw = definition_load(EXAMPLE)
    raw["steps"].append(_step("last", "{{ steps.facts.output }} | {{ steps.facts.json.claims }}"))
    previews = pipelines.preview_requests(definition_check(raw), ROW)
    assert [(step.name, problem) for step, _, problem in previews] == [
        ("facts", ""), ("check", ""), ("summary", ""), ("last", "")]  # fmt: skip
    texts = [_text(request) for _, request, _ in previews]
    assert texts[0] == f"List the claims in: {ROW['text']}"
    assert (
        texts[1]
        == f"Is this claim supported by the text? ‹item of steps.facts.json.claims› Text: {ROW['text']}"  # noqa: E501, RUF001
    )
    assert texts[2] == "Summarise, using only supported claims: ‹steps.check.outputs›"  # noqa: RUF001
    assert texts[3] == "‹steps.facts.output› | ‹steps.facts.json.claims›"  # noqa: RUF001


def test_it_previews_a_rows_problem_in_place_of_its_request():
    raw = _definition(
        _step("a", "{{ row.missing }}"), _step("b", "{{ item }}", for_each="row.tags")
    )
    previews = pipelines.preview_requests(definition_check(raw), {"tags": []})
    assert [(request, problem) for _, request, problem in previews] == [
        (None, "row.missing is undefined"),
        (None, "row.tags is empty for this row: the step makes no job"),
    ]


def test_it_joins_a_steps_settings_to_a_camel_case_requests_own():
    raw = _definition({"name": "a", "model": "gemini-2.5-flash", "temperature": 0.5, "request": {
        "contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topK": 3}}})  # fmt: skip
    config = definition_check(raw).steps[0].request["generation_config"]
    assert config == {"top_k": 3, "temperature": 0.5}


def test_it_stores_the_run_forms_tier_as_plain_text():
    step = definition_check(_definition({"name": "a", "prompt": "x"}),
                            defaults=JobSpec(model="gemini-2.5-flash")).steps[0]  # fmt: skip
    assert (step.tier, type(step.tier)) == ("flex", str)
    assert json.dumps(Pipeline(name="p", steps=(step,)).to_json())
