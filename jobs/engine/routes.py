"""How a request in Gemini's shape travels each route, and how its answer comes back in one.

generateContent takes the request as it is (jobs/gemini_shape.py is its shape). The
Interactions API names things its own way (`input` steps and content blocks, a string
system instruction, `response_format`, tools with a `type`), and has no place for some
fields (gemini_shape.interactions_gaps): a request that needs one goes by generateContent,
never with the field dropped. An Interaction's answer is read into a
GenerateContentResponse, so everything after the gateway sees one shape. Pure dict work:
the SDK itself is only in jobs/engine/gemini.py.
"""

from __future__ import annotations

from typing import Any

from jobs import gemini_shape

ROUTES = ("interactions", "generate_content")
# An interaction in these states carries an answer: whole, cut at the token limit, or a
# function call for the caller to make.
ANSWERED_STATUSES = frozenset({"completed", "incomplete", "requires_action"})
_FINISH_FOR_STATUS = {"completed": "STOP", "incomplete": "MAX_TOKENS", "requires_action": "STOP"}
_INTERACTIONS_GENERATION = ("temperature", "top_p", "seed", "stop_sequences", "max_output_tokens")


def route_for(request: dict, default: str) -> str:
    """The route a request goes by: the configured one, unless only generateContent
    carries a field it needs."""
    if default != "generate_content" and gemini_shape.interactions_gaps(request):
        return "generate_content"
    return default


# --- generateContent -----------------------------------------------------------------
def generate_content_arguments(request: dict) -> tuple[list[dict], dict]:
    """(contents, config): the config is GenerateContentConfig's fields, snake_case."""
    config = dict(gemini_shape.generation(request))
    for name in ("system_instruction", "safety_settings", "tools", "tool_config", "cached_content"):
        if name in request:
            config[name] = request[name]
    return request["contents"], config


_BLOCK_WORDS = {
    "SAFETY": "Blocked by Gemini's safety filter",
    "PROHIBITED_CONTENT": "Blocked by Gemini: prohibited content",
    "BLOCKLIST": "Blocked by Gemini: a term on the blocklist",
    "SPII": "Blocked by Gemini: sensitive personal information",
    "IMAGE_SAFETY": "Blocked by Gemini's image safety filter",
    "RECITATION": "Stopped by Gemini: the answer recited its training data",
    "MALFORMED_FUNCTION_CALL": "Gemini produced a malformed function call",
    "LANGUAGE": "Gemini does not answer in the language asked for",
    "OTHER": "Gemini stopped without an answer",
}


def _has_content(candidate: dict) -> bool:
    return bool((candidate.get("content") or {}).get("parts"))


def blocked_reason(response: dict) -> str | None:
    """Why an answer holds nothing to keep, in words; None when it has an answer."""
    found = gemini_shape.candidates(response)
    if any(_has_content(candidate) for candidate in found):
        return None
    feedback = response.get("promptFeedback") or {}
    if feedback.get("blockReason"):
        reason = str(feedback["blockReason"])
        words = _BLOCK_WORDS.get(reason, "Blocked by Gemini")
        return f"The prompt was refused. {words} ({reason}){_ratings(feedback)}."
    if not found:
        return "The answer had no candidates."
    reason = str(found[0].get("finishReason") or "no finish reason")
    words = _BLOCK_WORDS.get(reason, "Gemini stopped without an answer")
    return f"{words} (finish reason {reason}){_ratings(found[0])}."


def block_status(response: dict) -> str:
    feedback = response.get("promptFeedback") or {}
    if feedback.get("blockReason"):
        return f"PROMPT_{feedback['blockReason']}"[:64]
    return gemini_shape.finish_reason(response) or "NO_CANDIDATES"


def _ratings(holder: dict) -> str:
    blocked = [r for r in holder.get("safetyRatings") or [] if r.get("blocked")]
    if not blocked:
        return ""
    named = ", ".join(
        f"{str(r.get('category', '')).removeprefix('HARM_CATEGORY_').lower().replace('_', ' ')}"
        f" rated {r.get('probability', '?')}"
        for r in blocked
    )
    return f": {named}"


# --- Interactions ----------------------------------------------------------------------
def interactions_arguments(request: dict, previous_interaction_id: str = "") -> dict[str, Any]:
    """The keyword arguments of interactions.create for `request` (model and tier aside).
    Call only for a request route_for sends this way.

    With `previous_interaction_id` the request continues that stored interaction: Google
    holds its turns (interactions are stored unless `store=False`, which we never send),
    so only the turns after the request's last model turn go as input. Everything else
    (system instruction, config, tools) belongs to one interaction and is sent again."""
    contents = request["contents"]
    kwargs: dict[str, Any] = {}
    if previous_interaction_id:
        kwargs["previous_interaction_id"] = previous_interaction_id
        contents = contents[_after_last_model_turn(contents) :]
    kwargs["input"] = _input(contents)
    if system := gemini_shape.system_text(request):
        kwargs["system_instruction"] = system
    config = gemini_shape.generation(request)
    generation = {name: config[name] for name in _INTERACTIONS_GENERATION if name in config}
    if level := config.get("thinking_config", {}).get("thinking_level"):
        generation["thinking_level"] = level
    if generation:
        kwargs["generation_config"] = generation
    mime = config.get("response_mime_type")
    if mime:
        kwargs["response_mime_type"] = mime
    if "response_json_schema" in config:
        kwargs["response_format"] = {
            "type": "text",
            "mime_type": gemini_shape.JSON_MIME,
            "schema": config["response_json_schema"],
        }
    if modalities := config.get("response_modalities"):
        kwargs["response_modalities"] = [m.lower() for m in modalities]
    if settings := request.get("safety_settings"):
        kwargs["safety_settings"] = [_safety(setting) for setting in settings]
    if tools := request.get("tools"):
        kwargs["tools"] = [item for tool in tools for item in _tools(tool)]
    if cached := request.get("cached_content"):
        kwargs["cached_content"] = cached
    return kwargs


