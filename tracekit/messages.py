"""Building `gen_ai.input.messages`, `gen_ai.output.messages`, `gen_ai.system_instructions` and
`gen_ai.tool.definitions` exactly as the OTel GenAI JSON schemas say (reference/semconv.md §3).

Instrumentors turn their framework's messages into the neutral shapes below (plain dicts, so they serialize
as-is), then `render()` applies the content policy: with content off the text, tool arguments and tool results
are dropped while roles, part types, tool names and call ids stay; with content on the JSON is redacted.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Sequence

from tracekit import semconv
from tracekit.content import ContentSettings

__all__ = [
    "text_part",
    "tool_call_part",
    "tool_call_response_part",
    "reasoning_part",
    "message",
    "output_message",
    "function_tool_definition",
    "structure_only",
    "render",
    "to_json",
    "parse_arguments",
]

Part = dict[str, Any]
Message = dict[str, Any]

try:  # orjson is a dependency; fall back to json only if a broken install lacks it
    import orjson

    def to_json(value: Any) -> str:
        """Compact JSON (UTF-8 kept as is), with anything unknown turned into its string form."""
        try:
            return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
        except TypeError:
            # What orjson refuses: integers beyond 64 bits, lone surrogates. json takes both; its ASCII escapes
            # keep a surrogate from breaking the UTF-8 encoding on export.
            return json.dumps(value, default=str, separators=(",", ":"))

except ImportError:  # pragma: no cover

    def to_json(value: Any) -> str:
        """Compact JSON (UTF-8 kept as is), with anything unknown turned into its string form."""
        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def parse_arguments(arguments: Any) -> Any:
    """Tool-call arguments as an object when they are a JSON string (the spec expects objects), else as given."""
    if isinstance(arguments, str):
        stripped = arguments.strip()
        if stripped[:1] in ("{", "["):
            try:
                return json.loads(stripped)
            except ValueError:
                return arguments
    return arguments


def text_part(content: str) -> Part:
    """A TextPart."""
    return {"type": "text", "content": content}


def reasoning_part(content: str) -> Part:
    """A ReasoningPart."""
    return {"type": "reasoning", "content": content}


def tool_call_part(call_id: str | None, name: str, arguments: Any = None) -> Part:
    """A ToolCallRequestPart; `arguments` may be a JSON string (parsed best-effort) or an object."""
    part: Part = {"type": "tool_call", "id": call_id, "name": name}
    if arguments is not None:
        part["arguments"] = parse_arguments(arguments)
    return part


def tool_call_response_part(call_id: str | None, response: Any) -> Part:
    """A ToolCallResponsePart (the schema's key is `response`)."""
    return {"type": "tool_call_response", "id": call_id, "response": parse_arguments(response)}


def message(role: str, parts: Sequence[Part], *, name: str | None = None) -> Message:
    """A ChatMessage (input messages)."""
    result: Message = {"role": role, "parts": list(parts)}
    if name:
        result["name"] = name
    return result


def output_message(role: str, parts: Sequence[Part], finish_reason: str | None, *, name: str | None = None) -> Message:
    """An OutputMessage; v1.37 requires `finish_reason`, so `error`-free unknowns become `stop`."""
    result = message(role, parts, name=name)
    result["finish_reason"] = finish_reason or "stop"
    return result


def function_tool_definition(name: str, description: str | None = None, parameters: Any = None) -> dict[str, Any]:
    """A FunctionToolDefinition in the flat OTel form `{type, name, description, parameters}`."""
    definition: dict[str, Any] = {"type": "function", "name": name}
    if description:
        definition["description"] = description
    if parameters is not None:
        definition["parameters"] = parameters
    return definition


# Fields that carry content, per part type; everything else (type, id, name, mime_type, modality) is structure.
_CONTENT_FIELDS = {
    "text": ("content",),
    "reasoning": ("content",),
    "tool_call": ("arguments",),
    "tool_call_response": ("response",),
    "server_tool_call": ("server_tool_call",),
    "server_tool_call_response": ("server_tool_call_response",),
    "blob": ("content",),
    "file": ("file_id",),
    "uri": ("uri",),
    "compaction": ("content",),
}
_STRUCTURE_FIELDS_OF_UNKNOWN_PARTS = ("type", "id", "name", "mime_type", "modality")


def _structure_part(part: Mapping[str, Any]) -> Part:
    part_type = part.get("type")
    dropped = _CONTENT_FIELDS.get(part_type)  # type: ignore[arg-type]
    if dropped is None:
        return {key: part[key] for key in _STRUCTURE_FIELDS_OF_UNKNOWN_PARTS if key in part}
    kept = {key: value for key, value in part.items() if key not in dropped}
    if part_type in ("server_tool_call", "server_tool_call_response"):
        inner = part.get(part_type)
        if isinstance(inner, Mapping) and "type" in inner:
            kept[part_type] = {"type": inner["type"]}
    return kept


def structure_only(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages (or a system-instructions part list) with content dropped and structure kept."""
    result = []
    for item in items:
        if "parts" in item:
            copy = {key: value for key, value in item.items() if key != "parts"}
            copy["parts"] = [_structure_part(part) for part in item["parts"]]
            result.append(copy)
        elif "type" in item:
            result.append(_structure_part(item))
    return result


def _tool_definitions_structure(definitions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    # Spec: description and parameters are not populated by default; type and name are structure.
    return [{key: definition[key] for key in ("type", "name") if key in definition} for definition in definitions]


def render(key: str, items: Sequence[Mapping[str, Any]], settings: ContentSettings, *,
           structure_ready: bool = False) -> tuple[str | None, int]:
    """The attribute value for `key` under `settings`, and how many values redaction masked.

    Returns (None, 0) when nothing should be recorded: system instructions with content off, or no items.
    `structure_ready` says the items were built without content already (a fast path for instrumentors).
    """
    if not items:
        return None, 0
    if not settings.on_spans:
        if key == semconv.GEN_AI_SYSTEM_INSTRUCTIONS:
            return None, 0
        if key == semconv.GEN_AI_TOOL_DEFINITIONS:
            return to_json(_tool_definitions_structure(items)), 0
        return to_json(items if structure_ready else structure_only(items)), 0
    return settings.redact(key, to_json(list(items)))
