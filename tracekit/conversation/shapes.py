"""Reading message content from every shape instrumentations record it in, into one SpanContent.

Shapes, in the order they are tried (the first that yields content wins, so a span recorded two ways is not doubled):
1. OTel GenAI v1.37+ JSON attributes: `gen_ai.input.messages`, `gen_ai.output.messages`, `gen_ai.system_instructions`
   (JSON strings on spans, or structured values), including the v1.37 variants (`result` instead of `response` in tool
   results, `finish_reason` on output messages) and OpenAI-style `{"role", "content"}` messages some libraries emit.
2. The `gen_ai.client.inference.operation.details` event, as a span event or as a log record correlated by span id.
3. Legacy per-message events (<= v1.36): `gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`,
   `gen_ai.tool.message`, `gen_ai.choice`, as span events (attributes, or a `gen_ai.event.content` JSON string) or as
   log records (body), plus the older `gen_ai.content.prompt` / `gen_ai.content.completion` span events.
4. OpenInference flattened attributes: `llm.input_messages.N.message.*`, `llm.output_messages.N.message.*`.
5. Legacy indexed attributes: `gen_ai.prompt.N.*`, `gen_ai.completion.N.*` (OpenLLMetry and older SDKs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

import orjson

from tracekit import semconv
from tracekit.conversation.model import NOT_RECORDED, Message, Part, PartKind, SpanContent


@dataclass
class EventRecord:
    """A span event or a log record correlated with a span: its name, attributes and body (logs only)."""

    name: str | None
    attributes: dict[str, Any]
    body: Any = None
    time_ns: int = 0


def parse_json(value: Any) -> Any:
    """A JSON string decoded (other values as they are); undecodable strings are returned unchanged."""
    if isinstance(value, (str, bytes)):
        text = value.strip() if isinstance(value, str) else value
        if text[:1] in ("[", "{", b"[", b"{"):
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                return value
    return value


# --- shape 1: OTel GenAI JSON messages -----------------------------------------------------------------------------------

_MEDIA_TYPES = {"blob", "file", "uri", "image", "image_url", "input_image", "audio", "input_audio"}


def part_from_json(raw: Any) -> Part:
    """One OTel message part (any schema version) as a Part."""
    if isinstance(raw, str):
        return Part(PartKind.TEXT, raw)
    if not isinstance(raw, dict):
        return Part(PartKind.OTHER, raw, name=type(raw).__name__)
    kind = str(raw.get("type") or "text")
    if kind in ("text", "input_text", "output_text"):
        return Part(PartKind.TEXT, _content(raw, "content", "text"))
    if kind in ("tool_call", "function_call", "server_tool_call"):
        arguments = raw.get("arguments", raw.get("server_tool_call", NOT_RECORDED))
        return Part(PartKind.TOOL_CALL, parse_json(arguments), call_id=_str(raw.get("id") or raw.get("call_id")),
                    name=_str(raw.get("name")) or "tool")
    if kind in ("tool_call_response", "function_call_output", "server_tool_call_response"):
        # The schema says `response`; v1.37-era docs, LangChain-Azure and azure-ai-projects wrote `result`.
        result = _content(raw, "response", "result", "output", "server_tool_call_response", "content")
        return Part(PartKind.TOOL_RESULT, parse_json(result), call_id=_str(raw.get("id") or raw.get("call_id")))
    if kind == "reasoning":
        return Part(PartKind.REASONING, _content(raw, "content", "text"))
    if kind in _MEDIA_TYPES:
        reference = raw.get("uri") or raw.get("file_id") or raw.get("mime_type") or raw.get("modality")
        return Part(PartKind.MEDIA, _str(reference) if reference is not None else NOT_RECORDED, name=kind)
    generic = {key: value for key, value in raw.items() if key != "type"}
    return Part(PartKind.OTHER, generic if generic else NOT_RECORDED, name=str(raw.get("generic_type") or kind))


def _content(raw: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in raw:
            return raw[key]
    return NOT_RECORDED


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def message_from_json(raw: Any) -> Message | None:
    """One chat message in the OTel shape (`role` + `parts`) or the OpenAI shape (`role` + `content`/`tool_calls`)."""
    if not isinstance(raw, dict):
        return None
    role = str(raw.get("role") or "unknown")
    message = Message(role=role, name=_str(raw.get("name")), finish_reason=_str(raw.get("finish_reason")))
    if isinstance(raw.get("parts"), list):
        message.parts = [part_from_json(part) for part in raw["parts"]]
        return message
    # OpenAI chat shape, used by legacy events and several SDKs.
    content = raw.get("content", NOT_RECORDED)
    if isinstance(content, list):
        message.parts = [part_from_json(part) for part in content]
    elif content is not None and (content is not NOT_RECORDED or not raw.get("tool_calls")):
        kind = PartKind.TOOL_RESULT if role == "tool" else PartKind.TEXT
        call_id = _str(raw.get("tool_call_id") or raw.get("id")) if role == "tool" else None
        message.parts.append(Part(kind, parse_json(content) if kind is PartKind.TOOL_RESULT else content,
                                  call_id=call_id))
    for call in raw.get("tool_calls") or []:
        message.parts.append(_openai_tool_call(call))
    return message


def _openai_tool_call(call: Any) -> Part:
    if not isinstance(call, dict):
        return Part(PartKind.TOOL_CALL, NOT_RECORDED, name="tool")
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    arguments = function.get("arguments", NOT_RECORDED)
    return Part(PartKind.TOOL_CALL, parse_json(arguments), call_id=_str(call.get("id")),
                name=_str(function.get("name")) or "tool")


def messages_from_json(value: Any) -> list[Message]:
    """A `gen_ai.input.messages` / `gen_ai.output.messages` value (JSON string or structured) as messages."""
    value = parse_json(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return []
    return [message for message in (message_from_json(item) for item in value) if message is not None]


def parts_from_system(value: Any) -> list[Part] | None:
    """`gen_ai.system_instructions`: an array of parts (a plain string is accepted too)."""
    if value is None:
        return None
    value = parse_json(value)
    if isinstance(value, str):
        return [Part(PartKind.TEXT, value)]
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list):
        return [part_from_json(item) for item in value]
    return None


def _from_genai_attributes(attributes: dict[str, Any], source: str) -> SpanContent | None:
    system = parts_from_system(attributes.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS))
    inputs = messages_from_json(attributes.get(semconv.GEN_AI_INPUT_MESSAGES))
    outputs = messages_from_json(attributes.get(semconv.GEN_AI_OUTPUT_MESSAGES))
    if system is None and not inputs and not outputs:
        return None
    return SpanContent(system=system, input=inputs, output=outputs, source=source)


# --- shape 3: legacy per-message events ---------------------------------------------------------------------------------

_LEGACY_ROLES = {
    semconv.EVENT_SYSTEM_MESSAGE: "system",
    semconv.EVENT_USER_MESSAGE: "user",
    semconv.EVENT_ASSISTANT_MESSAGE: "assistant",
    semconv.EVENT_TOOL_MESSAGE: "tool",
}
LEGACY_EVENT_NAMES = frozenset({*_LEGACY_ROLES, semconv.EVENT_CHOICE})
_AZURE_EVENT_CONTENT = "gen_ai.event.content"  # azure-ai-inference and azure-ai-agents put the body here on span events


def _legacy_body(record: EventRecord) -> dict[str, Any]:
    body = parse_json(record.body)
    if isinstance(body, dict):
        return body
    content = parse_json(record.attributes.get(_AZURE_EVENT_CONTENT))
    if isinstance(content, dict):
        return content
    # Some emitters put the body fields straight into the event attributes.
    return {key: parse_json(value) for key, value in record.attributes.items()
            if key in ("content", "role", "tool_calls", "id", "message", "finish_reason", "index")}


def _from_legacy_events(records: list[EventRecord]) -> SpanContent | None:
    content = SpanContent(source="legacy events")
    system_parts: list[Part] = []
    for record in records:
        if record.name == semconv.EVENT_CHOICE:
            body = _legacy_body(record)
            message_body = body.get("message") if isinstance(body.get("message"), dict) else {}
            merged = {"role": "assistant", **message_body}
            if body.get("tool_calls") and not merged.get("tool_calls"):
                merged["tool_calls"] = body["tool_calls"]
            message = message_from_json(merged)
            if message is not None:
                message.finish_reason = _str(body.get("finish_reason"))
                content.output.append(message)
            continue
        role = _LEGACY_ROLES.get(record.name or "")
        if role is None:
            continue
        body = _legacy_body(record)
        message = message_from_json({"role": role, **body})
        if message is None:
            continue
        if role == "system" and body.get("role", "system") == "system":
            system_parts.extend(message.parts)
        else:
            content.input.append(message)
    if system_parts:
        content.system = system_parts
    return None if content.empty else content


def _from_prompt_completion_events(records: list[EventRecord]) -> SpanContent | None:
    """The pre-v1.27 span events `gen_ai.content.prompt` / `gen_ai.content.completion` (OpenLLMetry, early SDKs)."""
    content = SpanContent(source="gen_ai.content events")
    for record in records:
        if record.name == "gen_ai.content.prompt":
            content.input.extend(messages_from_json(record.attributes.get("gen_ai.prompt")))
        elif record.name == "gen_ai.content.completion":
            content.output.extend(messages_from_json(record.attributes.get("gen_ai.completion")))
    return None if content.empty else content


# --- shapes 4 and 5: flattened indexed attributes ------------------------------------------------------------------------

_INDEXED = re.compile(r"^(\d+)\.(.+)$")


def _indexed(attributes: dict[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """{"p.0.a": x, "p.0.b.1.c": y} under prefix "p." -> {0: {"a": x, "b.1.c": y}}."""
    grouped: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if not key.startswith(prefix):
            continue
        match = _INDEXED.match(key[len(prefix):])
        if match:
            grouped.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return dict(sorted(grouped.items()))


def _openinference_message(fields: dict[str, Any]) -> Message:
    role = str(fields.get("message.role") or "unknown")
    message = Message(role=role, name=_str(fields.get("message.name")))
    tool_call_id = _str(fields.get("message.tool_call_id"))
    if "message.content" in fields:
        kind = PartKind.TOOL_RESULT if role == "tool" else PartKind.TEXT
        value = fields["message.content"]
        message.parts.append(Part(kind, parse_json(value) if kind is PartKind.TOOL_RESULT else value,
                                  call_id=tool_call_id))
    for _, part in _indexed(fields, "message.contents.").items():
        if "message_content.text" in part:
            message.parts.append(Part(PartKind.TEXT, part["message_content.text"]))
        elif "message_content.image.image.url" in part:
            message.parts.append(Part(PartKind.MEDIA, str(part["message_content.image.image.url"]), name="image"))
    for _, call in _indexed(fields, "message.tool_calls.").items():
        message.parts.append(Part(
            PartKind.TOOL_CALL, parse_json(call.get("tool_call.function.arguments", NOT_RECORDED)),
            call_id=_str(call.get("tool_call.id")), name=_str(call.get("tool_call.function.name")) or "tool"))
    if not message.parts and role == "tool":
        message.parts.append(Part(PartKind.TOOL_RESULT, NOT_RECORDED, call_id=tool_call_id))
    return message


def _from_openinference(attributes: dict[str, Any]) -> SpanContent | None:
    inputs = [_openinference_message(fields) for fields in
              _indexed(attributes, semconv.OPENINFERENCE_INPUT_MESSAGES_PREFIX).values()]
    outputs = [_openinference_message(fields) for fields in
               _indexed(attributes, semconv.OPENINFERENCE_OUTPUT_MESSAGES_PREFIX).values()]
    if not inputs and not outputs:
        return None
    system = [part for message in inputs if message.role == "system" for part in message.parts]
    inputs = [message for message in inputs if message.role != "system"]
    return SpanContent(system=system or None, input=inputs, output=outputs, source="OpenInference attributes")


def _legacy_indexed_message(fields: dict[str, Any], default_role: str) -> Message:
    role = str(fields.get("role") or default_role)
    message = Message(role=role, finish_reason=_str(fields.get("finish_reason")))
    tool_call_id = _str(fields.get("tool_call_id"))
    if "content" in fields:
        kind = PartKind.TOOL_RESULT if role == "tool" else PartKind.TEXT
        value = fields["content"]
        message.parts.append(Part(kind, parse_json(value) if kind is PartKind.TOOL_RESULT else value,
                                  call_id=tool_call_id))
    for _, call in _indexed(fields, "tool_calls.").items():
        message.parts.append(Part(PartKind.TOOL_CALL, parse_json(call.get("arguments", NOT_RECORDED)),
                                  call_id=_str(call.get("id")), name=_str(call.get("name")) or "tool"))
    if "function_call.name" in fields:
        message.parts.append(Part(PartKind.TOOL_CALL, parse_json(fields.get("function_call.arguments", NOT_RECORDED)),
                                  name=str(fields["function_call.name"])))
    return message


def _from_legacy_indexed(attributes: dict[str, Any]) -> SpanContent | None:
    inputs = [_legacy_indexed_message(fields, "user") for fields in
              _indexed(attributes, semconv.LEGACY_PROMPT_PREFIX).values()]
    outputs = [_legacy_indexed_message(fields, "assistant") for fields in
               _indexed(attributes, semconv.LEGACY_COMPLETION_PREFIX).values()]
    if not inputs and not outputs:
        return None
    system = [part for message in inputs if message.role == "system" for part in message.parts]
    inputs = [message for message in inputs if message.role != "system"]
    return SpanContent(system=system or None, input=inputs, output=outputs, source="legacy gen_ai.prompt attributes")


# --- all together ---------------------------------------------------------------------------------------------------------


def span_content(attributes: dict[str, Any], events: Iterable[EventRecord] = (),
                 logs: Iterable[EventRecord] = ()) -> SpanContent:
    """The messages a span carries, read from its attributes, its events and the log records correlated with it."""
    found = _from_genai_attributes(attributes, "gen_ai attributes")
    if found:
        return found
    records = [*events, *logs]
    for record in records:
        if record.name == semconv.EVENT_INFERENCE_DETAILS:
            details = dict(record.attributes)
            body = parse_json(record.body)
            if isinstance(body, dict):
                details.update(body)  # some SDKs put the structured messages in the log body
            found = _from_genai_attributes(details, f"{semconv.EVENT_INFERENCE_DETAILS} event")
            if found:
                return found
    legacy = [record for record in records if record.name in LEGACY_EVENT_NAMES]
    for candidate in (
        _from_legacy_events(legacy) if legacy else None,
        _from_prompt_completion_events(records),
        _from_openinference(attributes),
        _from_legacy_indexed(attributes),
    ):
        if candidate:
            return candidate
    return SpanContent()