def _after_last_model_turn(contents: list[dict]) -> int:
    models = [i for i, turn in enumerate(contents) if turn.get("role") == "model"]
    return models[-1] + 1 if models else 0


def _input(contents: list[dict]) -> Any:
    """One user turn of one text part goes as a plain string, as it always has;
    anything else as steps holding content blocks."""
    if len(contents) == 1 and contents[0].get("role", "user") == "user":
        parts = contents[0]["parts"]
        if len(parts) == 1 and set(parts[0]) == {"text"}:
            return parts[0]["text"]
    steps: list[dict] = []
    for turn in contents:
        kind = "model_output" if turn.get("role") == "model" else "user_input"
        blocks: list[dict] = []
        for part in turn["parts"]:
            if "function_call" in part:
                call = part["function_call"]
                call_id = str(call.get("id") or call["name"])
                steps.append({"type": "function_call", "id": call_id, "name": call["name"],
                              "arguments": call.get("args") or {}})  # fmt: skip
            elif "function_response" in part:
                answer = part["function_response"]
                name = answer.get("name", "")
                steps.append({"type": "function_result", "call_id": str(answer.get("id") or name),
                              "name": name, "result": answer.get("response") or {}})  # fmt: skip
            elif block := _block(part):
                blocks.append(block)
        if blocks:
            steps.append({"type": kind, "content": blocks})
    return steps


def _block(part: dict) -> dict | None:
    if "text" in part:
        return {"type": "text", "text": part["text"]}
    blob = part.get("inline_data") or part.get("file_data")
    if blob is None:
        return None
    mime = blob.get("mime_type", "")
    block: dict[str, Any] = {"type": "image" if mime.startswith("image/") else "document"}
    if mime:
        block["mime_type"] = mime
    if "data" in blob:
        block["data"] = blob["data"]
    else:
        block["uri"] = blob["file_uri"]
    return block


def _safety(setting: dict) -> dict:
    category = str(setting.get("category", "")).removeprefix("HARM_CATEGORY_").lower()
    return {"type": category, "threshold": str(setting.get("threshold", "")).lower()}


def _tools(tool: dict) -> list[dict]:
    found = []
    for function in tool.get("function_declarations") or []:
        declared = {"type": "function", "name": function["name"]}
        if "description" in function:
            declared["description"] = function["description"]
        schema = function.get("parameters_json_schema")
        if schema is None and "parameters" in function:
            schema = gemini_shape.openapi_as_json_schema(function["parameters"])
        if schema is not None:
            declared["parameters"] = schema
        found.append(declared)
    for name in ("google_search", "code_execution", "url_context"):
        if name in tool:
            found.append({"type": name})
    return found


def interaction_failure(interaction: dict) -> str:
    status = interaction.get("status")
    errors = [str(e.get("message") or e) for e in interaction.get("errors") or [] if e]
    detail = f": {'; '.join(errors)}" if errors else ""
    return f"Interaction {interaction.get('id', '')} ended with status {status!r}{detail}"


def interaction_as_response(interaction: dict) -> dict:
    """An answered Interaction as a GenerateContentResponse (JSON, camelCase)."""
    parts: list[dict] = []
    for step in interaction.get("steps") or []:
        kind = step.get("type")
        if kind == "model_output":
            for block in step.get("content") or []:
                if block.get("type") == "text":
                    parts.append({"text": block.get("text", "")})
                elif block.get("type") == "image" and "data" in block:
                    parts.append({"inlineData": {"mimeType": block.get("mime_type", ""),
                                                 "data": block["data"]}})  # fmt: skip
        elif kind == "function_call":
            call = {"name": step.get("name", ""), "args": step.get("arguments") or {}}
            if step.get("id"):
                call["id"] = step["id"]
            parts.append({"functionCall": call})
    usage = interaction.get("usage") or {}
    counts = {
        "promptTokenCount": usage.get("total_input_tokens"),
        "candidatesTokenCount": usage.get("total_output_tokens"),
        "thoughtsTokenCount": usage.get("total_thought_tokens"),
        "cachedContentTokenCount": usage.get("total_cached_tokens"),
        "totalTokenCount": usage.get("total_tokens"),
    }
    candidate: dict[str, Any] = {
        "finishReason": _FINISH_FOR_STATUS.get(str(interaction.get("status")), "STOP"),
        "index": 0,
    }
    if parts:
        candidate["content"] = {"role": "model", "parts": parts}
    return {
        "candidates": [candidate],
        "usageMetadata": {name: value for name, value in counts.items() if value is not None},
        "modelVersion": interaction.get("model", ""),
        "responseId": interaction.get("id", ""),
    }
